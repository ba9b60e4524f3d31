"""JaxMARL -> jaxmarl-lab: train our learners on a JaxMARL `MultiAgentEnv`.

    import jaxmarl
    from jaxmarl_lab.interop import from_jaxmarl
    env = from_jaxmarl(jaxmarl.make("MPE_simple_spread_v3"))
    train = make_train(env, make_mappo(env.spec, PPOConfig()), RunnerConfig(...))

JaxMARL environments speak in dicts keyed by agent name: `reset(key) -> (obs, state)`
and `step(key, state, actions) -> (obs, state, rewards, dones, infos)` with one
`dones["__all__"]` flag and an auto-reset inside `step`. `JaxMARLEnv` stacks the
dicts along an agent axis in `env.agents` order and presents our environment API,
`jaxmarl_lab.types.EnvProtocol`: `spec`, `default_params`, `reset`, `step`
(auto-resetting, with `final_obs`/`final_global_state`), `reset_batch` and `step_batch`
(vmapped), `time_limit` and `unwrapped`.

Mapping of the episode end. JaxMARL has one `done` with no terminated/truncated split.
An episode that ends when its length has reached `params.max_steps` (default: the
wrapped env's `max_steps` attribute) is reported as `truncated` (learners bootstrap
from `final_obs`); any earlier end as `terminated`. Every JaxMARL MPE episode ends by
its time limit, so all of them are truncations. Note that JaxMARL's MPE sets
`done = step >= max_steps` *before* counting the step, so its episodes last
`max_steps + 1` steps (26 for the default 25), one more than PettingZoo's; the wrapper
keeps JaxMARL's episodes exactly as they are.

Keys: `step(key, ...)` splits `key` exactly as JaxMARL's own `step` does, so the
wrapper and `jaxmarl_env.step` give the same observations, rewards and auto-resets
for the same key and actions (tests/test_interop.py checks it).

Observations of different sizes are zero-padded to the largest; discrete action
spaces of different sizes share `A = max n`, the extra actions marked unavailable.
The global state is the env's `world_state` observation entry (JaxMARL's SMAX), else
`global_state_fn(env_state)` when given, else all observations concatenated.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmarl_lab.types import EnvProtocol, EnvSpec, TimeStep
from jaxmarl_lab.validation import check_positive_int

_NO_TIME_LIMIT = 2**30


@struct.dataclass
class JaxMARLParams:
    """Numeric options of the wrapper (the JaxMARL env keeps its own as Python attributes)."""

    max_steps: jax.Array  # () int32, an episode ending at or after this length counts as truncated


@struct.dataclass
class JaxMARLState:
    """The wrapped env's state and our own episode step counter."""

    env_state: Any  # the JaxMARL env's state pytree
    step: jax.Array  # () int32, steps taken in this episode


def from_jaxmarl(env: Any, global_state_fn: Callable[[Any], jax.Array] | None = None,
                 name: str | None = None) -> "JaxMARLEnv":
    """Wraps a JaxMARL `MultiAgentEnv` (see `JaxMARLEnv`)."""
    return JaxMARLEnv(env, global_state_fn=global_state_fn, name=name)


