"""Learning curves of run directories (matplotlib, imported lazily).

    plot_run_dir("runs/mappo")    # writes runs/mappo/learning_curve.png

The curve is the training episode return (per-agent reward summed over an episode,
averaged over the episodes that ended in an iteration) against environment steps per
seed: one line for one seed; the mean over seeds and a 95% t-interval band for several.
"""

from __future__ import annotations

import os

import numpy as np

from jaxmarl_lab.runs.config import load_run_config
from jaxmarl_lab.runs.files import atomic_write
from jaxmarl_lab.runs.layout import CONFIG, CURVE, METRICS, read_metrics
from jaxmarl_lab.stats import t_quantile_975


def curve_band(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds and the 95% t-interval half-width of `returns (iterations, S)`.

    NaN entries (iterations in which a seed finished no episode) are left out of each
    iteration's statistics; the half-width is NaN where fewer than two seeds have a value.
    """
    returns = np.asarray(returns, np.float64)
    count = np.sum(~np.isnan(returns), axis=1)
    total = np.nansum(returns, axis=1)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    dev = np.where(np.isnan(returns), 0.0, returns - mean[:, None])
    var = np.where(count > 1, (dev ** 2).sum(axis=1) / np.maximum(count - 1, 1), np.nan)
    quantile = np.array([t_quantile_975(int(c) - 1) if c > 1 else np.nan for c in count])
    return mean, quantile * np.sqrt(var / np.maximum(count, 1))


def plot_learning_curve(env_steps: np.ndarray, returns: np.ndarray, path: str, title: str = "") -> bool:
    """Writes the curve of `returns (iterations, S)` against `env_steps (iterations,)` to `path`.

    Returns:
        False (and writes nothing) when matplotlib is not installed.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    returns = np.asarray(returns, np.float64).reshape(len(env_steps), -1)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    if returns.shape[1] == 1:
        ax.plot(env_steps, returns[:, 0], lw=1.2, label="seed")
    else:
        mean, half = curve_band(returns)
        ax.plot(env_steps, mean, lw=1.5, label=f"mean of {returns.shape[1]} seeds")
        ax.fill_between(env_steps, mean - half, mean + half, alpha=0.25, lw=0, label="95% CI")
        low, high = np.nanmin(returns), np.nanmax(returns)  # frame the data; a 2-seed band can be huge
        if np.isfinite(low) and np.isfinite(high):
            pad = 0.05 * (high - low) or 0.05 * max(abs(high), 1.0)
            ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel("training episode return (per agent)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, dpi=110, format="png"))
    finally:
        plt.close(fig)
    return True


def plot_run_dir(run_dir: str) -> bool:
    """Writes `learning_curve.png` of a run directory from its `metrics.jsonl`. False if nothing to plot."""
    rows = read_metrics(os.path.join(run_dir, METRICS))
    if not rows:
        return False
    run = load_run_config(os.path.join(run_dir, CONFIG))
    steps = np.array([r["env_steps"] for r in rows])
    returns = np.array([[np.nan if v is None else v for v in r["episode_return"]] for r in rows], np.float64)
    title = f"{run.learner} on {run.env} {run.env_kwargs or ''}".strip()
    return plot_learning_curve(steps, returns, os.path.join(run_dir, CURVE), title)
