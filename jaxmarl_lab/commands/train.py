"""`jaxmarl-lab train`: train a learner on an environment in a resumable run directory.

    jaxmarl-lab train                                   # MAPPO on particle-spread N=3, 3M steps
    jaxmarl-lab train --learner qmix --env grid-world --set env_kwargs.layout=lesson
    jaxmarl-lab train --config best.json --seeds 4 --run-dir runs/best
    jaxmarl-lab train --resume runs/mappo-particle-spread
    jaxmarl-lab train --tensorboard tb --wandb my-project  # also log to TensorBoard and Weights & Biases
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys

from jaxmarl_lab.runs.config import RunConfig, build, learner_names, load_run_config
from jaxmarl_lab.xla_flags import check_cpu_devices, set_cpu_devices

SECTIONS = ("env_kwargs", "env_params", "config", "hparams", "runner")
_RUN_FLAGS = ("config", "env", "learner", "set", "seeds", "seed", "steps", "run_dir", "overwrite", "memory_budget_mb")


def parse_assignment(text: str) -> tuple[str, str, object]:
    """`"hparams.lr=1e-3"` -> `("hparams", "lr", 0.001)`; the value is JSON if it parses, else a string.

    Raises:
        ValueError: without `=`, without a section, or with an unknown section.
    """
    target, sep, raw = text.partition("=")
    section, dot, field = target.partition(".")
    if not sep or not dot or not field:
        raise ValueError(f"--set takes SECTION.FIELD=VALUE (sections: {', '.join(SECTIONS)}), got {text!r}")
    if section not in SECTIONS:
        raise ValueError(f"--set section {section!r} in {text!r} is not one of {', '.join(SECTIONS)}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return section, field, value


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of `--config` (or the default run) with the flags applied.

    Changing `--env` drops the base's env_kwargs and env_params; changing `--learner`
    drops its config and hparams (they belong to the other env or learner).
    """
    base = load_run_config(args.config) if args.config else RunConfig()
    values = base.to_dict()
    if args.env is not None and args.env != base.env:
        values.update(env=args.env, env_kwargs={}, env_params={})
    if args.learner is not None and args.learner != base.learner:
        values.update(learner=args.learner, config={}, hparams={})
    for text in args.set or ():
        section, field, value = parse_assignment(text)
        values[section] = {**values[section], field: value}
    if args.steps is not None:
        values["runner"] = {**values["runner"], "total_env_steps": args.steps}
    if args.seeds is not None:
        values["num_seeds"] = args.seeds
    if args.seed is not None:
        values["seed"] = args.seed
    return RunConfig.from_dict(values)


def train(args: argparse.Namespace) -> int:
    """Trains (or resumes) a run; prints a summary and where the results are.

    SIGINT (Ctrl-C) or SIGTERM at any moment ends the process with the resume line and exit
    status 130 / 143; the last checkpoint is complete (see `jaxmarl_lab.runs.interrupts`).
    """
    set_cpu_devices(args.cpu_devices)  # before JAX's backend starts; it only matters on a CPU
    from jaxmarl_lab.runs import training
    from jaxmarl_lab.runs.interrupts import exit_on_signal
    from jaxmarl_lab.runs.layout import CONFIG
    from jaxmarl_lab.runs.sinks import prepare_sinks

    if args.wandb_mode is not None and args.wandb is None:
        raise ValueError("--wandb-mode needs --wandb PROJECT")
    if args.resume:
        given = [f"--{name.replace('_', '-')}" for name in _RUN_FLAGS if getattr(args, name) not in (None, False)]
        if given:
            raise ValueError(f"--resume continues {args.resume!r} with its saved config.json; it cannot be "
                             f"combined with {', '.join(given)}")
        run_dir = args.resume
    else:
        run = run_config_from_args(args)
        run_dir = args.run_dir or f"runs/{run.learner}-{run.env}"
    # The logging flags are no run flags: they may come with --resume. Packages are checked here, before
    # anything is compiled or written.
    sinks = prepare_sinks(run_dir, tensorboard=args.tensorboard, wandb_project=args.wandb, wandb_mode=args.wandb_mode,
                          resume=bool(args.resume), overwrite=args.overwrite)

    def interrupted() -> str:
        if os.path.exists(os.path.join(run_dir, CONFIG)):
            return f"interrupted; continue with: jaxmarl-lab train --resume {run_dir}"
        return f"interrupted before {run_dir} was written; nothing to resume"

    try:
        with exit_on_signal(interrupted):
            check_cpu_devices(args.cpu_devices)
            if args.resume:
                result = training.resume_run(run_dir, progress=not args.no_progress, plot=not args.no_plot,
                                             sinks=sinks)
                run = load_run_config(os.path.join(run_dir, CONFIG))
            else:
                budget = None if args.memory_budget_mb is None else _budget_bytes(args.memory_budget_mb)
                result = training.train_run(run, run_dir, chunk_updates=args.chunk_updates, overwrite=args.overwrite,
                                            progress=not args.no_progress, plot=not args.no_plot,
                                            memory_budget=budget, sinks=sinks)
    except training.NonFiniteError as e:
        print(f"{chr(10) if sys.stderr.isatty() else ''}jaxmarl-lab: error: {e}", file=sys.stderr)
        return 1
    devices = training.seed_mesh(run.num_seeds).devices.size
    print(f"{run.learner} on {run.env} {run.env_kwargs}: {result.env_steps:,} env steps x {run.num_seeds} seed(s) on "
          f"{devices} device(s), {result.seconds:.1f} s (compilation included); {summary_scores(result)}")
    print(f"run directory: {result.run_dir}   next: jaxmarl-lab eval {result.run_dir}")
    return 0


