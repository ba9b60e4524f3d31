"""`jaxmarl-lab sweep`: seeds x hyperparameters as one compiled program per shape group."""

from __future__ import annotations

import argparse
import math

from jaxmarl_lab.xla_flags import check_cpu_devices, set_cpu_devices


def check_memory_budget(value: float | None) -> int | None:
    """`--memory-budget-mb` in bytes (None: the default budget).

    Raises:
        ValueError: naming the flag, for a value that is not a finite number > 0.
    """
    if value is None:
        return None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"--memory-budget-mb must be a number of MiB > 0, got {value:g}")
    return max(1, int(value * 2**20))


def sweep(args: argparse.Namespace) -> int:
    """Runs (or resumes) the sweep of `--config`, writes its files under `--out`, prints the ranking.

    SIGINT (Ctrl-C) or SIGTERM at any moment ends the process with exit status 130 / 143 and
    one line saying how many runs are saved; every file under `--out` is complete, and the
    same command resumes (see `jaxmarl_lab.runs.interrupts`).
    """
    set_cpu_devices(args.cpu_devices)  # before JAX's backend starts; it only matters on a CPU
    from jaxmarl_lab.runs import sinks
    from jaxmarl_lab.runs.interrupts import exit_on_signal
    from jaxmarl_lab.sweeps import report as sweep_report
    from jaxmarl_lab.sweeps import run as sweeps

    budget = check_memory_budget(args.memory_budget_mb)
    spec = sweeps.load_sweep(args.config)
    sweeps.parse_search(spec)  # bad names and values fail here, before any distributed setup

    def interrupted() -> str:
        saved = sweep_report.saved_rows(args.out, spec.fingerprint())
        where = (f"{saved} run{'s are' if saved != 1 else ' is'} saved in {args.out}" if saved is not None
                 else f"nothing is saved in {args.out} yet")
        if args.overwrite:
            return f"interrupted ({where}); run the command again without --overwrite to resume"
        return f"interrupted ({where}); run the same command again to resume"

    sinks.check_available(args.tensorboard, args.wandb)  # a missing package: one line, before anything starts
    with exit_on_signal(interrupted):
        sweeps.init_distributed(args.coordinator, args.num_processes, args.process_id, args.init_timeout,
                                args.coordinator_bind)
        check_cpu_devices(args.cpu_devices)
        import jax
        sink = None
        if (args.tensorboard or args.wandb) and jax.process_index() == 0:
            sink = sinks.SweepSink(args.out, spec.to_dict(), args.tensorboard, args.wandb, args.wandb_mode)
        try:
            result = sweeps.run_sweep(spec, args.out, chunk_size=args.chunk_size, memory_budget=budget,
                                      max_chunks=args.max_chunks, overwrite=args.overwrite, progress=not args.quiet,
                                      sink=sink)
        finally:
            if sink is not None:
                sink.close()
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
                                   "see jaxmarl_lab.sweeps.run) and writes results.{csv,json}, ranking.csv, "
                                   "best_config.json and sweep.png under --out. Rerun to resume; Ctrl-C keeps "
                                   "every finished chunk.")
    p.add_argument("--config", required=True, help="sweep file (.json or .toml)")
    p.add_argument("--out", default="runs/sweep", help="output folder (partial results are resumed; one sweep "
                                                       "process at a time)")
    p.add_argument("--chunk-size", type=int, default=None, help="at most this many runs per device per chunk")
    p.add_argument("--memory-budget-mb", type=float, default=None,
                   help="memory per device for the runs of one chunk (default: half the free memory)")
    p.add_argument("--max-chunks", type=int, default=None, help="stop after this many chunks (resume later)")
    p.add_argument("--overwrite", action="store_true", help="ignore results already under --out")
    p.add_argument("--cpu-devices", type=int, default=None,
                   help="split the CPU into this many XLA devices (e.g. the core count)")
    p.add_argument("--coordinator", default=None,
                   help="HOST:PORT of process 0 for a multi-host sweep (or JAX_COORDINATOR_ADDRESS)")
    p.add_argument("--coordinator-bind", default=None, metavar="ADDR",
                   help="HOST:PORT process 0's coordinator listens on (default: the --coordinator address only; "
                        "0.0.0.0:PORT for every interface)")
    p.add_argument("--num-processes", type=int, default=None, help="processes in all (or JAX_NUM_PROCESSES)")
    p.add_argument("--process-id", type=int, default=None, help="this process, 0-based (or JAX_PROCESS_ID)")
    p.add_argument("--init-timeout", type=float, default=60.0, help="seconds to wait for the coordinator")
    p.add_argument("--tensorboard", metavar="DIR", help="also log every member to TensorBoard: its learning curve "
                                                        "and summary, one run per member in DIR/OUT_NAME/; needs "
                                                        "tensorboardX")
    p.add_argument("--wandb", metavar="PROJECT", help="also log every member's row to this Weights & Biases "
                                                      "project, one W&B run per sweep; needs wandb")
    p.add_argument("--wandb-mode", choices=("online", "offline", "disabled"), help="wandb.init's mode")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=sweep, positive=("chunk_size", "max_chunks", "cpu_devices"))
