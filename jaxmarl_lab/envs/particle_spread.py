"""particle-spread: the multi-agent particle world "simple spread" task.

A faithful port of PettingZoo's MPE `simple_spread_v3` (package `mpe2`): N agents and
L landmarks (L = N by default) in the plane. Agents are rewarded by the team for how
close the nearest agent is to each landmark and penalised locally for collisions:

    reward_i = (1 - local_ratio) * (-sum_l min_j |p_j - x_l|) + local_ratio * (-collisions_i)

Physics, action decoding, observation layout, reward, reset distribution and the
episode length (exactly `max_steps` = 25 steps, ending as truncation) follow `mpe2`
1.1: each step the agents' positions move with their *old* velocities, then the
velocities are damped and pushed by the action and soft contact forces.

Layout. Positions and velocities are stored coordinate-major, `(2, N)`: x in row 0,
y in row 1. Every function below also accepts extra trailing batch axes (`(2, N, B)`),
so `step_batch` runs the physics batch-minor, which vectorises far better on CPU than
`vmap` over `(N, 2)` arrays (see benchmarks/env_throughput.py). `reset`/`step` remain
plain per-environment pure functions that users can `vmap`.

Observation of agent i, O = 4 + 2L + 4(N - 1):
    [vel_i (2), pos_i (2), landmark_l - pos_i (2L), pos_j - pos_i for j != i (2(N-1)),
     communication of the others (2(N-1), always zero: agents are silent)]
The global state is all observations concatenated (as `mpe2`'s `state()`), S = N * O.

Actions outside the space follow the rule of every environment here (`envs.core`): a
discrete action outside 0..4 is action 0, mpe2's no_action (no push); a NaN or infinite
component of a continuous action is 0.0, before the clip to [0, 1]. Valid actions are
decoded exactly as mpe2 does.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmarl_lab.types import EnvSpec, RewardBounds
from jaxmarl_lab.validation import check_number, check_positive_int

from .core import Environment, PlaneView, others_index

# Discrete action -> unit force direction, as in mpe2: [no-op, left, right, down, up].
_MOVE_X = np.array([0.0, -1.0, 1.0, 0.0, 0.0], np.float32)
_MOVE_Y = np.array([0.0, 0.0, 0.0, -1.0, 1.0], np.float32)
_COMM_DIM = 2


@struct.dataclass
class ParticleSpreadParams:
    """Numeric options of particle-spread (defaults are `mpe2`'s)."""

    local_ratio: Any = 0.5  # () float32, weight of the local collision penalty
    max_steps: Any = 25  # () int32, `max_cycles`: steps per episode, ending in truncation
    agent_size: Any = 0.15  # () float32, agent radius
    dt: Any = 0.1  # () float32, simulation time step
    damping: Any = 0.25  # () float32, velocity damping per step
    contact_force: Any = 100.0  # () float32, soft-contact stiffness
    contact_margin: Any = 1e-3  # () float32, soft-contact softness
    sensitivity: Any = 5.0  # () float32, action -> force gain (mpe2's default accel)


@struct.dataclass
class ParticleSpreadState:
    """One environment's state; trailing batch axes `...` are allowed on every field."""

    agent_pos: jax.Array  # (2, N, ...) float32, coordinate-major: x = [0], y = [1]
    agent_vel: jax.Array  # (2, N, ...) float32
    landmark_pos: jax.Array  # (2, L, ...) float32
    step: jax.Array  # (...) int32, steps taken in this episode


class ParticleSpread(Environment[ParticleSpreadState, ParticleSpreadParams]):
    """MPE simple spread with N agents, L landmarks, discrete or continuous actions.

    Args:
        num_agents: N >= 1.
        num_landmarks: L >= 1 (default N, as in `simple_spread_v3`).
        continuous_actions: False for 5 discrete actions (no-op, left, right, down, up);
            an action outside 0..4 is the no-op (0). True for `Box(0, 1, (5,))`, decoded
            as force (a[2] - a[1], a[4] - a[3]) after clipping to [0, 1], as PettingZoo's
            clip wrapper does; a NaN or infinite component is 0.0 before the clip.
    """

    batch_minor = True
    noop_action = 0  # mpe2's no_action; every out-of-range discrete action acts as it
    example_kwargs = ({}, {"continuous_actions": True})

    def __init__(self, num_agents: int = 3, num_landmarks: int | None = None,
                 continuous_actions: bool = False):
        self.num_agents = check_positive_int("num_agents", num_agents)
        self.num_landmarks = check_positive_int(
            "num_landmarks", self.num_agents if num_landmarks is None else num_landmarks)
        if not isinstance(continuous_actions, bool):
            raise ValueError(f"continuous_actions must be True or False, got {continuous_actions!r}")
        self.continuous_actions = continuous_actions
        n = self.num_agents
        self._others = others_index(n)  # (N, N-1)
        self._obs_dim = 4 + 2 * self.num_landmarks + 2 * (n - 1) + _COMM_DIM * (n - 1)

    @property
    def spec(self) -> EnvSpec:
        if self.continuous_actions:
            kind, low, high = "continuous", 0.0, 1.0
        else:
            kind, low, high = "discrete", -np.inf, np.inf
        return EnvSpec(name="particle-spread", num_agents=self.num_agents,
                       obs_dim=self._obs_dim, state_dim=self.num_agents * self._obs_dim,
                       action_kind=kind, action_size=5, action_low=low, action_high=high, task=kind,
                       **self.default_bounds())

    def reward_bounds(self, params: ParticleSpreadParams) -> RewardBounds:
        """Coverage (minus distances) and collisions (minus counts) are at most 0; unbounded below."""
        return RewardBounds(-np.inf, 0.0, 0.0, int(np.asarray(params.max_steps)))

    def default_params(self, **overrides: Any) -> ParticleSpreadParams:
        """Default params with overrides, each concrete value checked against its range."""
        params = ParticleSpreadParams().replace(**overrides)
        check_number("local_ratio", params.local_ratio, 0.0, 1.0)
        check_number("max_steps", params.max_steps, 1)
        for name in ("agent_size", "dt", "contact_force", "contact_margin", "sensitivity"):
            check_number(name, getattr(params, name), 0.0)
        check_number("damping", params.damping, 0.0, 1.0)
        return jax.tree.map(jnp.asarray, params)

    # ----- state -------------------------------------------------------------------
    def reset_state(self, key: jax.Array, params: ParticleSpreadParams) -> ParticleSpreadState:
        """Agents and landmarks uniform in [-1, 1]^2, velocities zero (as `mpe2`)."""
        key_agents, key_landmarks = jax.random.split(key)
        agents = jax.random.uniform(key_agents, (self.num_agents, 2), minval=-1.0, maxval=1.0)
        landmarks = jax.random.uniform(key_landmarks, (self.num_landmarks, 2),
                                       minval=-1.0, maxval=1.0)
        return self.state_from_positions(agents, landmarks)

    def reset_state_batch(self, key: jax.Array, params: ParticleSpreadParams,
                          batch_size: int) -> ParticleSpreadState:
        """`batch_size` initial states drawn at once, batch axis last: `(2, N, B)`."""
        key_agents, key_landmarks = jax.random.split(key)
        agents = jax.random.uniform(key_agents, (2, self.num_agents, batch_size), minval=-1.0, maxval=1.0)
        landmarks = jax.random.uniform(key_landmarks, (2, self.num_landmarks, batch_size),
                                       minval=-1.0, maxval=1.0)
        return ParticleSpreadState(agent_pos=agents, agent_vel=jnp.zeros_like(agents),
                                   landmark_pos=landmarks,
                                   step=jnp.zeros((batch_size,), jnp.int32))

    def state_from_positions(self, agent_pos: Any, landmark_pos: Any, agent_vel: Any = None,
                             step: Any = 0) -> ParticleSpreadState:
        """Builds one environment's state from `(N, 2)` / `(L, 2)` positions.

        Use it to inject a state taken from elsewhere, e.g. PettingZoo's initial state.
        """
        agent_pos = jnp.asarray(agent_pos, jnp.float32)
        landmark_pos = jnp.asarray(landmark_pos, jnp.float32)
        agent_vel = jnp.zeros_like(agent_pos) if agent_vel is None else jnp.asarray(agent_vel, jnp.float32)
        for name, value, rows in (("agent_pos", agent_pos, self.num_agents),
                                  ("agent_vel", agent_vel, self.num_agents),
                                  ("landmark_pos", landmark_pos, self.num_landmarks)):
            if value.shape != (rows, 2):
                raise ValueError(f"{name} must have shape ({rows}, 2), got {value.shape}")
        return ParticleSpreadState(agent_pos=agent_pos.T, agent_vel=agent_vel.T,
                                   landmark_pos=landmark_pos.T,
                                   step=jnp.asarray(step, jnp.int32))

    # ----- dynamics ----------------------------------------------------------------
    def _action_force(self, actions: jax.Array, params: ParticleSpreadParams):
        """Force from actions `(N, ...)` int or `(N, 5, ...)` float: `(fx, fy)`, each `(N, ...)`.

        The action rule comes first (`sanitize_actions`): out-of-range discrete actions
        are the no-op, non-finite continuous components 0.0 (then clipped to [0, 1]).
        """
        a = self.sanitize_actions(actions)
        if self.continuous_actions:
            a = jnp.clip(a, 0.0, 1.0)
            fx, fy = a[:, 2] - a[:, 1], a[:, 4] - a[:, 3]
        else:
            fx, fy = jnp.asarray(_MOVE_X)[a], jnp.asarray(_MOVE_Y)[a]
        return fx * params.sensitivity, fy * params.sensitivity

    def _contact_force(self, pos: jax.Array, params: ParticleSpreadParams):
        """Soft contact forces between agents: `(fx, fy)`, each `(N, ...)`.

        mpe2: penetration = k * log(1 + exp(-(dist - 2 r) / k)); the force on i from j is
        contact_force * (p_i - p_j) / dist * penetration. Landmarks do not collide.
        """
        dx = pos[0][:, None] - pos[0][None, :]  # (N, N, ...): p_i - p_j
        dy = pos[1][:, None] - pos[1][None, :]
        eye = np.eye(self.num_agents, dtype=bool).reshape(
            (self.num_agents, self.num_agents) + (1,) * (dx.ndim - 2))
        dist = jnp.sqrt(dx * dx + dy * dy)
        k = params.contact_margin
        penetration = jnp.logaddexp(0.0, -(dist - 2.0 * params.agent_size) / k) * k
        scale = jnp.where(eye, 0.0, params.contact_force * penetration / jnp.where(eye, 1.0, dist))
        return (scale * dx).sum(axis=1), (scale * dy).sum(axis=1)

    def transition(self, key: jax.Array, state: ParticleSpreadState, actions: jax.Array,
                   params: ParticleSpreadParams):
        del key  # the dynamics are deterministic (mpe2's u_noise is None)
        ax, ay = self._action_force(actions, params)
        cx, cy = self._contact_force(state.agent_pos, params)
        force = jnp.stack([ax + cx, ay + cy])  # (2, N, ...)
        pos = state.agent_pos + state.agent_vel * params.dt
        vel = state.agent_vel * (1.0 - params.damping) + force * params.dt  # mass 1
        next_state = state.replace(agent_pos=pos, agent_vel=vel, step=state.step + 1)
        terminated = jnp.zeros(jnp.shape(state.step), dtype=bool)
        return next_state, self._reward(next_state, params), terminated

    def _reward(self, state: ParticleSpreadState, params: ParticleSpreadParams) -> jax.Array:
        """`(N, ...)` rewards: shared landmark coverage plus own collision penalty."""
        pos, lm = state.agent_pos, state.landmark_pos
        to_landmark = jnp.sqrt((pos[0][:, None] - lm[0][None, :]) ** 2
                               + (pos[1][:, None] - lm[1][None, :]) ** 2)  # (N, L, ...)
        coverage = -to_landmark.min(axis=0).sum(axis=0)  # (...)
        between = jnp.sqrt((pos[0][:, None] - pos[0][None, :]) ** 2
                           + (pos[1][:, None] - pos[1][None, :]) ** 2)  # (N, N, ...)
        eye = np.eye(self.num_agents, dtype=bool).reshape(
            (self.num_agents, self.num_agents) + (1,) * (between.ndim - 2))
        collisions = ((between < 2.0 * params.agent_size) & ~eye).sum(axis=1)  # (N, ...)
        return (1.0 - params.local_ratio) * coverage[None] - params.local_ratio * collisions

    # ----- observations ------------------------------------------------------------
    def observe(self, state: ParticleSpreadState, params: ParticleSpreadParams) -> jax.Array:
        """`(N, O, ...)` float32 observations in `mpe2`'s layout (see module docstring)."""
        del params
        n, pos, vel, lm = self.num_agents, state.agent_pos, state.agent_vel, state.landmark_pos
        batch = pos.shape[2:]

        def pairs(x: jax.Array, y: jax.Array) -> jax.Array:  # (N, K, ...) x2 -> (N, 2K, ...)
            return jnp.stack([x, y], axis=2).reshape((n, 2 * x.shape[1]) + batch)

        own = jnp.stack([vel[0], vel[1], pos[0], pos[1]], axis=1)  # (N, 4, ...)
        landmarks = pairs(lm[0][None, :] - pos[0][:, None], lm[1][None, :] - pos[1][:, None])
        rows = np.arange(n)[:, None]
        others = pairs((pos[0][None, :] - pos[0][:, None])[rows, self._others],
                       (pos[1][None, :] - pos[1][:, None])[rows, self._others])
        comm = jnp.zeros((n, _COMM_DIM * (n - 1)) + batch, jnp.float32)
        return jnp.concatenate([own, landmarks, others, comm], axis=1)

    # ----- hooks: drawing (no exact optimum is known: the default `optimal_returns`) --------------
    def render_view(self, params: ParticleSpreadParams) -> PlaneView:
        """The plane, agents drawn with radius `params.agent_size`; the targets are the landmarks."""
        return PlaneView(params.agent_size)

    def render_positions(self, state: ParticleSpreadState) -> tuple[jax.Array, jax.Array]:
        """`(agents (N, 2), landmarks (L, 2))` `(x, y)` positions of one environment's state."""
        return state.agent_pos.T, state.landmark_pos.T
