"""Logging sinks: TensorBoard and Weights & Biases mirrors of `metrics.jsonl`.

    factory = prepare_sinks("runs/iql", tensorboard="tb", wandb_project=None)  # checks, imports, writes nothing
    train_run(run, "runs/iql", sinks=factory)     # after each chunk: sink.write(rows appended to metrics.jsonl)

    write_member_curve("tb/sweep", "p3_seed1", env_steps, {"episode_return": curve}, {"lr": 3e-4}, {"final_return": r})

A sink receives the rows `metrics.jsonl` gets, `{"iteration", "env_steps", name: [value per seed]}`, right
after they are appended and before the checkpoint of that chunk is written, so a killed run loses no point
that `--resume` will not write again. Neither tensorboardX nor wandb is imported unless asked for:
`check_available` imports them (a ValueError naming the flag and the install command when one is missing),
before anything is compiled or written.

TensorBoard: one event run per seed, `DIR/<run name>/seed_<seed>` (so TensorBoard overlays seeds); a tag per
metric name of `metrics.jsonl`, x axis = environment steps per seed; a null (no episode ended) is no point.
A fresh run also writes its config as text (`config`) and an hparams session (hparams, env, learner, seed).
Every writer opens with tensorboardX's `purge_step`: a SessionLog START event at the first step it will write,
which makes TensorBoard drop the earlier files' points at or after that step. So a `--resume`, which trims
and recomputes the rows after its checkpoint, leaves one point per step, and a fresh run refuses a folder
that already holds that run name's events unless `--overwrite` is given (then the old points are hidden).

Weights & Biases: one W&B run per run directory, keys `seed_<seed>/<metric>`, `step` = environment steps.
Its id is derived from the run directory (path and the creation time in its marker), and `resume="allow"`
makes `--resume` continue that W&B run; W&B ignores steps at or below the last it has, so the recomputed
rows after the checkpoint (bit-identical on CPU) are not logged twice.
"""

from __future__ import annotations

import glob
import hashlib
import importlib
import json
import math
import os
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from jaxmarl_lab.runs.layout import MARKER

_INSTALL = {"tensorboardX": ("--tensorboard", "pip install 'jaxmarl-lab[tensorboard]'"),
            "wandb": ("--wandb", "pip install wandb")}
_X_AXIS = ("iteration", "env_steps")  # row fields that are coordinates, not metrics


class MetricSink(Protocol):
    """Receives the rows appended to `metrics.jsonl`; `close` flushes and releases it."""

    def write(self, rows: Sequence[dict]) -> None: ...

    def close(self) -> None: ...


SinkFactory = Callable[[Any, int], MetricSink]  # (RunConfig, env steps per seed already logged) -> sink


