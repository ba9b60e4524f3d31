"""MADDPG: the learner contract, critic targets, acting, learning one-step rendezvous, bad input.

Kept fast for a shared 2-core CI machine: tiny networks, batches built with numpy, and
XLA's backend optimisations turned off (`jit` below): compilation, not running, is what
costs here, and the optimisation level changes neither results nor jit's caching.
"""

from __future__ import annotations

import dataclasses
import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab import envs
from jaxmarl_lab.envs.rendezvous import one_step_optimum, team_reward
from jaxmarl_lab.learners import MADDPGConfig, MADDPGHParams, MADDPGState, make_maddpg
from jaxmarl_lab.learners.maddpg import critic_target
from jaxmarl_lab.runner import RunnerConfig, make_evaluate, make_train
from jaxmarl_lab.types import EnvSpec, TimeStep, Transition

B, T, H = 4, 3, 8
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
# setup id -> (environment, static options, share_params)
SETUPS = {"spread-continuous-shared": ("particle-spread", {"continuous_actions": True}, True),
          "spread-discrete-per-agent": ("particle-spread", {"continuous_actions": False}, False),
          "rendezvous-shared": ("rendezvous", {}, True)}


@functools.lru_cache(maxsize=None)
def build(setup: str) -> types.SimpleNamespace:
    """The learner of a setup with its jitted `init` and `update`, compiled once per test session.

    `init` is jitted too: flax's eager init dispatches op by op, slower than one compile.
    """
    name, options, share = SETUPS[setup]
    spec = envs.make(name, **options).spec
    learner = make_maddpg(spec, MADDPGConfig(hidden_dim=H, share_params=share))
    return types.SimpleNamespace(spec=spec, learner=learner, init=jit(learner.init), update=jit(learner.update))


def hparams(**overrides) -> MADDPGHParams:
    """HParams as float32 arrays, so every call site has the same jit signature."""
    return MADDPGHParams(*(np.float32(x) for x in MADDPGHParams(**overrides)))


def random_batch(spec: EnvSpec, seed: int, terminated=None, truncated=None) -> Transition:
    """Sequences `(B, T, ...)` of valid-looking transitions, with agent 0's last action unavailable."""
    rng = np.random.default_rng(seed)
    n, a = spec.num_agents, spec.action_size
    obs = rng.normal(size=(B, T, n, spec.obs_dim)).astype(np.float32)
    state = rng.normal(size=(B, T, spec.state_dim)).astype(np.float32)
    avail = np.ones((B, T, n, a), bool)
    avail[..., 0, -1] = False
    if spec.is_discrete:
        action = rng.integers(0, a - 1, size=(B, T, n)).astype(np.int32)
    else:
        action = rng.uniform(spec.action_low, spec.action_high, size=(B, T, n, a)).astype(np.float32)
    flags = rng.random((2, B, T)) < 0.3
    terminated = flags[0] if terminated is None else np.full((B, T), terminated)
    truncated = (flags[1] & ~flags[0]) if truncated is None else np.full((B, T), truncated)
    return Transition(obs=obs, global_state=state, avail_actions=avail, first=np.zeros((B, T), bool),
                      action=action, reward=rng.normal(size=(B, T, n)).astype(np.float32),
                      terminated=terminated, truncated=truncated, next_obs=np.roll(obs, -1, axis=1),
                      next_global_state=np.roll(state, -1, axis=1), next_avail_actions=avail)


def shapes(tree):
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


