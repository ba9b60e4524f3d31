"""Ratios, bootstrap confidence intervals, tables and plots of the MAPPO-vs-IPPO experiment.

NumPy only; it reads `critic_training.CriticRuns` arrays `(S, 2, I)` (seeds, critic with
centralized first, iterations). Ratios are independent / centralized of the seed-mean
`pg_variance` (the ratio of means, as in Part 1), with the paired percentile bootstrap
of `variance_report.bootstrap_ratio_ci`: a resample draws whole seeds, both critics together.
The per-seed variances are heavy-tailed (a few seeds can carry a ratio of means), so the
geometric mean of the per-seed ratios, `exp(mean_s log(ind_s / cen_s))`, is reported too,
with the bootstrap CI of the mean log ratio, and the fraction of seeds whose ratio is > 1.
`pg_variance` scales with the square of the advantages, so the same geometric ratio of
`pg_variance / advantage_std^2` (per iteration, then averaged over the span) is reported as
well: it is ~1 when the critics differ only in the scale of their advantages.
A seed whose phase-mean `pg_variance` is not finite under either critic is left out of
that phase's ratio (and counted: `valid_seeds`).
Every file is written atomically (a temporary file, then `os.replace`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from typing import Any, Sequence

import numpy as np

from jaxmarl_lab.runs.files import atomic_write, atomic_write_csv, atomic_write_json
from jaxmarl_lab.stats import CI_LEVEL, NUM_BOOTSTRAP, bootstrap_mean_ci, bootstrap_ratio_ci
from studies.critic_variance.critic_training import CriticRuns

PHASE_NAMES = {1: ("all",), 2: ("first half", "second half"), 3: ("early", "middle", "late")}
FINAL_FRACTION = 0.1  # the final return is the mean over the last 10% of iterations (at least one)

COLUMNS = ("num_agents", "phase", "iter_start", "iter_end", "env_steps_start", "env_steps_end",
           "seeds", "valid_seeds", "pg_variance_centralized", "pg_variance_independent",
           "pg_variance_ratio", "pg_variance_ratio_ci_low", "pg_variance_ratio_ci_high",
           "pg_variance_geo_ratio", "pg_variance_geo_ratio_ci_low", "pg_variance_geo_ratio_ci_high",
           "pg_variance_per_adv_var_geo_ratio", "pg_variance_per_adv_var_geo_ratio_ci_low",
           "pg_variance_per_adv_var_geo_ratio_ci_high", "frac_seeds_independent_higher",
           "advantage_std_centralized", "advantage_std_independent",
           "return_centralized", "return_centralized_ci_low", "return_centralized_ci_high",
           "return_independent", "return_independent_ci_low", "return_independent_ci_high")


def phase_names(phases: int) -> tuple[str, ...]:
    return PHASE_NAMES.get(phases, tuple(f"phase {i + 1}/{phases}" for i in range(phases)))


def phase_spans(iterations: int, phases: int) -> list[tuple[int, int]]:
    """`phases` contiguous `[start, end)` spans of iterations, sizes differing by at most one."""
    edges = np.linspace(0, iterations, phases + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def span_means(x: np.ndarray, start: int, end: int) -> np.ndarray:
    """Mean over iterations `[start, end)` of `(S, 2, I)`, NaNs skipped: `(S, 2)` float64."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN span is NaN, counted as invalid
        return np.nanmean(np.asarray(x, np.float64)[..., start:end], axis=-1)


