"""particle-spread against PettingZoo's MPE (`mpe2.simple_spread_v3`), the reference.

PettingZoo's initial state is injected into ours with `state_from_positions`; both
then take the same actions and must agree to 1e-4 on observations, rewards, the global
state and the episode boundary (exactly 25 steps, ending as truncation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab.envs import ParticleSpread

simple_spread_v3 = pytest.importorskip("mpe2.simple_spread_v3")

TOL = 1e-4


def pz_state(pz) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    world = pz.unwrapped.world
    return (np.array([a.state.p_pos for a in world.agents]),
            np.array([a.state.p_vel for a in world.agents]),
            np.array([lm.state.p_pos for lm in world.landmarks]))


def random_actions(rng: np.random.Generator, n: int, continuous: bool) -> np.ndarray:
    if continuous:  # include values outside [0, 1]: both sides must clip them
        return rng.uniform(-0.2, 1.2, (n, 5)).astype(np.float32)
    return rng.integers(0, 5, n).astype(np.int32)


def run_episode(pz, env, params, state, rng, continuous, steps):
    """Steps both envs with the same actions; returns our final state and both returns."""
    step = jax.jit(env.step)
    n = env.num_agents
    ours_return, theirs_return = np.zeros(n), np.zeros(n)
    for t in range(steps):
        agents = list(pz.agents)
        actions = random_actions(rng, n, continuous)
        obs, rew, term, trunc, _ = pz.step({a: actions[i] for i, a in enumerate(agents)})
        state, ts = step(jax.random.PRNGKey(t), state, jnp.asarray(actions), params)
        theirs = np.stack([obs[a] for a in agents])
        np.testing.assert_allclose(np.asarray(ts.final_obs), theirs, atol=TOL, err_msg=f"obs at step {t + 1}")
        np.testing.assert_allclose(np.asarray(ts.reward), [rew[a] for a in agents], atol=TOL,
                                   err_msg=f"reward at step {t + 1}")
        np.testing.assert_allclose(np.asarray(ts.final_global_state), pz.unwrapped.state(), atol=TOL)
        assert not bool(ts.terminated) and not any(term.values())
        assert bool(ts.truncated) == all(trunc.values()) == (t + 1 == 25), f"episode boundary at step {t + 1}"
        ours_return += np.asarray(ts.reward)
        theirs_return += np.array([rew[a] for a in agents])
    return state, ts, ours_return, theirs_return


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("n", [3, 4])
def test_two_episodes_match_pettingzoo(n, continuous):
    pz = simple_spread_v3.parallel_env(N=n, max_cycles=25, continuous_actions=continuous)
    env = ParticleSpread(num_agents=n, continuous_actions=continuous)
    params = env.default_params()
    rng = np.random.default_rng(n + 10 * continuous)
    for episode in range(2):
        obs, _ = pz.reset(seed=100 * n + episode)
        agent_pos, _, landmark_pos = pz_state(pz)
        state = env.state_from_positions(agent_pos, landmark_pos)
        np.testing.assert_allclose(np.asarray(env.observe(state, params)),
                                   np.stack([obs[a] for a in pz.agents]), atol=TOL)
        state, ts, ours, theirs = run_episode(pz, env, params, state, rng, continuous, 25)
        np.testing.assert_allclose(ours, theirs, atol=25 * TOL, err_msg="episode returns")
        assert pz.agents == [], "PettingZoo should have ended the episode after 25 steps"
        # Our auto-reset: a fresh episode at step 0 with zero velocities and new positions.
        assert int(state.step) == 0 and np.all(np.asarray(state.agent_vel) == 0)
        assert not np.allclose(np.asarray(ts.obs), np.asarray(ts.final_obs))


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
def test_crowded_start_collisions_match_pettingzoo(continuous):
    """Agents start overlapping, so contact forces and collision penalties are exercised."""
    n = 4
    pz = simple_spread_v3.parallel_env(N=n, max_cycles=25, continuous_actions=continuous)
    pz.reset(seed=7)
    world = pz.unwrapped.world
    start = np.array([[0.0, 0.0], [0.1, 0.05], [-0.08, 0.12], [0.05, -0.2]])
    for agent, pos in zip(world.agents, start):
        agent.state.p_pos = pos.copy()
    env = ParticleSpread(num_agents=n, continuous_actions=continuous)
    params = env.default_params()
    state = env.state_from_positions(start, pz_state(pz)[2])
    _, reward_before = env.transition(None, state, jnp.zeros(env.spec.action_shape, jnp.int32 if not continuous
                                                              else jnp.float32), params)[:2]
    # Collisions penalise: reward below the shared coverage term for overlapping agents.
    assert np.any(np.asarray(reward_before) < np.max(np.asarray(reward_before)) - 0.4)
    state, _, ours, theirs = run_episode(pz, env, params, state, np.random.default_rng(1), continuous, 25)
    np.testing.assert_allclose(ours, theirs, atol=25 * TOL)


def test_observation_layout_by_hand():
    """N=2, L=2: [vel, pos, landmark - pos (x2), other - pos, comm zeros (2)]."""
    env = ParticleSpread(num_agents=2)
    state = env.state_from_positions([[0.0, 0.0], [1.0, 0.5]], [[0.5, 0.5], [-1.0, 0.0]],
                                     agent_vel=[[0.1, 0.2], [0.0, -0.3]])
    obs = np.asarray(env.observe(state, env.default_params()))
    np.testing.assert_allclose(obs[0], [0.1, 0.2, 0, 0, 0.5, 0.5, -1, 0, 1, 0.5, 0, 0], atol=1e-6)
    np.testing.assert_allclose(obs[1], [0, -0.3, 1, 0.5, -0.5, 0, -2, -0.5, -1, -0.5, 0, 0], atol=1e-6)


def test_one_step_physics_by_hand():
    """No contact, action `right`: pos += vel * dt; vel = vel * 0.75 + 5 * dt * (1, 0)."""
    env = ParticleSpread(num_agents=1, num_landmarks=1)
    params = env.default_params()
    state = env.state_from_positions([[0.0, 0.0]], [[3.0, 4.0]], agent_vel=[[1.0, -1.0]])
    state, reward, _ = env.transition(None, state, jnp.array([2]), params)
    np.testing.assert_allclose(np.asarray(state.agent_pos).T, [[0.1, -0.1]], atol=1e-6)  # 0 + 1 * 0.1
    np.testing.assert_allclose(np.asarray(state.agent_vel).T, [[1.25, -0.75]], atol=1e-6)  # 0.75 + 0.5
    # Coverage: distance (0.1, -0.1) -> (3, 4) is sqrt(2.9^2 + 4.1^2); reward is half of minus that.
    np.testing.assert_allclose(np.asarray(reward), [-0.5 * np.hypot(2.9, 4.1)], atol=1e-5)


def test_batched_step_equals_per_env_step():
    env = ParticleSpread(num_agents=3)
    params = env.default_params()
    state, _ = env.reset_batch(jax.random.PRNGKey(0), params, 5)
    actions = jax.random.randint(jax.random.PRNGKey(1), (5, 3), 0, 5)
    _, batched = env.step_batch(jax.random.PRNGKey(2), state, actions, params)
    per_env = jax.tree.map(lambda x: jnp.moveaxis(x, -1, 0), state)
    _, single = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(jax.random.PRNGKey(2), 5),
                                                            per_env, actions, params)
    np.testing.assert_allclose(np.asarray(batched.obs), np.asarray(single.obs), atol=1e-6)
    np.testing.assert_allclose(np.asarray(batched.reward), np.asarray(single.reward), atol=1e-6)
    assert batched.obs.shape == (5, 3, env.spec.obs_dim)


def test_reset_distribution_matches_mpe():
    """Positions uniform on [-1, 1]^2, zero velocities, as `mpe2.reset_world`."""
    env = ParticleSpread(num_agents=3)
    state, ts = env.reset_batch(jax.random.PRNGKey(3), env.default_params(), 4000)
    pos = np.concatenate([np.asarray(state.agent_pos).ravel(), np.asarray(state.landmark_pos).ravel()])
    assert pos.min() >= -1 and pos.max() <= 1
    assert abs(pos.mean()) < 0.02 and abs(pos.var() - 1 / 3) < 0.01  # U(-1, 1): mean 0, var 1/3
    assert np.all(np.asarray(state.agent_vel) == 0) and np.all(np.asarray(state.step) == 0)
