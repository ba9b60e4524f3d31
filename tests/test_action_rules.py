"""The action rules every environment follows (see `jaxmarl_lab.envs.core.Environment`).

* An out-of-range discrete action (< 0 or >= A) is the environment's no-op action
  (`noop_action`: grid-world's "stay", particle-spread's mpe2 "no_action", both 0).
* A non-finite component (NaN, +inf, -inf) of a continuous action counts as 0.0, before
  any clipping to [action_low, action_high].

Each rule is checked by exact equality: the bad joint action and its repaired twin, from
the same state and key, give bit-for-bit the same next state and `TimeStep`, through
`step` under `jit`, through `step_batch` (batch-minor for particle-spread) and through
`transition` (the path `jaxmarl_lab.render` takes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab import envs

#: The no-op of each discrete environment: grid-world 0 = stay, particle-spread 0 = no_action.
NOOP = {"grid-world": 0, "particle-spread": 0}

DISCRETE = [(name, {}) for name in envs.registered_names()
            if envs.make(name).spec.is_discrete] + [
    ("grid-world", {"num_agents": 3, "height": 3, "width": 5}),
    ("particle-spread", {"num_agents": 4, "num_landmarks": 2}),
]
CONTINUOUS = [
    ("rendezvous", {}),
    ("rendezvous", {"dim": 3}),
    ("rendezvous", {"form": "multi-step"}),
    ("particle-spread", {"continuous_actions": True}),
    ("particle-spread", {"num_agents": 2, "continuous_actions": True}),
]
BATCH = 3


def _ids(variants):
    return [f"{name}-{kwargs}" for name, kwargs in variants]


def _params(cases: list) -> list:
    """The cases as pytest params: the default variant of each env in the default run, the other sizes
    and options marked slow (CI runs them with -m slow)."""
    return [pytest.param(n, k, id=i, marks=() if not k or k == {"continuous_actions": True} else pytest.mark.slow)
            for (n, k), i in zip(cases, _ids(cases))]


def _assert_same(got, want):
    jax.tree.map(np.testing.assert_array_equal, got, want)


def _assert_finite(tree):
    for leaf in jax.tree.leaves(tree):
        leaf = np.asarray(leaf)
        if np.issubdtype(leaf.dtype, np.floating):
            assert np.all(np.isfinite(leaf)), leaf


def _valid_actions(key, spec, shape=()):
    """Random in-range joint actions of `shape + spec.action_shape`."""
    if spec.is_discrete:
        return jax.random.randint(key, shape + spec.action_shape, 0, spec.action_size)
    low = max(spec.action_low, -2.0)
    high = min(spec.action_high, 2.0)
    return jax.random.uniform(key, shape + spec.action_shape, minval=low, maxval=high)


def _warm_state(env, params, key, batch=None):
    """A state a few valid steps into an episode (non-zero velocities for particle-spread)."""
    spec = env.spec
    if batch is None:
        state, _ = env.reset(key, params)
        for i in range(3):
            state, _ = env.step(jax.random.fold_in(key, i), state,
                                _valid_actions(jax.random.fold_in(key, 10 + i), spec), params)
        return state
    state, _ = env.reset_batch(key, params, batch)
    for i in range(3):
        state, _ = env.step_batch(jax.random.fold_in(key, i), state,
                                  _valid_actions(jax.random.fold_in(key, 10 + i), spec, (batch,)),
                                  params)
    return state


# ----- discrete: out of range is the no-op ---------------------------------------------
def _discrete_pairs(env, key, shape=()):
    """(bad, repaired) joint actions for each out-of-range value: every agent, then every other one."""
    spec = env.spec
    a, noop = spec.action_size, NOOP.get(spec.name, getattr(env, "noop_action", 0))
    valid = _valid_actions(key, spec, shape).astype(jnp.int32)
    every_other = (np.arange(spec.num_agents) % 2 == 0)
    for bad in (-1, a, a + 2, 100):
        yield bad, jnp.full_like(valid, bad), jnp.full_like(valid, noop)
        yield bad, jnp.where(every_other, bad, valid), jnp.where(every_other, noop, valid)


@pytest.mark.parametrize("name,kwargs", _params(DISCRETE))
def test_out_of_range_discrete_action_is_the_noop_in_step(name, kwargs):
    env = envs.make(name, **kwargs)
    params = env.default_params()
    key = jax.random.key(0)
    state = _warm_state(env, params, key)
    step = jax.jit(env.step)
    for bad, actions, repaired in _discrete_pairs(env, jax.random.key(1)):
        got = step(key, state, actions, params)
        want = step(key, state, repaired, params)
        _assert_same(got, want)


@pytest.mark.parametrize("name,kwargs", _params(DISCRETE))
def test_out_of_range_discrete_action_is_the_noop_in_step_batch(name, kwargs):
    env = envs.make(name, **kwargs)
    params = env.default_params()
    key = jax.random.key(2)
    state = _warm_state(env, params, key, batch=BATCH)
    step_batch = jax.jit(env.step_batch)
    for bad, actions, repaired in _discrete_pairs(env, jax.random.key(3), (BATCH,)):
        _assert_same(step_batch(key, state, actions, params), step_batch(key, state, repaired, params))


@pytest.mark.parametrize("name,kwargs", _params(DISCRETE))
def test_out_of_range_discrete_action_is_the_noop_in_transition(name, kwargs):
    env = envs.make(name, **kwargs)
    params = env.default_params()
    key = jax.random.key(4)
    state = _warm_state(env, params, key)
    transition = jax.jit(env.transition)
    for bad, actions, repaired in _discrete_pairs(env, jax.random.key(5)):
        _assert_same(transition(key, state, actions, params), transition(key, state, repaired, params))


@pytest.mark.parametrize("name", sorted(NOOP))
def test_noop_action_is_declared(name):
    env = envs.make(name)
    assert env.noop_action == NOOP[name]
    assert 0 <= env.noop_action < env.spec.action_size


def test_particle_spread_out_of_range_action_leaves_the_agent_unpushed():
    """Hand-built: one agent at rest far from everything, action 5 or -1: it stays at rest."""
    env = envs.make("particle-spread", num_agents=1, num_landmarks=1)
    params = env.default_params()
    state = env.state_from_positions([[0.0, 0.0]], [[0.5, 0.5]])
    for bad in (-1, 5, 7, 100):
        next_state, _, _ = env.transition(None, state, jnp.array([bad], jnp.int32), params)
        np.testing.assert_array_equal(next_state.agent_vel, np.zeros((2, 1), np.float32))
    up, _, _ = env.transition(None, state, jnp.array([4], jnp.int32), params)
    assert float(up.agent_vel[1, 0]) > 0  # action 4 (up) still pushes up


# ----- continuous: non-finite components are zero ---------------------------------------
def _continuous_pairs(env, key, shape=()):
    """(bad, repaired) joint actions: one scattered component, a whole agent, everything."""
    spec = env.spec
    valid = _valid_actions(key, spec, shape)
    n, d = spec.action_shape
    scattered = np.zeros((n, d), bool)
    scattered[0, 0] = scattered[n - 1, d - 1] = True
    whole_agent = np.zeros((n, d), bool)
    whole_agent[n // 2] = True
    for bad in (np.nan, np.inf, -np.inf):
        for mask in (scattered, whole_agent, np.ones((n, d), bool)):
            yield bad, jnp.where(mask, jnp.float32(bad), valid), jnp.where(mask, 0.0, valid)
    mixed = jnp.where(scattered, jnp.float32(np.nan), jnp.where(whole_agent, jnp.float32(np.inf), valid))
    yield "mixed", mixed, jnp.where(scattered | whole_agent, 0.0, valid)


@pytest.mark.parametrize("name,kwargs", _params(CONTINUOUS))
def test_non_finite_continuous_action_is_zero_in_step(name, kwargs):
    env = envs.make(name, **kwargs)
    params = env.default_params()
    key = jax.random.key(6)
    state = _warm_state(env, params, key)
    step = jax.jit(env.step)
    for bad, actions, repaired in _continuous_pairs(env, jax.random.key(7)):
        got = step(key, state, actions, params)
        _assert_same(got, step(key, state, repaired, params))
        _assert_finite(got)


@pytest.mark.parametrize("name,kwargs", _params(CONTINUOUS))
def test_non_finite_continuous_action_is_zero_in_step_batch(name, kwargs):
    env = envs.make(name, **kwargs)
    params = env.default_params()
    key = jax.random.key(8)
    state = _warm_state(env, params, key, batch=BATCH)
    step_batch = jax.jit(env.step_batch)
    for bad, actions, repaired in _continuous_pairs(env, jax.random.key(9), (BATCH,)):
        got = step_batch(key, state, actions, params)
        _assert_same(got, step_batch(key, state, repaired, params))
        _assert_finite(got)


@pytest.mark.parametrize("name,kwargs", _params(CONTINUOUS))
def test_non_finite_continuous_action_is_zero_in_transition(name, kwargs):
    env = envs.make(name, **kwargs)
    params = env.default_params()
    key = jax.random.key(10)
    state = _warm_state(env, params, key)
    transition = jax.jit(env.transition)
    for bad, actions, repaired in _continuous_pairs(env, jax.random.key(11)):
        got = transition(key, state, actions, params)
        _assert_same(got, transition(key, state, repaired, params))
        _assert_finite(got)


def test_non_finite_is_zero_before_clipping():
    """+inf is 0, not the clip bound: a multi-step rendezvous agent does not move."""
    env = envs.make("rendezvous", num_agents=2, form="multi-step")
    params = env.default_params()
    state, _ = env.reset(jax.random.key(12), params)
    actions = jnp.array([[np.inf, -np.inf], [np.nan, 5.0]], jnp.float32)
    next_state, _, _ = env.transition(None, state, actions, params)
    step = float(params.dt * params.max_speed)
    np.testing.assert_allclose(next_state.pos - state.pos, [[0.0, 0.0], [0.0, step]], rtol=1e-5, atol=1e-7)


def test_finite_continuous_actions_are_still_clipped():
    """Particle-spread continuous: 7.0 acts as 1.0 and -3.0 as 0.0, as before."""
    env = envs.make("particle-spread", num_agents=1, num_landmarks=1, continuous_actions=True)
    params = env.default_params()
    state = env.state_from_positions([[0.0, 0.0]], [[0.5, 0.5]])
    big = env.transition(None, state, jnp.array([[0.0, -3.0, 7.0, 0.0, 0.0]], jnp.float32), params)
    unit = env.transition(None, state, jnp.array([[0.0, 0.0, 1.0, 0.0, 0.0]], jnp.float32), params)
    _assert_same(big, unit)


@pytest.mark.parametrize("kwargs, bad, noop", [
    ({"form": "multi-step"}, np.nan, 0.0),
    ({"form": "multi-step", "dim": 3}, np.inf, 0.0),
])
def test_the_previous_action_observed_is_the_repaired_one_continuous(kwargs, bad, noop):
    env = envs.make("rendezvous", obs_last_action=True, **kwargs)
    params = env.default_params()
    state, _ = env.reset(jax.random.PRNGKey(0), params)
    shape = env.spec.action_shape
    _, ts_bad = env.step(jax.random.PRNGKey(1), state, jnp.full(shape, bad, jnp.float32), params)
    _, ts_ok = env.step(jax.random.PRNGKey(1), state, jnp.full(shape, noop, jnp.float32), params)
    assert np.all(np.isfinite(ts_bad.obs)) and np.array_equal(ts_bad.obs, ts_ok.obs)


def test_the_previous_action_observed_is_the_repaired_one_discrete():
    env = envs.make("grid-world", obs_last_action=True)
    params = env.default_params()
    state, _ = env.reset(jax.random.PRNGKey(0), params)
    n = env.spec.num_agents
    _, ts_bad = env.step(jax.random.PRNGKey(1), state, jnp.full((n,), 100, jnp.int32), params)
    _, ts_ok = env.step(jax.random.PRNGKey(1), state, jnp.full((n,), NOOP["grid-world"], jnp.int32), params)
    assert np.array_equal(ts_bad.obs, ts_ok.obs)
