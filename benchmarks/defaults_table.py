"""What each learner reaches with its default settings: `jaxmarl-lab train --learner L --env E` and nothing else.

For every learner x environment cell of issue 20 this trains the default run of that cell
(`RunConfig(env, env_kwargs, learner, num_seeds=4)`: every setting from `learners/defaults.py`) as one
vmapped 4-seed program with `runs.training.train_run`, then reads its end-of-run scores: the greedy
per-agent return of each seed on 32 episodes, uniformly random actions on the same episodes and the
exact optimum where the environment knows it (the scripted assignment policy on discrete
particle-spread, where none is known). It reports the mean greedy return, the share of the gap from
random to the optimum (or scripted policy) that it closes, whether the cell meets its target, the
warnings the run raised and the wall time (compilation included).

    python benchmarks/defaults_table.py --cells lesson rendezvous-one-step   # the cheap cells
    python benchmarks/defaults_table.py --cells qmix/lesson                   # one cell
    python benchmarks/defaults_table.py --list                                # every cell id
    python benchmarks/defaults_table.py --matrix      # README's learner x task table from the results file
    python benchmarks/defaults_table.py --table       # docs/benchmarks.md's table of every row
    python benchmarks/defaults_table.py --cells vdn/spread --steps 6000000   # another budget: what would meet it

Prints a markdown table and merges the rows into benchmarks/results/defaults_table.json (or `--json`),
so subsets run at different times accumulate. Targets (issue 20): the lesson optimum in 4 of 4 seeds;
rendezvous within 2% of the gap from random to the closed-form optimum; particle-spread at -12 per
agent or better; grid5 greedy steps within 15% of the exact optimum's, over the learning-results study's
1000 fixed layouts (one greedy episode each, an unsolved layout counting the 50-step limit; the 32
end-of-run episodes are too few to see a failure rate near 1%).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings

import jax
import numpy as np

from jaxmarl_lab.baselines import make_evaluate_policy, scripted_spread_policy
from jaxmarl_lab.learners.defaults import LEARNER_NAMES
from jaxmarl_lab.runs.config import LEARNERS, RunConfig, build
from jaxmarl_lab.runs.diagnostics import TrainingWarning
from jaxmarl_lab.runs.files import atomic_write_json
from jaxmarl_lab.runs.training import END_EPISODES, END_EVAL_SEED, load_run_state, train_run

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout: `import studies`
from studies.learning_results.value_based import grid5_layouts, make_layout_evaluate  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "defaults_table.json")
BUDGETS = os.path.join(os.path.dirname(RESULTS), "defaults_budgets.json")  # rows of runs with --steps
SEEDS = 4
GRID5_LAYOUTS = 1000  # the study's fixed evaluation layouts (their exact optima are cached in studies/)
#: task id -> (env, env_kwargs, learners that apply)
TASKS = {
    "lesson": ("grid-world", {"layout": "lesson"}, ("iql", "vdn", "qmix", "mappo", "ippo", "maddpg")),
    "grid5": ("grid-world", {"num_agents": 3, "height": 5, "width": 5}, ("iql", "vdn", "qmix", "mappo", "ippo",
                                                                          "maddpg")),
    "rendezvous-one-step": ("rendezvous", {}, ("mappo", "ippo", "maddpg")),
    "rendezvous-multi-step": ("rendezvous", {"form": "multi-step"}, ("mappo", "ippo", "maddpg")),
    "spread": ("particle-spread", {"num_agents": 3}, ("iql", "vdn", "qmix", "mappo", "ippo", "maddpg")),
    "spread-continuous": ("particle-spread", {"num_agents": 3, "continuous_actions": True}, ("mappo", "ippo",
                                                                                              "maddpg")),
}
CELLS = [f"{learner}/{task}" for task, (_, _, learners) in TASKS.items() for learner in learners]


def select(patterns: list[str]) -> list[str]:
    """Cell ids matching each pattern: a cell id, a task id or a learner name."""
    chosen = [c for c in CELLS if any(p in (c, c.split("/")[1], c.split("/")[0]) for p in patterns)]
    unknown = [p for p in patterns if not any(p in (c, *c.split("/")) for c in CELLS)]
    if unknown:
        raise SystemExit(f"unknown cells {unknown}; valid: {', '.join(CELLS)} (or a task or learner name)")
    return chosen


def target(task: str, greedy: np.ndarray, random: float, reference: float | None,
           steps: np.ndarray | None = None, optimal_steps: float | None = None) -> tuple[str, bool]:
    """The issue's target of the task and whether the seeds' greedy returns `(S,)` (on grid5: their mean greedy
    steps `(S,)` over the fixed layouts, an unsolved layout counting the 50-step limit, against the mean
    exact optimum `optimal_steps` of the same layouts) meet it."""
    mean = float(greedy.mean())
    if task == "lesson":
        hits = int(np.sum(np.abs(greedy - reference) <= 1e-4))
        return f"optimum in {hits}/{len(greedy)} seeds", hits == len(greedy)
    if task.startswith("rendezvous"):
        gap = (reference - mean) / abs(reference - random)
        return f"{100 * gap:.2f}% of random -> optimum left (target <= 2%)", gap <= 0.02
    if task.startswith("spread"):
        return f"{mean:.2f} per agent (target >= -12)", mean >= -12.0
    if steps is None or optimal_steps is None:
        return "no optimum known", False
    ratio = float(np.mean(steps)) / optimal_steps
    return (f"{ratio:.3f} x the optimum's steps on {GRID5_LAYOUTS} layouts (target <= 1.15)", ratio <= 1.15)


def grid5_steps(run_dir: str) -> tuple[np.ndarray, float]:
    """`(steps (S,), optimal steps)`: each seed's mean greedy steps over the learning-results study's fixed
    layouts (`studies.learning_results.value_based.grid5_layouts`, exact A* optima cached there), one greedy
    episode per layout, an unsolved one counting the 50-step limit, and the mean optimum of the layouts."""
    built, _, state, _ = load_run_state(run_dir)
    starts, goals, optimal = grid5_layouts(built.env, GRID5_LAYOUTS, verify=0)
    evaluate = jax.jit(jax.vmap(make_layout_evaluate(built.env, built.learner, 50), in_axes=(0, None, None)))
    steps = np.asarray(evaluate(state.learner, starts, goals), np.float64)  # (S, K)
    return steps.mean(axis=1), float(np.mean(optimal))


def scripted(env, params) -> float:
    """The scripted assignment policy's mean per-agent return on the end-of-run episodes."""
    evaluate = make_evaluate_policy(env, scripted_spread_policy(env, params), END_EPISODES, params=params)
    return float(np.mean(jax.jit(evaluate)(jax.random.PRNGKey(END_EVAL_SEED))))


