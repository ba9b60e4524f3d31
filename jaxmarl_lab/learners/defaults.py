"""Every learner's default settings, in one place: a base per learner and tuned presets per environment.

    p = preset("qmix", env.spec)                 # Preset(config, hparams, runner): dicts of fields
    learner = make_qmix(env.spec)                # ValueConfig(**p.config)
    state = learner.init(key)                    # ValueHParams.create(**p.hparams)
    config = RunnerConfig(**p.runner)            # jaxmarl_lab.runner

`jaxmarl-lab train` (through `runs.config.build`), `jaxmarl-lab sweep` (the same, for its base run)
and a library user who calls `make_<alg>(spec)` or `init(key)` without settings all read them
here, so they agree. What a user sets goes over them, field by field.

A preset is keyed by the learner and the environment's `task_key(spec)`: its registry name and
`EnvSpec.task`, the variant (grid-world "lesson" or "random", rendezvous "one-step" or
"multi-step", particle-spread "discrete" or "continuous"); learners never import `envs`, so the
key is a string. A learner on a variant with no preset gets its base: the `Config` and `HParams`
class defaults, which `BASE` leaves as they are, and the base runner fields in `BASE`.
Each preset records where it was measured (`source`). Experiment-only metrics (PPO's
`pg_variance`, `PPOConfig.grad_var_samples`) are off in every preset; ask for them explicitly.
"""

from __future__ import annotations

from typing import NamedTuple

from jaxmarl_lab.types import EnvSpec

LEARNER_NAMES = ("iql", "vdn", "qmix", "mappo", "ippo", "maddpg")


class Preset(NamedTuple):
    """Settings of one learner, as dicts of fields over the class defaults.

    `env_kwargs` and `train_env_params` are what the learner was tuned with on that environment beyond
    the learner's own settings (grid-world's egocentric view, the previous action in the observation,
    reward shaping while training): a run that does not set them gets them; the greedy evaluation
    always plays the environment's own params (no shaping).
    """

    config: dict  # fields of the learner's Config (shape-setting)
    hparams: dict  # fields of the learner's HParams (traced scalars)
    runner: dict  # fields of runner.RunnerConfig (sizes and the training budget)
    source: str = ""  # where the settings were measured
    env_kwargs: dict = {}  # keyword arguments of envs.make (observation options) the run does not set
    train_env_params: dict = {}  # env params fields used while training only (never in evaluation)


_VALUE_RUNNER = {"num_envs": 16, "rollout_len": 25, "buffer_capacity": 5000, "batch_size": 32,
                 "updates_per_rollout": 1, "total_env_steps": 1_000_000}
_PPO_RUNNER = {"num_envs": 64, "rollout_len": 25, "total_env_steps": 1_000_000}
_MADDPG_RUNNER = {"num_envs": 16, "rollout_len": 25, "buffer_capacity": 4000, "batch_size": 32,
                  "updates_per_rollout": 4, "total_env_steps": 500_000}

#: Per learner, for environments without a preset: the class defaults and these runner fields.
BASE: dict[str, Preset] = {
    **{name: Preset({}, {}, _VALUE_RUNNER, "untuned base") for name in ("iql", "vdn", "qmix")},
    **{name: Preset({}, {}, _PPO_RUNNER, "untuned base") for name in ("mappo", "ippo")},
    "maddpg": Preset({}, {}, _MADDPG_RUNNER, "untuned base"),
}

_STUDY = "studies/learning_results"
# grid-world lesson, value-based: tests/test_value_learning.py and the study's `TASKS["lesson"]` (8 of 8 seeds
# at the 3-step optimum after 20k steps).
_LESSON_VALUE = Preset({"hidden_dim": 64},
                       {"lr": 1e-3, "gamma": 0.95, "td_lambda": 0.6, "eps_decay_steps": 10_000.0, "target_tau": 0.1},
                       {"num_envs": 8, "rollout_len": 10, "total_env_steps": 20_000, "buffer_capacity": 1000,
                        "batch_size": 32, "updates_per_rollout": 8},
                       "tests/test_value_learning.py; " + _STUDY + " lesson: 8/8 seeds at the optimum")