def summary_scores(result) -> str:
    """`training return T | greedy G (random R, optimum O)`, per agent, of a `TrainResult`."""
    returns = [r for r in result.final_return if r is not None]
    ret = f"{sum(returns) / len(returns):.3f}" if returns else "n/a"
    line = f"per-agent return: training (last chunk) {ret}"
    if result.greedy_return is not None:
        greedy = sum(result.greedy_return) / len(result.greedy_return)
        best = "" if result.optimum is None else f", optimum {result.optimum:.3f}"
        line += f" | greedy {greedy:.3f} (random {result.random_return:.3f}{best})"
    return line


def _epilog() -> str:
    built = build(RunConfig())
    default = RunConfig().to_dict()
    lines = ["default run (no flags):",
             f"  env {default['env']} {default['env_kwargs']}, learner {default['learner']}, seed 0, 1 seed",
             f"  config:  {dataclasses.asdict(built.learner_config)}",
             f"  hparams: {built.hparams._asdict()}",
             f"  runner:  num_envs={built.runner.num_envs} rollout_len={built.runner.rollout_len} "
             f"total_env_steps={built.runner.total_env_steps:,}",
             "Every learner's Config, HParams and runner fields, with defaults: jaxmarl-lab list",
             "Settings not given come from the learner's preset for the env (learners/defaults.py).",
             "Returns are per agent: each agent's rewards summed over an episode, averaged over agents.",
             "examples:",
             "  jaxmarl-lab train --learner qmix --env grid-world --set env_kwargs.layout=lesson",
             "      # 20k steps, ~15 s on 2 cores: greedy 0.970 per agent, the optimum (3 steps)",
             "  jaxmarl-lab train --learner maddpg --env rendezvous",
             "      # one-step rendezvous, 4k steps, ~10 s: greedy -0.000, within 2% of random -> optimum 0",
             "  jaxmarl-lab train --seeds 4",
             "      # MAPPO on particle-spread, 3M steps, 4 seeds as one program, ~3 min: greedy -10.8 per agent",
             "      # (target -12 or better; random -25.5, scripted -8.7)",
             "(docs/benchmarks.md#what-the-defaults-reach: what each learner reaches with its defaults)"]
    return "\n".join(lines)


def _budget_bytes(megabytes: float) -> int:
    if not math.isfinite(megabytes) or megabytes <= 0:
        raise ValueError(f"--memory-budget-mb must be a number > 0, got {megabytes:g}")
    return int(megabytes * 2**20)


def _help_with_epilog(p: argparse.ArgumentParser) -> str:
    """`--help` text with the default run's settings; building them starts JAX, so a parser that
    is only built (by every command) must not do it."""
    p.epilog = _epilog()
    return argparse.ArgumentParser.format_help(p)


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a learner in a resumable run directory",
                       description="Train a learner on an environment. Chunks of jitted updates; between "
                                   "chunks a progress line, metrics.jsonl rows and an atomic checkpoint.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.format_help = lambda: _help_with_epilog(p)  # the epilog builds the default run: only when help is shown
    p.add_argument("--config", metavar="FILE", help="a run config (.json or .toml; `jaxmarl-lab sweep` writes "
                                                    "its best point in this format) (default: the default run)")
    p.add_argument("--env", help="environment, one of the names in `jaxmarl-lab list` (default: particle-spread, "
                                 "or the --config file's)")
    p.add_argument("--learner", help=f"learner, one of {', '.join(learner_names())} (default: mappo, or the "
                                     f"--config file's)")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help=f"override one field; SECTION is one of {', '.join(SECTIONS)}; VALUE is JSON or a "
                        f"string; repeatable (default: none)")
    p.add_argument("--steps", type=int, help="environment steps per seed, runner.total_env_steps (default: the "
                                             "learner's preset, 3,000,000 for mappo on particle-spread)")
    p.add_argument("--seeds", type=int, help="seeds trained together as one vmapped program, split evenly over "
                                             "the devices (default: 1)")
    p.add_argument("--seed", type=int, help="first seed (default: 0)")
    p.add_argument("--run-dir", metavar="DIR", help="run directory to create (default: runs/LEARNER-ENV)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory (default: off)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint "
                                                       "(default: off)")
    p.add_argument("--memory-budget-mb", type=float, metavar="MB",
                   help="refuse a run whose estimated memory exceeds this (default: the device's free memory)")
    p.add_argument("--chunk-updates", type=int, metavar="K",
                   help="iterations per jitted chunk = checkpoint interval (default: about 20 chunks per run)")
    p.add_argument("--cpu-devices", type=int, metavar="N", help="split the CPU into N XLA devices, over which "
                                                                "the seeds are split (default: off)")
    p.add_argument("--no-progress", action="store_true", help="no progress line (default: off)")
    p.add_argument("--no-plot", action="store_true", help="do not write learning_curve.png (default: off)")
    p.add_argument("--tensorboard", metavar="DIR", help="also log metrics.jsonl's metrics to TensorBoard, one run "
                                                        "per seed in DIR/RUN_NAME/seed_SEED; needs tensorboardX "
                                                        "(default: off)")
    p.add_argument("--wandb", metavar="PROJECT", help="also log them to this Weights & Biases project, one W&B run "
                                                      "per run directory; needs wandb (default: off)")
    p.add_argument("--wandb-mode", choices=("online", "offline", "disabled"),
                   help="wandb.init's mode (default: W&B's own, WANDB_MODE or online)")
    p.set_defaults(func=train, positive=("steps", "seeds", "chunk_updates", "cpu_devices"))
