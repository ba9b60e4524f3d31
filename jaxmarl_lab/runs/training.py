"""Long training runs: chunks of jitted iterations, checkpoints, metrics and resume.

    result = train_run(RunConfig(), "runs/mappo")        # a fresh run directory
    result = resume_run("runs/mappo")                    # continue a killed run
    built, run, learner_state = load_trained("runs/mappo")

The `num_seeds` seeds of a run are one vmapped program. The host loop jits
`chunk(state) = lax.scan(vmap(iterate), state, length=k)` and, between chunks, appends
one row per iteration to `metrics.jsonl`, starts an orbax save of the state into
`checkpoint/` (written in a background thread while the next chunk runs; committed by an
atomic rename) and prints a progress line. A resumed run re-enters the loop at the checkpoint's iteration with the
same chunk length, so it runs the same compiled chunks on the same state: on CPU its
final parameters are bit-identical to an uninterrupted run's.

A run directory holds `config.json` (a RunConfig, usable with `train --config`),
`train.json` (the chunk length), `metrics.jsonl`, `checkpoint/` and
`learning_curve.png` (`runs.layout`); an old run's `checkpoint.npz` is still read. A
non-finite loss or parameter stops the run with `NonFiniteError` naming the update; the
last good checkpoint stays. An optional `sinks` factory (`runs.sinks.prepare_sinks`: TensorBoard,
Weights & Biases) receives each chunk's rows right after metrics.jsonl, before the checkpoint;
this module imports neither package.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
import warnings
from typing import Any, Callable, Iterator, NamedTuple, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from jaxmarl_lab.baselines import as_policy, random_policy
from jaxmarl_lab.runner import RunnerState, make_evaluate, make_runner, run_episodes
from jaxmarl_lab.runs import diagnostics, memory, plots, scoring
from jaxmarl_lab.runs.checkpoint import (
    CheckpointSaveError,
    CheckpointWriter,
    config_hash,
    has_checkpoint,
    load_checkpoint,
    read_meta,
    remove_temp_dirs,
)
from jaxmarl_lab.runs.config import (
    Built,
    RunConfig,
    build,
    load_run_config,
    preset_env_note,
    save_run_config,
    seed_keys,
    with_preset_env_kwargs,
)
from jaxmarl_lab.runs.files import DirLock, atomic_write_json, atomic_write_text, describe_os_error, remove_temp_files
from jaxmarl_lab.runs.interrupts import critical
from jaxmarl_lab.runs.layout import (
    CHECKPOINT,
    CONFIG,
    MARKER,
    METRICS,
    NPZ_CHECKPOINT,
    TRAIN,
    open_run_dir,
    read_metrics,
    trim_metrics,
)
from jaxmarl_lab.runs.sinks import MetricSink, SinkFactory
from jaxmarl_lab.types import LearnerState
from jaxmarl_lab.validation import check_positive_int

_RUNNER_METRICS = ("episode_return", "episode_length", "episodes", "env_steps")
END_EPISODES = 32  # episodes per seed of the greedy evaluation at the end of a run
END_EVAL_SEED = 10_000  # its key, `jaxmarl-lab eval`'s default seed


class NonFiniteError(RuntimeError):
    """A loss or parameter became NaN or infinite; the message names the update."""


class CheckpointWriteError(OSError):
    """A checkpoint or metrics row could not be written (a full disk, say); the previous checkpoint is kept."""


class TrainResult(NamedTuple):
    """What a run did; every return is per agent (each agent's rewards summed over an episode, averaged
    over agents), the scale of `metrics.jsonl`, `jaxmarl-lab eval`, the sweep and README's tables."""

    run_dir: str  # the run directory written
    iterations: int  # iterations done per seed
    env_steps: int  # environment steps per seed
    final_return: list  # (S,) mean training episode return of each seed over the last chunk
    seconds: float  # wall time of this call, compilation included
    greedy_return: list | None = None  # (S,) greedy return of each seed at the end (END_EPISODES episodes)
    random_return: float | None = None  # uniformly random actions' return on the same episodes
    optimum: float | None = None  # the exact optimum of the same episodes, where the env knows it
    warnings: tuple = ()  # messages of `runs.diagnostics`: schedules, values, greedy vs random
    greedy_length: list | None = None  # (S,) mean greedy episode length of each seed (max_steps when unfinished)