@pytest.mark.parametrize("setup", ["spread-continuous-shared", "spread-discrete-per-agent"])
def test_update_contract(setup):
    built = build(setup)
    spec, learner, init, update = built.spec, built.learner, built.init, built.update
    state = init(jax.random.PRNGKey(0), hparams())
    assert isinstance(state, MADDPGState)
    new_state, metrics = update(jax.random.PRNGKey(1), state, random_batch(spec, 0))
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert shapes(new_state) == shapes(state)
    expected = {"critic_loss", "actor_loss", "q_mean", "target_mean", "critic_grad_norm", "actor_grad_norm",
                "temperature" if spec.is_discrete else "noise_scale"}
    assert expected <= set(metrics)
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    assert float(metrics["actor_grad_norm"]) > 0  # Gumbel-softmax / tanh pass gradients to the actor
    assert int(new_state.updates) == 1
    update(jax.random.PRNGKey(2), new_state, random_batch(spec, 1))
    assert update._cache_size() == 1  # no recompilation on the second call

    # vmap over two seeds with two different hyperparameter sets equals separate runs.
    two_hp = jax.tree.map(lambda *x: np.stack(x), hparams(lr_actor=1e-3, tau=0.5),
                          hparams(lr_critic=3e-4, gamma=0.5, temperature=0.5, sigma_start=0.0))
    keys = jax.random.split(jax.random.PRNGKey(5), 2)
    batch = random_batch(spec, 2)

    def run(key, hp):
        state = learner.init(key, hp)
        state, metrics = learner.update(jax.random.fold_in(key, 1), state, batch)
        return state.actor_params, state.target_critic_params, metrics

    both = jax.device_get(jit(jax.vmap(run))(keys, two_hp))
    for i in range(2):  # the separate runs reuse the compiled `update`
        hp_i = jax.tree.map(lambda x: x[i], two_hp)
        state, metrics = update(jax.random.fold_in(keys[i], 1), init(keys[i], hp_i), batch)
        one = jax.device_get((state.actor_params, state.target_critic_params, metrics))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=2e-5, atol=2e-6), both, one)
    assert update._cache_size() == 1


def test_critic_target_by_hand():
    r = jnp.array([1.0, -2.0])
    next_q = jnp.array([10.0, 4.0])
    # terminated: no bootstrap, y = r
    np.testing.assert_allclose(critic_target(r, jnp.array(True), next_q, 0.9), [1.0, -2.0])
    # truncated (not terminated): y = r + 0.9 * Q' = [1 + 9, -2 + 3.6]
    np.testing.assert_allclose(critic_target(r, jnp.array(False), next_q, 0.9), [10.0, 1.6], rtol=1e-6)
    # gamma = 0: y = r whatever Q'
    np.testing.assert_allclose(critic_target(r, jnp.array(False), next_q, 0.0), [1.0, -2.0])


def test_update_uses_termination_not_truncation():
    """Through the learner: all-terminated steps have targets equal to the rewards; truncated ones bootstrap."""
    built = build("spread-continuous-shared")
    spec, update = built.spec, built.update
    state = built.init(jax.random.PRNGKey(0), hparams(gamma=0.9))
    terminal = random_batch(spec, 3, terminated=True, truncated=False)
    _, metrics = update(jax.random.PRNGKey(1), state, terminal)
    np.testing.assert_allclose(float(metrics["target_mean"]), terminal.reward.mean(), rtol=1e-5, atol=1e-6)
    truncated = random_batch(spec, 3, terminated=False, truncated=True)
    _, metrics = update(jax.random.PRNGKey(1), state, truncated)
    assert abs(float(metrics["target_mean"]) - truncated.reward.mean()) > 1e-4  # + 0.9 * Q'(s', mu'(o'))


def _timestep(spec: EnvSpec, avail: np.ndarray) -> TimeStep:
    n = spec.num_agents
    obs = np.random.default_rng(0).normal(size=(n, spec.obs_dim)).astype(np.float32)
    state = np.zeros((spec.state_dim,), np.float32)
    return TimeStep(obs, state, np.zeros(n, np.float32), np.array(False), np.array(False), avail, obs, state)


@pytest.mark.parametrize("setup", list(SETUPS))
def test_act_shapes_bounds_and_availability(setup):
    built = build(setup)
    spec, learner = built.spec, built.learner
    # A large noise scale, so exploring actions would leave the box without clipping.
    state = built.init(jax.random.PRNGKey(0), hparams(sigma_start=5.0))
    avail = np.ones((spec.num_agents, spec.action_size), bool)
    avail[0, :3] = False  # agent 0 may only take actions 3 and 4
    ts = _timestep(spec, avail)
    keys = jax.random.split(jax.random.PRNGKey(1), 64)
    act = jit(jax.vmap(learner.act, in_axes=(0, None, None, None, None)), static_argnums=4)
    carry = learner.initial_carry()
    assert carry.shape == (spec.num_agents, H)
    for explore in (True, False):
        actions, new_carry = act(keys, state, ts, carry, explore)
        actions = np.asarray(actions)
        assert np.asarray(new_carry).shape == (64, spec.num_agents, H)
        if spec.is_discrete:
            assert actions.shape == (64, spec.num_agents) and actions.dtype == np.int32
            assert np.all(avail[np.arange(spec.num_agents), actions])
            if explore:
                assert len(np.unique(actions[:, 1])) > 1  # Gumbel sampling explores
        else:
            assert actions.shape == (64, spec.num_agents, spec.action_size) and actions.dtype == np.float32
            assert np.all(np.isfinite(actions))
            assert np.all((actions >= spec.action_low) & (actions <= spec.action_high))
            if explore and not np.isfinite(spec.action_high):
                assert actions.std(axis=0).mean() > 1.0  # unbounded: noise is not clipped
        if not explore:
            assert np.all(actions == actions[:1])  # greedy acting ignores the key


