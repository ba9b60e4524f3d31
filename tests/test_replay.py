"""The replay ring buffer: shapes, dtypes, wrap-around, sampling only filled slots, jit/vmap, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmarl_lab.replay import BufferState, make_buffer


def items(ids):
    """Items stacked on a leading axis `(K, ...)`; every leaf encodes the item's id, so a
    sample can be traced back to what was added (numpy: no tracing per example)."""
    ids = np.asarray(ids, np.int32)
    return {"id": ids,  # (K,) int32
            "x": (np.stack([ids, -ids], -1) * 0.5).astype(np.float32),  # (K, 2) float32
            "flag": ids % 2 == 1}  # (K,) bool


def item(i):
    """One item (no leading axis)."""
    return jax.tree.map(lambda x: x[0], items([i]))


def check_consistent(sample):
    """Every leaf of every sampled item belongs to the same item (no mixing of slots)."""
    ids = np.asarray(sample["id"])
    np.testing.assert_array_equal(np.asarray(sample["x"]), np.stack([ids, -ids], -1) * 0.5)
    np.testing.assert_array_equal(np.asarray(sample["flag"]), ids % 2 == 1)


def test_shapes_and_dtypes():
    buffer = make_buffer(capacity=5, batch_size=3)
    state = buffer.init(item(0))
    assert isinstance(state, BufferState)
    assert state.data["id"].shape == (5,) and state.data["id"].dtype == jnp.int32
    assert state.data["x"].shape == (5, 2) and state.data["x"].dtype == jnp.float32
    assert state.data["flag"].shape == (5,) and state.data["flag"].dtype == jnp.bool_
    assert int(state.size) == 0 and int(state.position) == 0
    assert not bool(buffer.can_sample(state))

    state = buffer.add(state, items([1, 2, 3]))
    assert jax.tree.map(lambda x: (x.shape, x.dtype), state.data) == \
        {"id": ((5,), jnp.int32), "x": ((5, 2), jnp.float32), "flag": ((5,), jnp.bool_)}
    assert state.size.dtype == jnp.int32 and state.position.dtype == jnp.int32
    assert bool(buffer.can_sample(state))
    sample = buffer.sample(jax.random.key(0), state)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), sample) == \
        {"id": ((3,), jnp.int32), "x": ((3, 2), jnp.float32), "flag": ((3,), jnp.bool_)}
    assert set(np.asarray(sample["id"]).tolist()) <= {1, 2, 3}
    check_consistent(sample)


def test_added_items_are_cast_to_the_buffer_dtypes():
    buffer = make_buffer(capacity=2, batch_size=1)
    state = buffer.init({"a": jnp.zeros((3,), jnp.float32), "b": jnp.zeros((), jnp.int32)})
    state = buffer.add(state, {"a": np.ones((1, 3), np.float64), "b": np.full((1,), 7, np.int64)})
    assert state.data["a"].dtype == jnp.float32 and state.data["b"].dtype == jnp.int32
    np.testing.assert_array_equal(state.data["b"], [7, 0])


def test_ring_wraps_around_and_overwrites_the_oldest():
    buffer = make_buffer(capacity=3, batch_size=1)
    state = buffer.init(item(0))
    state = buffer.add(state, items([10, 11]))
    # slots 0, 1 filled; position 2
    np.testing.assert_array_equal(state.data["id"], [10, 11, 0])
    assert (int(state.position), int(state.size)) == (2, 2)
    state = buffer.add(state, items([12, 13, 14]))
    # 12 -> slot 2, 13 -> slot 0 (overwrites 10), 14 -> slot 1 (overwrites 11); position 5 % 3 = 2
    np.testing.assert_array_equal(state.data["id"], [13, 14, 12])
    assert (int(state.position), int(state.size)) == (2, 3)
    check_consistent(state.data)
    state = buffer.add(state, items([15]))
    np.testing.assert_array_equal(state.data["id"], [13, 14, 15])  # 12, the oldest, is gone
    assert (int(state.position), int(state.size)) == (0, 3)


def test_size_saturates_at_capacity():
    buffer = make_buffer(capacity=4, batch_size=2)
    state = buffer.init(item(0))
    sizes = []
    for start in range(0, 12, 3):
        state = buffer.add(state, items(range(start, start + 3)))
        sizes.append(int(state.size))
    assert sizes == [3, 4, 4, 4]


def test_samples_cover_exactly_the_filled_slots():
    """Uniform over the filled slots: with 2 of 6 slots filled, both appear, nothing else does."""
    buffer = make_buffer(capacity=6, batch_size=4)
    state = buffer.add(buffer.init(item(0)), items([7, 8]))
    sample = jax.jit(jax.vmap(buffer.sample, in_axes=(0, None)))(jax.random.split(jax.random.key(1), 500), state)
    ids = np.asarray(sample["id"]).ravel()
    assert set(ids.tolist()) == {7, 8}
    assert 0.4 < np.mean(ids == 7) < 0.6


# Eager adds compile once per (capacity, count): small ranges keep that cheap.
@settings(max_examples=30, deadline=None)
@given(capacity=st.integers(1, 6), data=st.data())
def test_samples_only_come_from_items_still_in_the_buffer(capacity, data):
    batch_size = data.draw(st.integers(1, capacity), label="batch_size")
    chunks = data.draw(st.lists(st.integers(1, capacity), min_size=1, max_size=6), label="chunks")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    buffer = make_buffer(capacity, batch_size)
    state = buffer.init(item(0))
    next_id = 1  # ids start at 1 so an empty (zero) slot can never pass as an added item
    for count in chunks:
        state = buffer.add(state, items(range(next_id, next_id + count)))
        next_id += count
    total = next_id - 1
    assert int(state.size) == min(total, capacity)
    assert int(state.position) == total % capacity
    assert bool(buffer.can_sample(state)) == (min(total, capacity) >= batch_size)
    live = set(range(max(1, next_id - capacity), next_id))  # the newest `capacity` ids
    stored = np.asarray(state.data["id"])
    for i in live:  # each live id sits in slot (id - 1) % capacity
        assert stored[(i - 1) % capacity] == i
    for key in jax.random.split(jax.random.key(seed), 3):
        sample = buffer.sample(key, state)
        assert sample["id"].shape == (batch_size,)
        assert set(np.asarray(sample["id"]).tolist()) <= live
        check_consistent(sample)


def test_jit_and_vmap_over_two_buffers():
    buffer = make_buffer(capacity=4, batch_size=3)
    add, sample = jax.jit(buffer.add), jax.jit(buffer.sample)

    def run_one(first_ids, second_ids, key):
        state = buffer.init(item(0))
        state = add(add(state, items(first_ids)), items(second_ids))
        return state, sample(key, state)

    keys = jax.random.split(jax.random.key(3), 2)
    runs = [run_one([1, 2, 3], [4, 5, 6], keys[0]), run_one([11, 12, 13], [14, 15, 16], keys[1])]
    assert add._cache_size() == 1 and sample._cache_size() == 1  # same shapes: compiled once

    # the same, vmapped over two buffers
    states = jax.vmap(buffer.init)(items([0, 0]))
    vadd = jax.jit(jax.vmap(buffer.add))
    states = vadd(states, items([[1, 2, 3], [11, 12, 13]]))  # (2, K, ...)
    states = vadd(states, items([[4, 5, 6], [14, 15, 16]]))
    samples = jax.jit(jax.vmap(buffer.sample))(keys, states)
    assert vadd._cache_size() == 1
    states, samples = jax.tree.map(np.asarray, (states, samples))  # slice in numpy, not eager jax
    for lane, (state, smp) in enumerate(runs):
        jax.tree.map(lambda b, s: np.testing.assert_array_equal(b[lane], s), states, state)
        jax.tree.map(lambda b, s: np.testing.assert_array_equal(b[lane], s), samples, smp)
    # buffer 0 holds ids {3, 4, 5, 6}, buffer 1 {13, 14, 15, 16}; each samples its own
    np.testing.assert_array_equal(np.sort(states.data["id"], axis=1), [[3, 4, 5, 6], [13, 14, 15, 16]])
    assert set(np.asarray(samples["id"][0]).tolist()) <= {3, 4, 5, 6}
    assert set(np.asarray(samples["id"][1]).tolist()) <= {13, 14, 15, 16}


def test_batch_size_above_capacity_raises():
    with pytest.raises(ValueError, match="batch_size"):
        make_buffer(capacity=4, batch_size=5)


@pytest.mark.parametrize("capacity,batch_size,field", [(0, 1, "capacity"), (4, 0, "batch_size"),
                                                       (2.5, 1, "capacity")])
def test_bad_sizes_raise(capacity, batch_size, field):
    with pytest.raises(ValueError, match=field):
        make_buffer(capacity=capacity, batch_size=batch_size)


def test_adding_more_than_capacity_at_once_raises():
    buffer = make_buffer(capacity=3, batch_size=1)
    state = buffer.init(item(0))
    with pytest.raises(ValueError, match="capacity 3"):
        buffer.add(state, items([1, 2, 3, 4]))
    with pytest.raises(ValueError, match="capacity 3"):  # also when traced
        jax.jit(buffer.add)(state, items([1, 2, 3, 4]))
