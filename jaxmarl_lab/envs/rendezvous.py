"""Rendezvous: a cooperative continuous game with closed-form optima.

Every agent receives the same team reward for positions (or one-step actions) x_i:

    r = -( sum_i ||x_i - target||^2 + coupling * sum_{i<j} ||x_i - x_j||^2 ),

where the target point is `target` in every coordinate. Two forms share it:

* "one-step" (the textbook experiment): an episode is one joint action `(N, D)`, the
  agents' unbounded choices x_i; the step terminates and the base class auto-resets.
  Every observation an agent acts on is `(N, 1)` ones, a bias feature (the game is
  stateless); only `final_obs`, after the joint action, is zeros, so that an episode
  end is visible in the data. Optimum: `one_step_optimum`.
* "multi-step": agents move in R^D (default the plane) with velocity actions,
  `x_{t+1} = x_t + dt * max_speed * clip(a, -1, 1)`, rewarded with `team_reward` on the
  new positions, truncated after `max_steps`. Optimum: `optimal_return`.

Actions follow the rule of every environment here (`envs.core`): a NaN or infinite
component of an action counts as 0.0 (one-step: the choice 0.0; multi-step: no motion
along it), applied before the multi-step clip to [-1, 1], so a bad action never puts a
non-finite value in the state.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmarl_lab.types import EnvSpec, RewardBounds
from jaxmarl_lab.validation import check_number, check_positive_int

from .core import Environment, others_index

FORMS = ("one-step", "multi-step")


def team_reward(x: jax.Array, target: Any, coupling: Any) -> jax.Array:
    """The shared team reward of positions `x`, a scalar.

    Uses `sum_{i<j} ||x_i - x_j||^2 = N * sum_i ||x_i - mean(x)||^2`. Pure jnp, so it
    can be `vmap`ped over positions, targets or couplings.

    Args:
        x: positions or one-step actions, `(N, D)`.
        target: scalar; the target point is `target` in every coordinate.
        coupling: scalar >= 0, weight of the pairwise-distance penalty.

    Returns:
        `()` float, `-(sum_i ||x_i - target||^2 + coupling * sum_{i<j} ||x_i - x_j||^2)`.
    """
    to_target = jnp.sum(jnp.square(x - target))
    spread = x.shape[0] * jnp.sum(jnp.square(x - jnp.mean(x, axis=0)))
    return -(to_target + coupling * spread)


@struct.dataclass
class RendezvousParams:
    """Numeric params of rendezvous (all may be traced and `vmap`ped)."""

    target: jax.Array  # () float32, the target point is `target` in every coordinate
    coupling: jax.Array  # () float32, >= 0, weight of the pairwise penalty
    dt: jax.Array  # () float32, time step (multi-step)
    max_speed: jax.Array  # () float32, speed at |a| = 1 (multi-step)
    spawn_range: jax.Array  # () float32, start positions uniform in [-r, r]^D (multi-step)
    max_steps: jax.Array  # () int32, truncation limit (1 for one-step)


@struct.dataclass
class RendezvousState:
    """State of one rendezvous environment."""

    pos: jax.Array  # (N, D) float32, positions (one-step: the last joint action)
    step: jax.Array  # () int32, steps taken in the current episode


class Rendezvous(Environment[RendezvousState, RendezvousParams]):
    """N agents meeting at a target; see the module docstring. Not drawn by `jaxmarl_lab.render`.

    Args:
        num_agents: N >= 1.
        form: "one-step" or "multi-step".
        dim: D >= 1, the dimension of positions and actions; default 1 for one-step,
            2 for multi-step. A NaN or infinite action component counts as 0.0 (before
            the multi-step clip to [-1, 1]).

    Raises:
        ValueError: naming the bad argument, its value and what is allowed.
    """

    example_kwargs = ({}, {"form": "multi-step"})

    def __init__(self, num_agents: int = 4, form: str = "one-step", dim: int | None = None):
        self.num_agents = check_positive_int("num_agents", num_agents)
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        self.form = form
        default_dim = 1 if form == "one-step" else 2
        self.dim = check_positive_int("dim", default_dim if dim is None else dim)
        self.one_step = form == "one-step"
        self._others = others_index(self.num_agents)  # (N, N-1)

    @property
    def spec(self) -> EnvSpec:
        n, d = self.num_agents, self.dim
        if self.one_step:
            return EnvSpec(name="rendezvous", num_agents=n, obs_dim=1, state_dim=1,
                           action_kind="continuous", action_size=d, task=self.form, **self.default_bounds())
        return EnvSpec(name="rendezvous", num_agents=n, obs_dim=(n + 1) * d + 1,
                       state_dim=(n + 1) * d + 1, action_kind="continuous", action_size=d,
                       action_low=-1.0, action_high=1.0, task=self.form, **self.default_bounds())

    def reward_bounds(self, params: RendezvousParams) -> RewardBounds:
        """The team reward is minus a sum of squares: at most 0, unbounded below."""
        return RewardBounds(-np.inf, 0.0, 0.0, int(np.asarray(params.max_steps)))

    def default_params(self, **overrides: Any) -> RendezvousParams:
        """Default params with `overrides` applied and validated.

        Raises:
            ValueError: for an unknown name, or a value out of range (e.g.
                `coupling must be >= 0, got -1.0`).
        """
        values = dict(target=0.7, coupling=1.0, dt=0.1, max_speed=1.0, spawn_range=1.0,
                      max_steps=1 if self.one_step else 25)
        unknown = sorted(set(overrides) - set(values))
        if unknown:
            raise ValueError(f"unknown rendezvous params {unknown}; valid: {sorted(values)}")
        values.update(overrides)
        check_number("target", values["target"])
        for name in ("coupling", "dt", "max_speed", "spawn_range"):
            check_number(name, values[name], minimum=0.0)
        max_steps = values.pop("max_steps")
        if not isinstance(max_steps, jax.core.Tracer):
            max_steps = check_positive_int("max_steps", np.asarray(max_steps).item())
        floats = {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}
        return RendezvousParams(max_steps=jnp.asarray(max_steps, jnp.int32), **floats)

    def reset_state(self, key: jax.Array, params: RendezvousParams) -> RendezvousState:
        shape = (self.num_agents, self.dim)
        if self.one_step:
            pos = jnp.zeros(shape, jnp.float32)
        else:
            r = params.spawn_range
            pos = jax.random.uniform(key, shape, jnp.float32, minval=-r, maxval=r)
        return RendezvousState(pos=pos, step=jnp.zeros((), jnp.int32))

    def transition(self, key: jax.Array, state: RendezvousState, actions: jax.Array,
                   params: RendezvousParams) -> tuple[RendezvousState, jax.Array, jax.Array]:
        actions = self.sanitize_actions(actions)  # non-finite components -> 0.0
        if self.one_step:
            pos = actions
        else:
            pos = state.pos + params.dt * params.max_speed * jnp.clip(actions, -1.0, 1.0)
        reward = team_reward(pos, params.target, params.coupling)
        rewards = jnp.full((self.num_agents,), reward, jnp.float32)
        next_state = RendezvousState(pos=pos, step=state.step + 1)
        return next_state, rewards, jnp.asarray(self.one_step)

    def _time_left(self, state: RendezvousState, params: RendezvousParams) -> jax.Array:
        """Fraction of the episode still to go, `()` float32, 1 at reset."""
        limit = params.max_steps.astype(jnp.float32)
        return (limit - state.step.astype(jnp.float32)) / limit

    def _unplayed(self, state: RendezvousState) -> jax.Array:
        """One-step bias feature, `()` float32: 1 before the joint action, 0 after."""
        return (state.step == 0).astype(jnp.float32)

    def observe(self, state: RendezvousState, params: RendezvousParams) -> jax.Array:
        """Per-agent observations, `(N, O)` float32.

        One-step, O = 1: 1 before the joint action (every observation agents act on)
        and 0 after it (seen only in `final_obs`). Multi-step, O = (N+1)*D + 1: per agent
        its own position, target point minus own position, the other agents' positions
        relative to its own (agent order, skipping itself) and the fraction of time left.
        """
        n = self.num_agents
        if self.one_step:
            return jnp.broadcast_to(self._unplayed(state), (n, 1))
        pos = state.pos
        rel = pos[None, :, :] - pos[:, None, :]  # (N, N, D): [i, j] = x_j - x_i
        others = rel[jnp.arange(n)[:, None], self._others].reshape(n, (n - 1) * self.dim)
        time_left = jnp.broadcast_to(self._time_left(state, params), (n, 1))
        return jnp.concatenate([pos, params.target - pos, others, time_left],
                               axis=1).astype(jnp.float32)

    def global_state(self, state: RendezvousState, params: RendezvousParams) -> jax.Array:
        """Global state, `(S,)` float32.

        One-step, S = 1: one agent's observation. Multi-step, S = (N+1)*D + 1: all
        positions, the target point and the fraction of time left.
        """
        if self.one_step:
            return self._unplayed(state)[None]
        target = jnp.full((self.dim,), params.target, jnp.float32)
        time_left = self._time_left(state, params)[None]
        return jnp.concatenate([state.pos.reshape(-1), target, time_left]).astype(jnp.float32)

    # ----- hooks: the exact optimum ------------------------------------------------
    def optimal_returns(self, params: RendezvousParams, starts: RendezvousState) -> tuple[np.ndarray, str]:
        """The closed form: `one_step_optimum` (one-step, every episode alike) or `optimal_return`
        from each episode's start positions (multi-step)."""
        if self.one_step:
            value, _ = one_step_optimum(params, self.num_agents, self.dim, self.spec.action_low, self.spec.action_high)
            return np.full(len(np.asarray(starts.step)), value), "closed form (one-step)"
        return (np.array([optimal_return(params, start).ret for start in np.asarray(starts.pos)]),
                "closed form from each episode's start")

    def describe_optimum(self, params: RendezvousParams) -> str | None:
        """The one-step optimum; None for multi-step (it depends on each episode's start)."""
        if not self.one_step:
            return None
        value, _ = one_step_optimum(params, self.num_agents, self.dim)
        return f"closed-form optimum: team reward {value:.3f} (every agent plays the target)"


