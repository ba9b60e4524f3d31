"""`jaxmarl-lab variance`: centralized vs independent critic, policy-gradient variance sweep."""

from __future__ import annotations

import argparse
import os
import time

import jax


def variance(args: argparse.Namespace) -> int:
    """Runs the critic-variance sweep, writes CSV/JSON/PNG under `--out` and prints the table."""
    # One XLA host device per core, so the seeds are split over the cores; it only takes
    # effect if JAX's backend has not started yet in this process, and never overrides the user.
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")
    from jaxmarl_lab.experiments import variance as experiment
    from jaxmarl_lab.experiments import variance_report

    config = experiment.VarianceConfig(num_agents=tuple(args.num_agents), couplings=tuple(args.couplings),
                                       seeds=args.seeds, steps=args.steps,
                                       curvature_scaled_lr=args.curvature_scaled_lr)
    start = time.perf_counter()
    records, _ = experiment.run_variance_sweep(jax.random.key(args.key), config)
    seconds = time.perf_counter() - start
    print(f"{len(config.cells)} cells x 2 critics x {config.seeds} seeds x {config.steps} steps, "
          f"{'curvature-scaled' if config.curvature_scaled_lr else 'plain'} lr, {seconds:.1f} s "
          f"(compile included); ratios are independent / centralized, 95% bootstrap CIs")
    print(variance_report.format_table(records))
    paths = variance_report.write_outputs(records, config, args.out,
                                          {"key_seed": args.key, "seconds": seconds})
    print("wrote " + ", ".join(paths.values()))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("variance", help="centralized vs independent critic: policy-gradient variance sweep",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seeds", type=int, default=10_000, help="seeds per cell")
    p.add_argument("--steps", type=int, default=400, help="REINFORCE steps per run")
    p.add_argument("--num-agents", type=int, nargs="+", default=[2, 4, 8, 16])
    p.add_argument("--couplings", type=float, nargs="+", default=[0.25, 1.0, 4.0])
    p.add_argument("--curvature-scaled-lr", action="store_true",
                   help="scale each cell's lr by 2(1 + 4*1) / 2(1 + c N): lr * curvature = 0.2 in every "
                        "cell (the independent critic can still diverge from gradient noise)")
    p.add_argument("--key", type=int, default=0, help="seed of the JAX key")
    p.add_argument("--out", default="runs/variance", help="folder for variance.{csv,json,png}")
    p.set_defaults(func=variance, positive=("seeds", "steps"))
