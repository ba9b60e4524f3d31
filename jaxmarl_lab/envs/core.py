"""The environment API shared by every jaxmarl-lab environment.

An environment object holds only static, shape-setting Python values; everything
numeric a user may vary lives in a params pytree (a `flax.struct.dataclass`), so a
stack of params can be `vmap`ped. The public functions are pure:

    state, timestep = env.reset(key, params)
    state, timestep = env.step(key, state, actions, params)   # auto-resets

and their natively batched twins, which take one key for the whole batch:

    state, timestep = env.reset_batch(key, params, batch_size)
    state, timestep = env.step_batch(key, state, actions, params)

For most environments `step_batch(key, ...)` is exactly
`jax.vmap(env.step)(jax.random.split(key, B), ...)`. An environment whose physics is
written to work on trailing batch axes (`batch_minor = True`, e.g. particle-spread)
keeps its batched state batch-minor (batch axis last), which runs several times faster
on CPU, and draws the randomness of its auto-resets for the whole batch at once (same
distribution, other draws); its `TimeStep` is still returned batch-major, `(B, N, O)`.
Treat batched states as opaque and create them with `reset_batch`.

Every state carries a `step` field: the number of steps taken in the current episode.

Actions outside the action space never reach the dynamics as such; one rule for every
environment, applied inside the (jittable, vmappable) step by `Environment.sanitize_actions`:

* discrete: an out-of-range action (< 0 or >= A) is the environment's no-op,
  `noop_action` (0 for every environment here: grid-world's "stay", particle-spread's
  mpe2 "no_action");
* continuous: a non-finite component (NaN, +inf, -inf) counts as 0.0; this happens
  before the environment clips finite values to `[action_low, action_high]`.

Actions are not validated by value in Python (they are usually traced); the shape and
dtype are (`check_actions`).

What an environment knows about itself, it provides through optional hooks with
defaults, so that evaluation, rendering and the commands never branch on its name
(a new environment is one file plus its registration in `envs/__init__.py`):

* `optimal_returns(params, starts)`: each episode's exact optimal return, or None;
* `describe_optimum(params)`: one line about the optimum, printed by `jaxmarl-lab demo`;
* `render_view(params)` and `render_positions(state)`: how `jaxmarl_lab.render` draws it;
* `example_kwargs`: the variants `jaxmarl-lab demo` and `bench` show.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, Generic, NamedTuple, TypeVar, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxmarl_lab.types import EnvSpec, RewardBounds, TimeStep
from jaxmarl_lab.validation import check_number, check_positive_int  # noqa: F401  (re-exported for env modules)

State = TypeVar("State")
Params = TypeVar("Params")


class GridView(NamedTuple):
    """Draw on a `height` x `width` grid: agent i a disc in its cell `(row, col)`, target i (its goal) that
    cell filled in agent i's lighter colour."""

    height: int
    width: int


class PlaneView(NamedTuple):
    """Draw in the plane: agents as discs of radius `agent_radius` at `(x, y)`, targets as small dark
    landmark discs, in a square view centred on the origin that holds every position of the episode."""

    agent_radius: Any  # () float, in plane units (read when drawing, so it may come from params)


#: How `jaxmarl_lab.render` draws an environment (`Environment.render_view`).
RenderView = Union[GridView, PlaneView]


def others_index(num_agents: int) -> np.ndarray:
    """`(N, N-1)` int32: row i lists the other agents in agent order, for "the others' ..." observations.

    `x[others_index(N)]` gathers, for each agent, the rows of `x (N, ...)` of the other agents.
    """
    n = num_agents
    return np.array([[j for j in range(n) if j != i] for i in range(n)], np.int32).reshape(n, n - 1)


def noop_if_out_of_range(actions: jax.Array, num_actions: int, noop: int = 0) -> jax.Array:
    """The discrete action rule: an action outside `[0, num_actions)` becomes `noop`.

    One `jnp.where`, elementwise, so any shape (and traced values) works.
    """
    return jnp.where((actions >= 0) & (actions < num_actions), actions, noop)