def summarize_span(runs, num_agents: int, span: tuple[int, int], phase: str, steps_per_iteration: int,
                   num_bootstrap: int = NUM_BOOTSTRAP, level: float = CI_LEVEL) -> dict[str, Any]:
    """The table row of one N and one span of iterations (see `COLUMNS`)."""
    start, end = span
    var = span_means(runs.pg_variance, start, end)  # (S, 2)
    ret = span_means(runs.episode_return, start, end)
    adv = span_means(runs.advantage_std, start, end)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_adv = span_means(np.asarray(runs.pg_variance, np.float64) / np.square(runs.advantage_std), start, end)
    valid = np.isfinite(var).all(axis=1)  # seeds in the ratio
    var, adv, per_adv = var[valid], adv[valid], per_adv[valid]
    ret = ret[np.isfinite(ret).all(axis=1)]  # seeds with an ended episode in the span under both critics
    rng = np.random.default_rng([num_agents, start, 2102])
    ratio, low, high = bootstrap_ratio_ci(var[:, 1], var[:, 0], "mean", num_bootstrap, level, rng)
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero variance gives an infinite log ratio
        log_ratio = np.log(var[:, 1] / var[:, 0])
        log_per_adv = np.log(per_adv[:, 1] / per_adv[:, 0])
    geo = np.exp(bootstrap_mean_ci(log_ratio, num_bootstrap, level, rng)) if var.size else (math.nan,) * 3
    geo_adv = np.exp(bootstrap_mean_ci(log_per_adv, num_bootstrap, level, rng)) if var.size else (math.nan,) * 3
    row = {"num_agents": int(num_agents), "phase": phase, "iter_start": start, "iter_end": end,
           "env_steps_start": start * steps_per_iteration, "env_steps_end": end * steps_per_iteration,
           "seeds": int(valid.size), "valid_seeds": int(valid.sum()),
           "pg_variance_centralized": float(var[:, 0].mean()) if var.size else math.nan,
           "pg_variance_independent": float(var[:, 1].mean()) if var.size else math.nan,
           "pg_variance_ratio": ratio, "pg_variance_ratio_ci_low": low, "pg_variance_ratio_ci_high": high,
           "pg_variance_geo_ratio": float(geo[0]), "pg_variance_geo_ratio_ci_low": float(geo[1]),
           "pg_variance_geo_ratio_ci_high": float(geo[2]),
           "pg_variance_per_adv_var_geo_ratio": float(geo_adv[0]),
           "pg_variance_per_adv_var_geo_ratio_ci_low": float(geo_adv[1]),
           "pg_variance_per_adv_var_geo_ratio_ci_high": float(geo_adv[2]),
           "frac_seeds_independent_higher": float((var[:, 1] > var[:, 0]).mean()) if var.size else math.nan,
           "advantage_std_centralized": float(adv[:, 0].mean()) if adv.size else math.nan,
           "advantage_std_independent": float(adv[:, 1].mean()) if adv.size else math.nan}
    for c, critic in enumerate(("centralized", "independent")):
        mean, lo, hi = bootstrap_mean_ci(ret[:, c], num_bootstrap, level, rng)
        row.update({f"return_{critic}": mean, f"return_{critic}_ci_low": lo, f"return_{critic}_ci_high": hi})
    return row


def summarize(runs_by_n: dict[int, Any], config, num_bootstrap: int = NUM_BOOTSTRAP) -> list[dict[str, Any]]:
    """One row per (N, phase), N-major; `config` is the `CriticTrainingConfig` of the runs."""
    steps = config.num_envs * config.rollout_len
    names = phase_names(config.phases)
    return [summarize_span(runs, n, span, names[p], steps, num_bootstrap)
            for n, runs in sorted(runs_by_n.items())
            for p, span in enumerate(phase_spans(runs.pg_variance.shape[-1], config.phases))]


def final_returns(runs_by_n: dict[int, Any], config, num_bootstrap: int = NUM_BOOTSTRAP) -> list[dict[str, Any]]:
    """Per N: both critics' training return over the last 10% of iterations, with CIs."""
    steps = config.num_envs * config.rollout_len
    out = []
    for n, runs in sorted(runs_by_n.items()):
        iterations = runs.episode_return.shape[-1]
        span = (iterations - max(1, int(round(FINAL_FRACTION * iterations))), iterations)
        row = summarize_span(runs, n, span, "final", steps, num_bootstrap)
        out.append({k: row[k] for k in ("num_agents", "iter_start", "iter_end", "env_steps_end", "valid_seeds")
                    + tuple(k for k in COLUMNS if k.startswith("return_"))})
    return out


