"""Agent networks: apply on leading batch axes against a vmap of one environment step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab.networks import make_agent_network


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("share_params", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_agent_network_on_leading_batch_axes_equals_vmap_of_one_environment_step(recurrent, share_params):
    n, o, h, b, t = 3, 6, 16, 4, 5
    net = make_agent_network(n, o, 5, h, recurrent, share_params)
    params = net.init(jax.random.PRNGKey(3))
    obs = jax.random.normal(jax.random.PRNGKey(4), (b, t, n, o))
    hidden = jax.random.normal(jax.random.PRNGKey(5), (b, t, n, h))
    first = jax.random.bernoulli(jax.random.PRNGKey(6), 0.5, (b, t))
    got_h, got_out = net.apply(params, hidden, obs, first)
    one = lambda hd, ob, fi: net.apply(params, hd, ob, fi)
    want_h, want_out = jax.vmap(jax.vmap(one))(hidden, obs, first)
    np.testing.assert_allclose(got_out, want_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_h, want_h, rtol=1e-5, atol=1e-6)
    if recurrent:  # `first` resets the state: the output at a first step ignores the incoming state
        i, j = map(int, np.argwhere(np.asarray(first))[0])
        _, out_zero = net.apply(params, jnp.zeros((n, h)), obs[i, j], False)
        np.testing.assert_allclose(got_out[i, j], out_zero, rtol=1e-5, atol=1e-6)
