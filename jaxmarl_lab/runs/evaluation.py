"""Greedy evaluation of run directories: mean return with a 95% CI and the gap to an exact optimum.

    result = evaluate_run("runs/qmix-grid", episodes=100)
    result["mean"], result["ci95"], result.get("gap_mean")

The K episodes of every seed run inside one jitted, seed-vmapped program
(`runner.make_evaluate`, through `runs.scoring`, which also scores random actions).
All seeds see the same K episode starts (common random
numbers), so the optimum is computed once per start, by the environment's
`optimal_returns` hook (`envs.core.Environment`; a wrapper asks the environment inside):

- grid-world: the breadth-first-search optimum of each episode's layout
  (`grid_world.optimal_return`; with a fixed layout, the same for every episode);
- rendezvous: the closed form, `one_step_optimum` (one-step) or `optimal_return` from
  each episode's start positions (multi-step);
- particle-spread: none is known, so no gap is reported.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxmarl_lab.runs import memory
from jaxmarl_lab.runs.scoring import episode_starts, evaluate_state, horizon, optimal_returns
from jaxmarl_lab.runs.training import load_run_state
from jaxmarl_lab.stats import mean_ci
from jaxmarl_lab.validation import check_positive_int

__all__ = ["evaluate_run", "summarize", "episode_starts", "evaluate_state", "horizon", "optimal_returns"]


def summarize(returns: np.ndarray, optimum: np.ndarray | None) -> dict:
    """Mean return and 95% CI of `returns (S, K)`: over episodes for one seed, over seed means for several."""
    returns = np.asarray(returns, np.float64)
    sample = returns[0] if returns.shape[0] == 1 else returns.mean(axis=1)
    mean, half = mean_ci(sample)
    out = {"mean": mean, "ci95": half, "ci_over": "episodes" if returns.shape[0] == 1 else "seeds",
           "per_seed_mean": returns.mean(axis=1).tolist()}
    if optimum is not None:
        gap = optimum[None, :] - returns  # (S, K), >= 0 up to float32 rounding
        gap_sample = gap[0] if gap.shape[0] == 1 else gap.mean(axis=1)
        out["optimum_mean"] = float(np.mean(optimum))
        out["gap_mean"], out["gap_ci95"] = mean_ci(gap_sample)
        out["optimal_fraction"] = float(np.mean(gap <= 1e-4 * np.maximum(1.0, np.abs(optimum[None, :]))))
    return out


def evaluate_run(run_dir: str, episodes: int = 100, seed: int = 10_000, memory_budget: int | None = None) -> dict:
    """Evaluates the greedy policy of every seed of a run directory's checkpoint.

    Args:
        run_dir: a directory written by `training.train_run`.
        episodes: K episodes per seed.
        seed: seed of the evaluation key (the same K starts for every seed).
        memory_budget: bytes the evaluation may use (default: the device's free memory).

    Returns:
        A JSON-able dict: run description, `returns` `(S, K)` as lists, `mean`, `ci95`,
        `ci_over`, `per_seed_mean`, and where an optimum is known `optimum_mean`,
        `gap_mean`, `gap_ci95`, `optimal_fraction`; `optimum` says how it was computed.

    Raises:
        FileNotFoundError, ValueError: no run directory or checkpoint, or a bad one; more
            episodes than fit in memory.
    """
    episodes = check_positive_int("episodes", episodes)
    built, run, state, meta = load_run_state(run_dir)
    per_episode = memory.episode_bytes(built) * run.num_seeds
    budget = memory.available_bytes() if memory_budget is None else memory_budget
    memory.check_fits(per_episode * episodes, budget, f"evaluating {episodes:,} episodes x {run.num_seeds} seed(s)",
                      f"the most --episodes that fit is about {max(1, budget // per_episode):,}")
    key = jax.random.PRNGKey(seed)
    out = evaluate_state(built, state.learner, key, episodes)
    optimum, how = optimal_returns(built.env, built.env_params, key, episodes)
    return {"run_dir": run_dir, "env": run.env, "env_kwargs": run.env_kwargs, "env_params": run.env_params,
            "learner": run.learner, "seeds": [run.seed + i for i in range(run.num_seeds)],
            "iteration": int(meta["iteration"]), "num_iterations": int(meta["num_iterations"]),
            "env_steps": int(meta["iteration"]) * built.runner.steps_per_iteration, "episodes": episodes,
            "eval_seed": seed, "finished_fraction": float(out["finished"].mean()), "optimum": how,
            **summarize(out["returns"], optimum), "returns": out["returns"].tolist()}
