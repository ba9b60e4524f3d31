"""envs.wrappers.LastActionObs: the inner episodes unchanged, the previous action appended."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab import envs
from jaxmarl_lab.baselines import random_actions
from jaxmarl_lab.runs import evaluation
from jaxmarl_lab.testing import check_env

VARIANTS = [
    ("grid-world", {"num_agents": 3, "height": 5, "width": 5, "layout": "random", "observation": "egocentric"}),
    ("rendezvous", {"form": "multi-step"}),  # continuous actions
    ("particle-spread", {}),  # batch-minor, discrete
    ("particle-spread", {"continuous_actions": True}),  # batch-minor, continuous
]
IDS = [f"{n}-{k}" for n, k in VARIANTS]


# The default run checks the wrapper on one env of each action kind (continuous: particle-spread,
# batch-minor; discrete: the same-keys test below); the other variants run with -m slow.
@pytest.mark.parametrize("name,kwargs", [pytest.param(n, k, id=i, marks=() if k == {"continuous_actions": True}
                                                      else pytest.mark.slow) for (n, k), i in zip(VARIANTS, IDS)])
def test_wrapped_env_passes_the_env_checker(name, kwargs):
    check_env(envs.make(name, obs_last_action=True, **kwargs))


def _rollout(env, key, batch: int, steps: int):
    """`step_batch` with random actions; returns the stacked actions and TimeSteps."""
    params = env.default_params()
    key_reset, key_run = jax.random.split(key)
    state, _ = env.reset_batch(key_reset, params, batch)

    def step(state, key):
        key_act, key_step = jax.random.split(key)
        actions = jax.vmap(random_actions, in_axes=(0, None))(jax.random.split(key_act, batch), env.spec)
        state, timestep = env.step_batch(key_step, state, actions, params)
        return state, (actions, timestep)

    return jax.lax.scan(step, state, jax.random.split(key_run, steps))[1]


@pytest.mark.parametrize("name,kwargs", [pytest.param(n, k, id=i, marks=pytest.mark.slow if n == "grid-world" else ())
                                         for (n, k), i in zip(VARIANTS, IDS)])
def test_same_keys_give_the_inner_episodes_plus_the_previous_action(name, kwargs):
    inner, wrapped = envs.make(name, **kwargs), envs.make(name, obs_last_action=True, **kwargs)
    spec = inner.spec
    assert wrapped.spec.obs_dim == spec.obs_dim + spec.action_size
    assert dataclasses.replace(wrapped.spec, obs_dim=spec.obs_dim) == spec
    key, batch, steps = jax.random.PRNGKey(3), 4, 60  # 60 steps cross grid-world's and spread's limits
    actions, ts = jax.jit(_rollout, static_argnums=(0, 2, 3))(inner, key, batch, steps)
    actions_w, ts_w = jax.jit(_rollout, static_argnums=(0, 2, 3))(wrapped, key, batch, steps)
    np.testing.assert_array_equal(actions, actions_w)
    o = spec.obs_dim
    for field in ("global_state", "reward", "terminated", "truncated", "avail_actions"):
        np.testing.assert_array_equal(getattr(ts, field), getattr(ts_w, field), err_msg=field)
    np.testing.assert_array_equal(ts.obs, ts_w.obs[..., :o])
    np.testing.assert_array_equal(ts.final_obs, ts_w.final_obs[..., :o])
    done = np.asarray(ts.terminated | ts.truncated)  # (T, B)
    assert done.any() and not done.all()
    # The action just taken, one-hot for discrete actions: (T, B, N, A).
    taken = np.eye(spec.action_size)[np.asarray(actions)] if spec.is_discrete else np.asarray(actions)
    np.testing.assert_array_equal(ts_w.final_obs[..., o:], taken)  # the step's own last observation
    expected = np.where(done[:, :, None, None], 0.0, taken)  # a fresh episode has no previous action
    np.testing.assert_array_equal(ts_w.obs[..., o:], expected)


def test_first_observation_has_no_previous_action():
    env = envs.make("grid-world", obs_last_action=True)
    _, ts = env.reset(jax.random.PRNGKey(0))
    inner_ts = env.unwrapped.reset(jax.random.PRNGKey(0))[1]
    np.testing.assert_array_equal(ts.obs, jnp.concatenate([inner_ts.obs, jnp.zeros((2, 5))], axis=-1))


def test_static_attributes_and_state_fields_come_from_the_inner_env():
    env = envs.make("grid-world", obs_last_action=True, height=5, width=6, layout="random")
    assert (env.height, env.width) == (5, 6)
    assert isinstance(env.unwrapped, envs.GridWorld) and env.unwrapped.unwrapped is env.unwrapped
    with pytest.raises(AttributeError):
        env.no_such_attribute
    state, _ = env.reset(jax.random.PRNGKey(1))
    inner_state, _ = env.unwrapped.reset(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(state.pos, inner_state.pos)
    np.testing.assert_array_equal(state.goals, inner_state.goals)
    with pytest.raises(AttributeError):
        state.no_such_field
    # Consumers that read state fields: the exact optimum of each evaluation episode.
    params = env.default_params()
    got, how = evaluation.optimal_returns(env, params, jax.random.PRNGKey(2), 3)
    want, _ = evaluation.optimal_returns(env.unwrapped, params, jax.random.PRNGKey(2), 3)
    assert how == "breadth-first search per episode layout"
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_bad_obs_last_action_is_named(bad):
    with pytest.raises(ValueError, match=r"obs_last_action must be True or False, got"):
        envs.make("grid-world", obs_last_action=bad)


def test_wrapping_something_else_is_refused():
    with pytest.raises(ValueError, match="LastActionObs wraps an Environment, got dict"):
        envs.LastActionObs({})
