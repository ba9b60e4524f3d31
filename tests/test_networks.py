"""Agent networks: the hand-written dense VJP against autodiff, and batched apply against per-step apply."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab.networks import SPLIT_WEIGHT_GRAD_ROWS, dense, make_agent_network


@pytest.mark.parametrize("rows", [5, SPLIT_WEIGHT_GRAD_ROWS, SPLIT_WEIGHT_GRAD_ROWS + 1, 3072])
def test_dense_value_and_gradients_equal_autodiff_of_x_at_kernel_plus_bias(rows):
    # rows >= SPLIT_WEIGHT_GRAD_ROWS and even takes the split weight gradient; the others the plain x^T g.
    kx, kw, kb, kt = jax.random.split(jax.random.PRNGKey(0), 4)
    x = jax.random.normal(kx, (rows, 21))
    kernel, bias = jax.random.normal(kw, (21, 64)) * 0.3, jax.random.normal(kb, (64,))
    target = jax.random.normal(kt, (rows, 64))

    def loss(f):
        return lambda x, w, b: jnp.sum(jnp.tanh(f(x, w, b)) * target)

    plain = lambda x, w, b: x @ w + b
    for f in (jax.grad(loss(dense), argnums=(0, 1, 2)), jax.jit(jax.grad(loss(dense), argnums=(0, 1, 2)))):
        got, want = f(x, kernel, bias), jax.grad(loss(plain), argnums=(0, 1, 2))(x, kernel, bias)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dense(x, kernel, bias), plain(x, kernel, bias), rtol=1e-6, atol=1e-6)


def test_dense_under_vmap_over_stacked_weights_gives_each_its_own_gradient():
    # A vmap over seeds batches the weights too: each seed's gradient is its own x^T g.
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 2048, 8))
    kernel = jax.random.normal(jax.random.PRNGKey(2), (2, 8, 4))
    bias = jnp.zeros((2, 4))
    grad = jax.vmap(jax.grad(lambda x, w, b: jnp.sum(dense(x, w, b) ** 2), argnums=1))(x, kernel, bias)
    for s in range(2):
        want = jax.grad(lambda w: jnp.sum((x[s] @ w + bias[s]) ** 2))(kernel[s])
        np.testing.assert_allclose(grad[s], want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("share_params", [True, False])
@pytest.mark.parametrize("split", [False, True])
def test_agent_network_on_leading_batch_axes_equals_vmap_of_one_environment_step(recurrent, share_params, split):
    n, o, h, b, t = 3, 6, 16, 4, 5
    net = make_agent_network(n, o, 5, h, recurrent, share_params, split_weight_grad=split)
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
