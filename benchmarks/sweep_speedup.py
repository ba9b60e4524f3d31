"""Speed of a one-program sweep against one compiled program per hyperparameter point.

64 random points (lr log-uniform, eps_decay_steps, gamma) x 4 seeds of IQL on particle-spread
(3 agents, discrete), each run `--steps` env steps (default 20,000: 16 envs x 25 steps x 50
iterations). Two ways:

  sweep     `jaxmarl_lab.sweeps.run.run_sweep`: one compile, all 256 runs vmapped, in chunks of
            `--chunk-size` runs (one device).
  separate  per point, as JaxMARL's and Mava's sweeps do: one fresh Python process per trial
            (this script with `--worker P`), which imports JAX, builds the env, learner and
            `make_train` closure, compiles `jax.jit(jax.vmap(train))` (lower + compile, timed
            inside) and runs it on the point's 4 seeds vmapped together (timed inside). The
            process's wall time is the trial's cost; the compile + run times measured inside
            the process give a second, lower-bound baseline that leaves out start-up.

    python benchmarks/sweep_speedup.py            # full: 64 points x 4 seeds
    python benchmarks/sweep_speedup.py --cpu-devices 2   # the sweep sharded over 2 host devices
    python benchmarks/sweep_speedup.py --quick    # smoke run: 4 points x 2 seeds, 2,000 steps
    python benchmarks/sweep_speedup.py --command-devices 1,2   # + `jaxmarl-lab sweep --cpu-devices N` timed

`--command-devices` adds the scaling rows through the command line: the same sweep written to a
sweep file and run as `python -m jaxmarl_lab sweep --config F --cpu-devices N --chunk-size C`
in a fresh process per N (wall time of the process: start-up, compile, training, files).
The members skip the greedy evaluation (`eval_episodes` 0), so every way times training alone.

Writes benchmarks/results/sweep_speedup.json (or `--json`). Timings are wall-clock on
whatever else the machine is doing; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

from jaxmarl_lab.runs.config import build, seed_keys
from jaxmarl_lab.sweeps import run as sweeps
from jaxmarl_lab.xla_flags import add_xla_flag


def make_spec(points: int, seeds: int, steps: int) -> sweeps.SweepSpec:
    return sweeps.SweepSpec.from_dict({
        "env": "particle-spread", "env_kwargs": {"num_agents": 3}, "learner": "iql",
        "runner": {"num_envs": 16, "rollout_len": 25, "total_env_steps": steps, "buffer_capacity": 2000},
        "seed": 0, "num_seeds": seeds, "mode": "random", "num_samples": points, "sample_seed": 0, "eval_episodes": 0,
        "search": {"lr": {"log_uniform": [1e-4, 3e-3]}, "eps_decay_steps": {"uniform": [2000.0, 20000.0]},
                   "gamma": {"uniform": [0.9, 0.99]}}})


def run_one_program(spec: sweeps.SweepSpec, chunk_size: int) -> dict:
    """The sweep through `run_sweep` on every local device (fresh output folder); returns timings and rows."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = sweeps.run_sweep(spec, out, chunk_size=chunk_size, progress=True, devices=jax.devices())
        total = time.perf_counter() - start
    return {"total_s": total, "compile_s": result.compile_seconds, "run_s": result.run_seconds,
            "rows": result.rows}


def run_point(spec: sweeps.SweepSpec, p: int) -> dict:
    """One trial in this process: a new env, learner and closure, compiled and run on its seeds."""
    dims = sweeps.parse_search(spec)
    points = sweeps.expand_points(spec, dims)
    keys = seed_keys(spec.base.seed, spec.base.num_seeds)
    built = build(sweeps.point_run_config(spec, dims, points[p]))
    member = sweeps.make_member_fn(built)
    hparams = type(built.hparams)(*(np.full(len(keys), x, np.float32) for x in built.hparams))
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(member)).lower(keys, hparams).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    summary, _, _ = jax.block_until_ready(compiled(keys, hparams))
    run_s = time.perf_counter() - start
    return {"point": p, "compile_s": compile_s, "run_s": run_s,
            "final_returns": np.asarray(summary["final_return"]).tolist()}


def run_separately(args: argparse.Namespace, num_points: int, env: dict) -> dict:
    """One fresh process per trial (`--worker P`), timed from outside; returns timings and returns."""
    wall_s, compile_s, run_s, finals = [], [], [], {}
    for p in np.linspace(0, args.points - 1, num_points).round().astype(int):
        command = [sys.executable, os.path.abspath(__file__), "--worker", str(p), "--points", str(args.points),
                   "--seeds", str(args.seeds), "--steps", str(args.steps)]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        wall_s.append(time.perf_counter() - start)
        trial = json.loads(done.stdout.strip().splitlines()[-1])
        compile_s.append(trial["compile_s"])
        run_s.append(trial["run_s"])
        finals[int(p)] = trial["final_returns"]
        print(f"separate: point {p}: process {wall_s[-1]:.1f} s (compile {compile_s[-1]:.1f} s, "
              f"run {run_s[-1]:.2f} s)", flush=True)
    return {"points_measured": num_points, "wall_s": wall_s, "compile_s": compile_s, "run_s": run_s,
            "final_returns": finals}


