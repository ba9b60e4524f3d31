"""Checkpoints of a whole training state: orbax-checkpoint directories, checked on load.

A checkpoint is a directory (`checkpoint/` in a run directory) managed by orbax-checkpoint's
`CheckpointManager`: one step folder per saved iteration, each holding `state/` (every leaf of
the seed-stacked `RunnerState`, sharded arrays included, in orbax's OCDBT/zarr format) and
`meta/` (JSON: the run config and its hash, the iteration, the chunk length, the tree
structure and every leaf's shape and dtype). Orbax writes a step into
`<step>.orbax-checkpoint-tmp` and renames it into place, then deletes the older step, so a
kill at any moment leaves the previous complete step or the new one.

    writer = CheckpointWriter(path)                         # async: save returns once arrays are on the host
    writer.save(state, meta); ...; writer.close()          # close waits for the last save
    state, meta = load_checkpoint(path, template, config_hash)

`load_checkpoint` refuses, with one `ValueError` line, a checkpoint that is unreadable or
truncated ("corrupt") and one written for another run config or with other shapes
("mismatched"), before any array is restored. The template is a pytree of
`jax.ShapeDtypeStruct`s; leaves that carry a `sharding` are restored onto it.

Run directories from before orbax hold one `checkpoint.npz` (format 1); `load_checkpoint`
and `read_meta` still read it (`_read_npz_meta`, `_load_npz`), and a resumed run writes its
next checkpoint in the new format.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import shutil
import sys
import warnings
import zipfile
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxmarl_lab.runs.layout import ORBAX_TMP

FORMAT = "jaxmarl-lab-checkpoint/2"
NPZ_FORMAT = "jaxmarl-lab-checkpoint/1"
_STEP = re.compile(r"\d+")
_TMP_STEP = re.compile(r"\d+" + re.escape(ORBAX_TMP) + r"(-\d+)?")


class CheckpointSaveError(OSError):
    """Writing a checkpoint failed (a full disk, say); `iteration` names the one that was lost."""

    def __init__(self, iteration: int, reason: str, errno_: int | None = None):
        super().__init__(errno_, reason)
        self.iteration = iteration


class _QuietOrbax(logging.Filter):
    """Drops orbax's log records (warnings about read-only managers, tracebacks of a failed save):
    what goes wrong reaches the user as one line from the caller."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}orbax{os.sep}" not in record.pathname


logging.getLogger("absl").addFilter(_QuietOrbax())


class _AbandonedReads(logging.Filter):
    """What orbax's abandoned reads report once one array of a checkpoint could not be read.

    Orbax then raises at once and closes its event loop; its other reads, still under way in
    tensorstore's threads, report into the closed loop: 'Event loop is closed', errors of orbax
    coroutines (`sys.unraisablehook`), asyncio's '... exception was never retrieved' (its
    logger) and 'coroutine ... was never awaited' (a warning), which Python prints as
    tracebacks around the one error line the user gets. These are dropped (asyncio's records
    from a failed restore on, `quiet`); everything else passes on.
    """

    quiet = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.quiet and "exception was never retrieved" in record.getMessage())


_ABANDONED = _AbandonedReads()


def _install_abandoned_read_filters() -> None:
    if _ABANDONED in logging.getLogger("asyncio").filters:
        return
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        obj, exc = unraisable.object, unraisable.exc_value
        orbax = inspect.iscoroutine(obj) and f"{os.sep}orbax{os.sep}" in obj.cr_code.co_filename
        closed = isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"
        if not (orbax or closed):  # also before `quiet`: they may arrive while orbax shuts its loop down
            previous(unraisable)
    sys.unraisablehook = hook
    logging.getLogger("asyncio").addFilter(_ABANDONED)
    warnings.filterwarnings("ignore", message="coroutine '_read_array_index_and_device_put' was never awaited")


