"""IQL, VDN and QMIX: the learner contract, acting, targets, QMIX monotonicity, the runner, bad input.

Kept fast for a shared 2-core CI machine: tiny networks (H=8), batches built with numpy
(no eager jax ops), each compiled function cached per learner setup so every test
compiles at most once what it needs, and XLA's backend optimisations turned off for
these programs (`jit` below): compilation, not running, is what costs here, and the
optimisation level changes neither results nor jit's caching.
"""

from __future__ import annotations

import contextlib
import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmarl_lab import envs, networks
from jaxmarl_lab.learners import ValueConfig, ValueHParams, make_iql, make_qmix, make_vdn
from jaxmarl_lab.runner import RunnerConfig, make_evaluate, make_train
from jaxmarl_lab.types import TimeStep, Transition

B, T, H = 4, 5, 8
TINY = dict(hidden_dim=H, mixer_embed_dim=4, hypernet_dim=8)
MAKERS = {"iql": make_iql, "vdn": make_vdn, "qmix": make_qmix}
# learner-env-network: IQL and VDN with an MLP (IQL on particle-spread N=3: per-agent
# targets with three agents), QMIX with a GRU (mixer + recurrence: the most machinery).
# Each further setup costs a few seconds of compilation on CPU.
SETUPS = ["iql-spread-mlp", "vdn-grid-mlp", "qmix-grid-gru"]
# jax.jit with XLA's backend optimisations off: about half the compile time on CPU.
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
ENVS = {"grid": ("grid-world", {"layout": "lesson"}), "spread": ("particle-spread", {"num_agents": 3})}


def hparams(**overrides) -> ValueHParams:
    """HParams as float32 arrays, so every call site has the same jit signature."""
    return ValueHParams(*(np.float32(x) for x in ValueHParams(**overrides)))


def stack(*trees):
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def as_numpy(tree):
    """Leaves as numpy arrays (PRNG key arrays as their key data)."""
    def leaf(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)
    return jax.tree.map(leaf, tree)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-5):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(as_numpy(a)), jax.tree.leaves(as_numpy(b))):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, equal_nan=True)


def signature(tree):
    return jax.tree.map(lambda x: (x.shape, x.dtype, getattr(x, "weak_type", False)), tree)


def random_avail(rng, shape, num_actions):
    """`shape + (A,)` bool: about 30% masked, at least one available per row."""
    avail = rng.random(shape + (num_actions,)) > 0.3
    keep = rng.integers(num_actions, size=shape)
    np.put_along_axis(avail, keep[..., None], True, axis=-1)
    return avail


def random_batch(spec, seed: int, batch: int = B, length: int = T) -> Transition:
    """A random `Transition (B, T, ...)` matching `spec`, with valid actions (numpy only)."""
    rng = np.random.default_rng(seed)
    n, o, s, a = spec.num_agents, spec.obs_dim, spec.state_dim, spec.action_size
    avail = random_avail(rng, (batch, length, n), a)
    scores = np.where(avail, rng.random(avail.shape), -1.0)
    action = scores.argmax(-1).astype(np.int32)  # uniform among the available actions
    terminated = rng.random((batch, length)) < 0.2
    truncated = (rng.random((batch, length)) < 0.2) & ~terminated
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)
    return Transition(obs=f32(batch, length, n, o), global_state=f32(batch, length, s), avail_actions=avail,
                      first=rng.random((batch, length)) < 0.3, action=action, reward=f32(batch, length, n),
                      terminated=terminated, truncated=truncated, next_obs=f32(batch, length, n, o),
                      next_global_state=f32(batch, length, s),
                      next_avail_actions=random_avail(rng, (batch, length, n), a))


