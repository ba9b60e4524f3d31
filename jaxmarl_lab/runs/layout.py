"""The layout of a run directory, and the rules that keep a user's other files safe.

A run directory holds only files a run writes:

    .jaxmarl-lab-run     marker: written first, proves the folder is a run (JSON: format, created)
    .lock                fcntl lock of the process working in it, holding its pid
    config.json          the RunConfig (`train --config` reads it)
    train.json           the chunk length
    metrics.jsonl        one JSON row per iteration
    checkpoint/          the whole training state: an orbax-checkpoint directory holding the latest
                         step folder (`<iteration>/`, plus `<iteration>.orbax-checkpoint-tmp*` while one
                         is written), see `runs.checkpoint`
    checkpoint.npz       the checkpoint of a run from before orbax (still read; replaced on resume)
    learning_curve.png   the plot of metrics.jsonl
    eval.json            written by `jaxmarl-lab eval`
    .tmp-*               a temporary file of an atomic write (removed on resume)

`open_run_dir(path, overwrite=True)` replaces a folder only when it is provably a run: it
holds the marker and nothing else but the names above; it is not a symlink, the working
directory or one of its parents. Even then it deletes only those names, and the one tree it
removes, `checkpoint/`, must hold only step folders as orbax writes them and no symlink.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

from jaxmarl_lab.runs.files import LOCK, TMP_PREFIX, DirLock, atomic_write_text

MARKER, CONFIG, TRAIN, METRICS, CHECKPOINT, NPZ_CHECKPOINT, CURVE, EVAL = (
    ".jaxmarl-lab-run", "config.json", "train.json", "metrics.jsonl", "checkpoint", "checkpoint.npz",
    "learning_curve.png", "eval.json")
RUN_FILES = frozenset({MARKER, LOCK, CONFIG, TRAIN, METRICS, CHECKPOINT, NPZ_CHECKPOINT, CURVE, EVAL})
MARKER_FORMAT = "jaxmarl-lab-run/1"
ORBAX_TMP = ".orbax-checkpoint-tmp"  # a step being written: `<step>.orbax-checkpoint-tmp` (some orbax versions add `-<time>`)
STEP_ENTRIES = frozenset({"state", "meta", "_CHECKPOINT_METADATA", "commit_success.txt"})  # a step folder's names
_STEP_FOLDER = re.compile(r"\d+(" + re.escape(ORBAX_TMP) + r"(-\d+)?)?")
_ITEM_TMP = re.compile(r"(state|meta)" + re.escape(ORBAX_TMP) + r"(-\d+)?")  # an item of a step being written


def _is_run_file(name: str) -> bool:
    return name in RUN_FILES or name.startswith(TMP_PREFIX)


def _is_foreign(run_dir: str, name: str) -> bool:
    """Whether `name` in `run_dir` is something a run does not write (so --overwrite must not delete it)."""
    path = os.path.join(run_dir, name)
    if name == CHECKPOINT:
        return not _is_checkpoint_tree(path)
    return not _is_run_file(name) or os.path.isdir(path)


def _is_checkpoint_tree(path: str) -> bool:
    """`checkpoint/` holds only orbax step folders (`<step>/`, `<step>.orbax-checkpoint-tmp-*/`) with orbax's
    entries, and no symlink anywhere: what orbax writes, so removing it removes nothing of the user's."""
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    for name in os.listdir(path):
        step = os.path.join(path, name)
        if not _STEP_FOLDER.fullmatch(name) or os.path.islink(step) or not os.path.isdir(step):
            return False
        if not all(n in STEP_ENTRIES or _ITEM_TMP.fullmatch(n) for n in os.listdir(step)):
            return False
        for root, dirs, files in os.walk(step):
            if any(os.path.islink(os.path.join(root, n)) for n in dirs + files):
                return False
    return True


