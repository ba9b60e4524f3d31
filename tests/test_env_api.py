"""The environment API: registry, the public checker on every environment, bad input."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab import envs
from jaxmarl_lab.testing import check_env

VARIANTS = [
    ("grid-world", {}),
    ("grid-world", {"layout": "lesson"}),
    ("grid-world", {"num_agents": 3, "height": 3, "width": 5}),
    ("grid-world", {"num_agents": 3, "height": 5, "width": 5, "observation": "egocentric"}),
    ("rendezvous", {}),
    ("rendezvous", {"form": "multi-step"}),
    ("particle-spread", {}),
    ("particle-spread", {"num_agents": 4, "continuous_actions": True}),
    ("particle-spread", {"num_agents": 1, "num_landmarks": 2}),
]


def test_every_registered_env_is_covered():
    assert {name for name, _ in VARIANTS} == set(envs.registered_names())


# One variant of each env in the default run; the others are marked slow (CI runs them with -m slow).
CHECKED = [pytest.param(n, k, id=f"{n}-{k}", marks=() if not k else pytest.mark.slow) for n, k in VARIANTS]


@pytest.mark.parametrize("name,kwargs", CHECKED)
def test_check_env(name, kwargs):
    check_env(envs.make(name, **kwargs))


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        envs.make("simple-spread")
    for name in envs.registered_names():
        assert name in str(err.value)


def test_no_bare_envs_module():
    """The environments live at jaxmarl_lab.envs only: nothing imports a top-level `envs`."""
    code = ("import sys, jaxmarl_lab.envs, jaxmarl_lab.testing; "
            "assert 'envs' not in sys.modules, 'bare envs imported'; "
            "import importlib.util; assert importlib.util.find_spec('envs') is None, 'envs is importable'")
    # Run outside the repository root so the checkout itself is not on sys.path.
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")
    assert "envs" not in sys.modules


class _BrokenEnv(envs.ParticleSpread):
    """Forgets to reset the episode counter: check_env must notice."""

    def reset_state(self, key, params):
        return super().reset_state(key, params).replace(step=jnp.asarray(3, jnp.int32))


def test_check_env_catches_a_broken_env():
    with pytest.raises(AssertionError, match="step"):
        check_env(_BrokenEnv())


@pytest.mark.parametrize("bad", [
    jnp.zeros((3,), jnp.float32),  # discrete env given floats
    jnp.zeros((2,), jnp.int32),  # wrong N
    jnp.zeros((3, 1), jnp.int32),  # extra axis
])
def test_wrong_discrete_actions_raise_when_traced(bad):
    env = envs.make("particle-spread")
    params = env.default_params()
    state, _ = env.reset(jax.random.PRNGKey(0), params)
    with pytest.raises(ValueError, match="actions for particle-spread must"):
        jax.jit(env.step)(jax.random.PRNGKey(1), state, bad, params)


def test_wrong_continuous_actions_raise():
    env = envs.make("particle-spread", continuous_actions=True)
    state, _ = env.reset(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"shape \(3, 5\)"):
        env.step(jax.random.PRNGKey(1), state, jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="must be floats"):
        env.step(jax.random.PRNGKey(1), state, jnp.zeros((3, 5), jnp.int32))


def test_wrong_batched_actions_raise():
    env = envs.make("particle-spread")
    state, _ = env.reset_batch(jax.random.PRNGKey(0), env.default_params(), 4)
    with pytest.raises(ValueError, match=r"\(4, 3\)"):
        env.step_batch(jax.random.PRNGKey(1), state, jnp.zeros((3,), jnp.int32))


@pytest.mark.parametrize("kwargs,pattern", [
    ({"num_agents": 0}, "num_agents must be an integer >= 1, got 0"),
    ({"num_agents": 2.5}, "num_agents must be an integer >= 1, got 2.5"),
    ({"num_landmarks": 0}, "num_landmarks"),
    ({"continuous_actions": "yes"}, "continuous_actions"),
])
def test_particle_spread_bad_options(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        envs.make("particle-spread", **kwargs)


@pytest.mark.parametrize("overrides,pattern", [
    ({"local_ratio": 1.5}, "local_ratio must be <= 1.0, got 1.5"),
    ({"max_steps": 0}, "max_steps must be >= 1"),
    ({"damping": -0.1}, "damping must be >= 0.0"),
    ({"dt": float("nan")}, "dt must be a finite number"),
])
def test_particle_spread_bad_params(overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        envs.make("particle-spread").default_params(**overrides)


def test_params_vmap_changes_the_result():
    """A stack of params (local_ratio 0 and 1) is vmapped in one call, with distinct rewards."""
    env = envs.make("particle-spread")
    params = jax.tree.map(lambda *x: jnp.stack(x), env.default_params(local_ratio=0.0),
                          env.default_params(local_ratio=1.0))
    state = env.state_from_positions([[0, 0], [0.1, 0], [1, 1]], [[0.5, 0.5], [-0.5, 0], [0, -0.5]])
    _, ts = jax.vmap(env.step, in_axes=(None, None, None, 0))(jax.random.PRNGKey(0), state,
                                                              jnp.zeros(3, jnp.int32), params)
    reward = np.asarray(ts.reward)
    assert reward[1, 2] == 0.0  # local only, agent 2 collides with nobody
    np.testing.assert_allclose(reward[1, :2], [-1.0, -1.0])  # agents 0 and 1 overlap
    assert np.all(reward[0] == reward[0, 0]) and reward[0, 0] < 0  # coverage only, shared


def test_others_index_lists_the_other_agents_in_order():
    from jaxmarl_lab.envs.core import others_index

    np.testing.assert_array_equal(others_index(3), [[1, 2], [0, 2], [0, 1]])
    assert others_index(1).shape == (1, 0) and others_index(4).dtype == np.int32