def run_command(spec: sweeps.SweepSpec, devices: int, chunk_size: int, env: dict) -> dict:
    """`python -m jaxmarl_lab sweep --cpu-devices N` in a fresh process, timed from outside."""
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "sweep.json")
        with open(config, "w") as f:
            json.dump(spec.to_dict(), f)
        command = [sys.executable, "-m", "jaxmarl_lab", "sweep", "--config", config, "--out", os.path.join(tmp, "out"),
                   "--cpu-devices", str(devices), "--chunk-size", str(chunk_size)]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        with open(os.path.join(tmp, "out", "results.json")) as f:
            results = json.load(f)
    print(f"command: --cpu-devices {devices}: {wall:.1f} s (compile {results['compile_seconds']:.1f} s, "
          f"run {results['run_seconds']:.1f} s)", flush=True)
    return {"devices": results["devices"], "wall_s": wall, "compile_s": results["compile_seconds"],
            "run_s": results["run_seconds"], "chunk_size_per_device": chunk_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 points x 2 seeds x 2,000 steps")
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per run")
    parser.add_argument("--chunk-size", type=int, default=32,
                        help="runs per device per chunk of the one-program sweep")
    parser.add_argument("--cpu-devices", type=int, default=None,
                        help="on a CPU, split it into this many host devices for the sweep (XLA's "
                             "--xla_force_host_platform_device_count); the separate trials keep one device")
    parser.add_argument("--separate-points", type=int, default=None,
                        help="time only this many separate calls (evenly spaced) and extrapolate to all points")
    parser.add_argument("--command-devices", default=None, metavar="N,M",
                        help="also time `jaxmarl-lab sweep --cpu-devices N` (and M...) in fresh processes")
    parser.add_argument("--json", default="benchmarks/results/sweep_speedup.json")
    parser.add_argument("--worker", type=int, default=None, metavar="P",
                        help="internal: run point P as one separate trial and print its timings as JSON")
    args = parser.parse_args()
    if args.quick:
        args.points, args.seeds, args.steps = 4, 2, 2000
    spec = make_spec(args.points, args.seeds, args.steps)
    if args.worker is not None:
        print(json.dumps(run_point(spec, args.worker)))
        return
    worker_env = dict(os.environ)  # the separate trials run on one device, whatever the sweep uses
    if args.cpu_devices is not None:  # before JAX's backend starts
        add_xla_flag(f"--xla_force_host_platform_device_count={args.cpu_devices}")
    measured = min(args.separate_points or args.points, args.points)
    load_before = os.getloadavg()
    command_rows = []
    for devices in ([int(n) for n in args.command_devices.split(",")] if args.command_devices else []):
        # the same per-device chunk: all of a device's share in one chunk, whatever the device count
        command_rows.append(run_command(spec, devices, args.chunk_size, {k: v for k, v in worker_env.items()
                                                                          if k != "XLA_FLAGS"}))
    one = run_one_program(spec, args.chunk_size)
    sep = run_separately(args, measured, worker_env)
    scale = args.points / measured
    separate_total = scale * sum(sep["wall_s"])
    in_process_total = scale * (sum(sep["compile_s"]) + sum(sep["run_s"]))
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
                        "chunk_size_per_device": args.chunk_size, "devices": len(jax.devices())},
        "separate": {"points_measured": measured, "extrapolated_to": args.points,
                     "process_wall_s_mean": float(np.mean(sep["wall_s"])),
                     "compile_s_mean": float(np.mean(sep["compile_s"])), "run_s_mean": float(np.mean(sep["run_s"])),
                     "total_s": separate_total, "compile_and_run_only_total_s": in_process_total,
                     "seeds": "vmapped together within each process"},
        "speedup": separate_total / one["total_s"],
        "speedup_vs_compile_and_run_only": in_process_total / one["total_s"],
        "max_abs_diff_final_return_sweep_vs_separate": max(diffs) if diffs else None,
    }
    if command_rows:
        base = command_rows[0]["wall_s"]
        report["command"] = [{**row, "speedup_vs_separate": separate_total / row["wall_s"],
                              "scaling_vs_first": base / row["wall_s"]} for row in command_rows]
    print(json.dumps({k: v for k, v in report.items() if k != "task"}, indent=1))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
