"""Environment wrappers: an `Environment` around another one, same API.

`LastActionObs` appends each agent's previous action to its observation, EPyMARL's
`obs_last_action` (on by default there). A policy without memory then sees what it
just tried; on grid-world that lets greedy MLP agents leave a joint state in which
the same moves keep getting blocked, a loop their observation alone cannot show.

    env = envs.make("grid-world", layout="random", obs_last_action=True)
    env = LastActionObs(envs.make("grid-world"))   # the same thing

The inner environment's randomness is untouched: with the same keys, the wrapped
environment runs exactly the inner one's episodes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmarl_lab.types import EnvSpec, RewardBounds

from .core import Environment, RenderView


@struct.dataclass
class LastActionState:
    """The inner state and each agent's previous action (`...`: batch axes of a batch-minor env).

    Reading any other field (`step`, which the base class's time limit and auto-reset use,
    `pos`, ...) reads the inner state's, so code that inspects states (rendering, exact
    optima of a layout) works on wrapped ones too.
    """

    inner: Any  # the wrapped environment's state
    last_action: jax.Array  # (N, ...) int32, -1 before the first step; or (N, D, ...) float32, 0 then

    def __getattr__(self, name: str) -> Any:  # other fields (`step`, `pos`, ...) read from `inner`
        if name.startswith("__") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


class LastActionObs(Environment):
    """Observation `(N, O + A)`: the inner observation, then the previous action.

    Discrete actions are appended one-hot (all zeros at an episode's first step);
    continuous ones as their `D` values (zeros at the first step). The global state,
    rewards, available actions and time limit are the inner environment's, and so are
    its exact optima and drawing (the hooks of `envs.core`). Static attributes not defined
    here (`num_agents`, `height`, ...) are read from the inner environment; `unwrapped` is
    the innermost one.
    """

    def __init__(self, env: Environment):
        if not isinstance(env, Environment):
            raise ValueError(f"LastActionObs wraps an Environment, got {type(env).__name__}")
        self.env = env
        self.batch_minor = env.batch_minor
        self._spec = dataclasses.replace(env.spec, obs_dim=env.spec.obs_dim + env.spec.action_size)

    def __getattr__(self, name: str) -> Any:  # only called for names not found on the wrapper
        if name.startswith("__") or name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    @property
    def spec(self) -> EnvSpec:
        return self._spec

    @property
    def unwrapped(self) -> Environment:
        return self.env.unwrapped

    def default_params(self, **overrides: Any) -> Any:
        return self.env.default_params(**overrides)

    def _no_action(self, batch: tuple[int, ...]) -> jax.Array:
        spec = self.env.spec
        if spec.is_discrete:
            return jnp.full((spec.num_agents,) + batch, -1, jnp.int32)
        return jnp.zeros((spec.num_agents, spec.action_size) + batch, jnp.float32)

    def reset_state(self, key: jax.Array, params: Any) -> LastActionState:
        inner = self.env.reset_state(key, params)
        return LastActionState(inner, self._no_action(jnp.shape(inner.step)))

    def reset_state_batch(self, key: jax.Array, params: Any, batch_size: int) -> LastActionState:
        inner = self.env.reset_state_batch(key, params, batch_size)
        return LastActionState(inner, self._no_action(jnp.shape(inner.step)))

    def transition(self, key: jax.Array, state: LastActionState, actions: jax.Array,
                   params: Any) -> tuple[LastActionState, jax.Array, jax.Array]:
        actions = self.env.sanitize_actions(actions)  # the action taken: a no-op or 0 for bad input
        inner, reward, terminated = self.env.transition(key, state.inner, actions, params)
        return LastActionState(inner, actions.astype(state.last_action.dtype)), reward, terminated

    def observe(self, state: LastActionState, params: Any) -> jax.Array:
        obs = self.env.observe(state.inner, params)  # (N, O, ...)
        last = state.last_action
        if self.env.spec.is_discrete:  # one_hot of -1 is all zeros
            last = jax.nn.one_hot(last, self.env.spec.action_size, axis=1, dtype=obs.dtype)
        return jnp.concatenate([obs, last.astype(obs.dtype)], axis=1)

    def global_state(self, state: LastActionState, params: Any) -> jax.Array:
        return self.env.global_state(state.inner, params)

    def avail_actions(self, state: LastActionState, params: Any) -> jax.Array:
        return self.env.avail_actions(state.inner, params)

    def time_limit(self, params: Any) -> jax.Array:
        return self.env.time_limit(params)

    # ----- hooks: the inner environment's (its episodes and rewards are unchanged) ------
    def optimal_returns(self, params: Any, starts: LastActionState) -> tuple[np.ndarray | None, str]:
        return self.env.optimal_returns(params, starts.inner)

    def describe_optimum(self, params: Any) -> str | None:
        return self.env.describe_optimum(params)

    def reward_bounds(self, params: Any) -> RewardBounds:
        return self.env.reward_bounds(params)

    def render_view(self, params: Any) -> RenderView | None:
        return self.env.render_view(params)

    def render_positions(self, state: LastActionState) -> tuple[jax.Array, jax.Array]:
        return self.env.render_positions(state.inner)
