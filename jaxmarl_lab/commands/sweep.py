"""`jaxmarl-lab sweep`: seeds x hyperparameters as one compiled program per shape group."""

from __future__ import annotations

import argparse
import os


def sweep(args: argparse.Namespace) -> int:
    """Runs (or resumes) the sweep of `--config`, writes its files under `--out`, prints the ranking."""
    if args.cpu_devices is not None:
        # Host devices must be set before JAX's backend starts; it only matters on a CPU.
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.cpu_devices}").strip()
    from jaxmarl_lab import sweep as sweeps
    from jaxmarl_lab import sweep_report

    spec = sweeps.load_sweep(args.config)
    sweeps.parse_search(spec)  # bad names and values fail here, before any distributed setup
    sweeps.init_distributed(args.coordinator, args.num_processes, args.process_id, args.init_timeout)
    budget = int(args.memory_budget_mb * 2**20) if args.memory_budget_mb else None
    result = sweeps.run_sweep(spec, args.out, chunk_size=args.chunk_size, memory_budget=budget,
                              max_chunks=args.max_chunks, overwrite=args.overwrite, progress=not args.quiet)
    import jax
    if jax.process_index() == 0:
        if result.complete:
            print(f"{len(result.rows)} runs; points ranked by IQM of the final return over seeds (95% bootstrap CI):")
            print(sweep_report.format_ranking(result.ranking, list(spec.search)))
            print(f"best config: {result.paths.get('best_config')}")
        else:
            print(f"{len(result.rows)} runs written to {args.out}; run the same command again to resume")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="hyperparameter sweep: points x seeds as one program, over devices and hosts",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Reads a sweep file (a run config's keys plus 'search', 'mode', 'num_samples'; "
                                   "see jaxmarl_lab.sweep) and writes results.{csv,json}, ranking.csv, "
                                   "best_config.json and sweep.png under --out. Rerun to resume.")
    p.add_argument("--config", required=True, help="sweep file (.json or .toml)")
    p.add_argument("--out", default="runs/sweep", help="output folder (partial results are resumed)")
    p.add_argument("--chunk-size", type=int, default=None, help="at most this many runs per device per chunk")
    p.add_argument("--memory-budget-mb", type=float, default=None,
                   help="memory per device for the runs of one chunk (default: half the free memory)")
    p.add_argument("--max-chunks", type=int, default=None, help="stop after this many chunks (resume later)")
    p.add_argument("--overwrite", action="store_true", help="ignore results already under --out")
    p.add_argument("--cpu-devices", type=int, default=None,
                   help="split the CPU into this many XLA devices (e.g. the core count)")
    p.add_argument("--coordinator", default=None,
                   help="HOST:PORT of process 0 for a multi-host sweep (or JAX_COORDINATOR_ADDRESS)")
    p.add_argument("--num-processes", type=int, default=None, help="processes in all (or JAX_NUM_PROCESSES)")
    p.add_argument("--process-id", type=int, default=None, help="this process, 0-based (or JAX_PROCESS_ID)")
    p.add_argument("--init-timeout", type=float, default=60.0, help="seconds to wait for the coordinator")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=sweep, positive=("chunk_size", "max_chunks", "cpu_devices"))
