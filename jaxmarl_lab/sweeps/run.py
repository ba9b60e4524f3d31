"""Hyperparameter sweeps as one program: points x seeds under vmap, sharded over devices and hosts.

    spec = load_sweep("sweep.json")            # a RunConfig's keys plus `search`, `mode`, ...
    result = run_sweep(spec, "runs/sweep")     # results.{csv,json}, ranking.csv, best_config.json, sweep.png

A sweep file (JSON or TOML) holds the keys of `config.RunConfig` (the base run; each point
is trained with `num_seeds` seeds) and:

  search       {name: values}. A name is a field of the learner's HParams (traced: all its
               values run in the same compiled program), of its Config or of RunnerConfig
               (shape-setting: each distinct combination is a *group*, compiled once).
               "config.hidden_dim" names the section explicitly. Values are a list
               (explicit values) or one of {"uniform": [lo, hi]}, {"log_uniform": [lo, hi]},
               {"int_uniform": [lo, hi]} (inclusive), with "num": n for a grid (evenly,
               geometrically, or evenly rounded spaced).
  mode         "grid" (Cartesian product, default) or "random": `num_samples` points, each
               name drawn independently (lists uniformly, ranges from their distribution).
  num_samples  the points of a random sweep.
  sample_seed  NumPy seed of the random draws (default 0).

Keys: member (point p, seed s) trains with `jax.random.PRNGKey(seed + s)`, so it is exactly
`make_train(...)(jax.random.PRNGKey(seed + s), hparams_p)` (and seed s is shared by all
points: common random numbers). The members of a group are flattened to one axis
`(p, s) -> p * num_seeds + s`, i.e. `vmap(vmap(train))` with the two axes merged, split over
`jax.devices()` (all processes' devices after `init_distributed`) with `shard_map` on a 1-d
`Mesh`; each device runs `per_device` members per chunk through one compiled program, the
last chunk padded with copies whose results are dropped. Results are gathered to every
process and written by process 0 after each chunk, so an interrupted sweep resumes where it
stopped (see `sweep_report.load_partial`); process 0 holds a lock on the output folder for
the whole run, so a second sweep there is refused. The search's size, the output folder, the
results already there and the memory of one member are checked before anything compiles.
With the same `per_device`, results agree across device and process counts up to float32
rounding (XLA fuses a multi-device program slightly differently; measured <= 2e-7 relative on
the metrics of a 6-member IQL sweep).

Parsing the file and the search space lives in `jaxmarl_lab.sweeps.space` (re-exported here:
`load_sweep`, `SweepSpec`, `parse_search`, `expand_points`, `point_run_config`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmarl_lab.runner import make_train
from jaxmarl_lab.runs.config import LEARNERS, Built, RunConfig, build, run_hparams, seed_keys
from jaxmarl_lab.runs.memory import available_bytes, member_bytes, mib
from jaxmarl_lab.sweeps import report as sweep_report
from jaxmarl_lab.sweeps.space import AXIS, Dimension, SweepSpec, expand_points, parse_search, point_run_config
from jaxmarl_lab.sweeps.space import load_sweep as load_sweep  # re-exported


class Group(NamedTuple):
    """Points that share shapes: one compiled program."""

    overrides: dict  # {search key: value} of the group's config / runner names
    run: RunConfig  # the group's run (its first point), for the compile cache
    built: Built  # env, learner, runner config of the group, validated
    points: list  # global point indices, P_g of them
    hparams: Any  # the learner's HParams of float32 NumPy arrays (P_g,)


def make_groups(spec: SweepSpec, dims: list[Dimension], points: list[dict]) -> list[Group]:
    """Validates every point before tracing and groups them by their shape-setting values.

    Raises:
        ValueError: naming the group or point and the bad value.
    """
    shape_keys = [d.key for d in dims if d.section != "hparams"]
    by_group: dict[str, list[int]] = {}
    for i, point in enumerate(points):
        by_group.setdefault(json.dumps([point[k] for k in shape_keys]), []).append(i)
    hparams_cls = LEARNERS[spec.base.learner].hparams_cls
    groups = []
    for members in by_group.values():
        overrides = {k: points[members[0]][k] for k in shape_keys}
        run = dataclasses.replace(point_run_config(spec, dims, points[members[0]]), hparams=spec.base.hparams)
        try:
            built = build(run)
        except ValueError as e:
            raise ValueError(f"sweep group {overrides or '(base)'}: {e}") from None
        stack = []
        for i in members:
            try:
                stack.append(run_hparams(point_run_config(spec, dims, points[i]), built.env.spec))
            except ValueError as e:
                raise ValueError(f"search point {i} {points[i]}: {e}") from None
        hparams = hparams_cls(*(np.asarray(column, np.float32) for column in zip(*stack)))
        groups.append(Group(overrides, run, built, members, hparams))
    return groups


def summarize_metrics(metrics: dict, num_iterations: int) -> dict:
    """Per-iteration metrics `(I,)` -> scalars: final (mean of the last tenth of iterations), mean.

    `final_return` / `mean_return`: NaN-mean of `episode_return` over the last
    `max(1, I // 10)` iterations / over all; `episodes` (sum), `env_steps` (last), and
    `final_<metric>` of every other metric.
    """
    tail = max(1, num_iterations // 10)
    out = {"final_return": jnp.nanmean(metrics["episode_return"][-tail:]),
           "mean_return": jnp.nanmean(metrics["episode_return"]),
           "episodes": jnp.sum(metrics["episodes"]), "env_steps": metrics["env_steps"][-1]}
    for name, value in metrics.items():
        if name not in ("episode_return", "episodes", "env_steps"):
            out[f"final_{name}"] = jnp.nanmean(value[-tail:])
    return out


def make_member_fn(built: Built) -> Callable:
    """`member(key, hparams) -> dict of scalars`: one training run, summarized (pure; not jitted)."""
    train = make_train(built.env, built.learner, built.runner, built.env_params)

    def member(key: jax.Array, hparams: Any) -> dict:
        _, metrics = train(key, hparams)
        return summarize_metrics(metrics, built.runner.num_iterations)

    return member


def make_program(built: Built, mesh: jax.sharding.Mesh) -> Callable:
    """`(keys (C, 2), hparams (C,)) -> summaries (C,)`, the members split over `mesh` (jitted here
    because it is the sweep's driver, not a library function)."""
    spec = jax.sharding.PartitionSpec(AXIS)
    body = jax.vmap(make_member_fn(built))
    return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(spec, spec), out_specs=spec, check_vma=False))


