"""MAPPO / IPPO: the per-sample gradient variance, the learner contract, learning, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab import envs, ops
from jaxmarl_lab.learners import PPOConfig, PPOHParams, make_ippo, make_mappo
from jaxmarl_lab.runner import RunnerConfig, make_evaluate, make_train
from jaxmarl_lab.types import Transition


def test_gradient_variance_equals_a_direct_loop():
    """Tiny linear-softmax policy: vmap(grad) variance == a Python loop over samples."""
    params = {"w": jnp.array([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]]), "b": jnp.array([0.1, -0.1])}
    x = jax.random.normal(jax.random.PRNGKey(0), (7, 3))
    a = jnp.array([0, 1, 1, 0, 1, 0, 0])
    adv = jnp.array([1.0, -0.5, 2.0, 0.3, -1.2, 0.7, 0.1])

    def term(p, x, a, adv):  # log pi(a|x) * A
        return jax.nn.log_softmax(x @ p["w"] + p["b"])[a] * adv

    grads = [jax.grad(term)(params, x[k], a[k], adv[k]) for k in range(7)]
    expected = sum(np.var(np.stack([np.asarray(g[name]) for g in grads]), axis=0).sum() for name in ("w", "b"))
    np.testing.assert_allclose(float(ops.gradient_variance(term, params, x, a, adv)), expected, rtol=1e-5)
    # Identical samples have zero gradient variance.
    same = ops.gradient_variance(term, params, jnp.tile(x[:1], (4, 1)), jnp.zeros(4, jnp.int32), jnp.ones(4))
    assert float(same) < 1e-10


def _random_batch(spec, key, b=4, t=5):
    k = jax.random.split(key, 6)
    n, o, s = spec.num_agents, spec.obs_dim, spec.state_dim
    obs = jax.random.normal(k[0], (b, t, n, o))
    state = jax.random.normal(k[1], (b, t, s))
    flags = jax.random.bernoulli(k[2], 0.2, (3, b, t))
    return Transition(obs=obs, global_state=state, avail_actions=jnp.ones((b, t, n, spec.action_size), bool),
                      first=flags[0].at[:, 0].set(True), action=jax.random.randint(k[3], (b, t, n), 0, spec.action_size),
                      reward=jax.random.normal(k[4], (b, t, n)), terminated=flags[1], truncated=flags[2] & ~flags[1],
                      next_obs=jnp.roll(obs, -1, axis=1), next_global_state=jnp.roll(state, -1, axis=1),
                      next_avail_actions=jnp.ones((b, t, n, spec.action_size), bool))


@pytest.mark.parametrize("make,recurrent", [pytest.param(make_mappo, False, id="mappo"),
                                            pytest.param(make_ippo, False, id="ippo"),
                                            pytest.param(make_mappo, True, id="mappo-gru", marks=pytest.mark.slow)])
def test_update_contract(make, recurrent):
    spec = envs.make("particle-spread").spec
    learner = make(spec, PPOConfig(hidden_dim=16, recurrent=recurrent, num_minibatches=2, num_epochs=2,
                                   grad_var_samples=8))
    batch = _random_batch(spec, jax.random.PRNGKey(1))
    update = jax.jit(learner.update)
    state = learner.init(jax.random.PRNGKey(0), PPOHParams())
    new_state, metrics = update(jax.random.PRNGKey(2), state, batch)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), new_state) == jax.tree.map(lambda x: (x.shape, x.dtype), state)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert float(metrics["pg_variance"]) > 0
    update(jax.random.PRNGKey(3), new_state, _random_batch(spec, jax.random.PRNGKey(4)))
    assert update._cache_size() == 1  # no recompilation on the second call

    if recurrent or make is make_ippo:
        return  # the vmap checks below exercise code shared by all three variants
    # vmap over two seeds and over two hyperparameter sets equals separate runs.
    two_hp = jax.tree.map(lambda *x: jnp.stack(x), PPOHParams(lr=1e-3), PPOHParams(lr=3e-4, ent_coef=0.0))
    keys = jax.random.split(jax.random.PRNGKey(5), 2)

    def run(key, hp):
        return learner.update(jax.random.PRNGKey(6), learner.init(key, hp), batch)[0].actor_params

    both = jax.jit(jax.vmap(run))(keys, two_hp)
    for i in range(2):
        single = jax.jit(run)(keys[i], jax.tree.map(lambda x: x[i], two_hp))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=2e-5, atol=2e-6), both, single)


def test_value_normalisation_tracks_the_targets():
    """After one update on constant rewards r, value targets are known: the running mean approaches them."""
    spec = envs.make("particle-spread").spec
    learner = make_mappo(spec, PPOConfig(hidden_dim=8, num_minibatches=1, num_epochs=1, grad_var_samples=0))
    batch = _random_batch(spec, jax.random.PRNGKey(1))
    batch = batch._replace(reward=jnp.full_like(batch.reward, 3.0), terminated=jnp.ones_like(batch.terminated),
                           truncated=jnp.zeros_like(batch.truncated))
    # Every step terminates, so each target is exactly the reward 3.0; with beta = 0.5 the
    # debiased EMA after one update is (0.5 * 3) / 0.5 = 3 and the variance floor applies.
    state = learner.init(jax.random.PRNGKey(0), PPOHParams(value_norm_beta=0.5))
    state, _ = jax.jit(learner.update)(jax.random.PRNGKey(2), state, batch)
    vn = state.value_norm
    np.testing.assert_allclose(float(vn.mean / vn.debias), 3.0, rtol=1e-5)
    np.testing.assert_allclose(float(vn.mean_sq / vn.debias), 9.0, rtol=1e-5)


def test_learning_rate_anneals_linearly_to_zero():
    from jaxmarl_lab.learners.ppo import annealed_lr
    hp = PPOHParams(lr=0.01, lr_anneal_steps=1000.0)
    # lr * (1 - steps / 1000): 0.01 at 0, 0.0075 at 250, 0 at 1000 and after; constant when 0.
    got = [float(annealed_lr(hp, s)) for s in (0, 250, 1000, 2000)]
    np.testing.assert_allclose(got, [0.01, 0.0075, 0.0, 0.0], atol=1e-9)
    assert float(annealed_lr(hp._replace(lr_anneal_steps=0.0), 10**6)) == pytest.approx(0.01)
    # An update at or past the annealing horizon has lr 0: no parameter moves.
    spec = envs.make("particle-spread").spec
    learner = make_mappo(spec, PPOConfig(hidden_dim=8, num_minibatches=1, num_epochs=1, grad_var_samples=0))
    state = learner.init(jax.random.PRNGKey(0), PPOHParams(lr=0.01, lr_anneal_steps=100.0))
    state = state._replace(env_steps=jnp.asarray(100, jnp.int32))
    new, metrics = jax.jit(learner.update)(jax.random.PRNGKey(2), state, _random_batch(spec, jax.random.PRNGKey(1)))
    assert float(metrics["lr"]) == 0.0 and float(metrics["grad_norm"]) > 0
    jax.tree.map(np.testing.assert_array_equal, (new.actor_params, new.critic_params),
                 (state.actor_params, state.critic_params))


@pytest.mark.parametrize("make", [make_mappo, make_ippo], ids=["mappo", "ippo"])
def test_reaches_the_lesson_optimum(make):
    env = envs.make("grid-world", layout="lesson")
    learner = make(env.spec, PPOConfig(num_minibatches=2, num_epochs=4, grad_var_samples=0))
    config = RunnerConfig(num_envs=16, rollout_len=50, total_env_steps=40_000)
    final, _ = jax.jit(make_train(env, learner, config))(jax.random.PRNGKey(0), PPOHParams(lr=3e-3))
    result = jax.jit(make_evaluate(env, learner, 4, 50))(jax.random.PRNGKey(1), final.learner)
    np.testing.assert_array_equal(np.asarray(result["lengths"]), 3)
    np.testing.assert_allclose(np.asarray(result["returns"]), 0.97, atol=1e-5)


def test_bad_input():
    spec = envs.make("particle-spread").spec
    with pytest.raises(ValueError, match="PPOConfig.critic must be one of"):
        PPOConfig(critic="joint")
    with pytest.raises(ValueError, match=r"PPOHParams.gamma must be in \[0.0, 1.0\], got 1.5"):
        PPOHParams.create(gamma=1.5)
    with pytest.raises(ValueError, match="PPOHParams.lr must be in"):
        make_mappo(spec).init(jax.random.PRNGKey(0), PPOHParams(lr=-1.0))
    with pytest.raises(ValueError, match="bounded action box"):
        make_mappo(envs.make("rendezvous").spec, PPOConfig(continuous_dist="beta"))