def test_learns_one_step_rendezvous():
    """Within 5% of the optimum, measured against the gap of a random policy, and actions near the target."""
    env = envs.make("rendezvous", num_agents=4)
    params = env.default_params()
    spec = env.spec
    optimum, best = one_step_optimum(params, spec.num_agents, spec.action_size)
    assert optimum == 0.0 and np.allclose(best, 0.7)
    # Reference: standard-normal actions. E[-r] = N (1 + 0.7^2) + coupling * N (N - 1) = 5.96 + 12.
    samples = jax.random.normal(jax.random.PRNGKey(9), (4096,) + spec.action_shape)
    random_reward = float(jax.vmap(team_reward, in_axes=(0, None, None))(samples, params.target,
                                                                          params.coupling).mean())
    assert -19.0 < random_reward < -17.0

    learner = make_maddpg(spec, MADDPGConfig(hidden_dim=32))
    config = RunnerConfig(num_envs=16, rollout_len=1, total_env_steps=4000, buffer_capacity=500, batch_size=64,
                          updates_per_rollout=4)
    hp = hparams(lr_actor=3e-4, lr_critic=1e-3, sigma_start=0.3, sigma_end=0.1, sigma_decay_steps=2000.0,
                 policy_reg=0.0)
    final, metrics = jit(make_train(env, learner, config))(jax.random.PRNGKey(0), hp)
    losses = np.asarray(metrics["critic_loss"])
    assert np.all(np.isfinite(losses[4:]))  # NaN only before the buffer holds a batch (64 > 2 * 16)
    result = jit(make_evaluate(env, learner, 4, 1))(jax.random.PRNGKey(1), final.learner)
    greedy_reward = float(np.mean(result["returns"]))
    assert greedy_reward >= optimum - 0.05 * abs(random_reward - optimum), (greedy_reward, random_reward)
    _, timestep = env.reset(jax.random.PRNGKey(2), params)
    actions, _ = learner.act(jax.random.PRNGKey(3), final.learner, timestep, learner.initial_carry(), False)
    np.testing.assert_allclose(np.asarray(actions), best, atol=0.1)


def test_bad_input():
    spec = envs.make("particle-spread").spec
    with pytest.raises(ValueError, match=r"MADDPGHParams.gamma must be in \[0.0, 1.0\], got 1.5"):
        MADDPGHParams.create(gamma=1.5)
    with pytest.raises(ValueError, match="MADDPGHParams.tau must be in"):
        MADDPGHParams.create(tau=0.0)
    with pytest.raises(ValueError, match="MADDPGHParams.sigma_start must be in"):
        MADDPGHParams.create(sigma_start=-0.1)
    with pytest.raises(ValueError, match="MADDPGHParams.temperature must be in"):
        MADDPGHParams.create(temperature=0.0)
    with pytest.raises(ValueError, match="unknown MADDPGHParams fields"):
        MADDPGHParams.create(lr=1e-3)
    with pytest.raises(ValueError, match="MADDPGHParams.lr_actor must be in"):
        make_maddpg(spec).init(jax.random.PRNGKey(0), MADDPGHParams(lr_actor=-1.0))
    with pytest.raises(ValueError, match="MADDPGConfig.hidden_dim must be an integer >= 1"):
        MADDPGConfig(hidden_dim=0)
    with pytest.raises(ValueError, match="MADDPGConfig.share_params must be True or False"):
        MADDPGConfig(share_params="yes")
    box = dataclasses.replace(envs.make("rendezvous").spec, action_low=1.0, action_high=1.0)
    with pytest.raises(ValueError, match="action_low < action_high"):
        make_maddpg(box)