_COMPILED: dict = {}  # (group run, chunk, devices) -> compiled program, so resuming in-process does not recompile


def compiled_program(group: Group, chunk: int, mesh: jax.sharding.Mesh):
    """The compiled `make_program` of a group for `chunk` members, cached by shape-setting content."""
    run = dataclasses.replace(group.run, hparams={}, seed=0, num_seeds=1).to_dict()
    key = (json.dumps(run, sort_keys=True), chunk, tuple(d.id for d in mesh.devices.flat), jax.process_count())
    if key not in _COMPILED:
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
        args = (jax.ShapeDtypeStruct((chunk, 2), jnp.uint32, sharding=sharding),
                type(group.hparams)(*(jax.ShapeDtypeStruct((chunk,), jnp.float32, sharding=sharding)
                                      for _ in group.hparams)))
        if len(_COMPILED) >= 8:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = make_program(group.built, mesh).lower(*args).compile()
    return _COMPILED[key]


def device_budget(device: jax.Device, fraction: float = 0.5) -> int:
    """Bytes a sweep may use on `device`: `fraction` of its free memory (`memory.available_bytes`:
    an accelerator's free memory, or the host's available memory shared by the local devices)."""
    return int(fraction * available_bytes(device))


class ChunkPlan(NamedTuple):
    per_device: int  # members each device trains per chunk
    num_devices: int
    member_bytes: int  # estimate of one member
    budget_bytes: int  # per device

    @property
    def chunk(self) -> int:
        return self.per_device * self.num_devices