@functools.lru_cache(maxsize=None)
def setup(name: str):
    """A learner and its compiled pieces, shared by the tests (each compiled once)."""
    alg, env_name, net = name.split("-")
    env = envs.make(ENVS[env_name][0], **ENVS[env_name][1])
    config = ValueConfig(recurrent=net == "gru", **TINY)
    learner = MAKERS[alg](env.spec, config)
    traces = []

    def counted_update(key, state, batch):
        traces.append(1)  # runs once per trace, not per call
        return learner.update(key, state, batch)

    def run(key, hp, batch):
        key_init, key_update = jax.random.split(key)
        return learner.update(key_update, learner.init(key_init, hp), batch)

    return types.SimpleNamespace(
        env=env, spec=env.spec, config=config, learner=learner, traces=traces,
        init=jit(learner.init), update=jit(counted_update), run=run,
        # seeds x hparams: lanes [i, j] = run(keys[j], hparams[i])
        run_grid=jit(jax.vmap(jax.vmap(run, in_axes=(0, None, None)), in_axes=(None, 0, None))))


# ----------------------------------------------------------------------------------
# The learner contract
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SETUPS)
def test_update_keeps_structure_and_does_not_recompile(name):
    s = setup(name)
    hp = hparams(lr=1e-3)
    expected = signature(jax.eval_shape(s.learner.init, jax.random.key(0), hp))
    state = s.init(jax.random.key(0), hp)
    assert signature(state) == expected
    for i in range(3):  # new batch and new state every call
        state, metrics = s.update(jax.random.key(10 + i), state, random_batch(s.spec, seed=i))
        assert signature(state) == expected, "update changed the state's structure, shapes or dtypes"
        assert set(metrics) >= {"loss", "q_mean", "target_mean", "grad_norm", "epsilon"}
        for key, value in metrics.items():
            assert value.shape == () and np.isfinite(value), f"metrics[{key!r}] = {value}"
    assert int(state.updates) == 3
    assert s.update._cache_size() == 1, "update recompiled on a new batch or state"
    assert len(s.traces) == 1


@pytest.mark.parametrize("name", SETUPS)
def test_vmap_over_seeds_and_hparams_equals_separate_runs(name):
    s = setup(name)
    keys = jax.random.split(jax.random.key(7), 2)
    hps = [hparams(lr=1e-3, gamma=0.9, td_lambda=0.0), hparams(lr=3e-2, gamma=0.5, td_lambda=0.7)]
    batch = random_batch(s.spec, seed=42)
    # leaves (2 hparams, 2 seeds, ...), sliced in numpy (eager jax slicing compiles per shape)
    grid = as_numpy(s.run_grid(keys, stack(*hps), batch))
    for i, hp in enumerate(hps):
        for j, key in enumerate(keys):
            key_init, key_update = jax.random.split(key)
            want = s.update(key_update, s.init(key_init, hp), batch)  # the separate run
            assert_trees_close(jax.tree.map(lambda x: x[i, j], grid), want)
    # the lanes really differ: by seed (other weights) and by hparams (other lr/gamma)
    grid_states, grid_metrics = grid
    first = jax.tree.leaves(grid_states.params)[0]
    assert not np.allclose(first[0, 0], first[0, 1])
    assert not np.allclose(first[0, 0], first[1, 0])
    assert not np.allclose(grid_metrics["target_mean"][0, 0], grid_metrics["target_mean"][1, 0])
    assert s.update._cache_size() == 1