class Training(NamedTuple):
    """The jitted pieces of one run: `init() -> state (S, ...)`, `chunk(state, k) -> (state, metrics (k, S))`,
    and `score(key, learner_states)`: the end-of-run scores (`end_scores`)."""

    built: Built  # env, learner, runner config and hparams of the run
    run: RunConfig  # the run config it was built from
    init: Callable[[], RunnerState]  # jitted; RunnerState with a leading (S,) seed axis
    chunk: Callable[[RunnerState, int], tuple[RunnerState, dict]]  # jitted, k static; metrics (k, S)
    sharding: jax.sharding.NamedSharding  # of the seed axis over the run's devices (`seed_mesh`)
    score: Callable[[jax.Array, Any], tuple]  # jitted; greedy (S, K), random (K,), the K episode starts


SEED_AXIS = "seeds"


def seed_mesh(num_seeds: int, devices: list | None = None) -> jax.sharding.Mesh:
    """A 1-d mesh over which the `num_seeds` seeds of a run are split evenly: the most of `devices`
    (default: this process's devices) whose count divides `num_seeds`."""
    devices = list(devices or jax.local_devices())
    count = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
    return jax.sharding.Mesh(np.asarray(devices[:count]), (SEED_AXIS,))


def make_training(run: RunConfig, built: Built | None = None, devices: list | None = None) -> Training:
    """Builds (and validates) `run` and its jitted, seed-vmapped init and chunk functions.

    The seeds are split over the devices of `seed_mesh(run.num_seeds, devices)`: each device
    trains its share of the seeds (XLA partitions the vmapped program along the seed axis),
    with the same results as one device up to float32 rounding.

    The jitted functions depend only on what sets shapes and control flow, so they are
    cached under the run config without its hparams (traced values in the state),
    seeds (an argument) and budget: a process that trains, resumes or evaluates runs
    that differ only in those compiles each chunk length once per number of seeds.
    """
    built = build(run) if built is None else built
    mesh = seed_mesh(run.num_seeds, devices)
    static = run.to_dict()
    static.update(hparams={}, seed=0, num_seeds=1,
                  runner={k: v for k, v in static["runner"].items() if k != "total_env_steps"})
    key = json.dumps([static, [d.id for d in mesh.devices.flat]], sort_keys=True)
    if key not in _COMPILED:
        if len(_COMPILED) >= 8:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = _jitted_functions(built, mesh)
    init, chunk, score = _COMPILED[key]
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(SEED_AXIS))
    keys = lambda: jax.device_put(seed_keys(run.seed, run.num_seeds), sharding)
    return Training(built, run, lambda: init(keys(), built.hparams), chunk, sharding, score)


_COMPILED: dict[str, tuple[Callable, Callable, Callable]] = {}


def _jitted_functions(built: Built, mesh: jax.sharding.Mesh) -> tuple[Callable, Callable, Callable]:
    """`init(keys (S, 2), hparams) -> state (S, ...)`, `chunk(state, k)` and `score(key, learner_states)`, jitted,
    the seed axis split over `mesh`."""
    runner = make_runner(built.env, built.learner, built.runner, built.train_env_params)
    steps = scoring.horizon(built.env, built.env_params)
    evaluate = make_evaluate(built.env, built.learner, END_EPISODES, steps, built.env_params)
    random, carry = as_policy(random_policy(built.env.spec))

    def score(key: jax.Array, learner_states: Any) -> tuple:
        """Greedy returns and episode lengths `(S, K)`, random actions' returns `(K,)` and the K starts, all on
        the episodes of `key`."""
        greedy = jax.vmap(evaluate, in_axes=(None, 0))(key, learner_states)
        played = run_episodes(built.env, random, carry, key, END_EPISODES, steps, built.env_params)["returns"]
        starts = built.env.reset_batch(jax.random.split(key)[0], built.env_params, END_EPISODES)[0]
        return greedy["returns"], greedy["lengths"], played, starts

    def checked_iterate(state: RunnerState) -> tuple[RunnerState, dict]:
        # `LearnerState.updates` tells whether the iteration updated (only then do its losses count).
        updates_before = state.learner.updates
        state, metrics = runner.iterate(state)
        updated = state.learner.updates > updates_before
        losses = [jnp.all(jnp.isfinite(v)) for k, v in metrics.items() if "loss" in k]
        params = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(state.learner)
                  if jnp.issubdtype(x.dtype, jnp.floating)]
        loss_ok = jnp.all(jnp.stack(losses)) if losses else jnp.asarray(True)
        metrics["finite"] = jnp.all(jnp.stack(params)) & (loss_ok | ~updated)
        metrics["updates"] = state.learner.updates
        return state, metrics

    def init(keys: jax.Array, hparams: Any) -> RunnerState:
        return jax.vmap(runner.init, in_axes=(0, None))(keys, hparams)

    def chunk(state: RunnerState, length: int) -> tuple[RunnerState, dict]:
        return jax.lax.scan(lambda s, _: jax.vmap(checked_iterate)(s), state, None, length=length)

    seeds = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(SEED_AXIS))
    per_iteration = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, SEED_AXIS))
    return (jax.jit(init, out_shardings=seeds),
            jax.jit(chunk, static_argnums=1, out_shardings=(seeds, per_iteration)), jax.jit(score))


