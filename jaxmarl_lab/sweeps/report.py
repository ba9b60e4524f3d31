"""Ranking and files of a hyperparameter sweep (NumPy side; nothing here is traced).

Points are ranked by the interquartile mean (IQM) of `final_return` over their seeds, with
a percentile-bootstrap 95% CI over seeds, as rliable (Agarwal et al. 2021, "Deep RL at the
Edge of the Statistical Precipice") and marl-eval recommend. Files under the output folder,
each written atomically (`jaxmarl_lab.runs.files`: a `.tmp-*` file renamed over the target, with
the permissions of a plain `open`):

  results.json   {"fingerprint", "complete", "sweep", "rows", ["ranking", "best_config", ...]}
  results.csv    one row per (point, seed)
  ranking.csv    one row per point, best first
  best_config.json   a RunConfig of the best point (`jaxmarl-lab train --config` reads it)
  sweep.png      final return against each swept name
  curves.jsonl   one line per (point, seed): its learning curve (env_steps, episode_return), appended
                 after every chunk (only lines of members in results.json count)
  best_member/   a run directory (`jaxmarl-lab eval` / `render` read it) with the final state of the
                 member with the best greedy return so far (the best final return without greedy
                 evaluation); its checkpoint's meta names the member and its score

`open_folder` takes the folder for one sweep process (`files.DirLock`, the holder's pid in
`.lock`), removes the `.tmp-*` files of a writer that was killed and reads the rows to resume.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

import numpy as np

from jaxmarl_lab.runs.checkpoint import config_hash, read_meta, save_checkpoint
from jaxmarl_lab.runs.config import RunConfig, save_run_config
from jaxmarl_lab.runs.files import (
    LOCK,
    DirLock,
    atomic_write,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    remove_temp_files,
    to_strict_json,
)
from jaxmarl_lab.runs.interrupts import critical
from jaxmarl_lab.runs.layout import CHECKPOINT, CONFIG, METRICS, TRAIN, open_run_dir
from jaxmarl_lab.stats import CI_LEVEL, NUM_BOOTSTRAP, bootstrap_iqm_ci

METRIC = "final_return"


def rank_points(rows: list[dict], keys: list[str], metric: str = METRIC) -> list[dict]:
    """One record per point, best IQM first (points whose seeds are all NaN last).

    Each: point, the swept values, seeds (finite values of `metric`), iqm, ci_low, ci_high,
    mean, rank (1 = best).
    """
    by_point: dict[int, list[dict]] = {}
    for row in rows:
        by_point.setdefault(row["point"], []).append(row)
    records = []
    for point, members in sorted(by_point.items()):
        values = np.asarray([r[metric] for r in members], np.float64)
        centre, low, high = bootstrap_iqm_ci(values, rng=np.random.default_rng([point, 2021]))
        finite = values[np.isfinite(values)]
        records.append({"point": point, **{k: members[0][k] for k in keys}, "seeds": int(finite.size),
                        "iqm": centre, "ci_low": low, "ci_high": high,
                        "mean": float(finite.mean()) if finite.size else math.nan})
    records.sort(key=lambda r: (math.isnan(r["iqm"]), -r["iqm"] if not math.isnan(r["iqm"]) else 0.0))
    for i, record in enumerate(records):
        record["rank"] = i + 1
    return records


def write_partial(out_dir: str, spec, rows: list[dict], complete: bool, extra: dict | None = None) -> dict:
    """results.json and results.csv with the rows so far (a signal never separates the two);
    returns their paths."""
    paths = {"json": os.path.join(out_dir, "results.json"), "csv": os.path.join(out_dir, "results.csv")}
    rows = sorted(rows, key=lambda r: (r["point"], r["seed_index"]))
    data = to_strict_json({"fingerprint": spec.fingerprint(), "complete": complete, "sweep": spec.to_dict(), "rows": rows,
                   **(extra or {})})
    with critical():
        atomic_write_json(paths["json"], data)
        atomic_write_csv(paths["csv"], rows)
    return paths


ROW_KEYS = ("point", "seed_index", "seed", METRIC)


def load_partial(out_dir: str, fingerprint: str, num_points: int, num_seeds: int, keys: Sequence[str] = ()) -> list:
    """Rows of `out_dir/results.json` (none if absent), NaN restored for null metrics.

    Args:
        out_dir: the sweep folder.
        fingerprint: `SweepSpec.fingerprint()` of the sweep that resumes.
        num_points, num_seeds: its size; every row must name a member `(point, seed_index)` in it, once.
        keys: the swept names, which every row must hold besides `ROW_KEYS`.

    Raises:
        FileExistsError: the file belongs to a different sweep.
        ValueError: the file cannot be read, is not valid JSON or not the shape this module
            writes (naming the file and the first problem found).
    """
    path = os.path.join(out_dir, "results.json")
    if not os.path.exists(path):
        return []
    try:
        with open(path) as f:
            data = json.load(f)
    except (ValueError, OSError) as e:  # JSONDecodeError, UnicodeDecodeError, a folder, no permission
        raise ValueError(f"{path} is not a readable JSON file ({e}); remove it or pass --overwrite") from None
    fix = "; nothing was changed: repair or remove it, or pass --overwrite to start the sweep again"
    if not isinstance(data, dict) or not {"fingerprint", "rows"} <= set(data):
        raise ValueError(f"{path} is not a sweep's results file (an object with 'fingerprint' and 'rows' is "
                         f"expected, got {_describe(data)}){fix}")
    if data["fingerprint"] != fingerprint:
        raise FileExistsError(f"{path} holds results of a different sweep (fingerprint {data['fingerprint']}, "
                              f"this one {fingerprint}); use another output folder or --overwrite")
    problem = _row_problem(data["rows"], num_points, num_seeds, (*ROW_KEYS, *keys))
    if problem:
        raise ValueError(f"{path}: {problem}{fix}")
    return [{k: (math.nan if v is None else v) for k, v in row.items()} for row in data["rows"]]


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return f"an object with keys {sorted(map(str, value))[:8]}"
    kinds = {list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return f"a JSON {kinds.get(type(value), type(value).__name__)}"


def _row_problem(rows: Any, num_points: int, num_seeds: int, keys: Sequence[str]) -> str | None:
    """What is wrong with the rows of a results file, or None."""
    if not isinstance(rows, list):
        return f"'rows' must be a list of objects, got {_describe(rows)}"
    seen = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            return f"row {i} must be an object, got {_describe(row)}"
        missing = [k for k in keys if k not in row]
        if missing:
            return f"row {i} lacks {missing}"
        for name, size in (("point", num_points), ("seed_index", num_seeds)):
            value = row[name]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < size:
                return f"row {i} has {name} {value!r}, not an integer in [0, {size}) of this sweep"
        if not (row[METRIC] is None or isinstance(row[METRIC], (int, float)) and not isinstance(row[METRIC], bool)):
            return f"row {i} has {METRIC} {row[METRIC]!r}, not a number or null"
        member = (row["point"], row["seed_index"])
        if member in seen:
            return f"row {i} repeats point {member[0]}, seed_index {member[1]}"
        seen.add(member)
    return None


def check_folder_path(out_dir: str) -> None:
    """Refuses an output folder that is a file, or lies under one (nothing is created).

    Raises:
        FileExistsError: naming the file.
    """
    path = os.path.abspath(out_dir)
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        where = "is" if path == os.path.abspath(out_dir) else f"lies under {path!r}, which is"
        raise FileExistsError(f"sweep folder {out_dir!r} {where} a file, not a folder; choose another output folder")


MARKER, MARKER_FORMAT = ".jaxmarl-lab-sweep", "jaxmarl-lab-sweep/1"


def check_sweep_folder(out_dir: str) -> None:
    """Refuses an existing folder that a sweep did not write: a sweep writes (and with --overwrite
    rewrites) results.json, results.csv, ranking.csv, best_config.json and sweep.png and removes
    `.tmp-*` files, so it works only in an empty folder, one holding its marker, or one holding a
    results.json (a sweep's from before the marker existed; `load_partial` refuses any other).

    Raises:
        FileExistsError: naming the folder; nothing is changed.
    """
    if not os.path.isdir(out_dir):
        return
    names = [n for n in os.listdir(out_dir) if n != LOCK]
    if not names or MARKER in names or "results.json" in names:  # load_partial checks a results.json's shape
        return
    raise FileExistsError(f"sweep folder {out_dir!r} already holds files a sweep did not write (no {MARKER} "
                          f"marker); nothing was changed: choose a new or empty --out")


class OpenFolder:
    """A sweep folder held by this process: its lock and the rows already there."""

    def __init__(self, out_dir: str, lock: DirLock, created: bool, rows: list):
        self.out_dir, self.lock, self.created, self.rows = out_dir, lock, created, rows

    def close(self, discard: bool = False) -> None:
        """Releases the lock; `discard` also removes the folder if this call created it and it
        holds nothing but the lock file (a sweep refused before writing anything)."""
        if discard and self.created and set(os.listdir(self.out_dir)) <= {LOCK, MARKER}:
            for name in os.listdir(self.out_dir):
                os.unlink(os.path.join(self.out_dir, name))
            self.lock.release()
            try:
                os.rmdir(self.out_dir)
            except OSError:  # another process put something there meanwhile
                pass
        self.lock.release()


def open_folder(out_dir: str, fingerprint: str, num_points: int, num_seeds: int, keys: Sequence[str],
                overwrite: bool) -> OpenFolder:
    """Creates `out_dir` if needed, locks it, removes temporary files a killed writer left, and
    reads the rows already there (none if `overwrite`; see `load_partial`).

    Raises:
        FileExistsError: `out_dir` is a file; it holds another sweep's results.
        LockedError: another process holds the folder (naming its pid).
        ValueError: its results.json is not a sweep's results (nothing is changed).
    """
    check_folder_path(out_dir)
    created = False
    if not os.path.isdir(out_dir):
        os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
        try:
            os.mkdir(out_dir)
            created = True
        except FileExistsError:  # another process made it a moment ago
            check_folder_path(out_dir)
    check_sweep_folder(out_dir)
    lock = DirLock(out_dir, "sweep folder").acquire()
    try:
        check_sweep_folder(out_dir)  # again, now that no other jaxmarl-lab process writes in it
        rows = [] if overwrite else load_partial(out_dir, fingerprint, num_points, num_seeds, keys)
        remove_temp_files(out_dir)
        atomic_write_text(os.path.join(out_dir, MARKER), json.dumps({"format": MARKER_FORMAT}))
    except BaseException:
        OpenFolder(out_dir, lock, created, []).close(discard=True)
        raise
    return OpenFolder(out_dir, lock, created, rows)


CURVES, BEST_MEMBER = "curves.jsonl", "best_member"


def _curve_lines(out_dir: str) -> list[dict]:
    """The lines of curves.jsonl that parse (a torn or damaged line is dropped: it is rewritten)."""
    path = os.path.join(out_dir, CURVES)
    if not os.path.exists(path):
        return []
    lines = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for text in f:
            try:
                line = json.loads(text)
            except ValueError:
                continue
            if isinstance(line, dict) and {"point", "seed_index"} <= set(line):
                lines.append(line)
    return lines


def keep_curves(out_dir: str, rows: list[dict]) -> None:
    """Rewrites curves.jsonl with one line per member of `rows` (a killed sweep may have appended
    curves of members whose rows it never wrote; a resumed one appends them again)."""
    members = {(r["point"], r["seed_index"]) for r in rows}
    kept = {(c["point"], c["seed_index"]): c for c in _curve_lines(out_dir) if (c["point"], c["seed_index"]) in members}
    atomic_write_text(os.path.join(out_dir, CURVES), "".join(json.dumps(to_strict_json(c)) + "\n"
                                                             for c in kept.values()))


def append_curves(out_dir: str, curves: list[dict]) -> None:
    """Appends one JSON line per member (`point`, `seed_index`, `env_steps`, `episode_return`), flushed."""
    with open(os.path.join(out_dir, CURVES), "a") as f:
        f.write("".join(json.dumps(to_strict_json(c)) + "\n" for c in curves))
        f.flush()
        os.fsync(f.fileno())


def read_curves(out_dir: str) -> dict:
    """`{(point, seed_index): {"env_steps": [...], "episode_return": [...]}}` of curves.jsonl (null: NaN)."""
    return {(c["point"], c["seed_index"]): {"env_steps": c.get("env_steps", []),
                                            "episode_return": [math.nan if v is None else v
                                                               for v in c.get("episode_return", [])]}
            for c in _curve_lines(out_dir)}


def best_member_score(out_dir: str, fingerprint: str) -> float:
    """The score of the member saved in `best_member/` by the sweep `fingerprint` (-inf if none or unreadable)."""
    path = os.path.join(out_dir, BEST_MEMBER)
    try:
        member = read_meta(os.path.join(path, CHECKPOINT))["sweep_member"]
        with open(os.path.join(path, CONFIG)) as f:
            consistent = config_hash(json.load(f)) == read_meta(os.path.join(path, CHECKPOINT))["config_hash"]
        if member["fingerprint"] == fingerprint and consistent and math.isfinite(member["score"]):
            return float(member["score"])
    except Exception:
        pass
    return -math.inf


def write_best_member(out_dir: str, run: RunConfig, state: Any, num_iterations: int, member: dict) -> str:
    """Writes `best_member/`: a finished run directory of one member (`run`, one seed) whose checkpoint
    holds `state` (a `RunnerState` with a leading axis of 1) at its last iteration, so `jaxmarl-lab
    eval`, `render` and `train --resume` (nothing left to do) read it. The checkpoint goes first; its
    meta holds `member` (point, seed, score, sweep fingerprint) and the run config's hash. The folder
    is replaced as a whole (orbax does not rewrite a step it holds); a kill meanwhile leaves it without
    a readable member, so `best_member_score` is -inf and the next chunk writes it again."""
    path = os.path.join(out_dir, BEST_MEMBER)
    with critical():
        lock = open_run_dir(path, overwrite=True)  # replaces only a run directory (`layout.check_replaceable`)
        try:
            save_checkpoint(os.path.join(path, CHECKPOINT), state,
                            {"run": run.to_dict(), "config_hash": config_hash(run.to_dict()),
                             "num_iterations": num_iterations, "chunk_updates": num_iterations,
                             "iteration": num_iterations, "sweep_member": member}, this_process_only=True)
            save_run_config(run, os.path.join(path, CONFIG))
            atomic_write_json(os.path.join(path, TRAIN), {"chunk_updates": num_iterations})
            if not os.path.exists(os.path.join(path, METRICS)):
                atomic_write_text(os.path.join(path, METRICS), "")
        finally:
            lock.release()
    return path


def saved_rows(out_dir: str, fingerprint: str) -> int | None:
    """How many rows of the sweep `fingerprint` its results.json holds; None if it cannot tell
    (never raises: for the line printed when a sweep is interrupted)."""
    try:
        with open(os.path.join(out_dir, "results.json")) as f:
            data = json.load(f)
        return len(data["rows"]) if data["fingerprint"] == fingerprint else None
    except Exception:
        return None


def plot_sweep(dims, rows: list[dict], ranking: list[dict], path: str, metric: str = METRIC) -> None:
    """PNG: one panel per swept name, every (point, seed) as a dot and each point's IQM with its CI."""
    import matplotlib  # lazily: plotting is optional

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(dims), figsize=(4.2 * len(dims), 3.6), squeeze=False)
    for ax, dim in zip(axes[0], dims):
        values = [r[dim.key] for r in ranking]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        levels = sorted(set(values), key=str) if not numeric else None
        where = (lambda v: v) if numeric else (lambda v: levels.index(v))
        ax.scatter([where(r[dim.key]) for r in rows], [r[metric] for r in rows], s=8, alpha=0.35,
                   color="gray", label="seeds")
        centre = np.asarray([r["iqm"] for r in ranking])
        err = np.abs(np.asarray([[r["ci_low"] for r in ranking], [r["ci_high"] for r in ranking]]) - centre)
        ax.errorbar([where(v) for v in values], centre, yerr=err, fmt="o", markersize=4, capsize=2,
                    label="IQM, 95% CI")
        if numeric and (dim.distribution == "log_uniform" or (min(values) > 0 and max(values) / min(values) >= 100)):
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(levels)), [str(v) for v in levels])
        ax.set_xlabel(dim.key)
        ax.set_ylabel(metric.replace("_", " "))
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Sweep: per-point IQM over seeds (bootstrap 95% CI)")
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)