def ratio_curve(runs, blocks: int, steps_per_iteration: int, num_bootstrap: int = 500) -> dict[str, list]:
    """The ratio and both returns over training in `blocks` spans (for the plot), with CIs."""
    iterations = runs.pg_variance.shape[-1]
    rows = [summarize_span(runs, 0, span, "", steps_per_iteration, num_bootstrap)
            for span in phase_spans(iterations, min(blocks, iterations))]
    keys = ("pg_variance_ratio", "pg_variance_ratio_ci_low", "pg_variance_ratio_ci_high",
            "pg_variance_geo_ratio", "pg_variance_geo_ratio_ci_low", "pg_variance_geo_ratio_ci_high",
            "return_centralized", "return_centralized_ci_low", "return_centralized_ci_high",
            "return_independent", "return_independent_ci_low", "return_independent_ci_high")
    curve = {k: [r[k] for r in rows] for k in keys}
    curve["env_steps"] = [0.5 * (r["env_steps_start"] + r["env_steps_end"]) for r in rows]
    return curve


def format_row(r: dict[str, Any]) -> str:
    ci = lambda k: f"{r[k]:6.3f} [{r[k + '_ci_low']:.3f}, {r[k + '_ci_high']:.3f}]"
    return (f"N={r['num_agents']} {r['phase']:<7} steps {r['env_steps_start']:>9,}-{r['env_steps_end']:<9,} "
            f"pg-var ratio ind/cen: of means {ci('pg_variance_ratio')}, geometric {ci('pg_variance_geo_ratio')}  "
            f"(ind > cen in {100 * r['frac_seeds_independent_higher']:.0f}% of seeds)  "
            f"return cen {r['return_centralized']:7.2f} ind {r['return_independent']:7.2f}  "
            f"({r['valid_seeds']}/{r['seeds']} seeds)")


def format_table(records: Sequence[dict[str, Any]]) -> str:
    return "\n".join(format_row(r) for r in records)


def format_markdown(records: Sequence[dict[str, Any]], finals: Sequence[dict[str, Any]]) -> str:
    """A markdown table per N: the geometric-mean ratio in each phase, the last phase's ratio
    of means and share of seeds with ratio > 1, and both final returns; 95% CIs."""
    phases = list(dict.fromkeys(r["phase"] for r in records))
    head = ("| N | " + " | ".join(f"geo-mean ratio, {p}" for p in phases)
            + f" | ratio of means, {phases[-1]} | per advantage variance, {phases[-1]} "
            f"| seeds IPPO > MAPPO, {phases[-1]} "
            "| final return MAPPO | final return IPPO |")
    lines = [head, "|---|" + "---:|" * (len(phases) + 5)]
    ci = lambda r, k, f: f"{r[k]:{f}} [{r[k + '_ci_low']:{f}}, {r[k + '_ci_high']:{f}}]"
    for final in finals:
        rows = [r for r in records if r["num_agents"] == final["num_agents"]]
        cells = [ci(r, "pg_variance_geo_ratio", ".2f") for r in rows]
        cells += [ci(rows[-1], "pg_variance_ratio", ".3g"), ci(rows[-1], "pg_variance_per_adv_var_geo_ratio", ".2f"),
                  f"{100 * rows[-1]['frac_seeds_independent_higher']:.0f}%"]
        cells += [ci(final, f"return_{c}", ".1f") for c in ("centralized", "independent")]
        lines.append(f"| {final['num_agents']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(records: Sequence[dict[str, Any]], path: str) -> None:
    atomic_write_csv(path, records, COLUMNS)


def write_json(payload: dict[str, Any], path: str) -> None:
    atomic_write_json(path, payload)


def plot(records: Sequence[dict[str, Any]], curves: dict[int, dict[str, list]], path: str) -> None:
    """Four panels: both ratios over training per N; the geometric ratio per phase against N; returns."""
    import matplotlib  # lazily: plotting is an optional extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    colors = dict(zip(sorted(curves), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for n, c in sorted(curves.items()):
        x = np.asarray(c["env_steps"])
        for ax, key in ((axes[0, 0], "pg_variance_geo_ratio"), (axes[0, 1], "pg_variance_ratio")):
            ax.plot(x, c[key], marker=".", color=colors[n], label=f"N = {n}")
            ax.fill_between(x, c[key + "_ci_low"], c[key + "_ci_high"], color=colors[n], alpha=0.2)
        for critic, style in (("centralized", "-"), ("independent", "--")):
            axes[1, 1].plot(x, c[f"return_{critic}"], style, color=colors[n],
                            label=f"N = {n}, {'MAPPO' if critic == 'centralized' else 'IPPO'}")
            axes[1, 1].fill_between(x, c[f"return_{critic}_ci_low"], c[f"return_{critic}_ci_high"],
                                    color=colors[n], alpha=0.12)
    phases = list(dict.fromkeys(r["phase"] for r in records))
    for p, phase in enumerate(phases):
        rows = sorted((r for r in records if r["phase"] == phase), key=lambda r: r["num_agents"])
        n = np.array([r["num_agents"] for r in rows]) + 0.08 * (p - (len(phases) - 1) / 2)
        y = np.array([r["pg_variance_geo_ratio"] for r in rows])
        err = [y - [r["pg_variance_geo_ratio_ci_low"] for r in rows],
               [r["pg_variance_geo_ratio_ci_high"] for r in rows] - y]
        axes[1, 0].errorbar(n, y, yerr=err, marker="o", capsize=3, label=phase)
    titles = ("geometric mean of per-seed ratios over training", "ratio of seed means over training",
              "geometric-mean ratio per phase of training")
    for ax, title in zip((axes[0, 0], axes[0, 1], axes[1, 0]), titles):
        ax.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
        ax.set_yscale("log")
        ax.set_ylabel("pg variance, IPPO / MAPPO")
        ax.set_title(title + " (95% CI)", fontsize=10)
        ax.legend(fontsize=8)
    for ax in (axes[0, 0], axes[0, 1], axes[1, 1]):
        ax.set_xlabel("env steps per seed")
    axes[1, 0].set_xlabel("number of agents N")
    axes[1, 0].set_xticks(sorted(curves))
    axes[1, 1].set_ylabel("training return (per agent, per episode)")
    axes[1, 1].set_title("returns: MAPPO solid, IPPO dashed (95% CI)", fontsize=10)
    axes[1, 1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, dpi=100, format="png"))
    plt.close(fig)


