"""Pure reinforcement-learning math, unbatched (rlax style): the caller vmaps.

Time-indexed arguments use the `_t` suffix and are `(T,)` arrays along one sequence.
Termination and truncation are kept apart: a terminated step does not bootstrap; a
truncated step bootstraps from the value of its final observation.

Each target and value function first checks the ranks and shapes of its inputs with
chex, as rlax does: a `(T, 1)` value against `(T,)` rewards would otherwise broadcast
to `(T, T)` without a word. The checks run in Python at trace time (under `vmap` they
see the unbatched shapes), so they cost nothing in the compiled step.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def masked_argmax(q: jax.Array, avail: jax.Array) -> jax.Array:
    """Greedy action over the available ones: `q (..., A)`, `avail (..., A)` -> `(...)` int32."""
    chex.assert_equal_shape([q, avail])
    return jnp.argmax(jnp.where(avail, q, -jnp.inf), axis=-1).astype(jnp.int32)


def double_q_value(q_online: jax.Array, q_target: jax.Array, avail: jax.Array) -> jax.Array:
    """Double-Q bootstrap value: the target network's value of the online argmax.

    van Hasselt et al. 2016, "Deep Reinforcement Learning with Double Q-learning".

    Args:
        q_online: `(..., A)` online-network values at the next observation.
        q_target: `(..., A)` target-network values at the next observation.
        avail: `(..., A)` available actions at the next observation.

    Returns:
        `(...)` values.
    """
    chex.assert_equal_shape([q_online, q_target, avail])
    action = masked_argmax(q_online, avail)
    return jnp.take_along_axis(q_target, action[..., None], axis=-1)[..., 0]


def max_q_value(q_target: jax.Array, avail: jax.Array) -> jax.Array:
    """Plain Q-learning bootstrap value `max_a Q(s', a)` over available actions: `(...)`."""
    chex.assert_equal_shape([q_target, avail])
    return jnp.max(jnp.where(avail, q_target, -jnp.inf), axis=-1)


def td_lambda_targets(r_t: jax.Array, terminated_t: jax.Array, done_t: jax.Array,
                      v_t: jax.Array, gamma: jax.Array, lambda_: jax.Array) -> jax.Array:
    """TD(lambda) returns along one sequence, cut at episode ends.

    Watkins/Peng-style lambda-return with bootstrap values `v_t = V(s_{t+1})` (Sutton &
    Barto 2018, eq. 12.3, in its recursive form):

        G_t = r_t + gamma * (1 - terminated_t) * ((1 - l_t) * v_t + l_t * G_{t+1})

    with `l_t = lambda_` inside an episode and 0 where the episode ends (`done_t`) or
    the sequence ends, so a truncated step bootstraps fully from `v_t` and a terminated
    step not at all. `lambda_ = 0` gives one-step targets.

    Args:
        r_t: `(T,)` rewards.
        terminated_t: `(T,)` bool, the step reached a terminal state.
        done_t: `(T,)` bool, the step ended the episode (terminated or truncated).
        v_t: `(T,)` values of the observation each step reached (before auto-reset).
        gamma: discount, scalar.
        lambda_: trace decay, scalar.

    Returns:
        `(T,)` targets.
    """
    chex.assert_rank([r_t, terminated_t, done_t, v_t, gamma, lambda_], [1, 1, 1, 1, 0, 0])
    chex.assert_equal_shape([r_t, terminated_t, done_t, v_t])
    not_terminal = 1.0 - terminated_t.astype(r_t.dtype)
    lam_t = jnp.where(done_t, 0.0, lambda_).at[-1].set(0.0)

    def backward(g_next, inputs):
        r, cont, lam, v = inputs
        g = r + gamma * cont * ((1.0 - lam) * v + lam * g_next)
        return g, g

    _, g_t = jax.lax.scan(backward, v_t[-1], (r_t, not_terminal, lam_t, v_t), reverse=True)
    return g_t


def gae_advantages(r_t: jax.Array, terminated_t: jax.Array, done_t: jax.Array, value_t: jax.Array,
                   next_value_t: jax.Array, gamma: jax.Array, lambda_: jax.Array) -> jax.Array:
    """Generalised advantage estimates along one sequence (Schulman et al. 2016).

        delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t)
        A_t = delta_t + gamma * lambda_ * (1 - done_t) * A_{t+1}

    `next_value_t` is the value of the observation the step reached before any
    auto-reset, so truncated episodes bootstrap and terminated ones do not; the trace is
    cut at every episode end.

    Args:
        r_t, terminated_t, done_t: `(T,)` rewards and episode-end flags.
        value_t: `(T,)` values of the observations acted on.
        next_value_t: `(T,)` values of the observations reached.
        gamma, lambda_: scalars.

    Returns:
        `(T,)` advantages; add `value_t` for the value targets.
    """
    chex.assert_rank([r_t, terminated_t, done_t, value_t, next_value_t, gamma, lambda_], [1, 1, 1, 1, 1, 0, 0])
    chex.assert_equal_shape([r_t, terminated_t, done_t, value_t, next_value_t])
    not_terminal = 1.0 - terminated_t.astype(r_t.dtype)
    delta_t = r_t + gamma * not_terminal * next_value_t - value_t
    keep_t = gamma * lambda_ * (1.0 - done_t.astype(r_t.dtype))

    def backward(a_next, inputs):
        delta, keep = inputs
        a = delta + keep * a_next
        return a, a

    _, adv_t = jax.lax.scan(backward, jnp.zeros_like(r_t[0]), (delta_t, keep_t), reverse=True)
    return adv_t


def epsilon_schedule(env_steps: jax.Array, start: jax.Array, end: jax.Array,
                     decay_steps: jax.Array) -> jax.Array:
    """Linear anneal from `start` to `end` over `decay_steps` environment steps."""
    frac = jnp.clip(env_steps.astype(jnp.float32) / jnp.maximum(decay_steps, 1.0), 0.0, 1.0)
    return start + frac * (end - start)


def polyak_update(target, online, tau: jax.Array):
    """`tau * online + (1 - tau) * target`, leaf by leaf; `tau = 1` copies."""
    return jax.tree.map(lambda t, o: tau * o + (1.0 - tau) * t, target, online)


def gradient_variance(fn, params, *samples) -> jax.Array:
    """Variance across samples of per-sample gradients, summed over parameters, `()`.

    `fn(params, *sample) -> ()`; each array in `samples` has a leading sample axis K.
    Per-sample gradients come from `vmap(grad(fn))`; the result is
    `sum_p Var_k[d fn(params, sample_k) / d p]` (population variance, ddof 0).
    """
    grads = jax.vmap(jax.grad(fn), in_axes=(None,) + (0,) * len(samples))(params, *samples)
    return sum(jnp.var(g, axis=0).sum() for g in jax.tree.leaves(grads))
