"""Hyperparameter sweeps as one program: points x seeds under vmap, sharded over devices and hosts.

    spec = load_sweep("sweep.json")            # a RunConfig's keys plus `search`, `mode`, ...
    result = run_sweep(spec, "runs/sweep")     # results.{csv,json}, ranking.csv, best_config.json, sweep.png

A sweep file (JSON or TOML) holds the keys of `config.RunConfig` (the base run; each point
is trained with `num_seeds` seeds) and:

  search       {name: values}. A name is a field of the learner's HParams (traced: all its
               values run in the same compiled program), of its Config or of RunnerConfig
               (shape-setting: each distinct combination is a *group*, compiled once).
               "config.hidden_dim" names the section explicitly. `learner` is a name too:
               a list of learner names, each its own group (e.g. ["mappo", "ippo"]: the
               centralized vs the independent critic; the other names must then mean the
               same field for each). Values are a list
               (explicit values) or one of {"uniform": [lo, hi]}, {"log_uniform": [lo, hi]},
               {"int_uniform": [lo, hi]} (inclusive), with "num": n for a grid (evenly,
               geometrically, or evenly rounded spaced).
  mode         "grid" (Cartesian product, default) or "random": `num_samples` points, each
               name drawn independently (lists uniformly, ranges from their distribution).
  num_samples  the points of a random sweep.
  sample_seed  NumPy seed of the random draws (default 0).
  eval_episodes  greedy episodes of every member's final policy, played inside its program
               (default 32; 0: none). Rows get `greedy_return` (and `greedy_optimum`, the
               mean exact optimum of those episodes, where the env knows it); the member
               with the best one is saved as a run directory, `best_member/`.

Each member also gets its learning curve (training episode return over at most 50 bins of
iterations) in `curves.jsonl`; see `sweeps.report` for every file.

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

from jaxmarl_lab.runner import make_evaluate, make_train
from jaxmarl_lab.runs.config import LEARNERS, Built, RunConfig, build, run_hparams, seed_keys, with_preset_env_kwargs
from jaxmarl_lab.runs.memory import available_bytes, episode_bytes, member_bytes, mib
from jaxmarl_lab.runs.scoring import horizon, optimal_returns
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
    groups = []
    for members in by_group.values():
        overrides = {k: points[members[0]][k] for k in shape_keys}
        run = dataclasses.replace(point_run_config(spec, dims, points[members[0]]), hparams=spec.base.hparams)
        hparams_cls = LEARNERS[run.learner].hparams_cls
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


CURVE_POINTS = 50  # points of a member's learning curve (bins of iterations)
EVAL_SEED = 10_000  # the key of the greedy evaluation: the episodes `jaxmarl-lab eval` plays by default


def curve_edges(num_iterations: int) -> np.ndarray:
    """`(B + 1,)` iteration bounds of the `B = min(I, CURVE_POINTS)` bins of a learning curve."""
    return np.rint(np.linspace(0, num_iterations, min(num_iterations, CURVE_POINTS) + 1)).astype(int)


def make_member_fn(built: Built, eval_episodes: int = 0) -> Callable:
    """`member(key, hparams) -> (summary, curve, state)`: one training run (pure; not jitted).

    `summary` holds the scalars of `summarize_metrics` and, with `eval_episodes`, the final
    greedy policy's mean return over that many episodes (`greedy_return`, on the key
    `EVAL_SEED`, so every member plays the same starts) and the share that finished
    (`greedy_finished`); `curve (B,)` is the training episode return, NaN-averaged over the
    bins of `curve_edges`; `state` is the final `RunnerState`.
    """
    train = make_train(built.env, built.learner, built.runner, built.train_env_params)
    edges = curve_edges(built.runner.num_iterations)
    evaluate = None
    if eval_episodes:
        evaluate = make_evaluate(built.env, built.learner, eval_episodes, horizon(built.env, built.env_params),
                                 built.env_params)

    def member(key: jax.Array, hparams: Any) -> tuple[dict, jax.Array, Any]:
        state, metrics = train(key, hparams)
        summary = summarize_metrics(metrics, built.runner.num_iterations)
        returns = metrics["episode_return"]
        curve = jnp.stack([jnp.nanmean(returns[a:b]) for a, b in zip(edges[:-1], edges[1:])])
        if evaluate is not None:
            greedy = evaluate(jax.random.PRNGKey(EVAL_SEED), state.learner)
            summary["greedy_return"] = jnp.mean(greedy["returns"])
            summary["greedy_finished"] = jnp.mean(greedy["finished"].astype(jnp.float32))
        return summary, curve, state

    return member


def make_program(built: Built, mesh: jax.sharding.Mesh, eval_episodes: int = 0) -> Callable:
    """`(keys (C, 2), hparams (C,)) -> (summaries (C,), curves (C, B), states (C, ...))`, the members
    split over `mesh` (jitted here because it is the sweep's driver, not a library function)."""
    spec = jax.sharding.PartitionSpec(AXIS)
    body = jax.vmap(make_member_fn(built, eval_episodes))
    return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(spec, spec), out_specs=spec, check_vma=False))


