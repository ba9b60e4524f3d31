"""Checkpoint size on disk, save time and restore time: the old `.npz` format against orbax.

For 4-seed training states of the default `jaxmarl-lab train` run (MAPPO on particle-spread,
`RunConfig(num_seeds=4)`) and of QMIX (same env, its default replay buffer of 5,000
sequences per seed), trained for a few iterations and, for QMIX, also until the buffer is
full (orbax compresses, so how much of the buffer holds data matters):

  npz    : the format-1 writer jaxmarl-lab used before orbax (commit 4cb8545, re-implemented
           here): every leaf copied to the host, `np.savez` into a temporary file, fsync,
           rename. Restore: `np.load` of every leaf, then onto the device.
  orbax  : `runs.checkpoint.CheckpointWriter` (what `train` uses now): `save` returns once the
           arrays are on the host ("blocking", what the training loop waits for), the files
           are written in a background thread ("total" is save + wait). Restore:
           `load_checkpoint` onto the `jax.eval_shape` template.

Times are the median of `--repeats` saves (and restores) of the same state into one folder,
after one unmeasured save.

    python benchmarks/checkpoint_size.py
    python benchmarks/checkpoint_size.py --repeats 3 --out benchmarks/results/checkpoint_size.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

import jax
import numpy as np

from jaxmarl_lab.runs import training
from jaxmarl_lab.runs.checkpoint import CheckpointWriter, config_hash, describe_leaves, load_checkpoint
from jaxmarl_lab.runs.config import RunConfig
from jaxmarl_lab.runs.files import atomic_write

NPZ_FORMAT = "jaxmarl-lab-checkpoint/1"


def save_npz(path: str, state, meta: dict) -> None:
    """The format-1 writer (jaxmarl_lab/runs/checkpoint.py at commit 4cb8545)."""
    leaves, treedef = jax.tree.flatten(jax.device_get(state))
    full_meta = {**meta, "format": NPZ_FORMAT, "treedef": str(treedef), "leaves": describe_leaves(leaves)}
    arrays = {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(leaves)}
    atomic_write(path, lambda f: np.savez(f, meta=np.array(json.dumps(full_meta)), **arrays))


def load_npz(path: str, template):
    with np.load(path, allow_pickle=False) as data:
        leaves = [jax.device_put(data[f"leaf_{i:05d}"]) for i in range(len(jax.tree.leaves(template)))]
    return jax.tree.unflatten(jax.tree.structure(template), leaves)


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, n)) for root, _, names in os.walk(path) for n in names)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tick)
    return statistics.median(times)


def measure(name: str, run: RunConfig, iterations: int, repeats: int, folder: str) -> dict:
    t = training.make_training(run)
    state = t.init()
    chunk = min(iterations, 50)
    for _ in range(iterations // chunk):
        state, _ = t.chunk(state, chunk)
    if iterations % chunk:
        state, _ = t.chunk(state, iterations % chunk)
    jax.block_until_ready(state)
    template = jax.eval_shape(t.init)
    meta = {"run": run.to_dict(), "config_hash": config_hash(run.to_dict()), "num_iterations": 0,
            "chunk_updates": 1}
    raw = sum(x.nbytes for x in jax.tree.leaves(state))
    data = jax.tree.leaves(getattr(getattr(state, "buffer", None), "data", None))
    filled = (f"{int(np.asarray(state.buffer.size)[0]):,}/{np.shape(data[0])[1]:,}"
              if data and np.ndim(data[0]) >= 2 else "-")  # sequences held / capacity, seed 0

    npz = os.path.join(folder, f"{name}.npz")
    save_npz(npz, state, {**meta, "iteration": 0})
    npz_save = median_time(lambda: save_npz(npz, state, {**meta, "iteration": 0}), repeats)
    npz_restore = median_time(lambda: jax.block_until_ready(load_npz(npz, template)), repeats)

    path = os.path.join(folder, name)
    writer = CheckpointWriter(path)
    step = iter(range(1, 10 * repeats + 10))
    writer.save(state, {**meta, "iteration": next(step)})
    writer.wait()
    blocking, total = [], []
    for _ in range(repeats):
        tick = time.perf_counter()
        writer.save(state, {**meta, "iteration": next(step)})
        blocking.append(time.perf_counter() - tick)
        writer.wait()
        total.append(time.perf_counter() - tick)
    writer.close()
    restored = load_checkpoint(path, template, meta["config_hash"])[0]
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state)))
    orbax_restore = median_time(lambda: jax.block_until_ready(load_checkpoint(path, template, meta["config_hash"])),
                                repeats)
    return {"state": name, "iterations": iterations, "buffer": filled, "raw_mb": raw / 1e6,
            "npz_mb": os.path.getsize(npz) / 1e6, "orbax_mb": folder_bytes(path) / 1e6,
            "npz_save_s": npz_save, "orbax_save_blocking_s": statistics.median(blocking),
            "orbax_save_total_s": statistics.median(total), "npz_restore_s": npz_restore,
            "orbax_restore_s": orbax_restore}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="saves and restores timed per row (default 5)")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here (default: none)")
    args = parser.parse_args()
    qmix = RunConfig(learner="qmix", num_seeds=4)
    fill = -(-5000 // 16)  # iterations until QMIX's 5,000-sequence buffer is full (16 envs per iteration)
    cases = [("mappo", RunConfig(num_seeds=4), 10), ("qmix", qmix, 10), ("qmix-full-buffer", qmix, fill)]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, run, iterations in cases:
            rows.append(measure(name, run, iterations, args.repeats, folder))
            shutil.rmtree(os.path.join(folder, name))
    print(f"jax {jax.__version__}, orbax-checkpoint {__import__('orbax.checkpoint').checkpoint.__version__}, "
          f"backend {jax.default_backend()}, 4 seeds, median of {args.repeats}")
    header = (f"{'state (4 seeds)':<18} {'iters':>5} {'buffer':>11} {'arrays':>8} {'npz':>8} {'orbax':>8} "
              f"{'npz save':>9} {'orbax save':>17} {'npz load':>9} {'orbax load':>10}")
    units = f"{'':<18} {'':>5} {'':>11} {'MB':>8} {'MB':>8} {'MB':>8} {'':>9} {'blocking / total':>17}"
    print(header + "\n" + units)
    for r in rows:
        print(f"{r['state']:<18} {r['iterations']:>5} {r['buffer']:>11} {r['raw_mb']:>8.2f} {r['npz_mb']:>8.2f} "
              f"{r['orbax_mb']:>8.2f} {r['npz_save_s']:>8.3f}s {r['orbax_save_blocking_s']:>7.3f}s / "
              f"{r['orbax_save_total_s']:.3f}s {r['npz_restore_s']:>8.3f}s {r['orbax_restore_s']:>9.3f}s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"jax": jax.__version__, "repeats": args.repeats, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