def require(module: str) -> Any:
    """Imports `module` ("tensorboardX" or "wandb"); a missing one is a ValueError naming the flag and install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        flag, command = _INSTALL[module]
        raise ValueError(f"{flag} needs the {module} package, which is not installed: {command}") from None


def check_available(tensorboard: str | None = None, wandb_project: str | None = None) -> None:
    """Imports the packages of the requested sinks (ValueError if one is missing); nothing else."""
    if tensorboard is not None:
        require("tensorboardX")
    if wandb_project is not None:
        require("wandb")


def run_name(run_dir: str) -> str:
    """The name a run directory logs under: its last path component (`runs/iql-grid-world` -> `iql-grid-world`)."""
    return os.path.basename(os.path.normpath(os.path.abspath(run_dir)))


def prepare_sinks(run_dir: str, *, tensorboard: str | None = None, wandb_project: str | None = None,
                  wandb_mode: str | None = None, resume: bool = False, overwrite: bool = False,
                  ) -> SinkFactory | None:
    """Checks the requested sinks and returns `factory(run, start_env_steps) -> MetricSink` (None if none).

    Call it before training: it imports the packages and, for a fresh TensorBoard run, refuses a
    `DIR/<run name>` that already holds event files (unless `overwrite`). It writes nothing; the
    factory, called once the run directory is locked, opens the writers.

    Raises:
        ValueError: a requested package is missing, a bad `wandb_mode`, or a fresh run's TensorBoard
            folder already holds events and `overwrite` is false.
    """
    check_available(tensorboard, wandb_project)
    if wandb_mode is not None and wandb_mode not in ("online", "offline", "disabled"):
        raise ValueError(f"--wandb-mode must be online, offline or disabled, got {wandb_mode!r}")
    if tensorboard is None and wandb_project is None:
        return None
    name = run_name(run_dir)
    if tensorboard is not None and not resume and not overwrite:
        old = glob.glob(os.path.join(glob.escape(os.path.join(tensorboard, name)), "seed_*", "*tfevents*"))
        if old:
            raise ValueError(f"--tensorboard {tensorboard!r} already holds events of a run named {name!r} "
                             f"({os.path.dirname(old[0])}); give another --run-dir name, another --tensorboard "
                             f"folder, or --overwrite to hide the old points")

    def factory(run: Any, start_env_steps: int) -> MetricSink:
        seeds = [run.seed + s for s in range(run.num_seeds)]
        sinks: list[MetricSink] = []
        try:
            if tensorboard is not None:
                sinks.append(TensorBoardSink(os.path.join(tensorboard, name), seeds, run.to_dict(), start_env_steps))
            if wandb_project is not None:
                sinks.append(WandbSink(wandb_project, name, seeds, run.to_dict(), wandb_run_id(run_dir),
                                       mode=wandb_mode))
        except BaseException:
            for sink in sinks:
                sink.close()
            raise
        return FanOut(sinks)

    return factory


class FanOut:
    """Several sinks as one: `write` and `close` each in turn (every sink is closed even if one fails)."""

    def __init__(self, sinks: Sequence[MetricSink]):
        self.sinks = list(sinks)

    def write(self, rows: Sequence[dict]) -> None:
        for sink in self.sinks:
            sink.write(rows)

    def close(self) -> None:
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as e:  # close the others, then report the first
                errors.append(e)
        if errors:
            raise errors[0]


def per_seed_scalars(row: Mapping, num_seeds: int) -> list[dict[str, float]]:
    """`{name: value}` of each seed in one metrics row; null (no episode ended, non-finite) values are left out."""
    out: list[dict[str, float]] = [{} for _ in range(num_seeds)]
    for name, values in row.items():
        if name in _X_AXIS or not isinstance(values, list) or len(values) != num_seeds:
            continue
        for s, v in enumerate(values):
            if v is not None and math.isfinite(v):
                out[s][name] = float(v)
    return out


class TensorBoardSink:
    """One tensorboardX `SummaryWriter` per seed, `log_dir/seed_<seed>`; x axis = environment steps.

    Args:
        log_dir: `DIR/<run name>`.
        seeds: the seed of each vmapped member, `run.seed + s`.
        config: the run config dict (written as text and as an hparams session when `start_env_steps == 0`).
        start_env_steps: steps already logged and kept; the writers purge later points of earlier files.
    """

    def __init__(self, log_dir: str, seeds: Sequence[int], config: Mapping, start_env_steps: int = 0):
        tbx = require("tensorboardX")
        self.seeds = list(seeds)
        purge = 0 if start_env_steps == 0 else start_env_steps + 1
        # The suffix keeps two writers that start in the same second (and host) from sharing a file name,
        # and sorts a resumed writer's file after the one it purges.
        suffix = f".{start_env_steps:015d}.{os.getpid()}"
        self.writers = [tbx.SummaryWriter(os.path.join(log_dir, f"seed_{seed}"), purge_step=purge,
                                          filename_suffix=suffix) for seed in self.seeds]
        if start_env_steps == 0:
            for seed, writer in zip(self.seeds, self.writers):
                writer.add_text("config", "```\n" + json.dumps(dict(config), indent=2, sort_keys=True) + "\n```", 0)
                write_hparams(writer, {**flat_hparams(config), "seed": seed}, ["episode_return"])
            self.flush()

    def write(self, rows: Sequence[dict]) -> None:
        for row in rows:
            for writer, scalars in zip(self.writers, per_seed_scalars(row, len(self.seeds))):
                for name, value in scalars.items():
                    writer.add_scalar(name, value, int(row["env_steps"]))
        self.flush()  # a killed run keeps every chunk it logged

    def flush(self) -> None:
        for writer in self.writers:
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class WandbSink:
    """One W&B run for all seeds: `wandb.log({"seed_<seed>/<metric>": value}, step=env_steps)`.

    `import wandb` happens here, only when this sink is built.
    """

    def __init__(self, project: str, name: str, seeds: Sequence[int], config: Mapping, run_id: str | None = None,
                 mode: str | None = None):
        self.wandb = require("wandb")
        self.seeds = list(seeds)
        kwargs = {"project": project, "name": name, "config": dict(config), "id": run_id, "resume": "allow"}
        if mode is not None:
            kwargs["mode"] = mode
        try:
            self.run = self.wandb.init(**kwargs)
        except Exception as e:  # no login, no network, a bad project name: one line, not W&B's traceback
            raise ValueError(f"--wandb {project!r}: wandb.init failed ({type(e).__name__}: {e}); log in with "
                             f"`wandb login`, or use --wandb-mode offline") from e

    def write(self, rows: Sequence[dict]) -> None:
        for row in rows:
            values = {f"seed_{seed}/{name}": v for seed, scalars in
                      zip(self.seeds, per_seed_scalars(row, len(self.seeds))) for name, v in scalars.items()}
            self.run.log(values, step=int(row["env_steps"]))

    def close(self) -> None:
        self.run.finish()


def wandb_run_id(run_dir: str) -> str:
    """A W&B run id that names this run directory across `--resume`: its real path and its marker's content
    (the creation time), so a new run in the same folder (`--overwrite`) gets a new id."""
    try:
        with open(os.path.join(run_dir, MARKER), "rb") as f:
            marker = f.read()
    except OSError:
        marker = b""
    return hashlib.sha256(os.path.realpath(run_dir).encode() + b"\0" + marker).hexdigest()[:16]


# ----- hparams and sweeps -----------------------------------------------------------------------
def flat_hparams(config: Mapping) -> dict[str, Any]:
    """A run config dict as hparams: `env`, `learner`, `num_seeds` and `section.field` of every scalar field."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            for field, v in value.items():
                out[f"{key}.{field}"] = v
        else:
            out[key] = value
    return {k: _hparam_value(v) for k, v in out.items() if k != "seed"}


