"""Ranking and files of a hyperparameter sweep (NumPy side; nothing here is traced).

Points are ranked by the interquartile mean (IQM) of `final_return` over their seeds, with
a percentile-bootstrap 95% CI over seeds, as rliable (Agarwal et al. 2021, "Deep RL at the
Edge of the Statistical Precipice") and marl-eval recommend. Files under the output folder,
each written atomically (temporary file + `os.replace`):

  results.json   {"fingerprint", "complete", "sweep", "rows", ["ranking", "best_config", ...]}
  results.csv    one row per (point, seed)
  ranking.csv    one row per point, best first
  best_config.json   a RunConfig of the best point (`jaxmarl-lab train --config` reads it)
  sweep.png      final return against each swept name
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from typing import Any, Sequence

import numpy as np

from jaxmarl_lab.config import RunConfig, save_run_config, write_json_atomic

NUM_BOOTSTRAP = 2000
CI_LEVEL = 0.95
METRIC = "final_return"


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean after dropping `floor(n / 4)` values from each end (as
    `scipy.stats.trim_mean(x, 0.25)`); `values` must be NaN-free."""
    x = np.sort(np.asarray(values, np.float64), axis=axis)
    n = x.shape[axis]
    cut = int(0.25 * n)
    return np.take(x, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def bootstrap_iqm_ci(values: Sequence[float], num_bootstrap: int = NUM_BOOTSTRAP, level: float = CI_LEVEL,
                     rng: np.random.Generator | int = 0) -> tuple[float, float, float]:
    """`(IQM, CI low, CI high)` of a sample; seeds resampled with replacement (percentile
    bootstrap). NaN values are dropped; all NaN for an empty sample, a point CI for one value."""
    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(rng)
    stats = iqm(x[rng.integers(0, x.size, size=(num_bootstrap, x.size))], axis=1)
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    return float(iqm(x)), float(low), float(high)


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


def _clean(value: Any) -> Any:
    """NaN / inf -> None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _write_text_atomic(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_csv_atomic(path: str, records: list[dict]) -> None:
    """Records as CSV; columns in order of first appearance."""
    columns = list(dict.fromkeys(k for r in records for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(records)
    _write_text_atomic(path, buffer.getvalue())


def write_partial(out_dir: str, spec, rows: list[dict], complete: bool, extra: dict | None = None) -> dict:
    """results.json and results.csv with the rows so far; returns their paths."""
    paths = {"json": os.path.join(out_dir, "results.json"), "csv": os.path.join(out_dir, "results.csv")}
    rows = sorted(rows, key=lambda r: (r["point"], r["seed_index"]))
    write_json_atomic(paths["json"], _clean({"fingerprint": spec.fingerprint(), "complete": complete,
                                             "sweep": spec.to_dict(), "rows": rows, **(extra or {})}))
    write_csv_atomic(paths["csv"], rows)
    return paths


def load_partial(out_dir: str, fingerprint: str) -> list[dict]:
    """Rows of `out_dir/results.json` (none if absent), NaN restored for null metrics.

    Raises:
        FileExistsError: the file belongs to a different sweep.
        ValueError: the file is not valid JSON.
    """
    path = os.path.join(out_dir, "results.json")
    if not os.path.exists(path):
        return []
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); remove it or pass --overwrite") from None
    if data.get("fingerprint") != fingerprint:
        raise FileExistsError(f"{path} holds results of a different sweep (fingerprint {data.get('fingerprint')}, "
                              f"this one {fingerprint}); use another output folder or --overwrite")
    return [{k: (math.nan if v is None else v) for k, v in row.items()} for row in data["rows"]]


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
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_outputs(out_dir: str, spec, dims, rows: list[dict], ranking: list[dict], best: RunConfig | None,
                  extra: dict) -> dict[str, str]:
    """Every file of a finished sweep; returns `{kind: path}`."""
    paths = write_partial(out_dir, spec, rows, complete=True,
                          extra={"ranking": ranking, "best_config": best.to_dict() if best else None,
                                 "bootstrap": {"resamples": NUM_BOOTSTRAP, "level": CI_LEVEL, "metric": METRIC},
                                 **extra})
    paths["ranking"] = os.path.join(out_dir, "ranking.csv")
    write_csv_atomic(paths["ranking"], ranking)
    if best is not None:
        paths["best_config"] = os.path.join(out_dir, "best_config.json")
        save_run_config(best, paths["best_config"])
    try:
        paths["png"] = os.path.join(out_dir, "sweep.png")
        plot_sweep(dims, rows, ranking, paths["png"])
    except ImportError:  # matplotlib is optional
        del paths["png"]
    return paths


def format_ranking(ranking: list[dict], keys: list[str], top: int = 10) -> str:
    """The best `top` points as text lines."""
    lines = []
    for r in ranking[:top]:
        values = ", ".join(f"{k}={r[k]:.4g}" if isinstance(r[k], float) else f"{k}={r[k]}" for k in keys)
        lines.append(f"#{r['rank']:<3} point {r['point']:<4} {values}: IQM {r['iqm']:.3f} "
                     f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] over {r['seeds']} seeds")
    return "\n".join(lines)
