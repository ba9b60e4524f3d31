"""Golden values for `jaxmarl_lab.ops`, worked by hand in the comments.

Every case is checked three ways: eagerly, under `jax.jit`, and under `jax.vmap` over
a batch of two inputs (each with its own hand-worked result), since the ops are
unbatched (rlax style) and the learners vmap them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab import ops

T, F = True, False


def f32(x):
    return jnp.asarray(x, jnp.float32)


def _as_tree(x):
    """Lists of numbers become one array; dicts stay trees of arrays."""
    if isinstance(x, dict):
        return {k: np.asarray(v, np.float64) for k, v in x.items()}
    return None if x is None else np.asarray(x)


def check_three_ways(fn, args, expected, other_args=None, other_expected=None, in_axes=0):
    """`fn(*args) == expected` eagerly, under jit, and under vmap over [args, other_args]."""
    expected, other_expected = _as_tree(expected), _as_tree(other_expected)
    eager = fn(*args)
    jax.tree.map(lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6), eager, expected)
    jitted = jax.jit(fn)(*args)
    jax.tree.map(lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6), jitted, expected)
    if other_args is None:  # the same input twice
        other_args, other_expected = args, expected
    stacked = jax.tree.map(lambda a, b: np.stack([np.asarray(a), np.asarray(b)]), tuple(args), tuple(other_args))
    batched = jax.vmap(fn, in_axes=in_axes)(*stacked)
    want = jax.tree.map(lambda a, b: np.stack([np.asarray(a), np.asarray(b)]), expected, other_expected)
    jax.tree.map(lambda got, w: np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-6), batched, want)
    return eager


# ----------------------------------------------------------------------------------
# td_lambda_targets(r_t, terminated_t, done_t, v_t, gamma, lambda_)
#   G_t = r_t + gamma (1 - term_t) ((1 - l_t) v_t + l_t G_{t+1}),
#   l_t = lambda inside an episode, 0 where done_t or at the last step.
# Running example: r = [1, 2, 3], v = [10, 20, 30] (v_t = V(s_{t+1})), gamma = 0.5.
# ----------------------------------------------------------------------------------
R = [1.0, 2.0, 3.0]
V = [10.0, 20.0, 30.0]
NONE = [F, F, F]


def td(r, term, done, v, gamma, lam):
    return ops.td_lambda_targets(f32(r), jnp.asarray(term), jnp.asarray(done), f32(v), f32(gamma), f32(lam))


def test_td_lambda_zero_is_one_step():
    # G_t = r_t + 0.5 v_t = [1 + 5, 2 + 10, 3 + 15] = [6, 12, 18]
    # second sequence: r = [0, -1, 4], v = [2, 2, -8] -> [0 + 1, -1 + 1, 4 - 4] = [1, 0, 0]
    check_three_ways(td, (R, NONE, NONE, V, 0.5, 0.0), [6.0, 12.0, 18.0],
                     ([0.0, -1.0, 4.0], NONE, NONE, [2.0, 2.0, -8.0], 0.5, 0.0), [1.0, 0.0, 0.0])


def test_td_lambda_one_is_monte_carlo_within_the_episode():
    # l = [1, 1, 0] (the last step always bootstraps from v_{T-1} = 30):
    # G_2 = 3 + 0.5 * 30 = 18
    # G_1 = 2 + 0.5 * G_2 = 11
    # G_0 = 1 + 0.5 * G_1 = 6.5 = 1 + 0.5*2 + 0.25*3 + 0.125*30  (discounted rewards + tail bootstrap)
    # second sequence, gamma = 1: r = [1, 1, 1], v = [7, 7, 5] -> G = [3 + 5, 2 + 5, 1 + 5] = [8, 7, 6]
    check_three_ways(td, (R, NONE, NONE, V, 0.5, 1.0), [6.5, 11.0, 18.0],
                     ([1.0, 1.0, 1.0], NONE, NONE, [7.0, 7.0, 5.0], 1.0, 1.0), [8.0, 7.0, 6.0])


def test_td_lambda_half():
    # l = [0.5, 0.5, 0]:
    # G_2 = 3 + 0.5 * 30 = 18
    # G_1 = 2 + 0.5 * (0.5 * 20 + 0.5 * 18) = 2 + 0.5 * 19 = 11.5
    # G_0 = 1 + 0.5 * (0.5 * 10 + 0.5 * 11.5) = 1 + 0.5 * 10.75 = 6.375
    # second sequence, gamma = 1: r = [0, 0, 0], v = [4, 8, 2]:
    # G_2 = 2;  G_1 = 0.5 * 8 + 0.5 * 2 = 5;  G_0 = 0.5 * 4 + 0.5 * 5 = 4.5
    check_three_ways(td, (R, NONE, NONE, V, 0.5, 0.5), [6.375, 11.5, 18.0],
                     ([0.0, 0.0, 0.0], NONE, NONE, [4.0, 8.0, 2.0], 1.0, 0.5), [4.5, 5.0, 2.0])


def test_td_lambda_terminated_mid_sequence_does_not_bootstrap_and_cuts_the_trace():
    # Step 1 reaches a terminal state; step 2 starts a new episode. lambda = 1, l = [1, 0, 0]:
    # G_2 = 3 + 0.5 * 30 = 18
    # G_1 = 2 + 0.5 * 0 * (...) = 2            (no bootstrap from v_1 = 20, no trace to G_2)
    # G_0 = 1 + 0.5 * G_1 = 2
    term = [F, T, F]
    # the terminated case vmapped with the truncated one below: G = [7, 12, 18]
    check_three_ways(td, (R, term, term, V, 0.5, 1.0), [2.0, 2.0, 18.0],
                     (R, NONE, term, V, 0.5, 1.0), [7.0, 12.0, 18.0])


def test_td_lambda_truncated_mid_sequence_bootstraps_from_v_and_cuts_the_trace():
    # Step 1 hits the time limit: done but not terminated. lambda = 1, l = [1, 0, 0]:
    # G_2 = 3 + 0.5 * 30 = 18
    # G_1 = 2 + 0.5 * v_1 = 2 + 10 = 12        (bootstraps from the final observation's value)
    # G_0 = 1 + 0.5 * G_1 = 7
    check_three_ways(td, (R, NONE, [F, T, F], V, 0.5, 1.0), [7.0, 12.0, 18.0])
    # The trace is cut: what happens after step 1 (next episode) changes nothing before it.
    other = td([1.0, 2.0, -50.0], NONE, [F, T, F], [10.0, 20.0, 99.0], 0.5, 1.0)
    np.testing.assert_allclose(other[:2], [7.0, 12.0], rtol=1e-6)


def test_td_lambda_terminal_last_step():
    # A terminal last step: G_2 = 3 (no bootstrap from v_2); lambda = 1:
    # G_1 = 2 + 0.5 * 3 = 3.5;  G_0 = 1 + 0.5 * 3.5 = 2.75
    # vs truncated last step (the usual end of a sequence): [6.5, 11, 18] as above.
    check_three_ways(td, (R, [F, F, T], [F, F, T], V, 0.5, 1.0), [2.75, 3.5, 3.0],
                     (R, NONE, [F, F, T], V, 0.5, 1.0), [6.5, 11.0, 18.0])


def test_td_lambda_single_step_bootstraps_from_last_value():
    # T = 1: the last step bootstraps from v_{T-1} whatever lambda is: G = 2 + 0.9 * 10 = 11.
    # second: terminated -> G = 2.
    check_three_ways(td, ([2.0], [F], [F], [10.0], 0.9, 1.0), [11.0],
                     ([2.0], [T], [T], [10.0], 0.9, 1.0), [2.0])


# ----------------------------------------------------------------------------------
# masked_argmax, double_q_value, max_q_value
# q_online = [4, 5, 3], q_target = [10, 40, 30].
#   All available: online argmax = 1 -> double = q_target[1] = 40; max = 40.
#   avail = [T, F, T]: online argmax over {0: 4, 2: 3} = 0 -> double = 10; max over {10, 30} = 30.
# ----------------------------------------------------------------------------------
Q_ONLINE = [4.0, 5.0, 3.0]
Q_TARGET = [10.0, 40.0, 30.0]
ALL = [T, T, T]
MASK1 = [T, F, T]


def test_masked_argmax_skips_unavailable():
    # [4, 5, 3] with action 1 masked -> 0. Negative values: [-5, -1, -3] masked at 1 -> 2
    # (masking must not be a multiplication by 0, which would make -1 -> 0 the max).
    out = check_three_ways(ops.masked_argmax, (f32(Q_ONLINE), jnp.asarray(MASK1)), 0,
                           (f32([-5.0, -1.0, -3.0]), jnp.asarray(MASK1)), 2)
    assert out.dtype == jnp.int32
    check_three_ways(ops.masked_argmax, (f32(Q_ONLINE), jnp.asarray(ALL)), 1)
    # Batched leading axes: (N, A) -> (N,)
    q = f32([Q_ONLINE, [-5.0, -1.0, -3.0]])
    np.testing.assert_array_equal(ops.masked_argmax(q, jnp.asarray([MASK1, [T, F, T]])), [0, 2])


def test_double_q_value_uses_target_value_of_online_argmax():
    check_three_ways(ops.double_q_value, (f32(Q_ONLINE), f32(Q_TARGET), jnp.asarray(ALL)), 40.0,
                     (f32(Q_ONLINE), f32(Q_TARGET), jnp.asarray(MASK1)), 10.0)


def test_max_q_value_masks():
    check_three_ways(ops.max_q_value, (f32(Q_TARGET), jnp.asarray(ALL)), 40.0,
                     (f32(Q_TARGET), jnp.asarray(MASK1)), 30.0)


def test_double_q_on_agent_axis():
    # (N=2, A=3): agent 0 as above with the mask (-> 10); agent 1 all available, online
    # [0, 1, 2] -> argmax 2 -> target [7, 8, 9][2] = 9.
    q_on = f32([Q_ONLINE, [0.0, 1.0, 2.0]])
    q_tg = f32([Q_TARGET, [7.0, 8.0, 9.0]])
    avail = jnp.asarray([MASK1, ALL])
    check_three_ways(ops.double_q_value, (q_on, q_tg, avail), [10.0, 9.0])
    check_three_ways(ops.max_q_value, (q_tg, avail), [30.0, 9.0])


# ----------------------------------------------------------------------------------
# gae_advantages(r, term, done, value, next_value, gamma, lambda)
#   delta_t = r_t + gamma (1 - term_t) next_value_t - value_t
#   A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}
# r = [1, 2, 3], value = [1, 2, 3], next_value = [2, 10, 4] (10: value of step 1's final
# observation, before the auto-reset), gamma = 0.5, lambda = 0.5 -> gamma*lambda = 0.25.
# ----------------------------------------------------------------------------------
VALUE = [1.0, 2.0, 3.0]
NEXT_VALUE = [2.0, 10.0, 4.0]


def gae(term, done, gamma=0.5, lam=0.5):
    return ops.gae_advantages(f32(R), jnp.asarray(term), jnp.asarray(done), f32(VALUE), f32(NEXT_VALUE),
                              f32(gamma), f32(lam))


def gae_fn(r, term, done, value, next_value, gamma, lam):
    return ops.gae_advantages(r, term, done, value, next_value, gamma, lam)


def gae_args(term, done):
    return (f32(R), jnp.asarray(term), jnp.asarray(done), f32(VALUE), f32(NEXT_VALUE), f32(0.5), f32(0.5))


def test_gae_terminated_vs_truncated_in_one_rollout():
    # terminated at step 1:
    #   delta = [1 + 0.5*2 - 1, 2 + 0 - 2, 3 + 0.5*4 - 3] = [1, 0, 2]
    #   A_2 = 2;  A_1 = 0 + 0.25 * 0 * A_2 = 0;  A_0 = 1 + 0.25 * 0 = 1
    # truncated at step 1 (bootstraps from next_value_1 = 10, trace still cut):
    #   delta = [1, 2 + 0.5*10 - 2, 2] = [1, 5, 2]
    #   A_2 = 2;  A_1 = 5;  A_0 = 1 + 0.25 * 5 = 2.25
    check_three_ways(gae_fn, gae_args([F, T, F], [F, T, F]), [1.0, 0.0, 2.0],
                     gae_args(NONE, [F, T, F]), [2.25, 5.0, 2.0])


def test_gae_without_episode_end():
    #   delta = [1, 5, 2];  A_2 = 2;  A_1 = 5 + 0.25*2 = 5.5;  A_0 = 1 + 0.25*5.5 = 2.375
    check_three_ways(gae_fn, gae_args(NONE, NONE), [2.375, 5.5, 2.0])
    # lambda = 0: A = delta
    np.testing.assert_allclose(gae(NONE, NONE, lam=0.0), [1.0, 5.0, 2.0], rtol=1e-6)


# ----------------------------------------------------------------------------------
# epsilon_schedule and polyak_update
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("steps,want", [
    (0, 1.0),  # start
    (50, 0.55),  # halfway: 1 + 0.5 * (0.1 - 1) = 0.55
    (100, 0.1),  # end
    (1000, 0.1),  # after the end: clipped
])
def test_epsilon_schedule(steps, want):
    fn = lambda s, a, b, d: ops.epsilon_schedule(s, a, b, d)
    args = (jnp.asarray(steps, jnp.int32), f32(1.0), f32(0.1), f32(100.0))
    # second lane: start 0.5, end 0.0 over 200 steps -> 0.5 * (1 - steps / 200), clipped
    other = (jnp.asarray(steps, jnp.int32), f32(0.5), f32(0.0), f32(200.0))
    check_three_ways(fn, args, want, other, 0.5 * (1.0 - min(steps, 200) / 200.0))


TARGET = {"w": f32([0.0, 4.0]), "b": f32(8.0)}
ONLINE = {"w": f32([4.0, 0.0]), "b": f32(0.0)}


@pytest.mark.parametrize("tau,want", [
    (1.0, {"w": [4.0, 0.0], "b": 0.0}),  # copies online
    (0.0, {"w": [0.0, 4.0], "b": 8.0}),  # keeps target
    # 0.25 * online + 0.75 * target: w = [1 + 0, 0 + 3] = [1, 3], b = 0 + 6 = 6
    (0.25, {"w": [1.0, 3.0], "b": 6.0}),
])
def test_polyak_update(tau, want):
    out = check_three_ways(ops.polyak_update, (TARGET, ONLINE, f32(tau)), want)
    assert jax.tree.structure(out) == jax.tree.structure(TARGET)
    # vmap over two taus (e.g. two hyperparameter settings) with the same target/online
    both = jax.vmap(ops.polyak_update, in_axes=(None, None, 0))(TARGET, ONLINE, f32([tau, 1.0]))
    np.testing.assert_allclose(both["w"], [want["w"], [4.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(both["b"], [want["b"], 0.0], rtol=1e-6)


def test_shape_mistakes_are_refused_at_trace_time():
    # A (T, 1) value against (T,) rewards would broadcast to (T, T); a batched call forgot its vmap.
    r, flag = f32(R), jnp.zeros(3, bool)
    with pytest.raises(AssertionError, match=r"input 3 has rank 2 \(shape \(3, 1\)\) but expected 1"):
        ops.gae_advantages(r, flag, flag, f32(VALUE)[:, None], f32(NEXT_VALUE), f32(0.5), f32(0.5))
    with pytest.raises(AssertionError, match="different shapes"):
        ops.gae_advantages(r, flag, flag, f32(VALUE), f32(NEXT_VALUE + [0.0]), f32(0.5), f32(0.5))
    with pytest.raises(AssertionError, match="rank"):
        jax.jit(ops.td_lambda_targets)(r[None], flag[None], flag[None], r[None], f32(0.5), f32(0.5))
    with pytest.raises(AssertionError, match="different shapes"):
        ops.double_q_value(f32(Q_ONLINE), f32(Q_TARGET), jnp.asarray([MASK1, ALL]))