def config_hash(run_dict: dict) -> str:
    """SHA-256 (hex, first 16 characters) of a run config's canonical JSON."""
    text = json.dumps(run_dict, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_leaves(tree: Any) -> list[list]:
    """`[[shape, dtype], ...]` of a pytree of arrays or `jax.ShapeDtypeStruct`s."""
    return [[list(np.shape(x)), str(np.dtype(x.dtype))] for x in jax.tree.leaves(tree)]


def _manager(path: str, read_only: bool, this_process_only: bool = False) -> ocp.CheckpointManager:
    extra = {}
    if this_process_only and jax.process_count() > 1:  # no barrier with processes that do not save
        me = jax.process_index()
        extra["multiprocessing_options"] = ocp.options.MultiprocessingOptions(
            primary_host=me, active_processes={me}, barrier_sync_key_prefix=f"process{me}")
        os.makedirs(path, exist_ok=True)  # orbax refuses `create` with `active_processes`
    options = ocp.CheckpointManagerOptions(max_to_keep=None if read_only else 1, read_only=read_only,
                                           create=not read_only and not extra,
                                           enable_async_checkpointing=not read_only, **extra)
    handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(os.path.abspath(path), item_names=("state", "meta"), item_handlers=handlers,
                                 options=options)


class CheckpointWriter:
    """Saves checkpoints into the orbax directory `path`, keeping only the latest complete one.

    `save` returns once the arrays are copied off the device; the files are written in a
    background thread while training goes on. The next `save`, `wait` or `close` waits for
    it and raises `CheckpointSaveError` (naming the lost iteration) if it failed; the previous
    checkpoint stays. A failed or killed save leaves its `<step>.orbax-checkpoint-tmp` folder
    (orbax's other writes of that step may still be under way when the error arrives), which
    never counts as a checkpoint; the next writer (`train --resume`) removes it.
    """

    def __init__(self, path: str, this_process_only: bool = False):
        self.path = path
        remove_temp_dirs(path)
        self._manager = _manager(path, read_only=False, this_process_only=this_process_only)
        self._pending: int | None = None
        self.last_saved: int | None = self._manager.latest_step()

    def save(self, state: Any, meta: dict) -> None:
        """Starts writing `state` (arrays, possibly sharded) with `meta` (needs `"iteration"`)."""
        self.wait()
        iteration = int(meta["iteration"])
        full_meta = {**meta, "format": FORMAT, "treedef": str(jax.tree.structure(state)),
                     "leaves": describe_leaves(state)}
        self._pending = iteration
        try:
            self._manager.save(iteration, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                                  meta=ocp.args.JsonSave(full_meta)))
        except Exception as e:
            self._failed(e)

    def wait(self) -> None:
        """Waits for the save under way. Raises CheckpointSaveError if it failed."""
        if self._pending is None:
            return
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            self._failed(e)
        self.last_saved, self._pending = self._pending, None

    def close(self) -> None:
        """`wait`, then releases orbax's threads."""
        try:
            self.wait()
        finally:
            self._manager.close()

    def _failed(self, e: Exception) -> None:
        iteration, self._pending = self._pending, None
        cause = e
        while cause.__cause__ is not None and not isinstance(cause, OSError):
            cause = cause.__cause__
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else f"{type(e).__name__}: {e}"
        raise CheckpointSaveError(iteration, reason.splitlines()[0] if reason else type(e).__name__,
                                  getattr(cause, "errno", None)) from None


def save_checkpoint(path: str, state: Any, meta: dict, this_process_only: bool = False) -> None:
    """Writes one checkpoint and waits for it (`CheckpointWriter` for a training loop).

    `this_process_only`: in a multi-process program, only this process saves (host arrays), without
    waiting for the others (the sweep's process 0 writing its best member)."""
    writer = CheckpointWriter(path, this_process_only)
    try:
        writer.save(state, meta)
    finally:
        writer.close()


def remove_temp_dirs(path: str) -> None:
    """Removes the `<step>.orbax-checkpoint-tmp*` folders a writer killed mid-save left in `path`."""
    if not os.path.isdir(path) or os.path.islink(path):
        return
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if _TMP_STEP.fullmatch(name) and os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)


def latest_step(path: str) -> int | None:
    """The newest complete step in the orbax directory `path` (None if it has none)."""
    if not os.path.isdir(path):
        return None
    steps = [int(n) for n in os.listdir(path) if _STEP.fullmatch(n) and os.path.isdir(os.path.join(path, n))]
    return max(steps) if steps else None


def has_checkpoint(path: str) -> bool:
    """Whether `path` is an old `.npz` checkpoint or an orbax directory holding a complete step."""
    return os.path.isfile(path) or latest_step(path) is not None


def read_meta(path: str) -> dict:
    """The meta of the latest checkpoint in `path` (an orbax directory, or an old `.npz`).

    Raises:
        FileNotFoundError: no checkpoint at `path`.
        ValueError: its meta is missing or corrupt.
    """
    if os.path.isfile(path):
        return _read_npz_meta(path)
    return _latest(path, lambda step: _read_step_meta(path, step))


def load_checkpoint(path: str, template: Any, expected_hash: str) -> tuple[Any, dict]:
    """Reads the latest checkpoint in `path` into the structure of `template`.

    `template` is a pytree of arrays or `jax.ShapeDtypeStruct`s (`jax.eval_shape(init)`); a
    leaf with a `sharding` is restored onto that sharding, one without onto the first device
    (whatever shardings the checkpoint was saved with). `path` may be an old `.npz`.

    Raises:
        FileNotFoundError: no checkpoint at `path`.
        ValueError: the checkpoint is corrupt or truncated, was written for a run config
            whose hash is not `expected_hash`, or holds another tree structure, shape or
            dtype than `template`.
    """
    if os.path.isfile(path):
        meta = _read_npz_meta(path)
        leaves = _load_npz(path, _check_meta(path, meta, template, expected_hash))
        return jax.tree.unflatten(jax.tree.structure(template), leaves), meta
    return _latest(path, lambda step: _load_step(path, step, template, expected_hash))


def _latest(path: str, read: Callable[[int], Any]) -> Any:
    """`read(step)` of the latest step; again if it failed because a training run in another process
    committed a newer step and deleted that one meanwhile (an `eval` during training)."""
    for attempt in range(3):
        step = latest_step(path)
        if step is None:
            raise FileNotFoundError(f"checkpoint {path!r} does not exist")
        try:
            return read(step)
        except ValueError:
            if attempt == 2 or latest_step(path) == step:
                raise


