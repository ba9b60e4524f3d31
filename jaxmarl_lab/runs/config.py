"""Run configurations: the learner registry and the file format `train`, `sweep` and `eval` share.

    run = RunConfig.from_dict({"env": "particle-spread", "env_kwargs": {"num_agents": 3},
                               "learner": "mappo", "hparams": {"lr": 3e-3}})
    built = build(run)            # env, learner, RunnerConfig, hparams, all validated; the fields
                                  # the run does not set come from learners.defaults.preset
    train = make_train(built.env, built.learner, built.runner, built.env_params)

A run file is JSON or TOML with the keys of `RunConfig`; unknown keys, names and
fields are refused with the valid choices. Everything is validated here, in Python,
before anything is traced.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, NamedTuple

import numpy as np

from jaxmarl_lab import envs
from jaxmarl_lab.learners import (
    MADDPGConfig,
    MADDPGHParams,
    PPOConfig,
    PPOHParams,
    ValueConfig,
    ValueHParams,
    make_ippo,
    make_iql,
    make_maddpg,
    make_mappo,
    make_qmix,
    make_vdn,
    preset,
)
from jaxmarl_lab.learners.defaults import task_key
from jaxmarl_lab.runner import RunnerConfig
from jaxmarl_lab.runs.files import atomic_write_json
from jaxmarl_lab.types import EnvSpec, Learner


class LearnerEntry(NamedTuple):
    make: Callable[..., Learner]  # make(spec, config) -> Learner
    config_cls: type  # frozen dataclass of shape-setting options
    hparams_cls: type  # NamedTuple of traced scalars, with a range-checking `create`
    actions: tuple[str, ...]  # action kinds it supports
    description: str
    fixed: dict = {}  # Config fields the learner's name decides (a run config may repeat them, not change them)


# Default settings (Config, HParams and RunnerConfig fields per learner and environment) live in
# `jaxmarl_lab.learners.defaults`; `build` reads them there, as `make_<alg>(spec)` does.
LEARNERS: dict[str, LearnerEntry] = {
    "iql": LearnerEntry(make_iql, ValueConfig, ValueHParams, ("discrete",), "independent Q-learning (Tan 1993)"),
    "vdn": LearnerEntry(make_vdn, ValueConfig, ValueHParams, ("discrete",),
                        "value decomposition, Q_tot = sum_i Q_i (Sunehag et al. 2018)"),
    "qmix": LearnerEntry(make_qmix, ValueConfig, ValueHParams, ("discrete",),
                         "monotonic hypernetwork mixer (Rashid et al. 2018)"),
    "mappo": LearnerEntry(make_mappo, PPOConfig, PPOHParams, ("discrete", "continuous"),
                          "PPO with a centralized critic (Yu et al. 2022)", {"critic": "centralized"}),
    "ippo": LearnerEntry(make_ippo, PPOConfig, PPOHParams, ("discrete", "continuous"),
                         "PPO with independent critics", {"critic": "independent"}),
    "maddpg": LearnerEntry(make_maddpg, MADDPGConfig, MADDPGHParams, ("discrete", "continuous"),
                           "deterministic actors, centralized critics (Lowe et al. 2017); Gumbel-softmax "
                           "for discrete actions"),
}


MAX_SEED = 2**32  # jax.random.PRNGKey keeps the low 32 bits of a seed (without x64), so larger seeds repeat


def seed_keys(seed: int, num_seeds: int) -> np.ndarray:
    """`(K, 2) uint32`: `jax.random.PRNGKey(seed + s)` for s < K, in closed form (no K device calls).

    A threefry key of a seed in `[0, 2**32)` is `[0, seed]`.

    Raises:
        ValueError: if the seeds leave `[0, 2**32)`.
    """
    if not 0 <= seed <= MAX_SEED - num_seeds:
        raise ValueError(f"seeds must lie in [0, 2**32): seed {seed} with {num_seeds} seeds does not")
    seeds = np.arange(seed, seed + num_seeds, dtype=np.uint64).astype(np.uint32)
    return np.stack([np.zeros_like(seeds), seeds], axis=1)


def learner_names() -> list[str]:
    return sorted(LEARNERS)


def check_fixed_fields(learner: str, config: dict) -> None:
    """Refuses a Config field that contradicts the learner's name (`ippo` with `critic="centralized"`).

    Raises:
        ValueError: naming the field, both values and the learner that has the asked value.
    """
    for field, value in LEARNERS[learner].fixed.items():
        if field in config and config[field] != value:
            other = [name for name, e in LEARNERS.items() if e.fixed.get(field) == config[field]]
            instead = f"use learner {other[0]!r} instead" if other else f"leave config.{field} out"
            raise ValueError(f"learner {learner!r} means config.{field}={value!r}, but the run config sets "
                             f"config.{field}={config[field]!r}: {instead} (a sweep compares them with "
                             f"search {{\"learner\": [\"mappo\", \"ippo\"]}})")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run: what `jaxmarl-lab train` reads and `jaxmarl-lab sweep` writes as its best point."""

    env: str = "particle-spread"
    env_kwargs: dict = dataclasses.field(default_factory=lambda: {"num_agents": 3})  # static, shape-setting
    env_params: dict = dataclasses.field(default_factory=dict)  # fields of the env's params pytree
    learner: str = "mappo"
    config: dict = dataclasses.field(default_factory=dict)  # fields of the learner's Config
    hparams: dict = dataclasses.field(default_factory=dict)  # fields of the learner's HParams
    runner: dict = dataclasses.field(default_factory=dict)  # fields of RunnerConfig (over the learner's defaults)
    seed: int = 0  # seed of the first run
    num_seeds: int = 1  # runs with seeds seed, seed+1, ... trained as one vmapped program

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        """Raises ValueError on unknown keys or wrongly typed sections."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - fields
        if unknown:
            raise ValueError(f"unknown run-config keys {sorted(unknown)}; valid: {sorted(fields)}")
        for name in ("env_kwargs", "env_params", "config", "hparams", "runner"):
            if name in values and not isinstance(values[name], dict):
                raise ValueError(f"run-config key {name!r} must be a table/object, got {values[name]!r}")
        for name in ("env", "learner"):
            if name in values and not isinstance(values[name], str):
                raise ValueError(f"run-config key {name!r} must be a string, got {values[name]!r}")
        for name in ("seed", "num_seeds"):
            if name in values and (isinstance(values[name], bool) or not isinstance(values[name], int)):
                raise ValueError(f"run-config key {name!r} must be an integer, got {values[name]!r}")
        run = cls(**values)
        if run.num_seeds < 1:
            raise ValueError(f"run-config num_seeds must be >= 1, got {run.num_seeds}")
        if not 0 <= run.seed <= MAX_SEED - run.num_seeds:
            raise ValueError(f"run-config seed must be in [0, 2**32 - num_seeds] = [0, {MAX_SEED - run.num_seeds}] "
                             f"(seeds seed..seed+num_seeds-1 must be distinct 32-bit seeds), got {run.seed}")
        return run

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def read_config_file(path: str, what: str = "run config") -> dict:
    """The top-level table of a `.toml` or `.json` file.

    Raises:
        ValueError: naming `what` and the file when it is missing, unparsable or not a table.
    """
    kind = "TOML" if path.endswith(".toml") else "JSON"
    try:
        if kind == "TOML":
            import tomllib
            with open(path, "rb") as f:
                values = tomllib.load(f)
        else:
            with open(path) as f:
                values = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{what} {path!r} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{what} {path!r} is a directory; give a .json or .toml file") from None
    except OSError as e:
        raise ValueError(f"{what} {path!r} cannot be read ({e.strerror or e})") from None
    except ValueError as e:  # JSONDecodeError and TOMLDecodeError
        raise ValueError(f"{what} {path!r} is not valid {kind}: {e}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{what} {path!r} must hold an object/table at the top level")
    return values


def load_run_config(path: str) -> RunConfig:
    """Reads a `.json` or `.toml` run file. Raises ValueError naming the file on bad content."""
    return RunConfig.from_dict(read_config_file(path, "run config"))


def save_run_config(run: RunConfig, path: str) -> None:
    atomic_write_json(path, run.to_dict())


class Built(NamedTuple):
    env: Any  # envs.Environment, with the preset's env_kwargs the run does not set
    env_params: Any  # what evaluation plays
    learner: Learner
    learner_config: Any  # the learner's Config dataclass
    hparams: Any  # the learner's HParams, range-checked
    runner: RunnerConfig
    train_env_params: Any  # what training plays: env_params with the preset's training-only fields (shaping)


def _dataclass_from(cls: type, values: dict, what: str):
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - fields
    if unknown:
        raise ValueError(f"unknown {what} fields {sorted(unknown)}; valid: {sorted(fields)}")
    return cls(**values)


def run_hparams(run: RunConfig, spec: EnvSpec) -> Any:
    """The learner's HParams of `run` on an env of `spec`: its preset (`learners.defaults`), then `run.hparams`.

    Raises:
        ValueError: an unknown field, or one out of range.
    """
    return LEARNERS[run.learner].hparams_cls.create(**{**preset(run.learner, spec).hparams, **run.hparams})


def build(run: RunConfig, env_presets: bool = True) -> Built:
    """Everything a run needs, validated before tracing.

    `env_presets=False` builds the env from `run.env_kwargs` alone, as a run directory holds them (`train`
    writes the preset's options out; one written before presets held env options has none, and its
    checkpoint was trained without them).

    Raises:
        ValueError: unknown env / learner (listing the valid names), a learner that does
            not support the env's actions, unknown or out-of-range fields.
    """
    if run.learner not in LEARNERS:
        raise ValueError(f"unknown learner {run.learner!r}; valid names: {', '.join(learner_names())}")
    entry = LEARNERS[run.learner]
    check_fixed_fields(run.learner, run.config)
    env = _make_env(run.env, run.env_kwargs)
    defaults = preset(run.learner, env.spec)  # the learner's settings for this env; the run's go over them
    tuned = with_preset_env_kwargs(run, env.spec) if env_presets else run  # options it was tuned with
    if tuned is not run:
        env = _make_env(run.env, tuned.env_kwargs)
    if env.spec.action_kind not in entry.actions:
        raise ValueError(f"learner {run.learner!r} needs {' or '.join(entry.actions)} actions; {run.env!r} "
                         f"with {run.env_kwargs} has {env.spec.action_kind} actions")
    params = env.default_params()
    if run.env_params:
        valid = sorted(f.name for f in dataclasses.fields(params))
        unknown = set(run.env_params) - set(valid)
        if unknown:
            raise ValueError(f"unknown env_params fields {sorted(unknown)} for {run.env!r}; valid: {valid}")
        params = env.default_params(**run.env_params)  # validated and converted to arrays
    train_only = {k: v for k, v in defaults.train_env_params.items() if k not in run.env_params}
    train_params = env.default_params(**run.env_params, **train_only) if train_only else params
    learner_config = _dataclass_from(entry.config_cls, {**defaults.config, **entry.fixed, **run.config},
                                     entry.config_cls.__name__)
    learner = entry.make(env.spec, learner_config)
    hparams = run_hparams(run, env.spec)
    runner = _dataclass_from(RunnerConfig, {**defaults.runner, **run.runner}, "RunnerConfig")
    minibatches = getattr(learner_config, "num_minibatches", 1)
    if runner.num_envs % minibatches:
        raise ValueError(f"{entry.config_cls.__name__}.num_minibatches ({minibatches}) must divide "
                         f"RunnerConfig.num_envs ({runner.num_envs})")
    return Built(env, params, learner, learner_config, hparams, runner, train_params)


def with_preset_env_kwargs(run: RunConfig, spec: EnvSpec) -> RunConfig:
    """`run` with the env_kwargs of its learner's preset on an env of `spec` written out (the run's own values
    win); `run` itself when the preset sets none it lacks. A run directory stores this, so a later change of
    the presets does not change the environment of a run that resumes."""
    kwargs = {**preset(run.learner, spec).env_kwargs, **run.env_kwargs}
    return run if kwargs == run.env_kwargs else dataclasses.replace(run, env_kwargs=kwargs)


def preset_env_note(run: RunConfig, spec: EnvSpec) -> str | None:
    """One line naming the env options the learner's preset set for `run` (None when it set none)."""
    defaults = preset(run.learner, spec)
    kwargs = {k: v for k, v in defaults.env_kwargs.items() if k not in run.env_kwargs}
    train_only = {k: v for k, v in defaults.train_env_params.items() if k not in run.env_params}
    if not kwargs and not train_only:
        return None
    parts = [f"env_kwargs {', '.join(f'{k}={v!r}' for k, v in kwargs.items())}"] if kwargs else []
    if train_only:
        parts.append(f"env_params {', '.join(f'{k}={v!r}' for k, v in train_only.items())} while training "
                     "(the training return includes it; the greedy evaluation does not)")
    return (f"note: {run.learner}'s preset for {task_key(spec)} sets {'; '.join(parts)}; "
            "--set env_kwargs.K=V / env_params.K=V overrides them")


def _make_env(name: str, env_kwargs: dict) -> Any:
    try:
        return envs.make(name, **env_kwargs)
    except TypeError as e:
        raise ValueError(f"bad env_kwargs {env_kwargs} for {name!r}: {e}") from None