def write_outputs(out_dir: str, spec, dims, rows: list[dict], ranking: list[dict], best: RunConfig | None,
                  extra: dict) -> dict[str, str]:
    """Every file of a finished sweep; returns `{kind: path}`.

    results.json, marked complete, is written last: when it says complete, the other files
    are those of the same rows (a sweep killed before that rewrites them all when rerun).
    """
    paths = {"json": os.path.join(out_dir, "results.json"), "csv": os.path.join(out_dir, "results.csv"),
             "ranking": os.path.join(out_dir, "ranking.csv")}
    atomic_write_csv(paths["ranking"], ranking)
    if best is not None:
        paths["best_config"] = os.path.join(out_dir, "best_config.json")
        save_run_config(best, paths["best_config"])
    try:
        paths["png"] = os.path.join(out_dir, "sweep.png")
        plot_sweep(dims, rows, ranking, paths["png"])
    except ImportError:  # matplotlib is optional
        del paths["png"]
    write_partial(out_dir, spec, rows, complete=True,
                  extra={"ranking": ranking, "best_config": best.to_dict() if best else None,
                         "bootstrap": {"resamples": NUM_BOOTSTRAP, "level": CI_LEVEL, "metric": METRIC}, **extra})
    return paths


def format_ranking(ranking: list[dict], keys: list[str], top: int = 10) -> str:
    """The best `top` points as text lines."""
    lines = []
    for r in ranking[:top]:
        values = ", ".join(f"{k}={r[k]:.4g}" if isinstance(r[k], float) else f"{k}={r[k]}" for k in keys)
        lines.append(f"#{r['rank']:<3} point {r['point']:<4} {values}: IQM {r['iqm']:.3f} "
                     f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] over {r['seeds']} seeds")
    return "\n".join(lines)
