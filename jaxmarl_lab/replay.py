"""A pure-JAX uniform replay buffer: `Buffer(init, add, sample, can_sample)`.

Items are any pytree: single transitions, or sequences `Transition (T, ...)` for
recurrent learners and TD(lambda) targets. The buffer is a ring of fixed capacity,
so its state is a fixed-shape pytree that `jit`, `vmap` and checkpointing handle.
(flashbax offers the same and more; a 60-line ring keeps the dependency list short
and vmaps over seeds without surprises.)
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxmarl_lab.validation import check_positive_int


class BufferState(NamedTuple):
    data: Any  # pytree of (C, ...) arrays
    position: jax.Array  # () int32, next slot to write
    size: jax.Array  # () int32, filled slots


class Buffer(NamedTuple):
    """`init(item) -> state`; `add(state, items (K, ...)) -> state`;
    `sample(key, state) -> items (batch_size, ...)`; `can_sample(state) -> () bool`."""

    init: Callable[[Any], BufferState]
    add: Callable[[BufferState, Any], BufferState]
    sample: Callable[[jax.Array, BufferState], Any]
    can_sample: Callable[[BufferState], jax.Array]


def make_buffer(capacity: int, batch_size: int) -> Buffer:
    """A ring buffer of `capacity` items sampled uniformly, with replacement.

    Raises:
        ValueError: if `batch_size` exceeds `capacity`, or either is below 1.
    """
    capacity = check_positive_int("buffer capacity", capacity)
    batch_size = check_positive_int("batch_size", batch_size)
    if batch_size > capacity:
        raise ValueError(f"batch_size ({batch_size}) must be <= the buffer capacity ({capacity})")

    def init(item: Any) -> BufferState:
        data = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), item)
        return BufferState(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def add(state: BufferState, items: Any) -> BufferState:
        count = jax.tree.leaves(items)[0].shape[0]
        if count > capacity:
            raise ValueError(f"cannot add {count} items at once to a buffer of capacity {capacity}")
        slots = (state.position + jnp.arange(count)) % capacity
        data = jax.tree.map(lambda d, x: d.at[slots].set(x.astype(d.dtype)), state.data, items)
        return BufferState(data, (state.position + count) % capacity,
                           jnp.minimum(state.size + count, capacity))

    def sample(key: jax.Array, state: BufferState) -> Any:
        idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
        return jax.tree.map(lambda d: d[idx], state.data)

    def can_sample(state: BufferState) -> jax.Array:
        return state.size >= batch_size

    return Buffer(init, add, sample, can_sample)