# ----- closed-form optima (NumPy, float64) ---------------------------------------------
def one_step_optimum(params: RendezvousParams, num_agents: int, dim: int,
                     low: float = -np.inf, high: float = np.inf) -> tuple[float, np.ndarray]:
    """Optimal one-step team reward and a joint action attaining it.

    With unbounded actions the optimum is 0 at x_i = target for every i. With actions
    restricted to the box [low, high]^D the optimum is the common action
    `clip(target, low, high)`, of value `-N * D * (clip(target, low, high) - target)^2`.

    Proof sketch: the cost is convex and symmetric under permuting the agents, so
    averaging the permutations of any minimizer gives a symmetric minimizer (all x_i
    equal). More directly, the coupling term is >= 0 and vanishes for any common
    action, while the target term separates into independent 1-D problems
    `min_{low <= x <= high} (x - target)^2`, each solved by `clip(target, low, high)`;
    the common action `clip(target)` minimizes both terms at once.

    Returns:
        `(value, actions)`: the per-agent reward (float) and actions `(N, D)` float64.
    """
    target = float(params.target)
    x = float(np.clip(target, low, high))
    return -num_agents * dim * (x - target) ** 2, np.full((num_agents, dim), x)


class RendezvousOptimum(NamedTuple):
    """Optimal multi-step episode of rendezvous from given start positions."""

    ret: float  # per-agent episode return (sum of the step rewards)
    rewards: np.ndarray  # (T,) float64, the team reward of each step
    positions: np.ndarray  # (T+1, N, D) float64, start positions then x_1..x_T
    actions: np.ndarray  # (T, N, D) float64, velocity actions in [-1, 1] realizing them


