"""`python -m studies.critic_variance`: centralized vs independent critic, policy-gradient variance.

`--part 1` (default): the textbook REINFORCE sweep on one-step rendezvous.
`--part 2`: MAPPO vs IPPO trained on particle-spread, the variance logged through training.

Run it from a checkout's root. The options are those of the former `jaxmarl-lab variance`
command; errors a user can fix (a bad option value, an unwritable `--out`) are one line,
`python -m studies.critic_variance: error: ...`, and exit status 2 (`--debug` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import jax

from jaxmarl_lab.xla_flags import add_xla_flag
from studies.critic_variance import critic_training, variance_report
from studies.critic_variance import critic_training_report as report
from studies.critic_variance import variance as textbook

PROG = "python -m studies.critic_variance"
PART1_DEFAULTS = {"seeds": 10_000, "num_agents": [2, 4, 8, 16], "out": "runs/variance"}
PART2_DEFAULTS = {"seeds": 32, "num_agents": [2, 3, 4, 6], "out": "runs/critic_variance_training"}


def variance(args: argparse.Namespace) -> int:
    """Runs the chosen part, writes CSV/JSON/PNG under `--out` and prints the table."""
    defaults = PART2_DEFAULTS if args.part == 2 else PART1_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    # One XLA host device per core, so the seeds are split over the cores; it only takes
    # effect if JAX's backend has not started yet in this process, and never overrides the user.
    add_xla_flag(f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")
    return part2(args) if args.part == 2 else part1(args)


def part1(args: argparse.Namespace) -> int:
    """The textbook REINFORCE sweep (`variance.run_variance_sweep`), its table and files."""
    config = textbook.VarianceConfig(num_agents=tuple(args.num_agents), couplings=tuple(args.couplings),
                                     seeds=args.seeds, steps=args.steps, curvature_scaled_lr=args.curvature_scaled_lr)
    start = time.perf_counter()
    records, _ = textbook.run_variance_sweep(jax.random.key(args.key), config)
    seconds = time.perf_counter() - start
    print(f"{len(config.cells)} cells x 2 critics x {config.seeds} seeds x {config.steps} steps, "
          f"{'curvature-scaled' if config.curvature_scaled_lr else 'plain'} lr, {seconds:.1f} s "
          f"(compile included); ratios are independent / centralized, 95% bootstrap CIs")
    print(variance_report.format_table(records))
    paths = variance_report.write_outputs(records, config, args.out,
                                          {"key_seed": args.key, "seconds": seconds})
    print("wrote " + ", ".join(paths.values()))
    return 0


def part2(args: argparse.Namespace) -> int:
    """MAPPO vs IPPO per N, one compiled program each; files rewritten after every N."""
    config = critic_training.CriticTrainingConfig(num_agents=tuple(args.num_agents), seeds=args.seeds,
                                                  env_steps=args.env_steps, num_envs=args.num_envs,
                                                  phases=args.phases, grad_var_samples=args.grad_var_samples,
                                                  gamma=args.gamma, value_norm=args.value_norm)
    key = jax.random.key(args.key)
    print(f"MAPPO vs IPPO on particle-spread N in {config.num_agents}: {config.seeds} seeds x "
          f"{config.iterations} iterations of {config.num_envs} envs x {config.rollout_len} steps "
          f"({config.iterations * config.num_envs * config.rollout_len:,} env steps per seed and critic), "
          f"{len(jax.devices())} device(s)", flush=True)
    runs, timing = {}, {}
    for n in config.num_agents:
        start = time.perf_counter()
        compiled = critic_training.make_critic_runs_fn(config, n).lower(key).compile()
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        runs[n] = jax.tree.map(lambda x: jax.device_get(x), jax.block_until_ready(compiled(key)))
        run_s = time.perf_counter() - start
        timing[str(n)] = {"compile_s": compile_s, "run_s": run_s}
        print(f"N={n}: compile {compile_s:.0f} s, run {run_s:.0f} s", flush=True)
        extra = {"key_seed": args.key, "timing": timing, "devices": [str(d) for d in jax.devices()],
                 "platform": platform.platform(), "jax": jax.__version__,
                 "complete": len(runs) == len(config.num_agents)}
        out = report.write_outputs(runs, config, args.out, extra)  # after every N: a partial run keeps its data
    print("pg-variance ratios are IPPO (independent) / MAPPO (centralized), 95% paired bootstrap CIs over seeds")
    print(report.format_table(out["records"]))
    print(report.format_markdown(out["records"], out["final"]))
    print("wrote " + ", ".join(out["paths"].values()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The study's argument parser (the options of the former `jaxmarl-lab variance`)."""
    p = argparse.ArgumentParser(prog=PROG, description="centralized vs independent critic: policy-gradient "
                                "variance (part 1: REINFORCE sweep; part 2: MAPPO vs IPPO training)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("--part", type=int, choices=(1, 2), default=1,
                   help="1: textbook REINFORCE on rendezvous; 2: MAPPO vs IPPO on particle-spread")
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: 10000 part 1, 32 part 2)")
    p.add_argument("--num-agents", type=int, nargs="+", default=None,
                   help="numbers of agents (default: 2 4 8 16 part 1, 2 3 4 6 part 2)")
    p.add_argument("--key", type=int, default=0, help="seed of the JAX key")
    p.add_argument("--out", default=None, help="output folder (default: runs/variance, "
                                               "runs/critic_variance_training)")
    g1 = p.add_argument_group("part 1")
    g1.add_argument("--steps", type=int, default=400, help="REINFORCE steps per run")
    g1.add_argument("--couplings", type=float, nargs="+", default=[0.25, 1.0, 4.0])
    g1.add_argument("--curvature-scaled-lr", action="store_true",
                    help="scale each cell's lr by 2(1 + 4*1) / 2(1 + c N): lr * curvature = 0.2 in every "
                         "cell (the independent critic can still diverge from gradient noise)")
    g2 = p.add_argument_group("part 2")
    g2.add_argument("--env-steps", type=int, default=40_000,
                    help="training budget per seed and critic (~10 min for N = 2 3 4 6 on the 2-core "
                         "CPU; a GPU affords 5000000)")
    g2.add_argument("--num-envs", type=int, default=16, help="environments per seed")
    g2.add_argument("--phases", type=int, default=3, help="spans of training the ratio is reported on")
    g2.add_argument("--grad-var-samples", type=int, default=64,
                    help="agent-steps per iteration for the per-sample policy-gradient variance")
    g2.add_argument("--gamma", type=float, default=0.95,
                    help="discount of both learners (at 0.99 IPPO's normalised critic diverges on "
                         "particle-spread: see studies/critic_variance/critic_training.py)")
    g2.add_argument("--no-value-norm", dest="value_norm", action="store_false",
                    help="train both critics on raw value targets instead of normalised ones")
    return p


POSITIVE = ("steps", "env_steps", "num_envs", "phases", "grad_var_samples")  # integer options that must be >= 1


def main(argv: list[str] | None = None) -> int:
    """Parses `argv` (default: `sys.argv[1:]`), runs the chosen part and returns the exit status."""
    args = build_parser().parse_args(argv)
    for name in POSITIVE:
        value = getattr(args, name)
        if value is not None and value < 1:
            print(f"{PROG}: error: --{name.replace('_', '-')} must be an integer >= 1, got {value}", file=sys.stderr)
            return 2
    try:
        return variance(args)
    except (ValueError, OSError) as e:
        if args.debug:
            raise
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130


def _one_line(e: Exception) -> str:
    """The message of `e`; an OSError from the system as `reason: path` instead of `[Errno 28] ...`."""
    if isinstance(e, OSError) and e.strerror and e.errno is not None:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e).replace("\n", " ")
