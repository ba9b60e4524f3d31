"""Reference policies of particle-spread: hand-built decisions and episode returns.

Reference numbers (N = 3, 25-step episodes, per-agent return): a uniform-random policy
scores about -26.5 (PettingZoo's MPE: -26.46 +- 0.32), the scripted assignment policy
about -8.8 (measured here: -8.73 over 4096 episodes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab.baselines import (
    as_policy,
    make_evaluate_policy,
    random_actions,
    random_policy,
    scripted_spread_policy,
)
from jaxmarl_lab.envs import ParticleSpread

NOOP, LEFT, RIGHT, DOWN, UP = range(5)


def obs_of(env, agents, landmarks, vel=None):
    params = env.default_params()
    state = env.state_from_positions(np.asarray(agents), np.asarray(landmarks), vel)
    return env.observe(state, params)


def test_scripted_steers_each_agent_to_its_assigned_landmark():
    env = ParticleSpread(num_agents=2)
    act = jax.jit(scripted_spread_policy(env))
    # Agent 0 at (-0.5, 0) and agent 1 at (0.5, 0.5); landmarks at (0.5, -0.5) and (-0.5, 0.6).
    # Total distances: 0 -> L0, 1 -> L1: 1.118 + 1.005; 0 -> L1, 1 -> L0: 0.6 + 1.0 (best).
    # So agent 0 goes up (to L1), agent 1 goes down (to L0).
    obs = obs_of(env, [[-0.5, 0.0], [0.5, 0.5]], [[0.5, -0.5], [-0.5, 0.6]])
    np.testing.assert_array_equal(act(jax.random.PRNGKey(0), obs), [UP, DOWN])


def test_scripted_waits_on_target_and_brakes_before_overshoot():
    env = ParticleSpread(num_agents=1)
    act = jax.jit(scripted_spread_policy(env))
    key = jax.random.PRNGKey(0)
    # At rest on the landmark: no-op.
    assert int(act(key, obs_of(env, [[0.2, 0.2]], [[0.2, 0.2]]))[0]) == NOOP
    # Moving right at 1.0 toward a landmark 0.2 ahead: coasting would rest at
    # 0.1 + 0.75 * 0.4 = 0.4 > 0.2, so push left to brake (rest at 0.1 + 0.25 * 0.4 = 0.2).
    obs = obs_of(env, [[0.0, 0.0]], [[0.2, 0.0]], vel=[[1.0, 0.0]])
    assert int(act(key, obs)[0]) == LEFT


@pytest.mark.parametrize("n", [2, 3])
def test_policies_return_int32_actions_of_shape_n(n):
    env = ParticleSpread(num_agents=n)
    _, ts = env.reset(jax.random.PRNGKey(1))
    for policy in (scripted_spread_policy(env), random_policy(env.spec)):
        actions = jax.jit(policy)(jax.random.PRNGKey(2), ts.obs)
        assert actions.shape == (n,) and actions.dtype == jnp.int32
        assert bool(jnp.all((actions >= 0) & (actions < 5)))


def test_returns_over_256_episodes_bracket_the_references():
    env = ParticleSpread(num_agents=3)
    key = jax.random.PRNGKey(0)
    scripted = jax.jit(make_evaluate_policy(env, scripted_spread_policy(env), 256))(key)
    random = jax.jit(make_evaluate_policy(env, random_policy(env.spec), 256))(key)
    assert scripted.shape == (256,) and random.shape == (256,)
    assert float(scripted.mean()) > -10.5, float(scripted.mean())  # reference about -8.8
    assert -29.0 < float(random.mean()) < -24.0, float(random.mean())  # reference about -26.5


def test_scripted_policy_rejects_what_it_cannot_handle():
    with pytest.raises(ValueError, match="discrete particle-spread"):
        scripted_spread_policy(ParticleSpread(num_agents=2, continuous_actions=True))
    with pytest.raises(ValueError, match="at least as many landmarks"):
        scripted_spread_policy(ParticleSpread(num_agents=3, num_landmarks=2))
    with pytest.raises(ValueError, match="exceed"):
        scripted_spread_policy(ParticleSpread(num_agents=7))


def test_random_policy_draws_as_before_and_covers_continuous_actions():
    key = jax.random.PRNGKey(3)
    discrete = ParticleSpread(num_agents=3).spec
    obs = jnp.zeros((3, 18))
    # Discrete: the same draws as always (uniform over all A actions), so recorded random baselines stay.
    np.testing.assert_array_equal(random_policy(discrete)(key, obs), jax.random.randint(key, (3,), 0, 5, jnp.int32))
    continuous = ParticleSpread(num_agents=3, continuous_actions=True).spec
    actions = jax.jit(random_policy(continuous))(key, obs)
    assert actions.shape == (3, 5) and actions.dtype == jnp.float32
    np.testing.assert_array_equal(actions, jax.random.uniform(key, (3, 5), minval=0.0, maxval=1.0))  # the action box


def test_random_actions_respect_available_actions():
    spec = ParticleSpread(num_agents=2).spec
    avail = jnp.asarray([[False, False, True, False, False], [True, False, False, False, True]])
    draws = jax.vmap(random_actions, in_axes=(0, None, None))(jax.random.split(jax.random.PRNGKey(0), 200), spec, avail)
    assert set(np.asarray(draws[:, 0]).tolist()) == {2} and set(np.asarray(draws[:, 1]).tolist()) == {0, 4}


def test_as_policy_acts_on_the_observation_and_keeps_the_carry():
    env = ParticleSpread(num_agents=3)
    _, ts = env.reset(jax.random.PRNGKey(1))
    act = scripted_spread_policy(env)
    policy, carry = as_policy(act)
    actions, carry_out = jax.jit(policy)(jax.random.PRNGKey(2), ts, carry)
    np.testing.assert_array_equal(actions, act(jax.random.PRNGKey(2), ts.obs))
    assert carry_out.shape == carry.shape == ()