# grid-world random layouts, value-based: the study's `TASKS["grid5"]` (VDN 1.089 x the optimum on 5 x 5 with
# 3 agents). Its env options are part of the preset: on the default "coords" view greedy MLP agents deadlock on
# ~20% of layouts (ratio 3.0-3.3); the egocentric view, each agent's previous action and shaping 0.3 while
# training (potential-based, so the optimum is unchanged) fixed that.
_GRID5_VALUE = Preset({"hidden_dim": 128},
                      {"lr": 1e-3, "gamma": 0.95, "td_lambda": 0.6, "eps_decay_steps": 200_000.0, "target_tau": 0.1,
                       "lr_anneal_steps": 1_000_000.0},
                      {"num_envs": 16, "rollout_len": 10, "total_env_steps": 1_000_000, "buffer_capacity": 5000,
                       "batch_size": 32, "updates_per_rollout": 8},
                      _STUDY + " grid5 (egocentric view, previous action, shaping 0.3)",
                      env_kwargs={"observation": "egocentric", "obs_last_action": True},
                      train_env_params={"shaping": 0.3})
# particle-spread discrete, value-based: the study's `TASKS["spread"]` (VDN -13.99 at 2M steps), trained 6M steps:
# VDN -14.06 at 2M, -9.43 at 6M over 4 seeds (benchmarks/defaults_table.py --cells vdn/spread --steps 6000000).
_SPREAD_VALUE = Preset({"hidden_dim": 64},
                       {"lr": 2e-3, "gamma": 0.9, "td_lambda": 0.6, "eps_decay_steps": 200_000.0, "target_tau": 0.2},
                       {**_VALUE_RUNNER, "total_env_steps": 6_000_000}, _STUDY + " spread, 6M steps")
# PPO: one 50-step episode per rollout on grid-world (10-step rollouts left 1-2 of 8 lesson seeds stuck).
_LESSON_PPO = Preset({}, {}, {"num_envs": 64, "rollout_len": 50, "total_env_steps": 200_000},
                     _STUDY + " actor-critic lesson: 8/8 seeds at the optimum")
# PPO on grid5 with the value-based learners' view: the "coords" view left the greedy policies at 3.5x the optimum's
# steps (the study, 8 seeds); egocentric + previous action: MAPPO 1.28x, IPPO 1.13x (benchmarks/defaults_table.py).
_GRID5_PPO = Preset({}, {}, {"num_envs": 64, "rollout_len": 50, "total_env_steps": 2_000_000},
                    "benchmarks/defaults_table.py grid5 (egocentric view, previous action)",
                    env_kwargs={"observation": "egocentric", "obs_last_action": True})
# MAPPO there: 1.30x at 2M (4 seeds), 1.27x at 2M with shaping 0.3 while training, 1.151x at 4M
# (benchmarks/defaults_table.py --cells mappo/grid5 [--steps 4000000]).
_GRID5_MAPPO = _GRID5_PPO._replace(runner={**_GRID5_PPO.runner, "total_env_steps": 4_000_000},
                                   source=_GRID5_PPO.source + ", 4M steps")
# particle-spread: gamma 0.95, not 0.99 (MAPPO -9.34 vs -12.63 after 5M steps): episodes always truncate at 25.
# 1M steps leave MAPPO at -14.4 per agent (benchmarks/defaults_table.py); the study's 4-seed probe reached -11.3 at 2M.
_SPREAD_PPO = Preset({}, {"gamma": 0.95}, {**_PPO_RUNNER, "total_env_steps": 3_000_000},
                     _STUDY + " actor-critic spread, gamma 0.95, 3M steps")