def _read_step_meta(path: str, step: int) -> dict:
    where = os.path.join(path, str(step))
    try:
        meta = _manager(path, read_only=True).restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    except Exception as e:
        raise ValueError(f"checkpoint {where!r} is corrupt or truncated ({_brief(e)}); delete it to restart the "
                         f"run, or pass --overwrite") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("iteration") != step:
        raise ValueError(f"checkpoint {where!r} is corrupt: its meta is not a {FORMAT} record of step {step}")
    return meta


def _load_step(path: str, step: int, template: Any, expected_hash: str) -> tuple[Any, dict]:
    meta = _read_step_meta(path, step)
    where = os.path.join(path, str(step))
    _check_meta(where, meta, template, expected_hash)
    _install_abandoned_read_filters()
    try:  # orbax refuses a stored shape other than the template's before reading (`strict`)
        target = ocp.args.StandardRestore(_with_shardings(template))
        state = _manager(path, read_only=True).restore(step, args=ocp.args.Composite(state=target)).state
    except Exception as e:
        _ABANDONED.quiet = True
        raise ValueError(f"checkpoint {where!r} is corrupt or truncated ({_brief(e)}); delete it to restart the "
                         f"run, or pass --overwrite") from None
    return state, meta


def _with_shardings(template: Any) -> Any:
    """The template as ShapeDtypeStructs; a leaf without a sharding gets the first device (else orbax
    would restore onto the shardings saved in the checkpoint, which may name devices this host lacks)."""
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype,
                                                       sharding=getattr(x, "sharding", None) or device), template)


def _check_meta(where: str, meta: dict, template: Any, expected_hash: str) -> list[list]:
    """The template's `[shape, dtype]` list; ValueError if `meta` was written for another config or tree."""
    if meta.get("config_hash") != expected_hash:
        raise ValueError(f"checkpoint {where!r} is mismatched: written for run config {meta.get('config_hash')}, "
                         f"but the run directory's config.json hashes to {expected_hash}")
    if meta.get("treedef") != str(jax.tree.structure(template)):
        raise ValueError(f"checkpoint {where!r} is mismatched: its state has another tree structure than the "
                         f"run config builds (another learner, env or jaxmarl-lab version?)")
    expected = describe_leaves(template)
    for i, (got, want) in enumerate(zip(meta.get("leaves", []), expected)):
        if got != want:
            raise ValueError(f"checkpoint {where!r} is mismatched: leaf {i} is {got[1]}{tuple(got[0])}, "
                             f"the run config expects {want[1]}{tuple(want[0])}")
    if len(meta.get("leaves", [])) != len(expected):
        raise ValueError(f"checkpoint {where!r} is corrupt: its meta lists {len(meta.get('leaves', []))} leaves, "
                         f"the run config builds {len(expected)}")
    return expected


def _brief(e: BaseException) -> str:
    """The first line of the innermost cause of `e` (tensorstore's reason rather than orbax's wrapper)."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


# ----- format 1: one .npz (run directories from before orbax) ---------------------------------------
def _read_npz_meta(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"checkpoint {path!r} is corrupt or truncated ({type(e).__name__}: {e}); "
                         f"delete it to restart the run, or pass --overwrite") from None
    if not isinstance(meta, dict) or meta.get("format") != NPZ_FORMAT:
        raise ValueError(f"checkpoint {path!r} is not a {NPZ_FORMAT} file")
    return meta


def _load_npz(path: str, expected: list[list]) -> list[np.ndarray]:
    try:
        _check_npz_headers(path, expected)  # before np.load allocates what a (crafted) header claims
        with np.load(path, allow_pickle=False) as data:
            leaves = [data[f"leaf_{i:05d}"] for i in range(len(expected))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"checkpoint {path!r} is corrupt or truncated ({type(e).__name__}: {e})") from None
    for i, (x, want) in enumerate(zip(leaves, expected)):
        if [list(x.shape), str(x.dtype)] != want:
            raise ValueError(f"checkpoint {path!r} is corrupt: leaf {i} is {x.dtype}{x.shape}, its header "
                             f"says {want[1]}{tuple(want[0])}")
    return leaves


def _check_npz_headers(path: str, expected: list[list]) -> None:
    """Raises ValueError if an array header in the file disagrees with the expected `[shape, dtype]`."""
    with zipfile.ZipFile(path) as archive:
        for i, want in enumerate(expected):
            with archive.open(f"leaf_{i:05d}.npy") as f:
                major, _ = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
            if [list(shape), str(dtype)] != want:
                raise ValueError(f"leaf {i}'s array header claims {dtype}{tuple(shape)}, the run config expects "
                                 f"{want[1]}{tuple(want[0])}")


__all__ = ["FORMAT", "NPZ_FORMAT", "CheckpointSaveError", "CheckpointWriter", "config_hash", "describe_leaves",
           "save_checkpoint", "remove_temp_dirs", "latest_step", "has_checkpoint", "read_meta", "load_checkpoint"]