def check_replaceable(run_dir: str) -> None:
    """Raises FileExistsError (one line, naming why) unless `run_dir` may be replaced by a new run."""
    if os.path.islink(run_dir):
        raise FileExistsError(f"--run-dir {run_dir!r} is a symlink; --overwrite never replaces a symlink or "
                              f"what it points to (remove the link, or give the real folder)")
    if not os.path.isdir(run_dir):
        raise FileExistsError(f"--run-dir {run_dir!r} is a file, not a directory")
    real, cwd = os.path.realpath(run_dir), os.path.realpath(os.getcwd())
    if real == cwd or cwd.startswith(real.rstrip(os.sep) + os.sep):
        raise FileExistsError(f"--overwrite refuses {run_dir!r}: it is the working directory or one of its parents")
    names = os.listdir(run_dir)
    if not names:
        return
    if MARKER not in names:
        raise FileExistsError(f"--overwrite only replaces a folder written by `jaxmarl-lab train` (it has the "
                              f"{MARKER} marker); {run_dir!r} has none, so nothing was deleted")
    foreign = sorted(n for n in names if _is_foreign(run_dir, n))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise FileExistsError(f"--overwrite refuses {run_dir!r}: it holds files a run does not write ({shown}); "
                              f"nothing was deleted")


def open_run_dir(run_dir: str, overwrite: bool) -> DirLock:
    """Creates `run_dir` (or empties a replaceable old run in it) and returns its held lock.

    Call this only after everything that can fail before training has been built: the old
    run is gone once it returns.

    Raises:
        FileExistsError: `run_dir` exists and `overwrite` is false, or it may not be replaced.
        LockedError: another process works in it.
        PermissionError: the folder or its parent is read-only.
    """
    if os.path.lexists(run_dir):
        if not overwrite:
            raise FileExistsError(f"run directory {run_dir!r} already exists; pass --overwrite to replace it, "
                                  f"--resume {run_dir} to continue it, or another --run-dir")
        check_replaceable(run_dir)
        lock = DirLock(run_dir, "run directory").acquire()
        check_replaceable(run_dir)  # again, now that no other jaxmarl-lab process can write in it
        for name in os.listdir(run_dir):
            if name == CHECKPOINT:
                shutil.rmtree(os.path.join(run_dir, name))  # checked by check_replaceable: only orbax's tree
            elif _is_run_file(name) and name not in (LOCK, MARKER):
                os.unlink(os.path.join(run_dir, name))
    else:
        parent = os.path.dirname(os.path.abspath(run_dir))
        try:
            os.makedirs(parent, exist_ok=True)
            os.mkdir(run_dir)
        except FileExistsError:  # another process created it a moment ago
            raise FileExistsError(f"run directory {run_dir!r} already exists; pass --overwrite to replace it, "
                                  f"--resume {run_dir} to continue it, or another --run-dir") from None
        except PermissionError:
            raise PermissionError(f"cannot create run directory {run_dir!r}: permission denied in "
                                  f"{os.path.dirname(os.path.abspath(run_dir))!r}") from None
        lock = DirLock(run_dir, "run directory").acquire()
    atomic_write_text(os.path.join(run_dir, MARKER),
                      json.dumps({"format": MARKER_FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
    return lock


def read_metrics(path: str) -> list[dict]:
    """The rows of a `metrics.jsonl`; a torn last line (as a kill leaves it) is skipped.

    Raises:
        ValueError: any other line is not a JSON object (naming the file and line).
    """
    return [row for _, row in _metric_lines(path)]


def _metric_lines(path: str) -> list[tuple[str, dict]]:
    """`(line text, row)` of every row; a last line without its newline is a torn write and is
    kept only if it parses. ValueError on any damaged complete line."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    tail = lines.pop()  # the text after the last newline: "" unless a kill tore the last write
    out = []
    for i, line in enumerate(lines + [tail] if tail else lines):
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if i == len(lines):
                break
            raise ValueError(f"{path} line {i + 1} is damaged ({e}); nothing was rewritten and the "
                             f"{len(lines) - i - 1} line(s) after it are untouched: repair or delete that line, "
                             f"then run again") from None
        out.append((line, row))
    return out


def trim_metrics(path: str, iteration: int) -> None:
    """Keeps the rows up to `iteration` (a killed run may have logged past its checkpoint) and
    drops a torn last line; the kept lines are written back unchanged, atomically.

    Raises:
        ValueError: a line other than the last is damaged (then nothing is rewritten).
    """
    lines = _metric_lines(path)
    kept = [text for text, row in lines if row.get("iteration", 0) <= iteration]
    atomic_write_text(path, "".join(text + "\n" for text in kept))


__all__ = ["MARKER", "CONFIG", "TRAIN", "METRICS", "CHECKPOINT", "NPZ_CHECKPOINT", "CURVE", "EVAL", "RUN_FILES",
           "ORBAX_TMP", "STEP_ENTRIES", "check_replaceable", "open_run_dir", "read_metrics", "trim_metrics"]
