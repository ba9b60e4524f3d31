"""Memory estimates from shapes alone, and the refusal of what cannot fit, before anything is allocated.

    need = train_bytes(built, num_seeds)           # jax.eval_shape only: nothing runs
    check_fits(need, budget or available_bytes(), "train", largest="--seeds 12")

The estimates count what a run keeps alive, not XLA's exact peak: twice the runner state
(the loop's carry in and out: learner, optimizer, replay buffer, environments) plus one
iteration's rollout (`rollout_len` batched timesteps, twice: obs and next obs). They are meant
to catch settings off by orders of magnitude (670,000 environments, 3,000 seeds) with a
clear line instead of a stall or RESOURCE_EXHAUSTED, not to pack a device to the last byte.
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmarl_lab.runner import make_runner


def tree_bytes(tree: Any) -> int:
    """Bytes of a pytree of arrays or `jax.ShapeDtypeStruct`s."""
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def member_bytes(built: Any) -> int:
    """Estimated bytes of one seed of one run (`config.Built`), from `jax.eval_shape`."""
    runner = make_runner(built.env, built.learner, built.runner, built.train_env_params)
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    hparams = type(built.hparams)(*(jax.ShapeDtypeStruct((), jnp.float32) for _ in built.hparams))
    state = jax.eval_shape(runner.init, key, hparams)
    _, timestep = jax.eval_shape(lambda k: built.env.reset_batch(k, built.env_params, built.runner.num_envs), key)
    return 2 * tree_bytes(state) + 2 * built.runner.rollout_len * tree_bytes(timestep)


def episode_bytes(built: Any) -> int:
    """Estimated bytes of one greedy evaluation episode (env state, timestep and carry, in and out)."""
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    reset = jax.eval_shape(lambda k: built.env.reset(k, built.env_params), key)
    return 3 * (tree_bytes(reset) + tree_bytes(jax.eval_shape(built.learner.initial_carry)))


def available_bytes(device: jax.Device | None = None) -> int:
    """Free memory of `device` (default the first local one): an accelerator's free memory, or on
    a CPU the host's available memory shared by the local devices."""
    device = device or jax.local_devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:  # some backends do not implement it
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return host_available_bytes() // max(1, jax.local_device_count())


def host_available_bytes() -> int:
    """`MemAvailable` of /proc/meminfo (free plus reclaimable cache), else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def mib(num_bytes: float) -> str:
    return f"{num_bytes / 2**20:,.0f} MiB" if num_bytes >= 2**20 else f"{num_bytes / 2**10:,.1f} KiB"


def check_fits(need: int, budget: int, what: str, hint: str) -> None:
    """Raises ValueError `"{what} needs about X, more than the Y available; {hint}"` if `need > budget`."""
    if need > budget:
        raise ValueError(f"{what} needs about {mib(need)} of memory, more than the {mib(budget)} available "
                         f"(or --memory-budget-mb); {hint}")


__all__ = ["tree_bytes", "member_bytes", "episode_bytes", "available_bytes", "host_available_bytes", "mib",
           "check_fits"]