def _hparam_value(value: Any) -> bool | int | float | str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def write_hparams(writer: Any, hparams: Mapping, metric_tags: Sequence[str]) -> None:
    """An hparams-plugin session in `writer`'s own run (not a sub-run, as `add_hparams` makes), so the
    HPARAMS tab shows the run's last value of each tag in `metric_tags`."""
    from tensorboardX.summary import hparams as hparams_summaries  # only reached with tensorboardX loaded

    values = {k: _hparam_value(v) for k, v in hparams.items()}
    for summary in hparams_summaries(values, {tag: 0.0 for tag in metric_tags}):
        writer.file_writer.add_summary(summary)


def write_member_curve(log_dir: str, run_name: str, env_steps: Sequence[int] | np.ndarray,
                       scalars: Mapping[str, Sequence[float] | np.ndarray], hparams: Mapping,
                       summary: Mapping[str, float]) -> str:
    """Writes one sweep member (point p, seed s) as its own TensorBoard run, `log_dir/run_name`.

    Args:
        log_dir: the `--tensorboard` folder of the sweep.
        run_name: e.g. `p003_seed1`; one folder per member, so TensorBoard overlays members.
        env_steps: (I,) environment steps of each point of the curve (the x axis).
        scalars: `{name: (I,) values}`, e.g. `{"episode_return": ...}`; non-finite values are left out.
        hparams: the member's swept values (and seed), shown in the HPARAMS tab.
        summary: `{name: value}` such as `final_return`, written at the last step as `summary/<name>`,
            the HPARAMS tab's metric columns (a None or non-finite value is left out).

    Returns:
        The run's folder. Writing the same member again hides its earlier points (`purge_step=0`).

    Raises:
        ValueError: tensorboardX is missing, or a curve's length differs from `env_steps`'.
    """
    tbx = require("tensorboardX")
    steps = np.asarray(env_steps).reshape(-1)
    for name, values in scalars.items():
        if np.shape(values) != steps.shape:
            raise ValueError(f"scalars[{name!r}] has shape {np.shape(values)}, env_steps has {steps.shape}")
    path = os.path.join(log_dir, run_name)
    writer = tbx.SummaryWriter(path, purge_step=0, filename_suffix=f".{os.getpid()}")
    try:
        for name, values in scalars.items():
            for step, value in zip(steps.tolist(), np.asarray(values, np.float64).tolist()):
                if math.isfinite(value):
                    writer.add_scalar(name, value, int(step))
        last = int(steps[-1]) if steps.size else 0
        tags = [f"summary/{name}" for name in summary]
        for tag, value in zip(tags, summary.values()):
            if value is not None and math.isfinite(value):
                writer.add_scalar(tag, float(value), last)
        write_hparams(writer, hparams, tags)
    finally:
        writer.close()
    return path