def zero_if_non_finite(actions: jax.Array) -> jax.Array:
    """The continuous action rule: NaN, +inf and -inf components become 0.0 (one `jnp.where`)."""
    return jnp.where(jnp.isfinite(actions), actions, 0.0)


class Environment(abc.ABC, Generic[State, Params]):
    """Base class: subclasses implement the per-environment pieces below.

    Subclasses provide `spec`, `default_params`, `reset_state`, `transition`,
    `observe` and optionally `global_state` and `avail_actions`. The base class adds
    validation, the time limit, auto-reset and batching.

    Action rule (see the module docstring): `transition` must pass its actions through
    `sanitize_actions` (or apply the same rule itself), so that an out-of-range discrete
    action is `noop_action` and a non-finite continuous component is 0.0 before clipping,
    on every path: `step`, `step_batch` and direct calls of `transition`.
    """

    #: The discrete action that does nothing ("stay", "no action"); out-of-range
    #: discrete actions are treated as this one.
    noop_action: int = 0

    #: True when `transition`, `observe`, `global_state` and `avail_actions` accept
    #: states with extra trailing batch axes (and actions with the batch axis last).
    batch_minor: bool = False

    #: Constructor kwargs of the variants worth showing, `{}` being the default one
    #: (`jaxmarl-lab demo` rolls each out, `jaxmarl-lab bench` times each; `envs.example_cases`).
    example_kwargs: tuple[dict[str, Any], ...] = ({},)

    # ----- what an environment implements ------------------------------------------
    @property
    @abc.abstractmethod
    def spec(self) -> EnvSpec:
        """The static `EnvSpec` of this environment."""

    @abc.abstractmethod
    def default_params(self, **overrides: Any) -> Params:
        """Default params, with `overrides` applied and validated."""

    @abc.abstractmethod
    def reset_state(self, key: jax.Array, params: Params) -> State:
        """A fresh initial state of one environment (step = 0)."""

    @abc.abstractmethod
    def transition(self, key: jax.Array, state: State, actions: jax.Array,
                   params: Params) -> tuple[State, jax.Array, jax.Array]:
        """One step without auto-reset: `(next_state, reward (N,), terminated ())`.

        Must increment `state.step`. Must not apply the time limit.
        """

    @abc.abstractmethod
    def observe(self, state: State, params: Params) -> jax.Array:
        """Per-agent observations, `(N, O)` float32."""

    def global_state(self, state: State, params: Params) -> jax.Array:
        """Global state, `(S,)` float32. Default: all observations concatenated."""
        obs = self.observe(state, params)
        return obs.reshape((-1,) + obs.shape[2:])

    def avail_actions(self, state: State, params: Params) -> jax.Array:
        """Available actions, `(N, A)` bool. Default: all available."""
        batch = jnp.shape(state.step)  # type: ignore[attr-defined]
        return jnp.ones((self.spec.num_agents, self.spec.action_size) + batch, dtype=bool)

    def sanitize_actions(self, actions: jax.Array) -> jax.Array:
        """Applies the action rule to joint actions with any trailing batch axes.

        Discrete `(N, ...)`: out-of-range actions become `noop_action`. Continuous
        `(N, D, ...)`: non-finite components become 0.0 (clip finite values afterwards).
        In-range and finite actions pass through bit-for-bit. One `jnp.where`.
        """
        spec = self.spec
        if spec.is_discrete:
            return noop_if_out_of_range(actions, spec.action_size, self.noop_action)
        return zero_if_non_finite(actions)

    def time_limit(self, params: Params) -> jax.Array:
        """Steps after which an episode is truncated. Default: `params.max_steps`."""
        return params.max_steps  # type: ignore[attr-defined]

    @property
    def unwrapped(self) -> "Environment":
        """The innermost environment under any wrappers (`envs.wrappers`); itself here."""
        return self

    # ----- optional hooks: what the environment knows about itself ---------------------
    def optimal_returns(self, params: Params, starts: State) -> tuple[np.ndarray | None, str]:
        """Each episode's exact optimal undiscounted per-agent return, and how it was found.

        Args:
            params: the episodes' params (concrete).
            starts: the K episodes' initial states, as `reset_batch` returns them (host
                arrays; batch axis first, or last for a batch-minor environment).

        Returns:
            `(optimum (K,) float, how)`, or `(None, why not)`. The default: none is known.
        """
        del params, starts
        return None, f"no exact optimum is known for {self.spec.name}"

    def reward_bounds(self, params: Params) -> RewardBounds:
        """What one agent can receive under `params` (concrete): per-step reward bounds, the
        largest return from any state, and the episode length. The default knows only the length."""
        return RewardBounds(-np.inf, np.inf, np.inf, int(np.asarray(self.time_limit(params))))

    def default_bounds(self) -> dict[str, Any]:
        """`reward_bounds(default_params())` as `EnvSpec` fields, computed once per environment object."""
        if "_default_bounds" not in self.__dict__:
            with jax.ensure_compile_time_eval():  # `spec` is also read while tracing: the params stay concrete
                self.__dict__["_default_bounds"] = self.reward_bounds(self.default_params())._asdict()
        return self.__dict__["_default_bounds"]

    def describe_optimum(self, params: Params) -> str | None:
        """One line about the optimum of episodes under `params` (`jaxmarl-lab demo`), or None (the default)."""
        del params
        return None

    def render_view(self, params: Params) -> RenderView | None:
        """How `jaxmarl_lab.render` draws this environment, or None if it cannot be drawn (the default)."""
        del params
        return None

    def render_positions(self, state: State) -> tuple[jax.Array, jax.Array]:
        """`(agents (N, 2), targets (L, 2))` float32 positions of one environment's state, in the
        coordinates of `render_view` (jittable). Needed when `render_view` is not None."""
        raise NotImplementedError(f"{type(self).__name__} has no render_positions")

    # ----- the public API ------------------------------------------------------------
    def reset(self, key: jax.Array, params: Params | None = None) -> tuple[State, TimeStep]:
        """Starts an episode: `(state, TimeStep)` for one environment."""
        params = self.default_params() if params is None else params
        state = self.reset_state(key, params)
        return state, self._first_timestep(state, params)

    def _first_timestep(self, state: State, params: Params) -> TimeStep:
        """The `TimeStep` of a fresh state (any trailing batch axes): zero reward, no end."""
        batch = jnp.shape(state.step)  # type: ignore[attr-defined]
        obs, gstate = self.observe(state, params), self.global_state(state, params)
        zeros = jnp.zeros(batch, dtype=bool)
        reward = jnp.zeros((self.spec.num_agents,) + batch, jnp.float32)
        return TimeStep(obs, gstate, reward, zeros, zeros, self.avail_actions(state, params), obs, gstate)

    def step(self, key: jax.Array, state: State, actions: jax.Array,
             params: Params | None = None) -> tuple[State, TimeStep]:
        """Advances one environment by one joint action, auto-resetting at episode end."""
        params = self.default_params() if params is None else params
        actions = self.check_actions(actions, batch=())
        key_step, key_reset = jax.random.split(key)
        return self._step(key_step, key_reset, state, actions, params, self.reset_state)

    def reset_batch(self, key: jax.Array, params: Params | None = None,
                    batch_size: int = 1) -> tuple[State, TimeStep]:
        """Starts `batch_size` episodes in this environment's batched layout.

        For environments that are not batch-minor this is exactly
        `vmap(reset)(split(key, batch_size))`.
        """
        params = self.default_params() if params is None else params
        batch_size = check_positive_int("batch_size", batch_size)
        if not self.batch_minor:
            return jax.vmap(self.reset, in_axes=(0, None))(jax.random.split(key, batch_size), params)
        state = self.reset_state_batch(key, params, batch_size)
        timestep = self._first_timestep(state, params)
        return state, jax.tree.map(lambda x: jnp.moveaxis(x, -1, 0), timestep)

    def reset_state_batch(self, key: jax.Array, params: Params, batch_size: int) -> State:
        """Initial states of `batch_size` environments, batch axis last (batch-minor envs).

        The default vmaps `reset_state`; an environment can draw the whole batch at once.
        """
        keys = jax.random.split(key, batch_size)
        return jax.vmap(self.reset_state, in_axes=(0, None), out_axes=-1)(keys, params)

    def step_batch(self, key: jax.Array, state: State, actions: jax.Array,
                   params: Params | None = None) -> tuple[State, TimeStep]:
        """Steps a batch of environments: actions `(B, N)` or `(B, N, D)`.

        For environments that are not batch-minor this is exactly
        `vmap(step)(split(key, B), state, actions)`. Batch-minor environments draw the
        randomness of their auto-resets for the whole batch at once: the same
        distribution, other draws.
        """
        params = self.default_params() if params is None else params
        batch = jnp.shape(state.step)  # type: ignore[attr-defined]
        actions = self.check_actions(actions, batch=batch)
        if not self.batch_minor:
            keys = jax.random.split(key, batch[0])
            return jax.vmap(self.step, in_axes=(0, 0, 0, None))(keys, state, actions, params)
        key_step, key_reset = jax.random.split(key)
        reset_fn = lambda k, p: self.reset_state_batch(k, p, batch[0])
        state, timestep = self._step(key_step, key_reset, state, jnp.moveaxis(actions, 0, -1),
                                     params, reset_fn)
        return state, jax.tree.map(lambda x: jnp.moveaxis(x, -1, 0), timestep)

    # ----- internals -----------------------------------------------------------------
    def _step(self, key_step: jax.Array, key_reset: jax.Array, state: State,
              actions: jax.Array, params: Params,
              reset_fn: Callable[[jax.Array, Params], State]) -> tuple[State, TimeStep]:
        next_state, reward, terminated = self.transition(key_step, state, actions, params)
        truncated = (next_state.step >= self.time_limit(params)) & ~terminated  # type: ignore[attr-defined]
        done = terminated | truncated
        final_obs = self.observe(next_state, params)
        final_gstate = self.global_state(next_state, params)
        fresh = reset_fn(key_reset, params)
        state = jax.tree.map(lambda new, old: jnp.where(done, new, old), fresh, next_state)
        obs = jnp.where(done, self.observe(fresh, params), final_obs)
        gstate = jnp.where(done, self.global_state(fresh, params), final_gstate)
        timestep = TimeStep(obs, gstate, reward.astype(jnp.float32), terminated, truncated,
                            self.avail_actions(state, params), final_obs, final_gstate)
        return state, timestep

    def check_actions(self, actions: Any, batch: tuple[int, ...]) -> jax.Array:
        """Validates the joint action's shape and dtype when traced; returns an array.

        Values are not checked here: out-of-range or non-finite actions are legal input
        and follow the action rule (`sanitize_actions`) inside `transition`.

        Raises:
            ValueError: naming `actions`, the shape or dtype received and what is allowed.
        """
        spec = self.spec
        actions = jnp.asarray(actions)
        expected = tuple(batch) + spec.action_shape
        what = "(B, " if batch else "("
        if spec.is_discrete:
            if not jnp.issubdtype(actions.dtype, jnp.integer):
                raise ValueError(f"actions for {spec.name} must be integers (int32) of shape "
                                 f"{expected}, got dtype {actions.dtype}")
            if actions.shape != expected:
                raise ValueError(f"actions for {spec.name} must have shape {expected} "
                                 f"{what}N) with N={spec.num_agents}), got {actions.shape}")
            return actions.astype(jnp.int32)
        if not jnp.issubdtype(actions.dtype, jnp.floating):
            raise ValueError(f"actions for {spec.name} must be floats (float32) of shape "
                             f"{expected}, got dtype {actions.dtype}")
        if actions.shape != expected:
            raise ValueError(f"actions for {spec.name} must have shape {expected} "
                             f"{what}N, D) with N={spec.num_agents}, D={spec.action_size}), "
                             f"got {actions.shape}")
        return actions.astype(jnp.float32)
