"""`jaxmarl-lab list`: environments, learners and their options, with defaults."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import numpy as np

from jaxmarl_lab import envs


def _value(x) -> str:
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.floating):  # float32 params: print what was set, not its binary tail
        arr = np.vectorize(lambda v: float(f"{v:.6g}"))(arr)
    return repr(arr.item()) if arr.ndim == 0 else str(arr.tolist())


def describe_env(name: str) -> list[str]:
    """Lines describing one environment: its default spec, constructor options and params."""
    env = envs.make(name)
    spec = env.spec
    lines = [f"{name}: N={spec.num_agents} obs={spec.obs_dim} state={spec.state_dim} {spec.action_kind} "
             f"actions of size {spec.action_size}"]
    options = [f"{p.name}={p.default!r}" for p in inspect.signature(type(env).__init__).parameters.values()
               if p.name != "self"]
    wrap = inspect.signature(envs.make).parameters["obs_last_action"]  # every env: the LastActionObs wrapper
    options.append(f"{wrap.name}={wrap.default!r}")
    lines.append(f"  env_kwargs (static): {', '.join(options)}")
    params = env.default_params()
    fields = [f"{f.name}={_value(getattr(params, f.name))}" for f in dataclasses.fields(params)]
    lines.append(f"  env_params: {', '.join(fields)}")
    return lines


def describe_learner(name: str) -> list[str]:
    """Lines describing one learner: description, actions, Config and HParams fields with defaults, its
    runner fields, and its presets per environment (`learners.defaults`: what `train` uses unless set)."""
    from jaxmarl_lab.learners.defaults import BASE, PRESETS
    from jaxmarl_lab.runs.config import LEARNERS

    entry = LEARNERS[name]
    config = [f"{f.name}={f.default!r}" for f in dataclasses.fields(entry.config_cls)]
    hparams = [f"{k}={v!r}" for k, v in entry.hparams_cls._field_defaults.items()]
    lines = [f"{name}: {entry.description}", f"  actions: {', '.join(entry.actions)}",
             f"  config ({entry.config_cls.__name__}): {', '.join(config)}",
             f"  hparams ({entry.hparams_cls.__name__}): {', '.join(hparams)}",
             f"  runner: {_fields(BASE[name].runner)}"]
    for (learner, task), tuned in PRESETS.items():
        if learner == name:
            sections = [f"{section}.{k}={v!r}" for section in ("env_kwargs", "config", "hparams", "runner")
                        for k, v in getattr(tuned, section).items()]
            sections += [f"env_params.{k}={v!r} (training only)" for k, v in tuned.train_env_params.items()]
            lines.append(f"  on {task}: {', '.join(sections)}")
    return lines


def _fields(values: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items())


def list_all(args: argparse.Namespace) -> int:
    """Prints the registered environments and learners with their options."""
    from jaxmarl_lab.runner import RunnerConfig
    from jaxmarl_lab.runs.config import learner_names

    what = args.what
    if what in ("all", "envs"):
        print("ENVIRONMENTS  (jaxmarl-lab train --env NAME --set env_kwargs.K=V --set env_params.K=V)")
        for name in envs.registered_names():
            print("\n".join(describe_env(name)))
    if what == "all":
        print()
    if what in ("all", "learners"):
        print("LEARNERS  (jaxmarl-lab train --learner NAME --set config.K=V --set hparams.K=V)")
        for name in learner_names():
            print("\n".join(describe_learner(name)))
        runner = [f"{f.name}={f.default!r}" for f in dataclasses.fields(RunnerConfig)]
        print(f"runner (RunnerConfig, --set runner.K=V; a learner's runner fields and presets above take precedence): "
              f"{', '.join(runner)}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="environments, learners and their options with defaults",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("what", nargs="?", default="all", choices=("all", "envs", "learners"), help="what to list")
    p.set_defaults(func=list_all)
