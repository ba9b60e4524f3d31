"""Interoperability: our envs as PettingZoo ParallelEnvs, JaxMARL envs as ours.

PettingZoo: its own `parallel_api_test` and `parallel_seed_test` on every registered
env, plus step-by-step equality with our env and the episode end on the lesson layout
(solved by the breadth-first solver's plan). JaxMARL (skipped when not installed): our
`check_env` on the wrapped MPE simple spread, equality with JaxMARL's own `step` for
the same keys and actions across the episode boundary, and a short MAPPO run.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab import envs
from jaxmarl_lab.envs import grid_world
from jaxmarl_lab.interop import from_jaxmarl, to_pettingzoo
from jaxmarl_lab.testing import check_env

VARIANTS = [("grid-world", {}), ("rendezvous", {}), ("rendezvous", {"form": "multi-step"}),
            ("particle-spread", {}), ("particle-spread", {"continuous_actions": True})]


# ----- PettingZoo ---------------------------------------------------------------------------
def test_every_registered_env_is_exported():
    assert {name for name, _ in VARIANTS} == set(envs.registered_names())


@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=[f"{n}-{k}" for n, k in VARIANTS])
def test_pettingzoo_api_and_seed_tests(name, kwargs):
    pytest.importorskip("pettingzoo")
    from pettingzoo.test import parallel_api_test, parallel_seed_test

    env = envs.make(name, **kwargs)
    pz = to_pettingzoo(env)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the API test reports most problems as warnings
        parallel_api_test(pz, num_cycles=60)  # 60 > every default episode length: covers an end
        parallel_seed_test(lambda: to_pettingzoo(env), num_cycles=10)
    assert pz.possible_agents == [f"agent_{i}" for i in range(env.spec.num_agents)]
    obs, _ = pz.reset(seed=1)
    for agent in pz.agents:
        assert pz.observation_space(agent).contains(obs[agent])
        assert obs[agent].dtype == np.float32


@pytest.mark.parametrize("name,kwargs", [("particle-spread", {"continuous_actions": True}), ("grid-world", {})])
def test_pettingzoo_steps_equal_our_env(name, kwargs):
    pytest.importorskip("pettingzoo")
    env = envs.make(name, **kwargs)
    params = env.default_params()
    pz = to_pettingzoo(env)
    obs, _ = pz.reset(seed=5)
    # Documented key stream: reset(seed=s) resets with split(PRNGKey(s))[1].
    state, ts = jax.jit(env.reset)(jax.random.split(jax.random.PRNGKey(5))[1], params)
    step = jax.jit(env.step)
    np.testing.assert_array_equal(np.stack([obs[a] for a in pz.possible_agents]), np.asarray(ts.obs))
    rng = np.random.default_rng(0)
    for t in range(6):  # the dynamics are deterministic within an episode, so step keys do not matter
        if env.spec.is_discrete:
            joint = rng.integers(0, env.spec.action_size, env.spec.num_agents).astype(np.int32)
        else:
            joint = rng.uniform(0, 1, env.spec.action_shape).astype(np.float32)
        obs, rewards, terms, truncs, _ = pz.step({a: joint[i] for i, a in enumerate(pz.possible_agents)})
        state, ts = step(jax.random.PRNGKey(t), state, jnp.asarray(joint), params)
        np.testing.assert_allclose(np.stack([obs[a] for a in pz.possible_agents]), np.asarray(ts.obs), atol=1e-6)
        np.testing.assert_allclose([rewards[a] for a in pz.possible_agents], np.asarray(ts.reward), atol=1e-6)
        assert not any(terms.values()) and not any(truncs.values())
        np.testing.assert_allclose(pz.state(), np.asarray(ts.global_state), atol=1e-6)


def test_pettingzoo_episode_end_returns_final_obs_and_removes_agents():
    pytest.importorskip("pettingzoo")
    env = envs.make("grid-world", layout="lesson")
    pz = to_pettingzoo(env)
    pz.reset(seed=0)
    plan = grid_world.optimal_plan(4, 4, grid_world.LESSON_STARTS, grid_world.LESSON_GOALS)
    with pytest.raises(ValueError, match="missing \\['agent_1'\\]"):
        pz.step({"agent_0": 0})
    for joint in plan:
        obs, rewards, terms, truncs, infos = pz.step({"agent_0": joint[0], "agent_1": joint[1]})
    assert terms == {"agent_0": True, "agent_1": True} and not any(truncs.values())
    assert rewards == pytest.approx({"agent_0": 0.99, "agent_1": 0.99})  # goal reward 1 - step cost 0.01
    assert pz.agents == []
    for agent in ("agent_0", "agent_1"):  # the last observation, not the next episode's: own cell == own goal
        np.testing.assert_array_equal(obs[agent][:2], obs[agent][2:4])
        assert infos[agent]["action_mask"].tolist() == [1] * 5
    with pytest.raises(ValueError, match="call reset"):
        pz.step({})


def test_pettingzoo_render_and_bad_render_mode():
    pytest.importorskip("pettingzoo")
    pytest.importorskip("PIL")
    pz = to_pettingzoo(envs.make("particle-spread"), render_mode="rgb_array")
    pz.reset(seed=0)
    frame = pz.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    with pytest.raises(ValueError, match="render_mode"):
        to_pettingzoo(envs.make("grid-world"), render_mode="human")
    with pytest.raises(ValueError, match="cannot render 'rendezvous'"):
        to_pettingzoo(envs.make("rendezvous"), render_mode="rgb_array")


# ----- JaxMARL ------------------------------------------------------------------------------
def test_from_jaxmarl_refuses_a_non_jaxmarl_env():
    with pytest.raises(ValueError, match="must be a JaxMARL MultiAgentEnv; GridWorld lacks"):
        from_jaxmarl(envs.make("grid-world"))


@pytest.fixture(scope="module")
def jaxmarl_spread():
    jaxmarl = pytest.importorskip("jaxmarl")
    native = jaxmarl.make("MPE_simple_spread_v3")
    return native, from_jaxmarl(native)


def test_wrapped_jaxmarl_mpe_passes_check_env(jaxmarl_spread):
    native, env = jaxmarl_spread
    assert env.spec.num_agents == 3 and env.spec.obs_dim == 18 and env.spec.state_dim == 54
    assert env.spec.is_discrete and env.spec.action_size == 5
    check_env(env, steps=32)


def test_wrapped_jaxmarl_mpe_equals_jaxmarl_step(jaxmarl_spread):
    """Same keys and actions: same observations, rewards and auto-reset as JaxMARL's own `step`."""
    native, env = jaxmarl_spread
    agents = native.agents
    key = jax.random.PRNGKey(7)
    obs_native, state_native = native.reset(key)
    state, ts = env.reset(key)
    np.testing.assert_array_equal(np.asarray(ts.obs), np.stack([obs_native[a] for a in agents]))
    step = jax.jit(env.step)
    rng = np.random.default_rng(1)
    ends = []
    for t in range(30):  # JaxMARL's MPE episodes last 26 steps: this crosses one boundary
        joint = rng.integers(0, 5, 3).astype(np.int32)
        key_t = jax.random.PRNGKey(100 + t)
        obs_native, state_native, rew_native, dones, _ = native.step(
            key_t, state_native, {a: joint[i] for i, a in enumerate(agents)})
        state, ts = step(key_t, state, jnp.asarray(joint))
        np.testing.assert_allclose(np.asarray(ts.obs), np.stack([obs_native[a] for a in agents]), atol=1e-6)
        np.testing.assert_allclose(np.asarray(ts.reward), [float(rew_native[a]) for a in agents], atol=1e-6)
        assert bool(ts.done) == bool(dones["__all__"])
        assert not bool(ts.terminated)  # MPE episodes only end by the time limit: truncation
        if bool(dones["__all__"]):
            ends.append(t + 1)
            assert int(state.step) == 0
            assert not np.allclose(np.asarray(ts.final_obs), np.asarray(ts.obs))  # final_obs is before the reset
    assert ends == [26]


def test_mappo_trains_on_wrapped_jaxmarl_mpe(jaxmarl_spread):
    from jaxmarl_lab.learners import PPOConfig, PPOHParams, make_mappo
    from jaxmarl_lab.runner import RunnerConfig, make_train

    _, env = jaxmarl_spread
    learner = make_mappo(env.spec, PPOConfig(hidden_dim=8, num_epochs=1, num_minibatches=1, grad_var_samples=0))
    config = RunnerConfig(num_envs=2, rollout_len=26, total_env_steps=2 * 26 * 2)
    _, metrics = jax.jit(make_train(env, learner, config))(jax.random.PRNGKey(0), PPOHParams.create())
    assert metrics["episode_return"].shape == (2,)
    for name, values in metrics.items():
        assert np.all(np.isfinite(np.asarray(values))), f"{name} is not finite: {values}"
    assert np.all(np.asarray(metrics["episodes"]) == 2)  # every env ends one 26-step episode per iteration