# continuous particle-spread: the discrete preset. A 2-seed sweep at 1M steps (gamma 0.95; lr 1e-3 / 3e-3, entropy
# 0 / 0.01, Gaussian / Beta policy) put lr 3e-3 with entropy 0.01 and the Gaussian first (-14.5); at 3M, 4 seeds:
# MAPPO -9.99, IPPO -9.72 (benchmarks/defaults_table.py; the study's lr 1e-3, no entropy, gamma 0.99: -14.65).
_CONTINUOUS_PPO = _SPREAD_PPO._replace(source=_STUDY + " actor-critic spread settings; a sweep on spread-continuous")
_MULTI_STEP_PPO = Preset({}, {"lr": 1e-3, "ent_coef": 0.0}, _PPO_RUNNER,
                         _STUDY + " rendezvous: MAPPO 99.8% of random -> optimum")
_ONE_STEP_PPO = Preset({}, {"lr": 1e-3, "ent_coef": 0.0}, {"num_envs": 64, "rollout_len": 8, "total_env_steps": 100_000},
                       "benchmarks/defaults_table.py")
# MADDPG: tests/test_maddpg.py (within 5% of the one-step optimum) and the study's runs with its class defaults.
_ONE_STEP_MADDPG = Preset({"hidden_dim": 32},
                          {"lr_actor": 3e-4, "lr_critic": 1e-3, "sigma_start": 0.3, "sigma_end": 0.1,
                           "sigma_decay_steps": 2000.0, "policy_reg": 0.0},
                          {"num_envs": 16, "rollout_len": 1, "total_env_steps": 4000, "buffer_capacity": 500,
                           "batch_size": 64, "updates_per_rollout": 4}, "tests/test_maddpg.py one-step rendezvous")
# MADDPG on grid-world: the base policy_reg 1e-3 lets the actors turn deterministic within ~1k steps, on a policy
# that never reaches the goals (Q at the no-goal value from then on); its Gumbel samples then stop exploring.
# A 2-seed lesson sweep at 500k (python -m jaxmarl_lab sweep, policy_reg 0.01 / 0.1 / 1): greedy 0.95-0.96,
# 0.97 (the optimum) in both seeds, 0.95-0.96.
_LESSON_MADDPG = Preset({}, {"policy_reg": 0.1}, {}, "a policy_reg sweep on the lesson (jaxmarl-lab sweep)")
# MADDPG on grid5: with the lesson's preset (no shaping, 500k) the greedy policy never solved a layout (10.7x the
# optimum's steps on the 1000 fixed layouts). Two 2-seed sweeps at 1M with the value-based learners' shaping 0.3
# while training (gamma x policy_reg 0.1 / 0.01, then policy_reg 0.01 / 1e-3 x lr_actor) put policy_reg 0.01 first
# (greedy 0.36-0.59; 0.1: -0.23-0.00); over 4 seeds 4.08x the optimum's steps (benchmarks/defaults_table.py):
# learns, short of the value-based learners' 1.15x. The stochastic training policy solves most layouts; the
# greedy (argmax) one deadlocks on many.
_GRID5_MADDPG = Preset({}, {"policy_reg": 0.01}, {**_MADDPG_RUNNER, "total_env_steps": 1_000_000},
                       "two jaxmarl-lab sweeps on grid5 with the value-based learners' view and shaping",
                       env_kwargs=_GRID5_PPO.env_kwargs, train_env_params={"shaping": 0.3})
# multi-step rendezvous: two 2-seed sweeps (500k: policy_reg, lr_actor, sigma_end, gamma; 1M: sigma_end, tau,
# lr_critic) put lr_actor 3e-4, no policy_reg and exploration noise kept at 0.3 first (2.8% / 3.8% of the gap
# left; the base settings: 8.6% over 4 seeds); a third (hidden_dim 64 / 128 x gamma 0.95 / 0.99) put 128 units
# at gamma 0.95 first (1.57% / 1.71%).
_MULTI_STEP_MADDPG = Preset({"hidden_dim": 128}, {"lr_actor": 3e-4, "policy_reg": 0.0, "sigma_end": 0.3},
                            {**_MADDPG_RUNNER, "total_env_steps": 1_000_000}, "three jaxmarl-lab sweeps")
