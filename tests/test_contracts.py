"""The typed contracts of `jaxmarl_lab.types`: who satisfies `EnvProtocol` and `LearnerState`."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab import envs
from jaxmarl_lab.interop import from_jaxmarl
from jaxmarl_lab.runs.config import LEARNERS
from jaxmarl_lab.types import EnvProtocol, LearnerState

ENV_VARIANTS = [
    ("grid-world", {}),
    ("rendezvous", {}),
    ("rendezvous", {"form": "multi-step"}),
    ("particle-spread", {}),
    ("particle-spread", {"continuous_actions": True}),
]


def test_every_registered_env_is_covered():
    assert {name for name, _ in ENV_VARIANTS} == set(envs.registered_names())


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "obs_last_action"])
@pytest.mark.parametrize("name,kwargs", ENV_VARIANTS, ids=[f"{n}-{k}" for n, k in ENV_VARIANTS])
def test_registered_envs_and_wrapped_ones_satisfy_the_env_protocol(name, kwargs, wrapped):
    env = envs.make(name, obs_last_action=wrapped, **kwargs)
    assert isinstance(env, EnvProtocol)
    assert isinstance(env.unwrapped, EnvProtocol) and env.unwrapped.unwrapped is env.unwrapped
    assert (env.unwrapped is env) == (not wrapped)
    params = env.default_params()
    assert int(env.time_limit(params)) == int(params.max_steps)


def test_something_else_does_not_satisfy_the_env_protocol():
    env = envs.make("grid-world")
    partial = SimpleNamespace(spec=env.spec, default_params=env.default_params, reset=env.reset, step=env.step)
    assert not isinstance(partial, EnvProtocol)  # no batched API, time limit, batch_minor or unwrapped


class _TinyJaxMARLEnv:
    """The smallest JaxMARL-style env (dicts keyed by agent, one `__all__` done): a counter to `max_steps`."""

    agents = ["agent_0", "agent_1"]
    max_steps = 4

    def action_space(self, agent):
        return SimpleNamespace(n=3)

    def observation_space(self, agent):
        return SimpleNamespace(shape=(2,))

    def _obs(self, t):
        return {a: jnp.stack([t, t + i]).astype(jnp.float32) for i, a in enumerate(self.agents)}

    def reset(self, key):
        t = jnp.zeros((), jnp.int32)
        return self._obs(t), t

    def step_env(self, key, state, actions):
        t = state + 1
        rewards = {a: actions[a].astype(jnp.float32) for a in self.agents}
        return self._obs(t), t, rewards, {"__all__": t >= self.max_steps}, {}

    def step(self, key, state, actions):
        return self.step_env(key, state, actions)


def test_the_jaxmarl_adapter_satisfies_the_env_protocol():
    env = from_jaxmarl(_TinyJaxMARLEnv())
    assert isinstance(env, EnvProtocol) and env.unwrapped is env
    params = env.default_params()
    assert int(env.time_limit(params)) == 4
    state, _ = env.reset_batch(jax.random.PRNGKey(0), params, 2)
    for _ in range(4):
        state, ts = env.step_batch(jax.random.PRNGKey(1), state, jnp.ones((2, 2), jnp.int32), params)
    np.testing.assert_array_equal(ts.truncated, [True, True])  # ended at the time limit


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_every_learner_state_satisfies_the_learner_state_contract(name):
    entry = LEARNERS[name]
    env = envs.make("particle-spread", continuous_actions="continuous" in entry.actions
                    and "discrete" not in entry.actions)
    learner = entry.make(env.spec, entry.config_cls())
    state = learner.init(jax.random.PRNGKey(0), entry.hparams_cls())
    assert isinstance(state, LearnerState)
    assert isinstance(state.hparams, entry.hparams_cls)
    assert state.env_steps.shape == () and state.env_steps.dtype == jnp.int32
    assert state.updates.shape == () and state.updates.dtype == jnp.int32
    assert int(state._replace(env_steps=state.env_steps + 5).env_steps) == 5
