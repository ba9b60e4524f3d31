"""Tables, bootstrap confidence intervals and plots of the variance experiment (NumPy side).

Nothing here is traced: it takes the `SeedResult` arrays of `variance.run_seeds_cells`
as NumPy arrays of shape `(S, C, ...)` (S seeds, C cells, critic axis of 2 last).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Sequence

import numpy as np

from jaxmarl_lab.runs.files import atomic_write, atomic_write_csv, atomic_write_json
from jaxmarl_lab.stats import CI_LEVEL, NUM_BOOTSTRAP, bootstrap_ratio_ci

COLUMNS = ("num_agents", "coupling", "lr", "seeds", "valid_seeds",
           "diverged_frac_centralized", "diverged_frac_independent",
           "grad_var_centralized", "grad_var_independent",
           "grad_var_ratio", "grad_var_ratio_ci_low", "grad_var_ratio_ci_high",
           "outcome_var_centralized", "outcome_var_independent",
           "outcome_var_ratio", "outcome_var_ratio_ci_low", "outcome_var_ratio_ci_high",
           "mean_final_reward_centralized", "mean_final_reward_independent")


def summarize_cell(raw, index: int, num_agents: int, coupling: float, lr: float,
                   num_bootstrap: int = NUM_BOOTSTRAP, level: float = CI_LEVEL) -> dict[str, Any]:
    """The table row of cell `index` from `SeedResult` arrays `(S, C, ...)`.

    A seed that diverged under either critic is left out of both ratios and both mean
    rewards; the divergence fraction of each critic is over all seeds.
    """
    diverged = np.asarray(raw.diverged[:, index])  # (S, 2)
    valid = ~diverged.any(axis=1)
    grad_var = np.asarray(raw.grad_var[:, index], np.float64)[valid]  # (S', 2)
    reward = np.asarray(raw.final_reward[:, index], np.float64)[valid]
    rng = np.random.default_rng([index, 2021])
    g_ratio, g_low, g_high = bootstrap_ratio_ci(grad_var[:, 1], grad_var[:, 0], "mean", num_bootstrap, level, rng)
    o_ratio, o_low, o_high = bootstrap_ratio_ci(reward[:, 1], reward[:, 0], "var", num_bootstrap, level, rng)
    nan_if_empty = lambda f, a: float(f(a)) if a.size else math.nan
    return {
        "num_agents": int(num_agents), "coupling": float(coupling), "lr": float(lr),
        "seeds": int(diverged.shape[0]), "valid_seeds": int(valid.sum()),
        "diverged_frac_centralized": float(diverged[:, 0].mean()),
        "diverged_frac_independent": float(diverged[:, 1].mean()),
        "grad_var_centralized": nan_if_empty(np.mean, grad_var[:, 0]),
        "grad_var_independent": nan_if_empty(np.mean, grad_var[:, 1]),
        "grad_var_ratio": g_ratio, "grad_var_ratio_ci_low": g_low, "grad_var_ratio_ci_high": g_high,
        "outcome_var_centralized": nan_if_empty(np.var, reward[:, 0]),
        "outcome_var_independent": nan_if_empty(np.var, reward[:, 1]),
        "outcome_var_ratio": o_ratio, "outcome_var_ratio_ci_low": o_low, "outcome_var_ratio_ci_high": o_high,
        "mean_final_reward_centralized": nan_if_empty(np.mean, reward[:, 0]),
        "mean_final_reward_independent": nan_if_empty(np.mean, reward[:, 1]),
    }


def format_row(r: dict[str, Any]) -> str:
    """One human-readable line of a record."""
    return (f"N={r['num_agents']:>2} c={r['coupling']:<4g} lr={r['lr']:<8.4g} "
            f"grad-var ratio {r['grad_var_ratio']:6.3f} [{r['grad_var_ratio_ci_low']:.3f}, "
            f"{r['grad_var_ratio_ci_high']:.3f}]  outcome-var ratio {r['outcome_var_ratio']:6.3f} "
            f"[{r['outcome_var_ratio_ci_low']:.3f}, {r['outcome_var_ratio_ci_high']:.3f}]  "
            f"E[R] cen {r['mean_final_reward_centralized']:8.4f} ind {r['mean_final_reward_independent']:8.4f}  "
            f"diverged cen {r['diverged_frac_centralized']:.4f} ind {r['diverged_frac_independent']:.4f}  "
            f"({r['valid_seeds']}/{r['seeds']} seeds)")


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """All records, one line each; ratios are independent / centralized with 95% CIs."""
    return "\n".join(format_row(r) for r in records)


def write_csv(records: Sequence[dict[str, Any]], path: str) -> None:
    """The table as CSV, one row per cell, columns `COLUMNS`."""
    atomic_write_csv(path, records, COLUMNS)


def write_json(records: Sequence[dict[str, Any]], config, path: str, extra: dict | None = None) -> None:
    """The table and the config that made it (plus `extra`, e.g. timings and the key); NaN -> null."""
    config_dict = {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)  # inf -> "inf"
                   for k, v in dataclasses.asdict(config).items()}
    atomic_write_json(path, {"config": config_dict, "bootstrap": {"resamples": NUM_BOOTSTRAP, "level": CI_LEVEL},
                             "records": list(records), **(extra or {})}, indent=2)


def plot_ratio(records: Sequence[dict[str, Any]], path: str, title: str | None = None) -> None:
    """PNG of the gradient-variance ratio against N (log x), one line per coupling, CI bands."""
    import matplotlib  # lazily: plotting is an optional extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for coupling in sorted({r["coupling"] for r in records}):
        rows = sorted((r for r in records if r["coupling"] == coupling), key=lambda r: r["num_agents"])
        n = [r["num_agents"] for r in rows]
        line, = ax.plot(n, [r["grad_var_ratio"] for r in rows], marker="o", label=f"c = {coupling:g}")
        ax.fill_between(n, [r["grad_var_ratio_ci_low"] for r in rows], [r["grad_var_ratio_ci_high"] for r in rows],
                        color=line.get_color(), alpha=0.25)
    ax.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({r["num_agents"] for r in records}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("number of agents N")
    ax.set_ylabel("gradient variance, independent / centralized")
    ax.set_title(title or "Policy-gradient variance ratio (95% bootstrap CI)")
    ax.legend()
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    finally:
        plt.close(fig)


def write_outputs(records, config, out_dir: str, extra: dict | None = None, stem: str = "variance") -> dict[str, str]:
    """Writes `<stem>.csv`, `<stem>.json` and `<stem>.png` under `out_dir`; returns the paths."""
    paths = {ext: os.path.join(out_dir, f"{stem}.{ext}") for ext in ("csv", "json", "png")}
    write_csv(records, paths["csv"])
    write_json(records, config, paths["json"], extra)
    lr_mode = "curvature-scaled lr" if getattr(config, "curvature_scaled_lr", False) else "plain lr"
    plot_ratio(records, paths["png"], title=f"Gradient-variance ratio, {lr_mode} (95% bootstrap CI;\n"
                                            f"diverged seeds excluded, cells with none left not drawn)")
    return paths