def plan_chunks(num_members: int, num_devices: int, one_member: int, budget: int,
                chunk_size: int | None = None) -> ChunkPlan:
    """Members per device per chunk: all of a device's share if it fits the budget (and
    `chunk_size`, a per-device cap, allows), else as many as fit.

    Raises:
        ValueError: not even one member fits (the estimate, the budget and what to change).
    """
    if one_member > budget:
        raise ValueError(f"one sweep run (one point, one seed) needs about {mib(one_member)} by its shapes (runner "
                         f"state, replay buffer, one rollout), more than the memory budget of {mib(budget)} per "
                         f"device; lower runner.num_envs, runner.buffer_capacity or runner.rollout_len, or raise "
                         f"--memory-budget-mb")
    share = -(-num_members // num_devices)
    return ChunkPlan(min(share, budget // max(1, one_member), chunk_size or share), num_devices, one_member, budget)


def split_address(address: str, what: str = "coordinator address") -> tuple[str, int]:
    """`("host", port)` of "HOST:PORT" (an IPv6 host in brackets, "[::1]:1234").

    Raises:
        ValueError: naming `what` when the address is not HOST:PORT.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} must be HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def check_coordinator(address: str, timeout: float) -> None:
    """Waits until `address` ("host:port") accepts TCP connections.

    Raises:
        ValueError: malformed address, or nothing listening within `timeout` seconds.
    """
    host, port = split_address(address)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return
        except OSError as e:
            if time.monotonic() > deadline:
                raise ValueError(f"coordinator {address} unreachable after {timeout:g} s ({e}); start process 0 "
                                 f"first, or check the address and firewall (process 0 listens only on the "
                                 f"address of --coordinator unless given --coordinator-bind)") from None
            time.sleep(0.2)


def init_distributed(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None, timeout: float = 60.0, bind: str | None = None) -> bool:
    """`jax.distributed.initialize` from options, else the environment variables
    JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID. Call before any other JAX use.

    Returns False (single process) when no coordinator is given. Processes other than 0 first
    wait for the coordinator to listen, so an unreachable one is a clear error after
    `timeout` seconds rather than an abort inside XLA. Process 0's coordinator service
    listens on `bind` (HOST:PORT), by default only on the coordinator's own address, not on
    every interface (JAX's default); "0.0.0.0:PORT" opens it to all.

    Raises:
        ValueError: missing or out-of-range process count / id, a malformed address,
            `bind` without a coordinator, unreachable coordinator, or `jax.distributed`
            failing (e.g. JAX's backend already started).
    """
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if not coordinator:
        if bind:
            raise ValueError(f"--coordinator-bind {bind} is for a multi-host sweep: give --coordinator too")
        return False
    split_address(coordinator)
    bind = bind or coordinator
    split_address(bind, "coordinator bind address")
    values = {}
    for name, value in (("num_processes", num_processes), ("process_id", process_id)):
        raw = value if value is not None else os.environ.get(f"JAX_{name.upper()}")
        try:
            values[name] = int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"with a coordinator, {name} must be an integer (option or JAX_{name.upper()}), "
                             f"got {raw!r}") from None
    n, pid = values["num_processes"], values["process_id"]
    if n < 1 or not 0 <= pid < n:
        raise ValueError(f"need num_processes >= 1 and 0 <= process_id < num_processes, got {n} and {pid}")
    if pid != 0:
        check_coordinator(coordinator, timeout)
    try:
        jax.distributed.initialize(coordinator, num_processes=n, process_id=pid,
                                   initialization_timeout=max(1, int(timeout)), coordinator_bind_address=bind)
    except RuntimeError as e:  # JAX already started, a process that never came, a port in use
        raise ValueError(f"jax.distributed.initialize failed (coordinator {coordinator}, process {pid} of {n}): "
                         f"{e}") from None
    return True


class SweepResult(NamedTuple):
    rows: list  # one dict per finished (point, seed), sorted
    ranking: list  # one dict per point with all seeds finished, best first (empty while incomplete)
    paths: dict  # files written (process 0 only)
    chunks_run: int  # chunks trained by this call
    complete: bool  # every member has a row
    compile_seconds: float  # lowering + compiling, all groups
    run_seconds: float  # running the chunks, gathering and writing included


def _global_array(host: np.ndarray, sharding) -> jax.Array:
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _gather(tree: Any) -> Any:
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils
    return multihost_utils.process_allgather(tree, tiled=True)


def _open_out_dir(out_dir: str, spec: SweepSpec, dims: list[Dimension], overwrite: bool,
                  num_points: int) -> tuple[sweep_report.OpenFolder | None, list, np.ndarray]:
    """Process 0 opens `out_dir` (`sweep_report.open_folder`: created, locked, the rows already
    there read); every process gets the `(P, K)` done mask, or the error when process 0 failed."""
    folder, rows, error = None, [], None
    done = np.zeros((num_points, spec.base.num_seeds), bool)
    if jax.process_index() == 0:
        try:
            folder = sweep_report.open_folder(out_dir, spec.fingerprint(), num_points, spec.base.num_seeds,
                                              [d.key for d in dims], overwrite)
            rows = folder.rows
        except Exception as e:  # raised below, after the other processes learn of it
            error = e
        for row in rows:
            done[row["point"], row["seed_index"]] = True
    ok = error is None
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        ok, done = multihost_utils.broadcast_one_to_all((np.int32(ok), done))
        ok, done = bool(ok), np.array(done, bool)  # a writable copy
    if error is not None:
        raise error
    if not ok:
        raise ValueError(f"process 0 could not open the sweep folder {out_dir!r}; see its error")
    return folder, rows, done


def _plan_groups(groups: list[Group], done: np.ndarray, num_devices: int, memory_budget: int | None,
                 chunk_size: int | None) -> list[ChunkPlan | None]:
    """The chunk plan of every group with members to train (None for a finished group).

    Every process plans with the smallest budget of all processes, so all run the same chunks.

    Raises:
        ValueError: one member of a group does not fit the budget.
    """
    budget = memory_budget if memory_budget is not None else device_budget(jax.local_devices()[0])
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        # float32: JAX without x64 would gather an int64 as int32, and budgets pass 2**31 bytes
        budget = int(np.min(multihost_utils.process_allgather(np.float32(budget))))
    plans = []
    for group in groups:
        if done[group.points].all():
            plans.append(None)
            continue
        try:
            plans.append(plan_chunks(len(group.points) * done.shape[1], num_devices, member_bytes(group.built),
                                     budget, chunk_size))
        except ValueError as e:
            raise ValueError(f"sweep group {group.overrides}: {e}" if len(groups) > 1 else str(e)) from None
    return plans


def run_sweep(spec: SweepSpec, out_dir: str, *, chunk_size: int | None = None, memory_budget: int | None = None,
              max_chunks: int | None = None, overwrite: bool = False, progress: bool | Callable = True,
              devices: list | None = None) -> SweepResult:
    """Trains every (point, seed) of `spec`, one compiled program per group, and writes the results.

    Everything that can be refused is checked before anything is compiled: the search, the
    output folder, the results already there and the memory of one member.

    Args:
        spec: the sweep.
        out_dir: folder of results.{json,csv} (rewritten after every chunk), and when complete
            ranking.csv, best_config.json and sweep.png. Rows already there (of the same sweep)
            are kept and their members skipped. Process 0 locks it for the whole call.
        chunk_size: at most this many members per device per chunk.
        memory_budget: bytes per device (default: half the free device memory, see `device_budget`).
        max_chunks: stop after this many chunks (the rest runs on the next call).
        overwrite: ignore rows already in `out_dir`.
        progress: print a line per chunk to stderr (process 0), or a callable taking that line.
        devices: the mesh's devices (default `jax.devices()`, every process's).

    Raises:
        ValueError: bad search space or values, a results.json that is not a sweep's results
            (nothing is rewritten), a member too large for `memory_budget`.
        FileExistsError: `out_dir` holds results of a different sweep and `overwrite` is False,
            or it (or a parent) is a file.
        LockedError: another process works in `out_dir`.
    """
    if memory_budget is not None:
        if not memory_budget >= 1:  # NaN included
            raise ValueError(f"memory_budget must be a number of bytes >= 1, got {memory_budget!r}")
        memory_budget = int(memory_budget)
    dims = parse_search(spec)
    points = expand_points(spec, dims)
    if jax.process_count() == 1:  # with several processes, only process 0's folder counts (checked below)
        sweep_report.check_folder_path(out_dir)
    groups = make_groups(spec, dims, points)
    devices = list(devices or jax.devices())
    folder, rows, done = _open_out_dir(out_dir, spec, dims, overwrite, len(points))
    try:
        plans = _plan_groups(groups, done, len(devices), memory_budget, chunk_size)
    except BaseException:
        if folder is not None:
            folder.close(discard=True)
        raise
    try:
        return _train_groups(spec, dims, points, groups, plans, devices, out_dir, rows, done, max_chunks, progress,
                             chunk_size)
    finally:
        if folder is not None:
            folder.close()


def _train_groups(spec: SweepSpec, dims: list[Dimension], points: list[dict], groups: list[Group], plans: list,
                  devices: list, out_dir: str, rows: list, done: np.ndarray, max_chunks: int | None,
                  progress: bool | Callable, chunk_size: int | None) -> SweepResult:
    """The chunks of `run_sweep`, the rows written after each, the outputs once complete."""
    mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
    writer = jax.process_index() == 0
    say = (progress if callable(progress) else (lambda line: print(line, file=sys.stderr, flush=True))) \
        if progress and writer else (lambda line: None)
    num_seeds, keys = spec.base.num_seeds, seed_keys(spec.base.seed, spec.base.num_seeds)
    total, finished = done.size, int(done.sum())
    if finished:
        say(f"sweep: resuming, {finished}/{total} members already in {out_dir}")
    chunks_run, compile_s, run_s, start = 0, 0.0, 0.0, time.perf_counter()
    for g, (group, plan) in enumerate(zip(groups, plans)):
        todo = [(i, s) for i, p in enumerate(group.points) for s in range(num_seeds) if not done[p, s]]
        if not todo or (max_chunks is not None and chunks_run >= max_chunks):
            continue
        num_chunks = -(-len(todo) // plan.chunk)
        label = f"group {g + 1}/{len(groups)} {group.overrides or ''}".rstrip()
        say(f"sweep: {label}: {len(todo)} members on {len(devices)} device(s), {plan.per_device} per device per "
            f"chunk, {num_chunks} chunk(s); ~{plan.member_bytes / 2**20:.1f} MiB per member, budget "
            f"{plan.budget_bytes / 2**20:.0f} MiB per device" +
            (" -- too large for one pass, running in chunks through one compiled program"
             if plan.per_device * len(devices) < len(group.points) * num_seeds and chunk_size is None else ""))
        tick = time.perf_counter()
        program = compiled_program(group, plan.chunk, mesh)
        compile_s += time.perf_counter() - tick
        say(f"sweep: {label}: compiled in {time.perf_counter() - tick:.1f} s")
        for c in range(num_chunks):
            if max_chunks is not None and chunks_run >= max_chunks:
                break
            tick = time.perf_counter()
            batch = todo[c * plan.chunk:(c + 1) * plan.chunk]
            padded = batch + [batch[-1]] * (plan.chunk - len(batch))
            local, seeds = np.asarray([m[0] for m in padded]), np.asarray([m[1] for m in padded])
            hparams = type(group.hparams)(*(_global_array(np.asarray(x)[local], sharding) for x in group.hparams))
            out = _gather(program(_global_array(keys[seeds], sharding), hparams))
            for j, (i, s) in enumerate(batch):
                point = group.points[i]
                rows.append({"point": point, "seed_index": s, "seed": spec.base.seed + s, "group": g,
                             **points[point], **{k: float(v[j]) for k, v in out.items()}})
                done[point, s] = True
            chunks_run += 1
            finished += len(batch)
            if writer:
                sweep_report.write_partial(out_dir, spec, rows, complete=False)
            run_s += time.perf_counter() - tick
            rate = run_s / max(1, chunks_run)
            say(f"sweep: {label}: chunk {c + 1}/{num_chunks} in {time.perf_counter() - tick:.1f} s; "
                f"{finished}/{total} members done, {time.perf_counter() - start:.0f} s elapsed"
                + (f", ~{rate * (total - finished) / max(1, len(batch)):.0f} s to go" if finished < total else ""))
    rows.sort(key=lambda r: (r["point"], r["seed_index"]))
    complete = bool(done.all())
    ranking, paths = [], {}
    if complete:
        ranking = sweep_report.rank_points(rows, [d.key for d in dims])
        best = point_run_config(spec, dims, points[ranking[0]["point"]]) if ranking else None
        if writer:
            paths = sweep_report.write_outputs(out_dir, spec, dims, rows, ranking, best,
                                               {"compile_seconds": compile_s, "run_seconds": run_s,
                                                "devices": len(devices), "processes": jax.process_count()})
            say("sweep: wrote " + ", ".join(paths.values()))
    elif writer:
        paths = {"json": os.path.join(out_dir, "results.json"), "csv": os.path.join(out_dir, "results.csv")}
        say(f"sweep: stopped after {chunks_run} chunk(s), {finished}/{total} members written; run again to resume")
    return SweepResult(rows, ranking, paths, chunks_run, complete, compile_s, run_s)
