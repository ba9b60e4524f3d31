"""`jaxmarl-lab eval`: greedy evaluation of run directories, optimum gap, marl-eval export.

    jaxmarl-lab eval runs/mappo-particle-spread
    jaxmarl-lab eval runs/qmix-grid-world runs/vdn-grid-world --episodes 200 --marl-eval results.json
"""

from __future__ import annotations

import argparse
import os

from jaxmarl_lab.runs.files import atomic_write_json

EVAL_FILE = "eval.json"


def format_result(res: dict) -> str:
    """A few human-readable lines about one `evaluation.evaluate_run` result."""
    seeds = len(res["seeds"])
    done = "" if res["iteration"] == res["num_iterations"] else \
        f", INCOMPLETE run: iteration {res['iteration']} of {res['num_iterations']}"
    lines = [f"{res['run_dir']}: {res['learner']} on {res['env']} {res['env_kwargs'] or ''}, {seeds} seed(s), "
             f"checkpoint after {res['env_steps']:,} env steps per seed{done}"]
    ci = "n/a" if res["ci95"] != res["ci95"] else f"{res['ci95']:.3f}"
    over = "episodes" if res["ci_over"] == "episodes" else f"the {seeds} seed means"
    lines.append(f"  greedy return (per agent), {res['episodes']} episodes per seed: {res['mean']:.3f} +- {ci} "
                 f"(95% CI over {over})")
    if seeds > 1:
        lines.append("  per seed: " + ", ".join(f"{m:.3f}" for m in res["per_seed_mean"]))
    if "gap_mean" in res:
        gap_ci = "n/a" if res["gap_ci95"] != res["gap_ci95"] else f"{res['gap_ci95']:.3f}"
        lines.append(f"  optimum ({res['optimum']}): {res['optimum_mean']:.3f}; gap {round(res['gap_mean'], 3) + 0.0:.3f} +- "
                     f"{gap_ci}; optimal in {100 * res['optimal_fraction']:.0f}% of episodes")
    else:
        lines.append(f"  optimum: {res['optimum']}")
    if res["finished_fraction"] < 1.0:
        lines.append(f"  warning: only {100 * res['finished_fraction']:.0f}% of the episodes finished")
    return "\n".join(lines)


def evaluate(args: argparse.Namespace) -> int:
    """Evaluates each run directory, writes RUN_DIR/eval.json and optionally a marl-eval file."""
    from jaxmarl_lab.runs import marl_eval
    from jaxmarl_lab.runs.evaluation import evaluate_run

    for run_dir in args.run_dirs:  # fail on a bad directory before any evaluation runs
        if not os.path.isdir(run_dir):
            raise FileNotFoundError(f"run directory {run_dir!r} does not exist")
    results, absolute = [], []
    for run_dir in args.run_dirs:
        res = evaluate_run(run_dir, args.episodes, args.seed)
        print(format_result(res), flush=True)
        atomic_write_json(os.path.join(run_dir, EVAL_FILE), res)
        results.append(res)
        if args.marl_eval:
            absolute.append(evaluate_run(run_dir, 10 * args.episodes, args.seed + 1))
    if args.marl_eval:
        marl_eval.write_marl_eval(args.marl_eval, marl_eval.marl_eval_data(results, absolute))
        print(f"wrote {args.marl_eval} (marl-eval format: {len(results)} run dir(s), absolute metrics over "
              f"{10 * args.episodes} episodes)")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="greedy return with a 95%% CI, gap to the exact optimum, marl-eval export",
                       description="Runs the greedy policy of every seed of each run directory for K episodes "
                                   "in one jitted program. Reports the mean per-agent return with a 95%% CI (over "
                                   "episodes for one seed, over seed means for several) and, for grid-world and "
                                   "rendezvous, the gap to the exact optimum of the same episodes. Writes "
                                   "RUN_DIR/eval.json.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by `jaxmarl-lab train`")
    p.add_argument("--episodes", type=int, default=100, help="episodes per seed (K)")
    p.add_argument("--seed", type=int, default=10_000, help="seed of the evaluation episodes")
    p.add_argument("--marl-eval", metavar="OUT.json", default=None,
                   help="also write all runs in marl-eval's JSON format (absolute metrics over 10 x K episodes)")
    p.set_defaults(func=evaluate, positive=("episodes",))