def test_learning_rate_anneals_linearly_and_stops_at_zero():
    # lr 1e-2 -> 0 over 100 env steps: 1e-2 at step 0, 5e-3 at 50 (halfway), 0 from 100 on.
    s = setup("vdn-grid-mlp")
    batch = random_batch(s.spec, seed=3)
    state = s.init(jax.random.key(0), hparams(lr=1e-2, lr_anneal_steps=100.0))
    for steps, want in ((0, 1e-2), (50, 5e-3), (100, 0.0), (400, 0.0)):
        new, metrics = s.update(jax.random.key(1), state._replace(env_steps=jax.device_put(np.int32(steps))), batch)
        np.testing.assert_allclose(float(metrics["lr"]), want, rtol=1e-6, atol=1e-12)
        moved = not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(as_numpy(new.params)),
                                                            jax.tree.leaves(as_numpy(state.params))))
        assert moved == (want > 0), f"at {steps} env steps lr {want} but params moved={moved}"
    # lr_anneal_steps 0 (the default) keeps lr constant however many steps were taken
    constant = s.init(jax.random.key(0), hparams(lr=1e-2))
    _, metrics = s.update(jax.random.key(1), constant._replace(env_steps=jax.device_put(np.int32(10**6))), batch)
    assert float(metrics["lr"]) == np.float32(1e-2)
    assert s.update._cache_size() == 1


# ----------------------------------------------------------------------------------
# Acting
# ----------------------------------------------------------------------------------
def timesteps(spec, rng, count, avail, terminated=False):
    """`count` timesteps of one environment `(K, ...)` with random observations."""
    n, o, s = spec.num_agents, spec.obs_dim, spec.state_dim
    obs = rng.normal(size=(count, n, o)).astype(np.float32)
    gstate = rng.normal(size=(count, s)).astype(np.float32)
    flag = np.full((count,), terminated)
    return TimeStep(obs=obs, global_state=gstate, reward=np.zeros((count, n), np.float32), terminated=flag,
                    truncated=np.zeros((count,), bool), avail_actions=np.broadcast_to(avail, (count,) + avail.shape),
                    final_obs=obs, final_global_state=gstate)


@functools.lru_cache(maxsize=None)
def batched_act(name: str, explore: bool):
    act = setup(name).learner.act
    return jit(jax.vmap(lambda k, st, ts, c: act(k, st, ts, c, explore), in_axes=(0, None, 0, 0)))


def test_greedy_never_picks_an_unavailable_action():
    s = setup("qmix-grid-gru")  # N = 2, A = 5
    state = s.init(jax.random.key(1), hparams())
    avail = np.array([[0, 0, 0, 1, 0],  # agent 0: only action 3
                      [1, 0, 1, 0, 1]], bool)  # agent 1: {0, 2, 4}
    k = 512
    ts = timesteps(s.spec, np.random.default_rng(0), k, avail)
    carry = np.random.default_rng(1).normal(size=(k, 2, H)).astype(np.float32)
    actions, new_carry = batched_act("qmix-grid-gru", False)(jax.random.split(jax.random.key(2), k), state, ts, carry)
    actions = np.asarray(actions)
    assert actions.shape == (k, 2) and actions.dtype == np.int32
    assert new_carry.shape == (k, 2, H) and new_carry.dtype == jnp.float32
    assert np.all(actions[:, 0] == 3)
    assert set(actions[:, 1].tolist()) <= {0, 2, 4}
    assert not np.allclose(new_carry, carry)  # the GRU state moved on


def test_recurrent_carry_resets_at_episode_start():
    s = setup("qmix-grid-gru")
    state = s.init(jax.random.key(1), hparams())
    act = batched_act("qmix-grid-gru", False)
    avail = np.ones((2, 5), bool)
    keys = jax.random.split(jax.random.key(3), 8)
    rng = np.random.default_rng(5)
    ended = timesteps(s.spec, rng, 8, avail, terminated=True)  # the obs starts a new episode
    fresh = ended._replace(terminated=np.zeros((8,), bool))
    stale = rng.normal(size=(8, 2, H)).astype(np.float32)
    a1, c1 = act(keys, state, ended, stale)
    a2, c2 = act(keys, state, fresh, np.zeros_like(stale))  # what a reset carry gives
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_allclose(c1, c2, rtol=1e-6, atol=1e-6)