def load_raw(path: str) -> dict[int, Any]:
    """The `{N: CriticRuns}` that `write_raw` saved (NumPy arrays)."""
    with np.load(path) as data:
        agents = sorted({int(name.split("_")[0][1:]) for name in data.files})
        return {n: CriticRuns(*(data[f"N{n}_{field}"] for field in CriticRuns._fields)) for n in agents}


def write_raw(runs_by_n: dict[int, Any], path: str) -> None:
    """The raw `CriticRuns` as `.npz`, arrays named `N<n>_<field>` of shape `(S, 2, I)`."""
    arrays = {f"N{n}_{name}": np.asarray(getattr(runs, name)) for n, runs in runs_by_n.items()
              for name in runs._fields}
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def write_outputs(runs_by_n: dict[int, Any], config, out_dir: str, extra: dict | None = None,
                  stem: str = "critic_variance_training", blocks: int = 12) -> dict[str, Any]:
    """Summarizes the runs and writes `<stem>.csv`, `.json`, `.png` and `<stem>_raw.npz` under `out_dir`.

    Returns `{"records", "final", "curves", "paths"}`. The JSON holds the config, the table,
    the final returns, the curves and the per-seed phase means `(S, 2)` (for re-analysis).
    """
    records = summarize(runs_by_n, config)
    finals = final_returns(runs_by_n, config)
    steps = config.num_envs * config.rollout_len
    curves = {n: ratio_curve(runs, blocks, steps) for n, runs in sorted(runs_by_n.items())}
    per_seed = {str(n): {r["phase"]: {name: span_means(getattr(runs, name), r["iter_start"], r["iter_end"]).tolist()
                                       for name in ("pg_variance", "episode_return")}
                         for r in records if r["num_agents"] == n}
                for n, runs in sorted(runs_by_n.items())}  # (S, 2) lists, centralized first
    paths = {ext: os.path.join(out_dir, f"{stem}.{ext}") for ext in ("csv", "json", "png")}
    write_csv(records, paths["csv"])
    write_json({"config": dataclasses.asdict(config), "bootstrap": {"resamples": NUM_BOOTSTRAP, "level": CI_LEVEL},
                "records": records, "final_returns": finals, "curves": {str(n): c for n, c in curves.items()},
                "per_seed_phase_means": per_seed, **(extra or {})}, paths["json"])
    plot(records, curves, paths["png"])
    paths["raw"] = os.path.join(out_dir, f"{stem}_raw.npz")
    write_raw(runs_by_n, paths["raw"])
    return {"records": records, "final": finals, "curves": curves, "paths": paths}