class JaxMARLEnv:
    """A JaxMARL `MultiAgentEnv` with the jaxmarl-lab environment interface (`EnvProtocol`).

    Args:
        env: the JaxMARL environment (e.g. `jaxmarl.make("MPE_simple_spread_v3")`).
        global_state_fn: optional `env_state -> (S,)` float array for centralized
            critics and mixers; default: the `world_state` entry of the observations if
            the env provides one, else all observations concatenated.
        name: name for the `EnvSpec` (default `"jaxmarl:<EnvClass>"`).

    Raises:
        ValueError: if `env` lacks the JaxMARL API, or its action spaces are neither all
            discrete nor all continuous boxes of one shape.
    """

    batch_minor = False

    def __init__(self, env: Any, global_state_fn: Callable[[Any], jax.Array] | None = None,
                 name: str | None = None):
        missing = [a for a in ("agents", "reset", "step", "step_env", "action_space", "observation_space")
                   if not hasattr(env, a)]
        if missing:
            raise ValueError(f"env must be a JaxMARL MultiAgentEnv; {type(env).__name__} lacks {missing}")
        self.env = env
        self.agents = list(env.agents)
        self._global_state_fn = global_state_fn
        self._obs_dims = [int(np.prod(env.observation_space(a).shape)) for a in self.agents]
        self._action_kind, self._action_size, low, high = self._action_layout()
        abstract_obs, abstract_state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
        self._has_world_state = isinstance(abstract_obs, dict) and "world_state" in abstract_obs
        self._has_avail = self._implements_avail_actions(abstract_state)
        self.time_limit_default = int(getattr(env, "max_steps", _NO_TIME_LIMIT))
        state_dim = self._state_dim(abstract_state, abstract_obs)
        self._spec = EnvSpec(name=name or f"jaxmarl:{type(env).__name__}", num_agents=len(self.agents),
                             obs_dim=max(self._obs_dims), state_dim=state_dim, action_kind=self._action_kind,
                             action_size=self._action_size, action_low=low, action_high=high)

    # ----- construction helpers ------------------------------------------------------
    def _action_layout(self) -> tuple[str, int, float, float]:
        spaces = [self.env.action_space(a) for a in self.agents]
        if all(hasattr(s, "n") for s in spaces):
            return "discrete", max(int(s.n) for s in spaces), -math.inf, math.inf
        shapes = {tuple(getattr(s, "shape", ())) for s in spaces}
        if any(hasattr(s, "n") for s in spaces) or len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"the agents' action spaces must be all Discrete or all 1-d Boxes of one shape, got "
                             f"{[type(s).__name__ + str(getattr(s, 'shape', '')) for s in spaces]}")
        lows = {float(np.min(s.low)) for s in spaces}
        highs = {float(np.max(s.high)) for s in spaces}
        return "continuous", next(iter(shapes))[0], min(lows), max(highs)

    def _implements_avail_actions(self, abstract_state: Any) -> bool:
        if not hasattr(self.env, "get_avail_actions"):
            return False
        try:
            jax.eval_shape(self.env.get_avail_actions, abstract_state)
        except NotImplementedError:
            return False
        return True

    def _state_dim(self, abstract_state: Any, abstract_obs: Any) -> int:
        if self._global_state_fn is not None:
            return int(np.prod(jax.eval_shape(self._global_state_fn, abstract_state).shape))
        if self._has_world_state:
            return int(np.prod(abstract_obs["world_state"].shape))
        return len(self.agents) * max(self._obs_dims)

    # ----- the jaxmarl-lab interface -------------------------------------------------
    @property
    def spec(self) -> EnvSpec:
        return self._spec

    def default_params(self, max_steps: Any = None) -> JaxMARLParams:
        """`JaxMARLParams`; `max_steps` defaults to the wrapped env's `max_steps` (if any)."""
        max_steps = self.time_limit_default if max_steps is None else max_steps
        if not isinstance(max_steps, jax.core.Tracer):
            check_positive_int("max_steps", max_steps)
        return JaxMARLParams(max_steps=jnp.asarray(max_steps, jnp.int32))

    def time_limit(self, params: JaxMARLParams) -> jax.Array:
        """`params.max_steps`: an episode ending at or after this length counts as truncated."""
        return params.max_steps

    @property
    def unwrapped(self) -> EnvProtocol:
        """The adapter itself: it wraps a JaxMARL env, not one of ours."""
        return self

    def _stack_obs(self, obs: dict) -> jax.Array:
        width = max(self._obs_dims)
        rows = []
        for agent in self.agents:
            row = jnp.ravel(obs[agent]).astype(jnp.float32)
            rows.append(jnp.pad(row, (0, width - row.shape[0])))
        return jnp.stack(rows)

    def _global_state(self, env_state: Any, obs: dict, stacked: jax.Array) -> jax.Array:
        if self._global_state_fn is not None:
            return jnp.ravel(self._global_state_fn(env_state)).astype(jnp.float32)
        if self._has_world_state:
            return jnp.ravel(obs["world_state"]).astype(jnp.float32)
        return stacked.reshape(-1)

    def _avail(self, env_state: Any) -> jax.Array:
        n, a = self.spec.num_agents, self.spec.action_size
        if self._action_kind == "continuous" or not self._has_avail:
            mask = jnp.ones((n, a), bool)
            if self._action_kind == "discrete":  # smaller spaces: extra actions unavailable
                sizes = jnp.asarray([int(self.env.action_space(x).n) for x in self.agents])
                mask = jnp.arange(a)[None, :] < sizes[:, None]
            return mask
        avail = self.env.get_avail_actions(env_state)
        rows = [jnp.pad(jnp.asarray(avail[x], bool), (0, a - jnp.shape(avail[x])[0])) for x in self.agents]
        return jnp.stack(rows)

    def _observe(self, obs: dict, env_state: Any) -> tuple[jax.Array, jax.Array]:
        stacked = self._stack_obs(obs)
        return stacked, self._global_state(env_state, obs, stacked)

    def _actions_dict(self, actions: jax.Array) -> dict:
        return {agent: actions[i] for i, agent in enumerate(self.agents)}

    def check_actions(self, actions: Any, batch: tuple[int, ...] = ()) -> jax.Array:
        """The joint action as an array of shape `batch + spec.action_shape`, or a ValueError."""
        actions = jnp.asarray(actions)
        expected = tuple(batch) + self.spec.action_shape
        if actions.shape != expected:
            raise ValueError(f"actions for {self.spec.name} must have shape {expected}, got {actions.shape}")
        if self.spec.is_discrete:
            if not jnp.issubdtype(actions.dtype, jnp.integer):
                raise ValueError(f"actions for {self.spec.name} must be integers, got dtype {actions.dtype}")
            return actions.astype(jnp.int32)
        return actions.astype(jnp.float32)

    def reset(self, key: jax.Array, params: JaxMARLParams | None = None) -> tuple[JaxMARLState, TimeStep]:
        """Starts an episode with the wrapped env's `reset(key)`."""
        del params  # the time limit only matters when an episode ends
        obs, env_state = self.env.reset(key)
        stacked, gstate = self._observe(obs, env_state)
        n = self.spec.num_agents
        false = jnp.zeros((), bool)
        timestep = TimeStep(stacked, gstate, jnp.zeros((n,), jnp.float32), false, false,
                            self._avail(env_state), stacked, gstate)
        return JaxMARLState(env_state, jnp.zeros((), jnp.int32)), timestep

    def step(self, key: jax.Array, state: JaxMARLState, actions: jax.Array,
             params: JaxMARLParams | None = None) -> tuple[JaxMARLState, TimeStep]:
        """One step with auto-reset; the key is split as in JaxMARL's own `step`."""
        params = self.default_params() if params is None else params
        actions = self.check_actions(actions)
        key_step, key_reset = jax.random.split(key)
        obs, env_state, rewards, dones, _ = self.env.step_env(key_step, state.env_state,
                                                              self._actions_dict(actions))
        final_obs, final_gstate = self._observe(obs, env_state)
        reward = jnp.stack([jnp.asarray(rewards[a], jnp.float32) for a in self.agents])
        length = state.step + 1
        done = jnp.asarray(dones["__all__"], bool)
        truncated = done & (length >= params.max_steps)
        terminated = done & ~truncated
        fresh_state, fresh_timestep = self.reset(key_reset, params)
        next_state = JaxMARLState(env_state, length)
        new_state = jax.tree.map(lambda new, old: jnp.where(done, new, old), fresh_state, next_state)
        obs_out = jnp.where(done, fresh_timestep.obs, final_obs)
        gstate_out = jnp.where(done, fresh_timestep.global_state, final_gstate)
        avail = jnp.where(done, fresh_timestep.avail_actions, self._avail(env_state))
        timestep = TimeStep(obs_out, gstate_out, reward, terminated, truncated, avail, final_obs, final_gstate)
        return new_state, timestep

    def reset_batch(self, key: jax.Array, params: JaxMARLParams | None = None,
                    batch_size: int = 1) -> tuple[JaxMARLState, TimeStep]:
        """`vmap(reset)(split(key, batch_size))`."""
        params = self.default_params() if params is None else params
        batch_size = check_positive_int("batch_size", batch_size)
        return jax.vmap(self.reset, in_axes=(0, None))(jax.random.split(key, batch_size), params)

    def step_batch(self, key: jax.Array, state: JaxMARLState, actions: jax.Array,
                   params: JaxMARLParams | None = None) -> tuple[JaxMARLState, TimeStep]:
        """`vmap(step)(split(key, B), state, actions)`."""
        params = self.default_params() if params is None else params
        batch = jnp.shape(state.step)
        actions = self.check_actions(actions, batch)
        keys = jax.random.split(key, batch[0])
        return jax.vmap(self.step, in_axes=(0, 0, 0, None))(keys, state, actions, params)