_MADDPG_2M = Preset({}, {}, {**_MADDPG_RUNNER, "total_env_steps": 2_000_000}, _STUDY + " actor-critic spread")
# continuous particle-spread: -14.99 at 1M, -12.50 at 2M (a probe beside a sweep), -11.72 at 3M over 4 seeds
_MADDPG_3M = Preset({}, {}, {**_MADDPG_RUNNER, "total_env_steps": 3_000_000},
                    "benchmarks/defaults_table.py spread-continuous: -14.99 at 1M, -12.50 at 2M")

#: (learner, task_key(spec)) -> Preset, over the learner's BASE.
PRESETS: dict[tuple[str, str], Preset] = {
    **{(name, "grid-world:lesson"): _LESSON_VALUE for name in ("iql", "vdn", "qmix")},
    **{(name, "grid-world:random"): _GRID5_VALUE for name in ("iql", "vdn", "qmix")},
    **{(name, "particle-spread:discrete"): _SPREAD_VALUE for name in ("iql", "vdn")},
    ("qmix", "particle-spread:discrete"): _SPREAD_VALUE._replace(
        hparams={**_SPREAD_VALUE.hparams, "lr": 1e-3, "target_tau": 0.1}),  # lr 2e-3 / tau 0.2 diverged 2 of 8
    **{(name, "grid-world:lesson"): _LESSON_PPO for name in ("mappo", "ippo")},
    ("mappo", "grid-world:random"): _GRID5_MAPPO,
    ("ippo", "grid-world:random"): _GRID5_PPO,
    **{(name, "particle-spread:discrete"): _SPREAD_PPO for name in ("mappo", "ippo")},
    **{(name, "particle-spread:continuous"): _CONTINUOUS_PPO for name in ("mappo", "ippo")},
    **{(name, "rendezvous:multi-step"): _MULTI_STEP_PPO for name in ("mappo", "ippo")},
    **{(name, "rendezvous:one-step"): _ONE_STEP_PPO for name in ("mappo", "ippo")},
    ("maddpg", "rendezvous:one-step"): _ONE_STEP_MADDPG,
    ("maddpg", "grid-world:lesson"): _LESSON_MADDPG,
    ("maddpg", "grid-world:random"): _GRID5_MADDPG,
    ("maddpg", "rendezvous:multi-step"): _MULTI_STEP_MADDPG,
    ("maddpg", "particle-spread:continuous"): _MADDPG_3M,
    ("maddpg", "particle-spread:discrete"): _MADDPG_2M,
}


def task_key(spec: EnvSpec | None) -> str:
    """`"name:task"` of an environment (`"name"` when its spec has no task); `""` for no spec."""
    if spec is None:
        return ""
    return f"{spec.name}:{spec.task}" if spec.task else spec.name


def preset(learner: str, spec: EnvSpec | None = None) -> Preset:
    """The default settings of `learner` on an environment of `spec` (its base for None or an untuned one).

    Raises:
        ValueError: for an unknown learner name, listing the valid ones.
    """
    if learner not in BASE:
        raise ValueError(f"unknown learner {learner!r}; valid names: {', '.join(LEARNER_NAMES)}")
    base = BASE[learner]
    tuned = PRESETS.get((learner, task_key(spec)))
    if tuned is None:
        return base
    return Preset({**base.config, **tuned.config}, {**base.hparams, **tuned.hparams},
                  {**base.runner, **tuned.runner}, tuned.source, tuned.env_kwargs, tuned.train_env_params)