_COMPILED: dict = {}  # (group run, chunk, devices) -> compiled program, so resuming in-process does not recompile


def compiled_program(group: Group, chunk: int, mesh: jax.sharding.Mesh, eval_episodes: int = 0):
    """The compiled `make_program` of a group for `chunk` members, cached by shape-setting content."""
    run = dataclasses.replace(group.run, hparams={}, seed=0, num_seeds=1).to_dict()
    key = (json.dumps(run, sort_keys=True), chunk, tuple(d.id for d in mesh.devices.flat), jax.process_count(),
           eval_episodes)
    if key not in _COMPILED:
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
        args = (jax.ShapeDtypeStruct((chunk, 2), jnp.uint32, sharding=sharding),
                type(group.hparams)(*(jax.ShapeDtypeStruct((chunk,), jnp.float32, sharding=sharding)
                                      for _ in group.hparams)))
        if len(_COMPILED) >= 8:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = make_program(group.built, mesh, eval_episodes).lower(*args).compile()
    return _COMPILED[key]


def _pick_member(mesh: jax.sharding.Mesh) -> Callable:
    """`pick(states (C, ...), j) -> states (1, ...)` of member j, replicated on every device (so every
    process can read it)."""
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return jax.jit(lambda states, j: jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, j, 1), states),
                   out_shardings=replicated)


def sweep_member_bytes(built: Built, eval_episodes: int = 0) -> int:
    """Estimated bytes of one sweep member: its training run (`memory.member_bytes`) and its greedy episodes."""
    return member_bytes(built) + eval_episodes * episode_bytes(built)


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
                 chunk_size: int | None, eval_episodes: int = 0) -> list[ChunkPlan | None]:
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
            plans.append(plan_chunks(len(group.points) * done.shape[1], num_devices,
                                     sweep_member_bytes(group.built, eval_episodes), budget, chunk_size))
        except ValueError as e:
            raise ValueError(f"sweep group {group.overrides}: {e}" if len(groups) > 1 else str(e)) from None
    return plans


def run_sweep(spec: SweepSpec, out_dir: str, *, chunk_size: int | None = None, memory_budget: int | None = None,
              max_chunks: int | None = None, overwrite: bool = False, progress: bool | Callable = True,
              devices: list | None = None, sink: Any = None) -> SweepResult:
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
        sink: process 0 calls `sink.write(rows, curves, swept names)` with the members of every chunk
            (`runs.sinks.SweepSink`: TensorBoard, W&B), after they are written to `out_dir`.

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
        plans = _plan_groups(groups, done, len(devices), memory_budget, chunk_size, spec.eval_episodes)
    except BaseException:
        if folder is not None:
            folder.close(discard=True)
        raise
    try:
        return _train_groups(spec, dims, points, groups, plans, devices, out_dir, rows, done, max_chunks, progress,
                             chunk_size, sink)
    finally:
        if folder is not None:
            folder.close()


