"""Checkpoints of a whole training state, written atomically and checked on load.

A checkpoint is one `.npz` file: every leaf of the (seed-stacked) `RunnerState` as a
NumPy array (`leaf_00000`, ...) plus `meta`, a JSON string holding the run config and
its hash, the iteration count, the tree structure and every leaf's shape and dtype.

    save_checkpoint(path, state, meta)                      # temp file + os.replace
    state, meta = load_checkpoint(path, template, config_hash)

`load_checkpoint` refuses, with one `ValueError` line, a file that is unreadable or
truncated ("corrupt") and one written for another run config or with other shapes
("mismatched"), before any array reaches the device.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from typing import Any

import jax
import numpy as np

from jaxmarl_lab.runs.files import atomic_write

FORMAT = "jaxmarl-lab-checkpoint/1"


def config_hash(run_dict: dict) -> str:
    """SHA-256 (hex, first 16 characters) of a run config's canonical JSON."""
    text = json.dumps(run_dict, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_leaves(tree: Any) -> list[list]:
    """`[[shape, dtype], ...]` of a pytree of arrays or `jax.ShapeDtypeStruct`s."""
    return [[list(np.shape(x)), str(np.dtype(x.dtype))] for x in jax.tree.leaves(tree)]


def save_checkpoint(path: str, state: Any, meta: dict) -> None:
    """Writes `state` (a pytree of arrays) and `meta` to `path` atomically.

    The arrays are copied to the host, written to a temporary file in the same folder,
    flushed to disk and renamed over `path` (`files.atomic_write`), so a reader (or a killed
    writer, or a full disk) only ever leaves the previous complete checkpoint or the new one.
    """
    leaves, treedef = jax.tree.flatten(jax.device_get(state))
    full_meta = {**meta, "format": FORMAT, "treedef": str(treedef), "leaves": describe_leaves(leaves)}
    arrays = {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(leaves)}
    atomic_write(path, lambda f: np.savez(f, meta=np.array(json.dumps(full_meta)), **arrays))


def read_meta(path: str) -> dict:
    """The `meta` of a checkpoint. Raises ValueError if it is missing or corrupt."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"checkpoint {path!r} is corrupt or truncated ({type(e).__name__}: {e}); "
                         f"delete it to restart the run, or pass --overwrite") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path!r} is not a {FORMAT} file")
    return meta


def load_checkpoint(path: str, template: Any, expected_hash: str) -> tuple[Any, dict]:
    """Reads a checkpoint into the structure of `template` (arrays or ShapeDtypeStructs).

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the file is corrupt or truncated, was written for a run config
            whose hash is not `expected_hash`, or holds another tree structure, shape
            or dtype than `template`.
    """
    meta = read_meta(path)
    if meta.get("config_hash") != expected_hash:
        raise ValueError(f"checkpoint {path!r} is mismatched: written for run config {meta.get('config_hash')}, "
                         f"but the run directory's config.json hashes to {expected_hash}")
    leaves_t, treedef = jax.tree.flatten(template)
    if meta.get("treedef") != str(treedef):
        raise ValueError(f"checkpoint {path!r} is mismatched: its state has another tree structure than the "
                         f"run config builds (another learner, env or jaxmarl-lab version?)")
    expected = describe_leaves(leaves_t)
    for i, (got, want) in enumerate(zip(meta.get("leaves", []), expected)):
        if got != want:
            raise ValueError(f"checkpoint {path!r} is mismatched: leaf {i} is {got[1]}{tuple(got[0])}, "
                             f"the run config expects {want[1]}{tuple(want[0])}")
    try:
        _check_headers(path, expected)  # before np.load allocates what a (crafted) header claims
        with np.load(path, allow_pickle=False) as data:
            leaves = [data[f"leaf_{i:05d}"] for i in range(len(expected))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"checkpoint {path!r} is corrupt or truncated ({type(e).__name__}: {e})") from None
    for i, (x, want) in enumerate(zip(leaves, expected)):
        if [list(x.shape), str(x.dtype)] != want:
            raise ValueError(f"checkpoint {path!r} is corrupt: leaf {i} is {x.dtype}{x.shape}, its header "
                             f"says {want[1]}{tuple(want[0])}")
    return jax.tree.unflatten(treedef, leaves), meta


def _check_headers(path: str, expected: list[list]) -> None:
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