def test_mlp_act_shapes():
    s = setup("vdn-grid-mlp")
    state = s.init(jax.random.key(1), hparams())
    carry = s.learner.initial_carry()
    assert carry.shape == (2, H)
    ts = jax.tree.map(lambda x: x[0], timesteps(s.spec, np.random.default_rng(0), 1, np.ones((2, 5), bool)))
    actions, carry = jit(lambda k, st, t, c: s.learner.act(k, st, t, c, False))(jax.random.key(0), state, ts, carry)
    assert actions.shape == (2,) and actions.dtype == jnp.int32
    assert carry.shape == (2, H)


def test_mlp_unroll_over_all_steps_equals_the_step_by_step_scan():
    # An MLP's Q-values are computed on all T steps at once; the GRU's scan, run on the same
    # MLP (which passes its state through), must give the same Q at obs_t and next_obs_t.
    from jaxmarl_lab.learners.value_based import _unroll
    s = setup("vdn-grid-mlp")
    state = s.init(jax.random.key(1), hparams())
    network = networks.make_agent_network(s.spec.num_agents, s.spec.obs_dim, s.spec.action_size, H, False, True)
    seq = jax.tree.map(lambda x: x[0], random_batch(s.spec, 7))
    q_all, q_next_all = jit(lambda p, b: _unroll(network, p, b, H, 2, recurrent=False))(state.params, seq)
    q_scan, q_next_scan = jit(lambda p, b: _unroll(network, p, b, H, 2, recurrent=True))(state.params, seq)
    assert q_all.shape == (T, 2, s.spec.action_size)
    np.testing.assert_allclose(q_all, q_scan, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(q_next_all, q_next_scan, rtol=1e-6, atol=1e-6)
    q_none, q_next_only = _unroll(network, state.params, seq, H, 2, recurrent=False, need_q=False)
    assert q_none is None
    np.testing.assert_allclose(q_next_only, q_next_all, rtol=1e-6, atol=1e-6)


def test_explore_with_epsilon_one_is_uniform_over_available_actions():
    s = setup("qmix-grid-gru")
    state = s.init(jax.random.key(1), hparams(eps_start=1.0, eps_end=1.0))
    avail = np.array([[0, 1, 0, 1, 1],  # agent 0: {1, 3, 4}
                      [1, 1, 1, 1, 1]], bool)
    k = 3000
    ts = timesteps(s.spec, np.random.default_rng(0), k, avail)
    carry = np.zeros((k, 2, H), np.float32)
    actions, _ = batched_act("qmix-grid-gru", True)(jax.random.split(jax.random.key(4), k), state, ts, carry)
    actions = np.asarray(actions)
    assert actions.dtype == np.int32
    freq0 = np.bincount(actions[:, 0], minlength=5) / k
    freq1 = np.bincount(actions[:, 1], minlength=5) / k
    # binomial std with k=3000 is < 0.01; allow 0.04
    np.testing.assert_allclose(freq0, [0, 1 / 3, 0, 1 / 3, 1 / 3], atol=0.04)
    assert freq0[0] == 0 and freq0[2] == 0
    np.testing.assert_allclose(freq1, [0.2] * 5, atol=0.04)


# ----------------------------------------------------------------------------------
# Termination vs truncation in the learner's targets
# ----------------------------------------------------------------------------------
def test_terminated_targets_are_rewards_and_truncated_ones_bootstrap():
    """VDN targets with every step an episode end (so lambda is cut everywhere):

        terminated: y_t = sum_i r_t^i                                     (no bootstrap)
        truncated:  y_t = sum_i r_t^i + gamma * sum_i Q_i(next_obs_t, argmax over next avail)

    At init the target network equals the online one, so the double-Q value is the
    masked max; the expected bootstrap is computed from the agent network directly.
    """
    s = setup("vdn-grid-mlp")
    gamma = 0.9
    state = s.init(jax.random.key(3), hparams(gamma=gamma, td_lambda=0.8))
    batch = random_batch(s.spec, seed=11)
    ones, zeros = np.ones((B, T), bool), np.zeros((B, T), bool)
    terminated = batch._replace(terminated=ones, truncated=zeros)
    truncated = batch._replace(terminated=zeros, truncated=ones)
    team_r = batch.reward.sum(-1)  # (B, T)

    _, m_term = s.update(jax.random.key(0), state, terminated)
    np.testing.assert_allclose(m_term["target_mean"], team_r.mean(), rtol=1e-5)

    net = networks.make_agent_network(s.spec.num_agents, s.spec.obs_dim, s.spec.action_size, H,
                                      recurrent=False, share_params=True)
    q_fn = jit(jax.vmap(jax.vmap(lambda p, o: net.apply(p, jnp.zeros((2, H)), o, jnp.zeros((), bool))[1],
                                     in_axes=(None, 0)), in_axes=(None, 0)))
    q_next = np.asarray(q_fn(state.target_params, batch.next_obs))  # (B, T, N, A)
    boot = np.where(batch.next_avail_actions, q_next, -np.inf).max(-1).sum(-1)  # (B, T)
    _, m_trunc = s.update(jax.random.key(0), state, truncated)
    np.testing.assert_allclose(m_trunc["target_mean"], (team_r + gamma * boot).mean(), rtol=1e-4, atol=1e-5)
    assert abs(float(m_trunc["target_mean"] - m_term["target_mean"])) > 1e-3  # the bootstrap mattered
    assert s.update._cache_size() == 1


# ----------------------------------------------------------------------------------
# QMIX monotonicity
# ----------------------------------------------------------------------------------
SPREAD_N, SPREAD_S = 3, 54  # particle-spread with N = 3
MIXER = networks.make_qmix_mixer(SPREAD_N, SPREAD_S, embed_dim=4, hypernet_dim=8)
MIXER_INIT = jit(MIXER.init)


@jit
def mixer_grad(params, scale, q, state):
    params = jax.tree.map(lambda p: p * scale, params)  # wider weight range than the init's
    return jax.grad(MIXER.apply, argnums=1)(params, q, state)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1),
       q=st.lists(st.floats(-100, 100, allow_nan=False, width=32), min_size=SPREAD_N, max_size=SPREAD_N),
       state_seed=st.integers(0, 2**31 - 1), state_scale=st.floats(0.01, 20.0), param_scale=st.floats(0.1, 10.0))
