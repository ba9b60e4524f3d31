"""XLA flags this package sets, and the helper that adds one without overriding the user.

XLA reads `XLA_FLAGS` once, when JAX's backend starts (the first computation), so a flag
added here only takes effect in a process that has not run anything on JAX yet.

`CPU_SCHEDULER_FLAG` works around a hang of the XLA CPU runtime in jaxlib 0.10: with the
default concurrency-optimized (BFS) HLO scheduler, some vmapped programs (e.g. VDN with GRU
agents on random grid-world layouts, seeds under `vmap`) stop making progress after a few
iterations, every XLA worker thread idle and the caller blocked forever. The memory-minimizing
(DFS) scheduler does not hang. `import jaxmarl_lab` adds it unless `XLA_FLAGS` already sets
the option; it only affects the CPU backend.
"""

from __future__ import annotations

import os

CPU_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def add_xla_flag(flag: str) -> bool:
    """Appends `--name=value` to `XLA_FLAGS` unless `--name` is already there.

    Returns True if the flag was added. Never overrides a value the user set.
    """
    if not flag.startswith("--") or "=" not in flag:
        raise ValueError(f"flag must look like '--name=value', got {flag!r}")
    name = flag.split("=", 1)[0]
    current = os.environ.get("XLA_FLAGS", "")
    if any(part.split("=", 1)[0] == name for part in current.split()):
        return False
    os.environ["XLA_FLAGS"] = f"{current} {flag}".strip()
    return True


def set_cpu_devices(count: int | None) -> None:
    """Splits the CPU into `count` XLA devices (`--xla_force_host_platform_device_count`), for a
    command's `--cpu-devices`; call before JAX's backend starts (see `check_cpu_devices`)."""
    if count is not None:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={count}").strip()


def check_cpu_devices(requested: int | None) -> None:
    """Refuses to go on with fewer CPU devices than `--cpu-devices` asked for.

    Imports JAX (and so starts its backend): call it after `set_cpu_devices` and `jax.distributed`.

    Raises:
        ValueError: JAX's CPU backend started before the flag was set (it then has no effect).
    """
    import jax  # here, not at the top: importing this module must not start JAX

    if requested is not None and jax.default_backend() == "cpu" and jax.local_device_count() != requested:
        raise ValueError(f"--cpu-devices {requested} did not take effect: JAX's CPU backend had already started "
                         f"with {jax.local_device_count()} device(s) before the flag was set")