def _box_minimizer(y_low: np.ndarray, y_high: np.ndarray, coupling: float) -> np.ndarray:
    """Exact minimizer of `f(y) = sum y_i^2 + c (N sum y_i^2 - (sum y_i)^2)` over a box.

    KKT gives `y_i = clip(s, l_i, u_i)` with `s = k * mean(y)`, `k = cN / (1 + cN) < 1`.
    `h(s) = s - k * mean_i clip(s, l_i, u_i)` is piecewise linear and strictly
    increasing with kinks only at the bounds, so its root is found exactly by
    bracketing it between sorted breakpoints and interpolating linearly.

    Args:
        y_low, y_high: box bounds `(N,)`, y_low <= y_high.
        coupling: c >= 0.
    """
    k = coupling * y_low.size / (1.0 + coupling * y_low.size)

    def g(s: np.ndarray) -> np.ndarray:
        return k * np.mean(np.clip(s[:, None], y_low, y_high), axis=1)

    points = np.sort(np.concatenate([y_low, y_high]))
    h = points - g(points)
    if h[0] >= 0:  # root below every breakpoint, where g is constant
        s = g(points[:1])[0]
    elif h[-1] <= 0:  # root above every breakpoint, where g is constant
        s = g(points[-1:])[0]
    else:
        j = np.flatnonzero(h <= 0)[-1]  # h[j] <= 0 < h[j + 1], h linear in between
        a, b = points[j], points[j + 1]
        s = a - h[j] * (b - a) / (h[j + 1] - h[j])
    return np.clip(s, y_low, y_high)