class SweepSink:
    """The sinks of a sweep: each finished member as it is written (process 0, after every chunk).

    TensorBoard: one run per member, `DIR/<sweep name>/p<point>_seed<seed index>`, holding its learning
    curve (`episode_return` over environment steps) and, at the last step, `summary/final_return`,
    `summary/mean_return` and `summary/greedy_return` (the HPARAMS tab's columns, against the swept
    values). W&B: one run per sweep (id from the sweep folder, `resume="allow"`), one `wandb.log` per
    member: `member/<column>` of its row (swept values, seed, summaries), `step` = members logged so far.
    """

    def __init__(self, out_dir: str, config: Mapping, tensorboard: str | None = None,
                 wandb_project: str | None = None, wandb_mode: str | None = None):
        check_available(tensorboard, wandb_project)
        self.tensorboard = None if tensorboard is None else os.path.join(tensorboard, run_name(out_dir))
        self.run = None
        if wandb_project is not None:
            wandb = require("wandb")
            kwargs = {"project": wandb_project, "name": run_name(out_dir), "config": dict(config),
                      "id": wandb_run_id(out_dir), "resume": "allow", **({"mode": wandb_mode} if wandb_mode else {})}
            try:
                self.run = wandb.init(**kwargs)
            except Exception as e:
                raise ValueError(f"--wandb {wandb_project!r}: wandb.init failed ({type(e).__name__}: {e}); log in "
                                 f"with `wandb login`, or use --wandb-mode offline") from e
        self.logged = 0

    def write(self, rows: Sequence[dict], curves: Sequence[dict], keys: Sequence[str]) -> None:
        """`rows` and their `curves` (`sweeps.report` lines) of the members a chunk finished; `keys`: the swept names."""
        for row, curve in zip(rows, curves):
            if self.tensorboard is not None:
                summary = {k: row[k] for k in ("final_return", "mean_return", "greedy_return") if k in row}
                write_member_curve(self.tensorboard, f"p{row['point']:04d}_seed{row['seed_index']}",
                                   curve["env_steps"], {"episode_return": curve["episode_return"]},
                                   {**{k: row[k] for k in keys}, "seed": row["seed"]}, summary)
            if self.run is not None:
                self.logged += 1
                self.run.log({f"member/{k}": v for k, v in row.items() if isinstance(v, (int, float, str))},
                             step=self.logged)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()


__all__ = ["SweepSink", "MetricSink", "SinkFactory", "require", "check_available", "run_name", "prepare_sinks", "FanOut",
           "per_seed_scalars", "TensorBoardSink", "WandbSink", "wandb_run_id", "flat_hparams", "write_hparams",
           "write_member_curve"]
