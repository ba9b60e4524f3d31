"""Tests of the rendezvous environment and its closed-form optima."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from jaxmarl_lab.envs.rendezvous import Rendezvous, RendezvousState, one_step_optimum, optimal_return, team_reward

KEY = jax.random.key(0)


# ----- team_reward -------------------------------------------------------------------
@pytest.mark.parametrize("x, target, coupling, expected", [
    # N=2, D=1: -((0-.7)^2 + (1-.7)^2 + 1 * (0-1)^2) = -(0.49 + 0.09 + 1) = -1.58
    ([[0.0], [1.0]], 0.7, 1.0, -1.58),
    # N=3, D=1: target term 1+4+9 = 14; pairs (1-2)^2+(1-3)^2+(2-3)^2 = 6; -(14 + 0.5*6) = -17
    ([[1.0], [2.0], [3.0]], 0.0, 0.5, -17.0),
    # N=2, D=2: target term (.25+.25)+(.25+.25) = 1; pair (0-1)^2+(1-1)^2 = 1; -(1 + 2*1) = -3
    ([[0.0, 1.0], [1.0, 1.0]], 0.5, 2.0, -3.0),
    # N=1 on the target: no pairs, zero distance
    ([[0.7, 0.7]], 0.7, 3.0, 0.0),
    # coupling 0: only the target term, (2-1)^2 + (-1-1)^2 = 5
    ([[2.0], [-1.0]], 1.0, 0.0, -5.0),
])
def test_team_reward_golden(x, target, coupling, expected):
    got = team_reward(jnp.asarray(x, jnp.float32), target, coupling)
    assert got.shape == ()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_team_reward_matches_pairwise_sum_and_vmaps():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))
    pairs = sum(np.sum((x[i] - x[j]) ** 2) for i in range(5) for j in range(i + 1, 5))
    expected = -(np.sum((x - 0.3) ** 2) + 2.5 * pairs)
    np.testing.assert_allclose(team_reward(jnp.asarray(x), 0.3, 2.5), expected, rtol=1e-5)
    couplings = jnp.array([0.0, 1.0, 4.0])
    batched = jax.jit(jax.vmap(team_reward, in_axes=(None, None, 0)))(
        jnp.asarray(x), 0.3, couplings)
    single = [team_reward(jnp.asarray(x), 0.3, c) for c in couplings]
    np.testing.assert_allclose(batched, single, rtol=1e-6)


# ----- spec and validation -----------------------------------------------------------
def test_spec():
    one = Rendezvous(num_agents=4).spec
    assert (one.name, one.num_agents, one.obs_dim, one.state_dim, one.action_size) == (
        "rendezvous", 4, 1, 1, 1)
    assert one.action_kind == "continuous"
    assert (one.action_low, one.action_high) == (-np.inf, np.inf)
    multi = Rendezvous(num_agents=3, form="multi-step").spec
    # own (2) + to target (2) + 2 others (4) + time (1) = 9
    assert (multi.obs_dim, multi.state_dim, multi.action_size) == (9, 9, 2)
    assert (multi.action_low, multi.action_high) == (-1.0, 1.0)
    assert Rendezvous(form="multi-step", dim=3).spec.action_shape == (4, 3)


@pytest.mark.parametrize("form, max_steps", [("one-step", 1), ("multi-step", 25)])
def test_default_params(form, max_steps):
    params = Rendezvous(form=form).default_params()
    values = [params.target, params.coupling, params.dt, params.max_speed, params.spawn_range]
    np.testing.assert_allclose(values, [0.7, 1.0, 0.1, 1.0, 1.0], rtol=1e-7)
    assert params.max_steps == max_steps and params.max_steps.dtype == jnp.int32
    assert params.coupling.dtype == jnp.float32


@pytest.mark.parametrize("kwargs, words", [
    (dict(num_agents=0), ["num_agents", ">= 1", "0"]),
    (dict(num_agents=2.5), ["num_agents", "2.5"]),
    (dict(form="two-step"), ["form", "'two-step'", "one-step", "multi-step"]),
    (dict(dim=0), ["dim", ">= 1", "0"]),
])
def test_bad_static_kwargs(kwargs, words):
    with pytest.raises(ValueError) as err:
        Rendezvous(**kwargs)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("overrides, words", [
    (dict(coupling=-1.0), ["coupling", ">= 0", "-1.0"]),
    (dict(max_steps=0), ["max_steps", ">= 1", "0"]),
    (dict(dt=float("nan")), ["dt", "finite"]),
    (dict(speed=1.0), ["speed", "max_speed"]),
])
def test_bad_params(overrides, words):
    with pytest.raises(ValueError) as err:
        Rendezvous(form="multi-step").default_params(**overrides)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("form", ["one-step", "multi-step"])
def test_bad_actions(form):
    env = Rendezvous(num_agents=3, form=form, dim=2)
    state, _ = env.reset(KEY)
    with pytest.raises(ValueError, match="float"):
        env.step(KEY, state, jnp.zeros((3, 2), jnp.int32))
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        env.step(KEY, state, jnp.zeros((3,), jnp.float32))
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        env.step(KEY, state, jnp.zeros((2, 2), jnp.float32))


# ----- one-step form -----------------------------------------------------------------
def test_one_step_terminates_every_step_and_resets():
    env = Rendezvous(num_agents=4)
    params = env.default_params()
    step = jax.jit(env.step)
    state, ts = env.reset(KEY, params)
    np.testing.assert_array_equal(ts.obs, np.ones((4, 1)))
    assert ts.global_state.shape == (1,)
    for i in range(3):
        actions = jax.random.normal(jax.random.key(i), (4, 1))
        state, ts = step(jax.random.key(10 + i), state, actions, params)
        expected = team_reward(actions, 0.7, 1.0)
        np.testing.assert_allclose(ts.reward, np.full(4, expected), rtol=1e-6)
        assert bool(ts.terminated) and not bool(ts.truncated)
        assert int(state.step) == 0  # auto-reset
        np.testing.assert_array_equal(ts.obs, np.ones((4, 1)))
        # The observation after the joint action (before the reset) drops the bias to 0.
        np.testing.assert_array_equal(ts.final_obs, np.zeros((4, 1)))
        np.testing.assert_array_equal(ts.global_state, [1.0])
        np.testing.assert_array_equal(ts.final_global_state, [0.0])
        assert ts.reward.dtype == jnp.float32 and ts.obs.dtype == jnp.float32


def test_one_step_optimum():
    env = Rendezvous(num_agents=3, dim=2)
    params = env.default_params(target=0.75, coupling=2.0)  # 0.75 is exact in float32
    value, actions = one_step_optimum(params, 3, 2)
    assert value == 0.0
    state, _ = env.reset(KEY, params)
    _, ts = env.step(KEY, state, jnp.asarray(actions, jnp.float32), params)
    np.testing.assert_allclose(ts.reward, 0.0, atol=1e-6)
    # Box [-1, 0.5]: common action 0.5, value -N*D*(0.5-0.75)^2 = -3*2*0.0625 = -0.375.
    value, actions = one_step_optimum(params, 3, 2, low=-1.0, high=0.5)
    assert value == -0.375
    np.testing.assert_array_equal(actions, np.full((3, 2), 0.5))

    def cost(flat):  # a generic solver over the box agrees
        x = flat.reshape(3, 2)
        pairs = sum(np.sum((x[i] - x[j]) ** 2) for i in range(3) for j in range(i + 1, 3))
        return np.sum((x - 0.75) ** 2) + 2.0 * pairs
    x0 = np.random.default_rng(1).uniform(-1.0, 0.5, size=6)
    res = optimize.minimize(cost, x0, method="L-BFGS-B", bounds=[(-1.0, 0.5)] * 6)
    np.testing.assert_allclose(-res.fun, -0.375, rtol=1e-5)


# ----- multi-step form -----------------------------------------------------------------
def test_multi_step_hand_example():
    env = Rendezvous(num_agents=2, form="multi-step")
    params = env.default_params(max_speed=2.0)  # v = dt * max_speed = 0.2
    state = RendezvousState(pos=jnp.array([[0.0, 0.0], [1.0, -1.0]]), step=jnp.int32(0))
    # Actions clip to [[0.5, -1], [1, 0.25]]; times 0.2: [[0.1, -0.2], [0.2, 0.05]].
    actions = jnp.array([[0.5, -3.0], [7.0, 0.25]])
    state, ts = env.step(KEY, state, actions, params)
    np.testing.assert_allclose(state.pos, [[0.1, -0.2], [1.2, -0.95]], rtol=1e-6)
    # Target: (.1-.7)^2+(-.2-.7)^2 = .36+.81 = 1.17;  (1.2-.7)^2+(-.95-.7)^2 = .25+2.7225
    # Pair: (1.1)^2+(-.75)^2 = 1.21+.5625 = 1.7725;  r = -(1.17+2.9725+1.7725) = -5.915
    np.testing.assert_allclose(ts.reward, [-5.915, -5.915], rtol=1e-6)
    # Agent 0: own (.1, -.2), target - own (.6, .9), agent 1 - own (1.1, -.75), time 24/25.
    np.testing.assert_allclose(ts.obs[0], [0.1, -0.2, 0.6, 0.9, 1.1, -0.75, 0.96], rtol=1e-5)
    np.testing.assert_allclose(ts.obs[1], [1.2, -0.95, -0.5, 1.65, -1.1, 0.75, 0.96], rtol=1e-5)
    np.testing.assert_allclose(ts.global_state, [0.1, -0.2, 1.2, -0.95, 0.7, 0.7, 0.96],
                               rtol=1e-5)
    assert int(state.step) == 1 and not bool(ts.terminated) and not bool(ts.truncated)


def test_multi_step_reset_spawn_range():
    env = Rendezvous(num_agents=50, form="multi-step", dim=2)
    state, ts = env.reset(KEY, env.default_params(spawn_range=0.5))
    assert state.pos.shape == (50, 2) and state.pos.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(state.pos))) <= 0.5
    np.testing.assert_allclose(ts.obs[:, -1], 1.0)  # full time left


def test_truncation_at_max_steps_with_final_obs():
    env = Rendezvous(num_agents=3, form="multi-step")
    params = env.default_params(max_steps=3)
    step = jax.jit(env.step)
    state, _ = env.reset(KEY, params)
    start = state.pos
    zeros = jnp.zeros((3, 2))
    for i in range(3):
        state, ts = step(jax.random.key(i), state, zeros, params)
        assert not bool(ts.terminated)
        assert bool(ts.truncated) == (i == 2)
    # The final observation is the pre-reset one: unmoved agents, no time left.
    np.testing.assert_allclose(ts.final_obs[:, :2], start, rtol=1e-6)
    np.testing.assert_allclose(ts.final_obs[:, -1], 0.0)
    np.testing.assert_allclose(ts.final_global_state[-1], 0.0)
    np.testing.assert_allclose(ts.obs[:, -1], 1.0)  # fresh episode
    np.testing.assert_allclose(ts.obs[:, :2], state.pos)
    assert int(state.step) == 0 and not np.allclose(state.pos, start)


def test_step_vmaps_over_params():
    env = Rendezvous(num_agents=2, form="multi-step")
    params = jax.tree.map(lambda *v: jnp.stack(v), env.default_params(coupling=0.0),
                          env.default_params(coupling=4.0))
    state, _ = env.reset(KEY)
    actions = jnp.ones((2, 2))
    _, ts = jax.jit(jax.vmap(env.step, in_axes=(None, None, None, 0)))(KEY, state, actions, params)
    for b, c in enumerate([0.0, 4.0]):
        _, single = env.step(KEY, state, actions, env.default_params(coupling=c))
        np.testing.assert_allclose(ts.reward[b], single.reward, rtol=1e-6)


# ----- multi-step optimum against a generic solver ---------------------------------------
def scipy_optimal_return(start, target, coupling, v, steps):
    """Optimal per-agent return by bounded least squares over velocities (scipy).

    The step cost y^T M y, M = (1 + cN) I - c 11^T, equals ||A y||^2 with
    A = I + (sqrt(1 + cN) - 1) (I - 11^T / N). Positions y_t = y_0 + sum_{s<=t} u_s with
    every velocity component u in [-v, v].
    """
    n, d = start.shape
    proj = np.eye(n) - np.ones((n, n)) / n
    a = np.kron(np.eye(n) + (np.sqrt(1 + coupling * n) - 1) * proj, np.eye(d))
    y0 = (start - target).reshape(-1)
    design = np.kron(np.tril(np.ones((steps, steps))), a)
    rhs = -np.tile(a @ y0, steps)
    res = optimize.lsq_linear(design, rhs, bounds=(-v, v), method="bvls", tol=1e-13)
    return -float(np.sum(np.square(design @ res.x - rhs)))


def random_instances(count, seed):
    rng = np.random.default_rng(seed)
    fixed = [  # (N, T, coupling, D, max_speed)
        (2, 1, 0.0, 1, 1.0), (2, 6, 4.0, 1, 1.0), (3, 4, 4.0, 2, 3.0), (4, 6, 0.3, 1, 1.0),
        (3, 6, 0.0, 2, 1.0), (4, 5, 4.0, 2, 2.0), (2, 3, 1.0, 2, 5.0), (4, 6, 1.0, 1, 0.5),
    ]
    for n, steps, coupling, d, speed in fixed:
        yield n, steps, coupling, d, speed, rng.uniform(-2, 2, (n, d))
    for _ in range(count):
        n, d = int(rng.integers(2, 5)), int(rng.integers(1, 3))
        yield (n, int(rng.integers(1, 7)), float(rng.choice([0.0, 0.5, 1.0, 4.0, 10.0])), d,
               float(rng.uniform(0.2, 4.0)), rng.uniform(-3, 3, (n, d)))
    # One agent far from a tight group, strong coupling: the group's target moves.
    yield 4, 6, 10.0, 1, 1.0, np.array([[10.0], [-1.0], [-1.1], [-0.9]])


def test_optimal_return_matches_scipy():
    env = Rendezvous(num_agents=2, form="multi-step")
    for n, steps, coupling, d, speed, start in random_instances(40, seed=0):
        params = env.default_params(coupling=coupling, max_speed=speed, max_steps=steps)
        opt = optimal_return(params, start)
        v = float(params.dt) * float(params.max_speed)  # as float32 params hold them
        expected = scipy_optimal_return(start, float(params.target), float(params.coupling), v,
                                        steps)
        np.testing.assert_allclose(opt.ret, expected, rtol=1e-9, atol=1e-12,
                                   err_msg=f"N={n} T={steps} c={coupling} D={d} v={v}")
        assert opt.positions.shape == (steps + 1, n, d)
        np.testing.assert_allclose(opt.positions[0], start)
        assert np.all(np.abs(np.diff(opt.positions, axis=0)) <= v * (1 + 1e-9))
        np.testing.assert_allclose(opt.rewards.sum(), opt.ret)


def test_optimal_trajectory_through_env():
    env = Rendezvous(num_agents=3, form="multi-step", dim=2)
    params = env.default_params(coupling=4.0, max_speed=2.0, max_steps=6)
    start = np.random.default_rng(3).uniform(-1, 1, (3, 2)).astype(np.float32)
    opt = optimal_return(params, start.astype(np.float64))
    assert np.all(np.abs(opt.actions) <= 1.0)
    state = RendezvousState(pos=jnp.asarray(start), step=jnp.int32(0))
    step = jax.jit(env.step)
    total = np.zeros(3)
    for t in range(6):
        state, ts = step(jax.random.key(t), state, jnp.asarray(opt.actions[t], jnp.float32), params)
        total += np.asarray(ts.reward)
        np.testing.assert_allclose(ts.final_obs[:, :2], opt.positions[t + 1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ts.reward, opt.rewards[t], rtol=1e-5)
    assert bool(ts.truncated)
    np.testing.assert_allclose(total, opt.ret, rtol=1e-5)


def test_optimal_return_with_zero_speed_is_static():
    params = Rendezvous(num_agents=2, form="multi-step").default_params(max_speed=0.0, max_steps=3)
    start = np.array([[0.0, 0.0], [1.0, 1.0]])
    opt = optimal_return(params, start)
    # Agents cannot move: 3 * team_reward(start) = 3 * -(.49*2 + .09*2 + 1*2) = -9.48
    np.testing.assert_allclose(opt.ret, -9.48, rtol=1e-7)  # params hold float32(0.7)
    np.testing.assert_array_equal(opt.actions, 0.0)


# ----- registry and imports ------------------------------------------------------------------
def test_registry_and_no_bare_envs_module():
    from jaxmarl_lab import envs
    env = envs.make("rendezvous", num_agents=2, form="multi-step")
    assert isinstance(env, envs.Rendezvous) and env.spec.obs_dim == 7
    assert "envs" not in sys.modules