def check_memory(built: Built, num_seeds: int, budget: int | None = None) -> None:
    """Refuses (ValueError, one line) a run of `num_seeds` seeds whose estimate exceeds `budget` bytes
    (default the device's free memory), naming the largest `--seeds` or `num_envs` that fits."""
    budget = memory.available_bytes() if budget is None else budget
    per_seed = memory.member_bytes(built)
    if per_seed * num_seeds <= budget:
        return
    fit = budget // per_seed
    if fit >= 1:
        hint = f"the most seeds that fit is about --seeds {fit}"
    else:
        envs = max(1, int(built.runner.num_envs * budget / per_seed))
        hint = (f"one seed alone needs {memory.mib(per_seed)}: lower runner.num_envs (now "
                f"{built.runner.num_envs:,}) to about {envs:,}, or runner.buffer_capacity")
    memory.check_fits(per_seed * num_seeds, budget, f"this run ({num_seeds:,} seed(s))", hint)


def default_chunk_updates(num_iterations: int) -> int:
    """About 20 chunks per run (20 checkpoints and progress lines).

    A divisor of `num_iterations` between n/40 and n/10 when one exists, so that no
    shorter last chunk needs a second compilation.
    """
    n = num_iterations
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]  # O(sqrt n), even for huge runs
    divisors = [d for d in small + [n // d for d in small] if max(1, n // 40) <= d <= n // 10]
    return min(divisors, key=lambda d: (abs(d - n / 20), d)) if divisors else max(1, math.ceil(n / 20))


def train_run(run: RunConfig, run_dir: str, *, chunk_updates: int | None = None, overwrite: bool = False,
              progress: bool = True, plot: bool = True, stream: TextIO | None = None,
              memory_budget: int | None = None, sinks: SinkFactory | None = None) -> TrainResult:
    """Trains `run` from scratch in `run_dir`.

    Everything that can fail before training (the run config, the learner, tracing its
    initial state) is built first; only then is `run_dir` created or, with `overwrite`, an
    old run in it replaced. The run directory is locked for as long as this call works in it.

    Args:
        run: the run config (validated here, before anything is written or traced).
        run_dir: the run directory to create.
        chunk_updates: iterations per jitted chunk = checkpoint interval; None: about 20 chunks.
        overwrite: replace an existing run directory (one written by `train_run`, see `runs.layout`).
        progress: print a progress line per chunk to `stream` (default stderr).
        plot: write learning_curve.png at the end (needs matplotlib).
        memory_budget: bytes the run may use (default: the device's free memory, `memory.available_bytes`).
        sinks: `sinks(run, 0) -> MetricSink` (`runs.sinks.prepare_sinks`), opened once the run directory
            is locked; it receives the rows appended to metrics.jsonl after each chunk, and is closed at the end.

    Raises:
        ValueError: bad run config or chunk_updates, or a run estimated not to fit in memory.
        FileExistsError: `run_dir` exists and `overwrite` is false, or it is not a run that may be replaced.
        LockedError: another process works in `run_dir`.
        NonFiniteError: a loss or parameter became non-finite.
        CheckpointWriteError: a checkpoint could not be written (the previous one is kept).
    """
    start = time.perf_counter()
    built = build(run)
    env_note = preset_env_note(run, built.env.spec)
    run = with_preset_env_kwargs(run, built.env.spec)  # config.json names the env the run trains on
    n = built.runner.num_iterations
    k = default_chunk_updates(n) if chunk_updates is None else check_positive_int("chunk_updates", chunk_updates)
    check_memory(built, run.num_seeds, memory_budget)
    notes = _Notes(progress, stream)
    notes.add(diagnostics.schedule_warnings(built.hparams, n * built.runner.steps_per_iteration))
    training = make_training(run, built)
    jax.eval_shape(training.init)  # traces the learner and env: a bad value fails here, before any file changes
    if progress and env_note:
        print(env_note, file=stream or sys.stderr)
    if progress and n * built.runner.steps_per_iteration != built.runner.total_env_steps:
        print(f"note: total_env_steps {built.runner.total_env_steps:,} is not a multiple of num_envs x rollout_len "
              f"= {built.runner.steps_per_iteration:,}; training {n * built.runner.steps_per_iteration:,} steps "
              f"({n:,} iterations)", file=stream or sys.stderr)
    with critical():
        lock = open_run_dir(run_dir, overwrite)
        try:
            save_run_config(run, os.path.join(run_dir, CONFIG))
            atomic_write_json(os.path.join(run_dir, TRAIN), {"chunk_updates": k})
            atomic_write_text(os.path.join(run_dir, METRICS), "")
        except BaseException:
            lock.release()
            raise
    with lock, _opened(sinks, run, 0) as sink:
        return _finish(training, run_dir, _loop(training, training.init(), 0, k, run_dir, progress, stream, notes,
                                                sink), plot, start, notes)


def resume_run(run_dir: str, *, progress: bool = True, plot: bool = True, stream: TextIO | None = None,
               sinks: SinkFactory | None = None) -> TrainResult:
    """Continues the run in `run_dir` from its checkpoint (or from scratch if it has none yet).

    `sinks(run, env_steps) -> MetricSink` is opened with the environment steps the checkpoint holds (the
    rows after them are trimmed from metrics.jsonl and written again, to metrics.jsonl and the sink).

    Raises:
        FileNotFoundError: `run_dir` does not exist.
        ValueError: it is not a run directory, its checkpoint is corrupt, mismatched or holds
            non-finite parameters, or a metrics line other than a torn last one is damaged.
        LockedError: another process works in `run_dir`.
        NonFiniteError: a loss or parameter became non-finite.
    """
    start = time.perf_counter()
    run = _read_run(run_dir)
    if not any(os.path.exists(os.path.join(run_dir, name)) for name in (MARKER, TRAIN, CHECKPOINT, NPZ_CHECKPOINT)):
        raise ValueError(f"{run_dir!r} is not a jaxmarl-lab run directory (it holds {CONFIG} but no {MARKER}, "
                         f"{TRAIN} or {CHECKPOINT}); --resume writes only in folders `train` made")
    with DirLock(run_dir, "run directory"):
        training = make_training(run, build(run, env_presets=False))  # the env the run directory names
        n = training.built.runner.num_iterations
        k = _read_chunk_updates(run_dir, n)
        remove_temp_files(run_dir)  # of a writer that was killed mid-write
        remove_temp_dirs(os.path.join(run_dir, CHECKPOINT))  # of an orbax save that was killed
        path = checkpoint_path(run_dir)
        if path is not None:
            state, meta = _load_state(path, training, run)
            done, k = int(meta["iteration"]), int(meta.get("chunk_updates", k))
        else:
            state, done = training.init(), 0
        trim_metrics(os.path.join(run_dir, METRICS), done)
        if done < n and progress:
            print(f"resuming {run_dir} at iteration {done} of {n}", file=stream or sys.stderr)
        notes = _Notes(progress, stream)
        with _opened(sinks, run, done * training.built.runner.steps_per_iteration) as sink:
            looped = _loop(training, state, done, k, run_dir, progress, stream, notes, sink)
            return _finish(training, run_dir, looped, plot, start, notes)


def load_run_state(run_dir: str) -> tuple[Built, RunConfig, RunnerState, dict]:
    """`(built, run, state, meta)` of a run directory's checkpoint; `state` is seed-stacked `(S, ...)`.

    Raises:
        FileNotFoundError: no run directory or no checkpoint yet.
        ValueError: not a run directory, or a corrupt or mismatched checkpoint, or one whose
            learner state is not finite.
    """
    run = _read_run(run_dir)
    built = build(run, env_presets=False)  # the env the run directory names
    training = make_training(run, built)
    path = checkpoint_path(run_dir)
    if path is None:
        raise FileNotFoundError(f"run directory {run_dir!r} has no checkpoint yet ({CHECKPOINT}/ holds no "
                                f"complete step)")
    state, meta = _load_state(path, training, run)
    return built, run, state, meta


def checkpoint_path(run_dir: str) -> str | None:
    """The checkpoint of a run directory: `checkpoint/` once it holds a complete step, else an old run's
    `checkpoint.npz`, else None."""
    for name in (CHECKPOINT, NPZ_CHECKPOINT):
        if has_checkpoint(os.path.join(run_dir, name)):
            return os.path.join(run_dir, name)
    return None


def _load_state(path: str, training: Training, run: RunConfig) -> tuple[RunnerState, dict]:
    """The checkpoint at `path`, checked against the run and refused if its learner state is not finite."""
    state, meta = load_checkpoint(path, jax.eval_shape(training.init), config_hash(run.to_dict()))
    for where, leaf in jax.tree_util.tree_leaves_with_path(state.learner):
        if np.issubdtype(leaf.dtype, np.floating) and not np.all(np.isfinite(leaf)):
            raise ValueError(f"checkpoint {path!r} holds non-finite learner parameters (learner"
                             f"{jax.tree_util.keystr(where)}, iteration {meta.get('iteration')}); it cannot be "
                             f"evaluated or resumed: retrain it, e.g. with a lower learning rate")
    return jax.device_put(state, training.sharding), meta


def load_trained(run_dir: str, seed_index: int = 0) -> tuple[Built, RunConfig, LearnerState]:
    """`(built, run, learner_state)`: the trained learner state of one seed of a run directory.

    `built.learner.act(key, learner_state, timestep, carry, False)` is then the greedy
    policy of that seed on `built.env` with `built.env_params`.

    Raises:
        FileNotFoundError, ValueError: as `load_run_state`; ValueError if `seed_index` is
            not in `[0, num_seeds)`.
    """
    built, run, state, _ = load_run_state(run_dir)
    if not 0 <= seed_index < run.num_seeds:
        raise ValueError(f"seed_index must be in [0, {run.num_seeds}) for {run_dir!r}, got {seed_index}")
    return built, run, jax.tree.map(lambda x: x[seed_index], state.learner)


# ----- the loop ---------------------------------------------------------------------------
def _loop(training: Training, state: RunnerState, done: int, k: int, run_dir: str, progress: bool,
          stream: TextIO | None, notes: "_Notes", sink: MetricSink | None = None) -> tuple[RunnerState, int, list]:
    """Runs chunks from iteration `done` to the end; returns once the last checkpoint is on disk."""
    writer = CheckpointWriter(os.path.join(run_dir, CHECKPOINT))
    try:
        out = _chunks(training, writer, state, done, k, run_dir, progress, stream, notes, sink)
        _wait(writer, run_dir)
    finally:
        writer.close()  # after an error, the save under way (the last good checkpoint) still completes
    npz = os.path.join(run_dir, NPZ_CHECKPOINT)
    if writer.last_saved is not None and os.path.exists(npz):
        os.unlink(npz)  # an old run's format-1 checkpoint, now superseded
    return out


def _wait(writer: CheckpointWriter, run_dir: str) -> None:
    """Waits for the save under way; its failure is a CheckpointWriteError naming what is kept."""
    try:
        writer.wait()
    except CheckpointSaveError as e:
        kept = (f"the previous checkpoint (iteration {writer.last_saved}) is kept" if writer.last_saved
                else "no checkpoint was written yet")
        raise CheckpointWriteError(f"could not write the checkpoint of iteration {e.iteration} in {run_dir!r} "
                                   f"({describe_os_error(e)}); {kept}: free space, then jaxmarl-lab train "
                                   f"--resume {run_dir}") from None


def _chunks(training: Training, writer: CheckpointWriter, state: RunnerState, done: int, k: int, run_dir: str,
            progress: bool, stream: TextIO | None, notes: "_Notes",
            sink: MetricSink | None) -> tuple[RunnerState, int, list]:
    run, runner = training.run, training.built.runner
    spec, gamma = _bounds_spec(training.built), getattr(training.built.hparams, "gamma", None)
    values_checked = gamma is None or spec is None
    n, per_iter = runner.num_iterations, runner.steps_per_iteration
    meta = {"run": run.to_dict(), "config_hash": config_hash(run.to_dict()), "num_iterations": n,
            "chunk_updates": k}
    last_return: list = [None] * run.num_seeds
    compiled: set = set()
    while done < n:
        length = min(k, n - done)
        tick = time.perf_counter()
        new_state, metrics = training.chunk(state, length)
        metrics = jax.device_get(metrics)
        seconds = time.perf_counter() - tick
        finite = np.asarray(metrics.pop("finite"))  # (length, S)
        rows = _rows(metrics, done, per_iter)
        bad = np.argwhere(~finite)
        if bad.size:
            j, s = (int(v) for v in bad[0])
            _wait(writer, run_dir)
            _append_rows(os.path.join(run_dir, METRICS), rows[:j + 1])
            if sink is not None:
                sink.write(rows[:j + 1])
            kept = f"the last good checkpoint (iteration {done}) is kept" if done else "no checkpoint was written"
            raise NonFiniteError(f"non-finite loss or parameters at update {done + j + 1} of {n} (seed "
                                 f"{run.seed + s}, learner update {int(metrics['updates'][j, s])}); the run "
                                 f"stopped and {kept} in {run_dir}")
        _wait(writer, run_dir)  # the previous chunk's save: its failure is reported before more is written
        try:
            _append_rows(os.path.join(run_dir, METRICS), rows)
            if sink is not None:  # before the checkpoint: a kill in between re-logs these rows on --resume
                sink.write(rows)
            writer.save(new_state, {**meta, "iteration": done + length})
        except OSError as e:
            iteration = e.iteration if isinstance(e, CheckpointSaveError) else done + length
            kept = f"the previous checkpoint (iteration {done}) is kept" if done else "no checkpoint was written yet"
            raise CheckpointWriteError(f"could not write the checkpoint of iteration {iteration} in {run_dir!r} "
                                       f"({describe_os_error(e)}); {kept}: free space, then jaxmarl-lab train "
                                       f"--resume {run_dir}") from None
        if not values_checked:
            found = diagnostics.value_warnings(spec, float(np.asarray(gamma)), metrics, done + 1)
            values_checked = bool(found)  # one warning per run
            notes.add(found)
        state, done = new_state, done + length
        with np.errstate(all="ignore"), _quiet_nan_warnings():
            last_return = [None if math.isnan(v) else float(v)
                           for v in np.nanmean(np.asarray(metrics["episode_return"], np.float64), axis=0)]
        if progress:
            _print_progress(stream or sys.stderr, done, n, per_iter, last_return, length * per_iter
                            * run.num_seeds / seconds, length not in compiled)
        compiled.add(length)
    return state, done, last_return


@contextlib.contextmanager
def _opened(factory: SinkFactory | None, run: RunConfig, env_steps: int) -> Iterator[MetricSink | None]:
    """`with _opened(factory, run, env_steps) as sink:` the sink of `factory` (None without one), closed on exit."""
    sink = None if factory is None else factory(run, env_steps)
    try:
        yield sink
    finally:
        if sink is not None:
            sink.close()


def _finish(training: Training, run_dir: str, looped: tuple, plot: bool, start: float,
            notes: "_Notes") -> TrainResult:
    state, done, last_return = looped
    if plot:
        plots.plot_run_dir(run_dir)
    steps = done * training.built.runner.steps_per_iteration
    greedy, random, optimum, lengths = end_scores(training, state.learner)
    notes.add(diagnostics.greedy_warnings(float(np.mean(greedy)), random, optimum))
    return TrainResult(run_dir, done, steps, last_return, time.perf_counter() - start, greedy, random, optimum,
                       tuple(notes.messages), lengths)


def end_scores(training: Training, learner_states: Any,
               seed: int = END_EVAL_SEED) -> tuple[list, float, float | None, list]:
    """`(greedy (S,), random, optimum or None, greedy lengths (S,))`: mean per-agent returns on the same
    `END_EPISODES` episodes of the greedy policy of each seed's learner state and of uniformly random actions
    (`baselines.random_policy`), the env's optimum of those episodes (`Environment.optimal_returns`), and the
    greedy policy's mean episode length per seed (an unfinished episode counts its `max_steps`).

    Compiled once per run shape, with the training chunk (`make_training`'s cache)."""
    built = training.built
    greedy, lengths, random, starts = jax.device_get(training.score(jax.random.PRNGKey(seed), learner_states))
    optimum, _ = built.env.optimal_returns(built.env_params, starts)
    return ([float(g) for g in np.asarray(greedy).mean(axis=1)], float(np.mean(random)),
            None if optimum is None else float(np.mean(optimum)),
            [float(n) for n in np.asarray(lengths, np.float64).mean(axis=1)])


def _bounds_spec(built: Built):
    """The env's spec with the reward bounds of the params the run trains on (shaping included; None if the
    env has no bounds hook)."""
    bounds = getattr(built.env, "reward_bounds", None)
    if bounds is None:
        return None
    return dataclasses.replace(built.env.spec, **bounds(built.train_env_params)._asdict())


class _Notes:
    """The warnings of one run: printed as `warning: ...` lines with progress output, else Python warnings."""

    def __init__(self, progress: bool, stream: TextIO | None):
        self.progress, self.stream, self.messages = progress, stream, []

    def add(self, messages: list[str]) -> None:
        for message in messages:
            self.messages.append(message)
            if self.progress:
                stream = self.stream or sys.stderr
                print(f"{chr(10) if stream.isatty() else ''}warning: {message}", file=stream, flush=True)
            else:
                warnings.warn(message, diagnostics.TrainingWarning, stacklevel=3)


def _rows(metrics: dict, done: int, per_iter: int) -> list[dict]:
    """One JSON-able row per iteration: `{"iteration", "env_steps", name: [per seed]}`; NaN -> null."""
    length = np.shape(metrics["episode_return"])[0]
    rows = []
    for j in range(length):
        row = {"iteration": done + j + 1, "env_steps": (done + j + 1) * per_iter}
        for name, values in metrics.items():
            if name == "env_steps":
                continue
            row[name] = [None if not np.isfinite(v) else (int(v) if np.issubdtype(np.asarray(v).dtype, np.integer)
                                                          else float(v)) for v in np.asarray(values[j]).ravel()]
        rows.append(row)
    return rows


def _append_rows(path: str, rows: list[dict]) -> None:
    with open(path, "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
        f.flush()
        os.fsync(f.fileno())


def _print_progress(stream: TextIO, done: int, n: int, per_iter: int, returns: list, rate: float,
                    compiling: bool) -> None:
    width = 24
    filled = int(width * done / n)
    finite = [r for r in returns if r is not None]
    ret = f"{np.mean(finite):.3f}" if finite else "n/a"
    left = (n - done) * per_iter * len(returns) / rate if rate > 0 and not compiling else float("nan")
    eta = time.strftime("%H:%M:%S", time.gmtime(left)) if math.isfinite(left) else "?"
    speed = "compiled" if compiling else f"{rate:,.0f} steps/s"
    line = (f"[{'#' * filled}{'.' * (width - filled)}] {done * per_iter:,}/{n * per_iter:,} steps | "
            f"return {ret} | {speed} | left {eta}")
    end = "\r" if stream.isatty() and done < n else "\n"
    print(line, end=end, file=stream, flush=True)


class _quiet_nan_warnings:
    """Silences 'Mean of empty slice' for chunks in which no episode ended."""

    def __enter__(self):
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


# ----- run directories ----------------------------------------------------------------------
def _read_run(run_dir: str) -> RunConfig:
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory {run_dir!r} does not exist")
    path = os.path.join(run_dir, CONFIG)
    if not os.path.exists(path):
        raise ValueError(f"{run_dir!r} is not a jaxmarl-lab run directory (it has no {CONFIG})")
    return load_run_config(path)


def _read_chunk_updates(run_dir: str, num_iterations: int) -> int:
    try:
        with open(os.path.join(run_dir, TRAIN)) as f:
            return check_positive_int("chunk_updates", json.load(f)["chunk_updates"])
    except (OSError, ValueError, KeyError, TypeError):
        return default_chunk_updates(num_iterations)


__all__ = ["NonFiniteError", "CheckpointWriteError", "TrainResult", "Training", "make_training", "train_run",
           "resume_run", "load_run_state", "load_trained", "checkpoint_path", "read_metrics", "default_chunk_updates",
           "read_meta"]