def run_cell(cell: str, out_dir: str, steps: int | None = None) -> dict:
    """The cell's default run (every other setting from its preset; `steps` replaces only the budget)."""
    learner, task = cell.split("/")
    env, env_kwargs, _ = TASKS[task]
    run = RunConfig(env=env, env_kwargs=env_kwargs, learner=learner, num_seeds=SEEDS,
                    runner={} if steps is None else {"total_env_steps": steps})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_run(run, os.path.join(out_dir, cell.replace("/", "-")), progress=False, plot=False)
    greedy = np.asarray(result.greedy_return)
    reference, kind = result.optimum, "optimum"
    if reference is None and task == "spread":
        built = build(run)
        reference, kind = scripted(built.env, built.env_params), "scripted"
    share = None if reference is None else float((greedy.mean() - result.random_return)
                                                 / (reference - result.random_return))
    lengths = np.asarray(result.greedy_length)
    steps, optimal_steps = grid5_steps(result.run_dir) if task == "grid5" else (None, None)
    what, met = target(task, greedy, result.random_return, reference, steps, optimal_steps)
    return {"cell": cell, "learner": learner, "task": task, "env": env, "env_kwargs": env_kwargs,
            "env_steps": result.env_steps, "seeds": SEEDS, "greedy_per_seed": greedy.tolist(),
            "greedy": float(greedy.mean()), "greedy_length_per_seed": lengths.tolist(),
            **({} if steps is None else {"layout_steps_per_seed": steps.tolist(), "layouts": GRID5_LAYOUTS,
                                         "layout_optimal_steps": optimal_steps}),
            "random": result.random_return, "reference": reference,
            "reference_kind": kind, "share_of_gap": share, "target": what, "met": met,
            "final_training_return": result.final_return, "wall_s": result.seconds,
            "warnings": [str(w.message) for w in caught if isinstance(w.message, TrainingWarning)]}


