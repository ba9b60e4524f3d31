"""Statistics of returns over seeds and episodes: t-intervals, the interquartile mean and percentile bootstraps.

NumPy only, nothing traced. The evaluation reports t-intervals (`mean_ci`); sweeps rank by the
IQM with a bootstrap CI over seeds (Agarwal et al. 2021, "Deep RL at the Edge of the
Statistical Precipice", as rliable and marl-eval do); the critic-variance study bootstraps
ratios of paired samples. Every bootstrap uses `NUM_BOOTSTRAP` resamples at `CI_LEVEL`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from jaxmarl_lab.validation import check_positive_int

NUM_BOOTSTRAP = 2000  # resamples of every percentile bootstrap
CI_LEVEL = 0.95  # confidence level of every interval

# 97.5% quantiles of Student's t for 1..30 degrees of freedom (scipy.stats.t.ppf, 6 decimals).
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
         2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
         2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)

def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df >= 1` degrees of freedom.

    A table up to 30, then the Cornish-Fisher expansion in 1/df (error below 1e-7).
    """
    df = check_positive_int("df", df)
    if df <= len(_T975):
        return _T975[df - 1]
    z, v = 1.959963984540054, float(df)
    return (z + (z ** 3 + z) / (4 * v) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * v ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * v ** 3)
            + (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / (92160 * v ** 4))


def mean_ci(values: Any) -> tuple[float, float]:
    """`(mean, half-width)` of the 95% t-interval of a sample; the half-width is NaN for one value."""
    x = np.asarray(values, np.float64).ravel()
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value")
    if x.size == 1:
        return float(x[0]), float("nan")
    return float(x.mean()), float(t_quantile_975(x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


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


def bootstrap_mean_ci(x: np.ndarray, num_bootstrap: int = NUM_BOOTSTRAP, level: float = CI_LEVEL,
                      rng: np.random.Generator | int = 0) -> tuple[float, float, float]:
    """`(mean, CI low, CI high)`: the percentile bootstrap of the mean of `(S,)`; NaNs if S < 2."""
    x = np.asarray(x, np.float64)
    if x.ndim != 1:
        raise ValueError(f"want a 1-d sample, got shape {x.shape}")
    if x.size < 2:
        return (float(x.mean()) if x.size else math.nan), math.nan, math.nan
    rng = np.random.default_rng(rng)
    means = x[rng.integers(0, x.size, size=(num_bootstrap, x.size))].mean(axis=1)
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(x.mean()), float(low), float(high)


def bootstrap_ratio_ci(numerator: np.ndarray, denominator: np.ndarray, statistic: str = "mean",
                       num_bootstrap: int = NUM_BOOTSTRAP, level: float = CI_LEVEL,
                       rng: np.random.Generator | int = 0) -> tuple[float, float, float]:
    """Paired percentile bootstrap of `stat(numerator) / stat(denominator)`.

    Seeds are resampled with replacement, the same resample for both samples (they are
    paired by seed); the resamples are gathered in blocks to bound memory.

    Args:
        numerator, denominator: `(S,)` paired samples.
        statistic: "mean" or "var" (ddof 0; it cancels in the ratio).

    Returns:
        `(ratio on the full sample, CI low, CI high)`; NaNs when fewer than 2 seeds.
    """
    x = np.asarray(numerator, np.float64)
    y = np.asarray(denominator, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"want two paired 1-d samples, got shapes {x.shape} and {y.shape}")
    if statistic not in ("mean", "var"):
        raise ValueError(f"statistic must be 'mean' or 'var', got {statistic!r}")
    n = x.size
    if n < 2:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(rng)
    stat = np.mean if statistic == "mean" else np.var
    block = max(1, 2_000_000 // n)
    ratios = []
    for start in range(0, num_bootstrap, block):
        index = rng.integers(0, n, size=(min(block, num_bootstrap - start), n))
        with np.errstate(divide="ignore", invalid="ignore"):  # a degenerate resample gives inf/nan
            ratios.append(stat(x[index], axis=1) / stat(y[index], axis=1))
    ratios = np.concatenate(ratios)
    point = float(stat(x) / stat(y))
    tail = 50.0 * (1.0 - level)
    low, high = np.nanpercentile(ratios, [tail, 100.0 - tail])
    return point, float(low), float(high)


__all__ = ["NUM_BOOTSTRAP", "CI_LEVEL", "t_quantile_975", "mean_ci", "iqm", "bootstrap_iqm_ci", "bootstrap_mean_ci",
           "bootstrap_ratio_ci"]