def optimal_return(params: RendezvousParams, start_positions: Any) -> RendezvousOptimum:
    """Optimal multi-step return from `start_positions`, with its trajectory.

    Write y = x - target per coordinate. The step cost separates over coordinates into
    `f(y) = sum_i y_i^2 + c (N sum_i y_i^2 - (sum_i y_i)^2)` (strictly convex). After t
    steps agent i can reach exactly the box `[y_i0 - t v, y_i0 + t v]`, v = dt *
    max_speed, so the sum over t = 1..T of the per-step box minima bounds the optimal
    return from above; it is attained when the per-step minimizers y^t form a feasible
    trajectory, |y^t_i - y^{t-1}_i| <= v. They always do: clip is 1-Lipschitz in
    (s, l, u), so |y^t_i - y^{t-1}_i| <= max(|Δs|, v), and Δs = k Δmean(y) gives
    |Δs| <= k max(|Δs|, v) with k < 1, hence |Δs| <= v. The check is kept as a guard.

    Args:
        params: rendezvous params (target, coupling, dt, max_speed, max_steps = T).
        start_positions: `(N, D)` positions at step 0.

    Returns:
        A `RendezvousOptimum` (float64).

    Raises:
        RuntimeError: if the per-step minimizers are not linkable (never expected).
    """
    target, c = float(params.target), float(params.coupling)
    v = float(params.dt) * float(params.max_speed)
    steps = int(params.max_steps)
    y0 = np.asarray(start_positions, np.float64) - target  # (N, D)
    ys = [y0]
    for t in range(1, steps + 1):
        ys.append(np.stack([_box_minimizer(y0[:, d] - t * v, y0[:, d] + t * v, c)
                            for d in range(y0.shape[1])], axis=1))
    ys = np.stack(ys)  # (T+1, N, D)
    moves = np.diff(ys, axis=0)
    if np.any(np.abs(moves) > v * (1 + 1e-9) + 1e-12):
        raise RuntimeError("per-step minimizers of rendezvous are not linkable: a move of "
                           f"{np.abs(moves).max()} exceeds dt * max_speed = {v}")
    actions = np.clip(moves / v, -1.0, 1.0) if v > 0 else np.zeros_like(moves)
    n = y0.shape[0]
    spread = n * np.sum(np.square(ys[1:] - ys[1:].mean(axis=1, keepdims=True)), axis=(1, 2))
    rewards = -(np.sum(np.square(ys[1:]), axis=(1, 2)) + c * spread)
    return RendezvousOptimum(float(rewards.sum()), rewards, ys + target, actions)