def test_qmix_mixer_is_monotonic_in_every_agent_q(seed, q, state_seed, state_scale, param_scale):
    params = MIXER_INIT(jax.random.key(seed))
    state = (np.random.default_rng(state_seed).normal(size=(SPREAD_S,)) * state_scale).astype(np.float32)
    grad = np.asarray(mixer_grad(params, np.float32(param_scale), np.asarray(q, np.float32), state))
    assert grad.shape == (SPREAD_N,)
    assert np.all(grad >= 0.0), f"dQ_tot/dQ_i = {grad}"


# ----------------------------------------------------------------------------------
# The runner
# ----------------------------------------------------------------------------------
RUN_CONFIG = RunnerConfig(num_envs=2, rollout_len=5, total_env_steps=50, buffer_capacity=8, batch_size=2)


@functools.lru_cache(maxsize=None)
def runner_setup():
    s = setup("vdn-grid-mlp")
    train = make_train(s.env, s.learner, RUN_CONFIG)
    return s, train, jit(train)


def test_train_compiles_once_and_vmaps_over_keys():
    s, train, jitted = runner_setup()
    hp = hparams(lr=1e-3, eps_decay_steps=100.0)
    keys = jax.random.split(jax.random.key(0), 2)
    runs = [jitted(key, hp) for key in keys]
    assert jitted._cache_size() == 1
    final, metrics = runs[0]
    iterations = RUN_CONFIG.num_iterations
    assert iterations == 5
    for name in ("loss", "episode_return", "episode_length", "episodes", "env_steps"):
        assert metrics[name].shape == (iterations,)
    np.testing.assert_array_equal(metrics["env_steps"], 10 * np.arange(1, 6))
    assert np.all(np.isfinite(metrics["loss"]))  # 2 sequences are stored before the first update
    assert int(final.learner.updates) == iterations

    finals, vmetrics = jit(jax.vmap(train, in_axes=(0, None)))(keys, hp)
    both = as_numpy((finals, vmetrics))  # slice in numpy: eager jax slicing compiles per shape
    for lane, run in enumerate(runs):
        assert_trees_close(jax.tree.map(lambda x: x[lane], both), run)
    assert not np.allclose(vmetrics["loss"][0], vmetrics["loss"][1])  # the two seeds really differ