def table(rows: list[dict]) -> str:
    lines = ["| cell | env steps | greedy (per agent) | random | optimum / scripted | share of gap | target | "
             "wall s (4 seeds) |", "|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        ref = "" if r["reference"] is None else f"{r['reference']:.3f} ({r['reference_kind']})"
        share = "" if r["share_of_gap"] is None else f"{100 * r['share_of_gap']:.1f}%"
        mark = "met" if r["met"] else "NOT met"
        lines.append(f"| {r['cell']} | {r['env_steps']:,} | {r['greedy']:.3f} | {r['random']:.3f} | {ref} | {share} | "
                     f"{mark}: {r['target']} | {r['wall_s']:.0f} |")
    return "\n".join(lines)


TASK_TITLES = {"lesson": "grid-world lesson", "grid5": "grid-world 5x5x3", "rendezvous-one-step": "rendezvous 1-step",
               "rendezvous-multi-step": "rendezvous multi-step", "spread": "particle-spread",
               "spread-continuous": "particle-spread cont."}


def matrix(rows: list[dict]) -> str:
    """README's table: a row per learner, a column per task; each measured cell gives the mean greedy
    per-agent return, the share of the random -> optimum (or scripted) gap (grid5: the greedy steps over the
    optimum's), met or not, and the wall time."""
    by = {r["cell"]: r for r in rows}
    lines = ["| | " + " | ".join(TASK_TITLES[task] for task in TASKS) + " |", "|---" * (len(TASKS) + 1) + "|"]
    for learner in LEARNER_NAMES:
        cells = []
        for task, (_, _, learners) in TASKS.items():
            r = by.get(f"{learner}/{task}")
            if learner not in learners:
                cells.append("")
            elif r is None:
                cells.append("not measured")
            else:
                share = "" if r["share_of_gap"] is None else f" ({100 * r['share_of_gap']:.0f}%)"
                if "layout_steps_per_seed" in r:  # grid5: steps over the optimum's on the fixed layouts
                    share = f" ({np.mean(r['layout_steps_per_seed']) / r['layout_optimal_steps']:.3f}x opt. steps)"
                cells.append(f"{'**' if r['met'] else ''}{r['greedy']:.2f}{share}{'**' if r['met'] else ' ✗'}, "
                             f"{r['env_steps'] / 1e6:.2g}M, {r['wall_s']:.0f} s")
        lines.append(f"| {learner.upper()} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=["lesson", "rendezvous-one-step"],
                        help="cell ids (learner/task), tasks or learners (default: the cheap cells)")
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps per seed instead of the preset's budget (rows go to "
                             "benchmarks/results/defaults_budgets.json unless --json is given)")
    parser.add_argument("--json", default=None, help="results file (default: defaults_table.json, or "
                                                     "defaults_budgets.json with --steps); rows of other cells "
                                                     "already there are kept")
    parser.add_argument("--list", action="store_true", help="print every cell id and exit")
    parser.add_argument("--matrix", action="store_true", help="print README's learner x task table of the results "
                                                               "file and exit (trains nothing)")
    parser.add_argument("--table", action="store_true", help="print the results file's rows as docs/benchmarks.md's "
                                                              "table and exit (trains nothing)")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps <= 0:
        parser.error(f"--steps must be a positive number of env steps, got {args.steps}")
    args.json = args.json or (RESULTS if args.steps is None else BUDGETS)
    if args.list:
        print("\n".join(CELLS))
        return 0
    if args.matrix or args.table:
        if not os.path.exists(args.json):
            parser.error(f"--{'matrix' if args.matrix else 'table'} reads the results file {args.json}, which does "
                         "not exist; run some cells first")
        with open(args.json) as f:
            rows = json.load(f)["rows"]
        print(matrix(rows) if args.matrix else table(rows))
        return 0
    assert set(LEARNERS) >= {c.split("/")[0] for c in CELLS}
    rows = []
    with tempfile.TemporaryDirectory() as out_dir:
        for cell in select(args.cells):
            tick = time.perf_counter()
            rows.append(run_cell(cell, out_dir, args.steps))
            print(f"{cell}: greedy {rows[-1]['greedy']:.3f}, {rows[-1]['target']} "
                  f"({time.perf_counter() - tick:.0f} s)", file=sys.stderr, flush=True)
    print(table(rows))
    old = json.load(open(args.json)) if os.path.exists(args.json) else {"rows": []}
    key = (lambda r: r["cell"]) if args.steps is None else (lambda r: (r["cell"], r["env_steps"]))
    kept = [r for r in old["rows"] if key(r) not in {key(row) for row in rows}]
    data = {"command": "python benchmarks/defaults_table.py --cells " + " ".join(args.cells)
            + ("" if args.steps is None else f" --steps {args.steps}"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
            "jax": jax.__version__,
            "rows": sorted(kept + rows, key=lambda r: (CELLS.index(r["cell"]), r["env_steps"]))}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    atomic_write_json(args.json, data)  # the file accumulates rows of earlier runs: a kill must not lose them
    return 0


if __name__ == "__main__":
    sys.exit(main())
