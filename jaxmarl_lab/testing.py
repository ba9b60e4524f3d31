"""Public checkers that other projects can run on their own environments.

    from jaxmarl_lab.testing import check_env
    check_env(my_env)            # raises AssertionError with a message on failure

`check_env` works on any object with the jaxmarl-lab environment API,
`jaxmarl_lab.types.EnvProtocol` (implemented by `jaxmarl_lab.envs.core.Environment`):
`spec`, `default_params()`, `reset(key, params)`, `step(key, state, actions, params)`, and
`reset_batch`/`step_batch` (`batch_minor` is read if present, else taken as False).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmarl_lab.baselines import random_actions
from jaxmarl_lab.types import EnvProtocol, EnvSpec, TimeStep


def _expected_shapes(spec: EnvSpec) -> dict[str, tuple[tuple[int, ...], Any]]:
    n = spec.num_agents
    return {
        "obs": ((n, spec.obs_dim), jnp.floating),
        "global_state": ((spec.state_dim,), jnp.floating),
        "reward": ((n,), jnp.floating),
        "terminated": ((), jnp.bool_),
        "truncated": ((), jnp.bool_),
        "avail_actions": ((n, spec.action_size), jnp.bool_),
        "final_obs": ((n, spec.obs_dim), jnp.floating),
        "final_global_state": ((spec.state_dim,), jnp.floating),
    }


def check_timestep(timestep: TimeStep, spec: EnvSpec, batch: tuple[int, ...] = ()) -> None:
    """Asserts every `TimeStep` field has its documented shape and dtype, and is finite."""
    assert isinstance(timestep, TimeStep), f"expected a TimeStep, got {type(timestep).__name__}"
    for name, (shape, kind) in _expected_shapes(spec).items():
        value = getattr(timestep, name)
        want = tuple(batch) + shape
        assert value.shape == want, f"TimeStep.{name} has shape {value.shape}, expected {want}"
        assert jnp.issubdtype(value.dtype, kind), f"TimeStep.{name} has dtype {value.dtype}, expected {kind.__name__}"
        if kind is jnp.floating:
            assert np.all(np.isfinite(np.asarray(value))), f"TimeStep.{name} has non-finite values"


def _assert_trees_equal(a: Any, b: Any, what: str, atol: float = 0.0) -> None:
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b, f"{what}: tree structures differ: {tree_a} vs {tree_b}"
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0,
                                   err_msg=f"{what} differ")


def _rollout(env: EnvProtocol, key: jax.Array, params: Any, steps: int):
    """`steps` random steps of one environment under `jit(scan)`: stacked TimeSteps and states."""

    def body(carry, key):
        state, timestep = carry
        key_act, key_step = jax.random.split(key)
        actions = random_actions(key_act, env.spec, timestep.avail_actions)
        state, timestep = env.step(key_step, state, actions, params)
        return (state, timestep), (state, timestep, actions)

    key_reset, key_scan = jax.random.split(key)
    first = env.reset(key_reset, params)
    _, (states, timesteps, actions) = jax.lax.scan(body, first, jax.random.split(key_scan, steps))
    return first, states, timesteps, actions


def check_env(env: EnvProtocol, params: Any = None, steps: int = 128, seed: int = 0) -> None:
    """Checks an environment against the jaxmarl-lab environment contract.

    Covers: `TimeStep` shapes and dtypes (per environment and batched), `jit`, `vmap`
    over keys and over a stack of params, auto-reset (`step` returns to
    0 after an episode ends, `final_obs` equals `obs` on steps that did not end one,
    never terminated and truncated at once), the same key giving the same result,
    finite values, and `step_batch` agreeing with `vmap(step)` before auto-resets.

    Args:
        env: the environment.
        params: params to check with (default `env.default_params()`).
        steps: length of the random rollout; should cover at least one episode end.
        seed: seed of the random keys.

    Raises:
        AssertionError: describing the first violation found.
    """
    spec = env.spec
    assert isinstance(spec, EnvSpec), f"env.spec must be an EnvSpec, got {type(spec).__name__}"
    params = env.default_params() if params is None else params
    key = jax.random.PRNGKey(seed)
    k_reset, k_step, k_act, k_roll, k_batch = jax.random.split(key, 5)

    # Shapes, dtypes, jit, same key -> same result. Each function is jitted once.
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    state, timestep = reset(k_reset, params)
    check_timestep(timestep, spec)
    actions = jax.jit(random_actions, static_argnums=1)(k_act, spec, timestep.avail_actions)
    single = step(k_step, state, actions, params)
    check_timestep(single[1], spec)
    _assert_trees_equal(single, step(k_step, state, actions, params), "step twice with one key")
    _assert_trees_equal(jax.tree.map(jnp.shape, single[0]), jax.tree.map(jnp.shape, state),
                        "state shapes before and after step")

    # vmap over keys and over a stack of params agrees with single calls.
    keys = jax.random.split(k_reset, 3)
    vts = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)[1]
    check_timestep(vts, spec, (3,))
    _assert_trees_equal(jax.tree.map(lambda x: np.asarray(x)[1], vts), reset(keys[1], params)[1],
                        "vmap(reset) row and a single reset", atol=1e-5)
    stacked = jax.tree.map(lambda x: np.stack([np.asarray(x)] * 2), params)

    @jax.jit
    def reset_and_step(params):
        state, _ = env.reset(k_reset, params)
        return env.step(k_step, state, actions, params)

    pts = jax.vmap(reset_and_step)(stacked)[1]
    check_timestep(pts, spec, (2,))
    _assert_trees_equal(jax.tree.map(lambda x: np.asarray(x)[0], pts), single[1], "vmap over params and a single step",
                        atol=1e-5)

    # Auto-reset over a random rollout.
    first, states, ts, _ = jax.jit(_rollout, static_argnums=(0, 3))(env, k_roll, params, steps)
    check_timestep(ts, spec, (steps,))
    done = np.asarray(ts.done)
    assert done.any(), f"no episode ended in {steps} random steps; pass a larger `steps`"
    assert not np.any(np.asarray(ts.terminated & ts.truncated)), "terminated and truncated are both set"
    step_count = np.asarray(states.step)
    assert np.all(step_count[done] == 0), "state.step is not 0 after an episode ended (auto-reset)"
    previous = np.concatenate([[np.asarray(first[0].step)], step_count[:-1]])
    assert np.all(step_count[~done] == previous[~done] + 1), "state.step did not advance by 1"
    np.testing.assert_array_equal(np.asarray(ts.obs)[~done], np.asarray(ts.final_obs)[~done],
                                  err_msg="final_obs differs from obs on a step that did not end an episode")

    _check_batched(env, k_batch, params)


def _check_batched(env: EnvProtocol, key: jax.Array, params: Any, batch: int = 3, steps: int = 30) -> None:
    """`reset_batch`/`step_batch` give batch-major TimeSteps that agree with `vmap(step)`.

    Environments that are not batch-minor must match `vmap` exactly, states included.
    Batch-minor ones keep their own state layout and draw auto-reset randomness for the
    whole batch, so each step starts from the vmapped states (moved batch-last) and the
    comparison covers what precedes the reset: reward, flags, final observations and
    states, and obs on steps that did not end an episode.
    """
    spec = env.spec
    batch_minor = getattr(env, "batch_minor", False)
    state_b, ts_b = jax.jit(env.reset_batch, static_argnums=2)(key, params, batch)
    check_timestep(ts_b, spec, (batch,))
    state_v, ts_v = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(key, batch), params)
    if not batch_minor:
        _assert_trees_equal(ts_b, ts_v, "reset_batch and vmap(reset)")
    step_b = jax.jit(env.step_batch)
    step_v = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    sample = jax.jit(jax.vmap(random_actions, in_axes=(0, None, 0)), static_argnums=1)
    batch_last = jax.jit(lambda tree: jax.tree.map(lambda x: jnp.moveaxis(x, 0, -1), tree))
    split = jax.jit(jax.random.split, static_argnums=1)
    for i in range(steps):
        k_act, k_step, key = split(key, 3)
        acts = sample(split(k_act, batch), spec, ts_v.avail_actions)
        if batch_minor:
            state_b = batch_last(state_v)
        state_b, ts_b = step_b(k_step, state_b, acts, params)
        state_v, ts_v = step_v(split(k_step, batch), state_v, acts, params)
        check_timestep(ts_b, spec, (batch,))
        if not batch_minor:
            _assert_trees_equal((state_b, ts_b), (state_v, ts_v), f"step_batch and vmap(step) at step {i}")
            continue
        done = np.asarray(ts_v.done)
        for name in ("reward", "terminated", "truncated", "final_obs", "final_global_state"):
            np.testing.assert_allclose(np.asarray(getattr(ts_b, name)), np.asarray(getattr(ts_v, name)), atol=1e-5,
                                       err_msg=f"step_batch and vmap(step) differ in {name} at step {i}")
        np.testing.assert_allclose(np.asarray(ts_b.obs)[~done], np.asarray(ts_v.obs)[~done], atol=1e-5,
                                   err_msg=f"step_batch and vmap(step) differ in obs at step {i}")
