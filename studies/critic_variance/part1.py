"""Part 1 of the critic-variance study, the full grid, timed: the run behind `results/part1/`.

12 cells (N in {2, 4, 8, 16} x c in {0.25, 1, 4}) x 2 critics x 10,000 seeds x 400 steps x
batch 32, as one jit-compiled program. Compile time is measured apart from the run (the run
is timed on the already-compiled executable, blocking until the results are ready); the
bootstrap summary (NumPy) is timed apart too. Runs the plain learning rate and then the
curvature-scaled one, prints the N=4, c=1 row of each and writes the full tables
(`variance_plain.*`, `variance_scaled.*`: CSV, JSON with the config and timings, PNG) to
`studies/critic_variance/results/part1/` (or `--out`). From a checkout's root:

    python -m studies.critic_variance.part1                   # 10,000 seeds, both lr modes
    python -m studies.critic_variance.part1 --seeds 1000 --only plain --out runs/part1

On a CPU the script asks XLA for one host device per core (before importing JAX), and the
seeds are split across them; XLA runs the program single-threaded otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")

import jax  # noqa: E402  (after XLA_FLAGS)

from studies.critic_variance import variance, variance_report  # noqa: E402


def run_mode(seeds: int, scaled: bool, out_dir: str, key_seed: int) -> None:
    config = variance.VarianceConfig(seeds=seeds, curvature_scaled_lr=scaled)
    label = "curvature-scaled lr" if scaled else "plain lr"
    key = jax.random.key(key_seed)
    start = time.perf_counter()
    compiled = variance.make_sweep_fn(config).lower(key).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    raw = jax.block_until_ready(compiled(key))
    run_s = time.perf_counter() - start
    start = time.perf_counter()
    raw = jax.tree.map(lambda x: jax.device_get(x), raw)
    records = [variance_report.summarize_cell(raw, i, n, c, variance.cell_lr(config, n, c))
               for i, (n, c) in enumerate(config.cells)]
    summary_s = time.perf_counter() - start
    print(f"\n== {label}: {len(config.cells)} cells x 2 critics x {seeds} seeds x {config.steps} steps "
          f"x batch {config.batch}")
    print(f"compile {compile_s:.2f} s, run {run_s:.2f} s, bootstrap summary {summary_s:.2f} s")
    row = next(r for r in records if r["num_agents"] == 4 and r["coupling"] == 1.0)
    print("N=4, c=1 row:\n" + variance_report.format_row(row))
    print("full table:\n" + variance_report.format_table(records))
    extra = {"timing_s": {"compile": compile_s, "run": run_s, "summary": summary_s},
             "key_seed": key_seed, "devices": [str(d) for d in jax.devices()],
             "platform": platform.platform(), "jax": jax.__version__}
    paths = variance_report.write_outputs(records, config, out_dir, extra,
                                          stem="variance_scaled" if scaled else "variance_plain")
    print("wrote " + ", ".join(paths.values()))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m studies.critic_variance.part1", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--key", type=int, default=0)
    parser.add_argument("--only", choices=("plain", "scaled"), default=None)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "part1"))
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {len(jax.devices())} devices ({jax.devices()[0].device_kind}), "
          f"{os.cpu_count()} cores")
    for scaled in (False, True):
        if args.only is None or args.only == ("scaled" if scaled else "plain"):
            run_mode(args.seeds, scaled, args.out, args.key)


if __name__ == "__main__":
    main()