def _train_groups(spec: SweepSpec, dims: list[Dimension], points: list[dict], groups: list[Group], plans: list,
                  devices: list, out_dir: str, rows: list, done: np.ndarray, max_chunks: int | None,
                  progress: bool | Callable, chunk_size: int | None, sink: Any = None) -> SweepResult:
    """The chunks of `run_sweep`, the rows, curves and best member written after each, the outputs once complete."""
    mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
    writer = jax.process_index() == 0
    say = (progress if callable(progress) else (lambda line: print(line, file=sys.stderr, flush=True))) \
        if progress and writer else (lambda line: None)
    num_seeds, keys = spec.base.num_seeds, seed_keys(spec.base.seed, spec.base.num_seeds)
    total, finished = done.size, int(done.sum())
    best = sweep_report.best_member_score(out_dir, spec.fingerprint()) if writer else -np.inf
    if writer:
        sweep_report.keep_curves(out_dir, rows)
    if finished:
        say(f"sweep: resuming, {finished}/{total} members already in {out_dir}")
    chunks_run, compile_s, run_s, start, trained = 0, 0.0, 0.0, time.perf_counter(), 0
    pick = _pick_member(mesh)
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
        program = compiled_program(group, plan.chunk, mesh, spec.eval_episodes)
        compile_s += time.perf_counter() - tick
        say(f"sweep: {label}: compiled in {time.perf_counter() - tick:.1f} s")
        extra = _group_columns(group, spec.eval_episodes)
        steps = (curve_edges(group.built.runner.num_iterations)[1:] * group.built.runner.steps_per_iteration).tolist()
        for c in range(num_chunks):
            if max_chunks is not None and chunks_run >= max_chunks:
                break
            tick = time.perf_counter()
            batch = todo[c * plan.chunk:(c + 1) * plan.chunk]
            padded = batch + [batch[-1]] * (plan.chunk - len(batch))
            local, seeds = np.asarray([m[0] for m in padded]), np.asarray([m[1] for m in padded])
            hparams = type(group.hparams)(*(_global_array(np.asarray(x)[local], sharding) for x in group.hparams))
            summaries, curves, states = program(_global_array(keys[seeds], sharding), hparams)
            out, curves = _gather(summaries), _gather(curves)
            scores = np.asarray(out["greedy_return" if spec.eval_episodes else "final_return"][:len(batch)])
            j = int(np.nanargmax(scores)) if np.isfinite(scores).any() else None
            best_state = None if j is None else jax.tree.map(np.asarray, pick(states, j))  # every process
            del states
            new_rows, new_curves = [], []
            for m, (i, s) in enumerate(batch):
                point = group.points[i]
                new_rows.append({"point": point, "seed_index": s, "seed": spec.base.seed + s, "group": g,
                                 **points[point], **{k: float(v[m]) for k, v in out.items()}, **extra})
                new_curves.append({"point": point, "seed_index": s, "env_steps": steps,
                                   "episode_return": np.asarray(curves[m], np.float64).tolist()})
                done[point, s] = True
            rows.extend(new_rows)
            chunks_run, finished, trained = chunks_run + 1, finished + len(batch), trained + len(batch)
            if writer:
                sweep_report.append_curves(out_dir, new_curves)
                if j is not None and scores[j] > best:
                    i, s = batch[j]
                    member = {"point": group.points[i], "seed_index": s, "score": float(scores[j]),
                              "score_metric": "greedy_return" if spec.eval_episodes else "final_return",
                              "fingerprint": spec.fingerprint()}
                    run = dataclasses.replace(point_run_config(spec, dims, points[group.points[i]]),
                                              seed=spec.base.seed + s, num_seeds=1)
                    run = with_preset_env_kwargs(run, group.built.env.spec)  # as `train` writes a run directory
                    sweep_report.write_best_member(out_dir, run, best_state, group.built.runner.num_iterations,
                                                   member)
                    best = float(scores[j])
                sweep_report.write_partial(out_dir, spec, rows, complete=False)
                if sink is not None:
                    sink.write(new_rows, new_curves, [d.key for d in dims])
            run_s += time.perf_counter() - tick
            say(_progress_line(label, c, num_chunks, time.perf_counter() - tick, finished, total, trained, run_s,
                               time.perf_counter() - start))
    return _finish(spec, dims, points, rows, done, out_dir, writer, say, chunks_run, compile_s, run_s, len(devices),
                   finished, total)


def _group_columns(group: Group, eval_episodes: int) -> dict:
    """Row columns shared by a group: the mean exact optimum of the greedy episodes, where the env knows it."""
    if not eval_episodes:
        return {}
    optimum, _ = optimal_returns(group.built.env, group.built.env_params, jax.random.PRNGKey(EVAL_SEED),
                                 eval_episodes)
    return {} if optimum is None else {"greedy_optimum": float(np.mean(optimum))}


def _progress_line(label: str, c: int, num_chunks: int, seconds: float, finished: int, total: int, trained: int,
                   run_s: float, elapsed: float) -> str:
    """`group ..: chunk c/n in s; done/total members, members/s, elapsed, time left` (rate over this call's chunks)."""
    rate = trained / run_s if run_s > 0 else 0.0
    left = f", ~{(total - finished) / rate:.0f} s to go" if finished < total and rate > 0 else ""
    return (f"sweep: {label}: chunk {c + 1}/{num_chunks} in {seconds:.1f} s; {finished}/{total} members done, "
            f"{rate:.2f} members/s, {elapsed:.0f} s elapsed{left}")


def _finish(spec: SweepSpec, dims: list[Dimension], points: list[dict], rows: list, done: np.ndarray, out_dir: str,
            writer: bool, say: Callable, chunks_run: int, compile_s: float, run_s: float, num_devices: int,
            finished: int, total: int) -> SweepResult:
    rows.sort(key=lambda r: (r["point"], r["seed_index"]))
    complete = bool(done.all())
    ranking, paths = [], {}
    if complete:
        ranking = sweep_report.rank_points(rows, [d.key for d in dims])
        best = point_run_config(spec, dims, points[ranking[0]["point"]]) if ranking else None
        if writer:
            paths = sweep_report.write_outputs(out_dir, spec, dims, rows, ranking, best,
                                               {"compile_seconds": compile_s, "run_seconds": run_s,
                                                "devices": num_devices, "processes": jax.process_count()})
            say("sweep: wrote " + ", ".join(paths.values()))
    elif writer:
        paths = {"json": os.path.join(out_dir, "results.json"), "csv": os.path.join(out_dir, "results.csv")}
        say(f"sweep: stopped after {chunks_run} chunk(s), {finished}/{total} members written; run again to resume")
    return SweepResult(rows, ranking, paths, chunks_run, complete, compile_s, run_s)