def test_evaluate_shapes():
    s, _, jitted = runner_setup()
    final, _ = jitted(jax.random.key(0), hparams(lr=1e-3, eps_decay_steps=100.0))
    evaluate = jit(make_evaluate(s.env, s.learner, num_episodes=3, max_steps=10))
    out = evaluate(jax.random.key(1), final.learner)
    assert set(out) == {"returns", "lengths", "terminated", "finished"}
    for name, value in out.items():
        assert value.shape == (3,), name
    assert out["terminated"].dtype == jnp.bool_ and out["finished"].dtype == jnp.bool_
    assert np.all(np.isfinite(out["returns"]))
    assert np.all((np.asarray(out["lengths"]) >= 1) & (np.asarray(out["lengths"]) <= 10))


# ----------------------------------------------------------------------------------
# Bad input: a ValueError naming the field, raised in Python before any compilation
# ----------------------------------------------------------------------------------
@contextlib.contextmanager
def no_compilation():
    events = []
    listener = lambda event, duration, **kwargs: events.append(event)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
        compiles = [e for e in events if e.startswith("/jax/core/compile/")]
        assert not compiles, f"compiled before raising: {compiles}"


@pytest.mark.parametrize("alg,name", [("iql", "IQL"), ("vdn", "VDN"), ("qmix", "QMIX")])
def test_continuous_actions_are_refused(alg, name):
    spec = envs.make("rendezvous").spec
    assert not spec.is_discrete
    with no_compilation(), pytest.raises(ValueError, match=f"{name} needs discrete actions") as err:
        MAKERS[alg](spec, ValueConfig(**TINY))
    assert "continuous" in str(err.value)


@pytest.mark.parametrize("field,value", [("gamma", 1.5), ("lr", -1e-3), ("td_lambda", float("nan")),
                                         ("eps_end", 2.0), ("target_tau", 0.0), ("max_grad_norm", 0.0)])
def test_bad_hparams_are_refused_by_init(field, value):
    learner = setup("qmix-grid-gru").learner
    key = jax.random.key(0)
    with no_compilation(), pytest.raises(ValueError, match=f"ValueHParams.{field}"):
        learner.init(key, ValueHParams(**{field: value}))


@pytest.mark.parametrize("make,field", [
    (lambda: ValueConfig(hidden_dim=0), "ValueConfig.hidden_dim"),
    (lambda: ValueConfig(target_update_period=-1), "ValueConfig.target_update_period"),
    (lambda: ValueConfig(recurrent="yes"), "ValueConfig.recurrent"),
    (lambda: RunnerConfig(num_envs=0), "RunnerConfig.num_envs"),
    (lambda: RunnerConfig(buffer_capacity=8, batch_size=16), "RunnerConfig.batch_size"),
    (lambda: RunnerConfig(num_envs=4, rollout_len=5, total_env_steps=10), "RunnerConfig.total_env_steps"),
])
def test_bad_configs_are_refused(make, field):
    with no_compilation(), pytest.raises(ValueError, match=field):
        make()


def test_bad_evaluate_size_is_refused():
    s = setup("vdn-grid-mlp")
    with no_compilation(), pytest.raises(ValueError, match="num_episodes"):
        make_evaluate(s.env, s.learner, num_episodes=0, max_steps=10)

