"""Speed of a one-program sweep against one compiled program per hyperparameter point.

64 random points (lr log-uniform, eps_decay_steps, gamma) x 4 seeds of IQL on particle-spread
(3 agents, discrete), each run `--steps` env steps (default 20,000: 16 envs x 25 steps x 50
iterations). Two ways:

  sweep     `jaxmarl_lab.sweep.run_sweep`: one compile, all 256 runs vmapped, in chunks of
            `--chunk-size` runs (one device).
  separate  per point, as libraries that launch one process per trial do: a fresh env,
            learner and `make_train` closure, `jax.jit(jax.vmap(train))` compiled on its own
            (lower + compile, timed) and run on the point's 4 seeds vmapped together (timed).

    python benchmarks/sweep_speedup.py            # full: 64 points x 4 seeds
    python benchmarks/sweep_speedup.py --quick    # smoke run: 4 points x 2 seeds, 2,000 steps

Writes benchmarks/results/sweep_speedup.json (or `--json`). Timings are wall-clock on
whatever else the machine is doing; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import jax
import numpy as np

from jaxmarl_lab import sweep as sweeps
from jaxmarl_lab.config import build


def make_spec(points: int, seeds: int, steps: int) -> sweeps.SweepSpec:
    return sweeps.SweepSpec.from_dict({
        "env": "particle-spread", "env_kwargs": {"num_agents": 3}, "learner": "iql",
        "runner": {"num_envs": 16, "rollout_len": 25, "total_env_steps": steps, "buffer_capacity": 2000},
        "seed": 0, "num_seeds": seeds, "mode": "random", "num_samples": points, "sample_seed": 0,
        "search": {"lr": {"log_uniform": [1e-4, 3e-3]}, "eps_decay_steps": {"uniform": [2000.0, 20000.0]},
                   "gamma": {"uniform": [0.9, 0.99]}}})


def run_one_program(spec: sweeps.SweepSpec, chunk_size: int) -> dict:
    """The sweep through `run_sweep` (fresh output folder); returns timings and rows."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = sweeps.run_sweep(spec, out, chunk_size=chunk_size, progress=True, devices=jax.devices()[:1])
        total = time.perf_counter() - start
    return {"total_s": total, "compile_s": result.compile_seconds, "run_s": result.run_seconds,
            "rows": result.rows}


def run_separately(spec: sweeps.SweepSpec, num_points: int) -> dict:
    """One fresh closure, compile and run per point (its seeds vmapped); returns timings and returns."""
    dims = sweeps.parse_search(spec)
    points = sweeps.expand_points(spec, dims)
    keys = sweeps.seed_keys(spec.base.seed, spec.base.num_seeds)
    compile_s, run_s, finals = [], [], {}
    for p in np.linspace(0, len(points) - 1, num_points).round().astype(int):
        built = build(sweeps.point_run_config(spec, dims, points[p]))  # a new env, learner and closure
        member = sweeps.make_member_fn(built)
        hparams = type(built.hparams)(*(np.full(len(keys), x, np.float32) for x in built.hparams))
        start = time.perf_counter()
        compiled = jax.jit(jax.vmap(member)).lower(keys, hparams).compile()
        compile_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(keys, hparams))
        run_s.append(time.perf_counter() - start)
        finals[int(p)] = np.asarray(out["final_return"]).tolist()
        print(f"separate: point {p}: compile {compile_s[-1]:.1f} s, run {run_s[-1]:.2f} s", flush=True)
    return {"points_measured": num_points, "compile_s": compile_s, "run_s": run_s, "final_returns": finals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 points x 2 seeds x 2,000 steps")
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per run")
    parser.add_argument("--chunk-size", type=int, default=32, help="runs per chunk of the one-program sweep")
    parser.add_argument("--separate-points", type=int, default=None,
                        help="time only this many separate calls (evenly spaced) and extrapolate to all points")
    parser.add_argument("--json", default="benchmarks/results/sweep_speedup.json")
    args = parser.parse_args()
    if args.quick:
        args.points, args.seeds, args.steps = 4, 2, 2000
    spec = make_spec(args.points, args.seeds, args.steps)
    measured = min(args.separate_points or args.points, args.points)
    load_before = os.getloadavg()
    one = run_one_program(spec, args.chunk_size)
    sep = run_separately(spec, measured)
    scale = args.points / measured
    separate_total = scale * (sum(sep["compile_s"]) + sum(sep["run_s"]))
    sweep_final = {r["point"]: [] for r in one["rows"]}
    for r in one["rows"]:
        sweep_final[r["point"]].append(r["final_return"])
    diffs = [abs(a - b) for p, values in sep["final_returns"].items() for a, b in zip(values, sweep_final[p])]
    report = {
        "device": jax.devices()[0].device_kind, "platform": jax.default_backend(), "jax": jax.__version__,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "task": {"env": "particle-spread (3 agents, discrete)", "learner": "iql", "points": args.points,
                 "seeds": args.seeds, "env_steps_per_run": args.steps, "runner": spec.base.runner,
                 "search": spec.search},
        "one_program": {"total_s": one["total_s"], "compile_s": one["compile_s"], "run_s": one["run_s"],
                        "chunk_size": args.chunk_size, "devices": 1},
        "separate": {"points_measured": measured, "extrapolated_to": args.points,
                     "compile_s_sum": sum(sep["compile_s"]), "run_s_sum": sum(sep["run_s"]),
                     "compile_s_mean": float(np.mean(sep["compile_s"])), "run_s_mean": float(np.mean(sep["run_s"])),
                     "total_s": separate_total, "seeds": "vmapped together within each call"},
        "speedup": separate_total / one["total_s"],
        "max_abs_diff_final_return_sweep_vs_separate": max(diffs) if diffs else None,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "task"}, indent=1))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
