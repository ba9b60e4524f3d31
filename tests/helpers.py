"""What several test files share: running the command line and checking its one error line, hashing
a folder's files, and writing a checkpoint the way jaxmarl-lab did before orbax."""

from __future__ import annotations

import hashlib
import json
import os

import jax
import numpy as np

from jaxmarl_lab.cli import main
from jaxmarl_lab.runs.checkpoint import NPZ_FORMAT, describe_leaves
from jaxmarl_lab.runs.files import atomic_write


def snapshot(folder: str) -> dict:
    """`{relative path: sha256}` of every file under `folder` but a `.lock` (taken by whoever looks)."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in (n for n in names if n != ".lock"):
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def one_error_line(capsys, argv: list[str]) -> str:
    """Runs the CLI, checks exit status 2 and exactly one `jaxmarl-lab: error:` line on stderr, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxmarl-lab: error: "), err
    assert "Traceback" not in err
    return lines[0]


def write_npz_checkpoint(path: str, state, meta: dict) -> None:
    """A format-1 `checkpoint.npz`, byte for byte as `save_checkpoint` wrote it before orbax (commit 4cb8545)."""
    leaves, treedef = jax.tree.flatten(jax.device_get(state))
    full_meta = {**meta, "format": NPZ_FORMAT, "treedef": str(treedef), "leaves": describe_leaves(leaves)}
    arrays = {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(leaves)}
    atomic_write(path, lambda f: np.savez(f, meta=np.array(json.dumps(full_meta)), **arrays))
