"""Centralized vs independent critic on a real learner: MAPPO and IPPO on particle-spread.

Part 2 of the critic-variance experiment (Part 1, `variance.py`, is textbook REINFORCE).
For each number of agents N, MAPPO (critic V(global state, agent id)) and IPPO (critic
V(own observation)) train with identical hyperparameters (`studies/learning_results/actor_critic.py`'s
PPO settings) on `particle-spread` with N agents and N landmarks. The seeds are one `vmap`;
both critics of an N are one `jit`-compiled program (their critic inputs differ in size,
so they run one after the other inside it); seeds are split over `jax.devices()`.

The runs are paired: seed s of both critics uses the same key, hence the same initial
actor, the same environment resets and the same first rollout. After the first update
the two policies part, so a variance ratio later in training compares two different
policies on their own data, not two critics on one policy.

Logged every iteration, per seed and critic (`PPOConfig.grad_var_samples`, see
`learners/ppo.py` and `ops.gradient_variance`): `pg_variance`, the variance across
`grad_var_samples` randomly drawn agent-steps of the rollout of the per-sample policy
gradient `grad_theta log pi(a|o) * A` (A: the GAE advantage before PPO's per-minibatch
normalisation), summed over the actor's parameters, with the actor and critic as they were
before the update's epochs. It is the variance of the raw REINFORCE-with-baseline estimator
under each critic, not of PPO's clipped, normalised minibatch update. Also kept:
`advantage_std` and the training `episode_return` (per-agent reward summed over the
episode, averaged over agents and the episodes that ended in the iteration).

`critic_training_report` turns the raw arrays into per-phase ratios with paired bootstrap
confidence intervals (Part 1's `variance_report.bootstrap_ratio_ci`), the table and the plot.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmarl_lab import envs
from jaxmarl_lab.learners import PPOConfig, PPOHParams, make_ippo, make_mappo
from jaxmarl_lab.runner import RunnerConfig, make_train
from studies.critic_variance.variance import shard_over_seeds

CRITICS = ("centralized", "independent")  # MAPPO, IPPO; the order of the critic axis
LOGGED = ("pg_variance", "advantage_std", "episode_return")


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"CriticTrainingConfig.{name} must be an integer >= {minimum}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class CriticTrainingConfig:
    """Sizes, budget and hyperparameters of the experiment (validated, hashable).

    The PPO settings default to those of `studies/learning_results/actor_critic.py` except the
    discount: `gamma` defaults to 0.95, not 0.99. Particle-spread episodes always end by
    truncation after 25 steps and GAE bootstraps through it, so at gamma 0.99 the critic has to
    represent a ~100-step return it never sees whole; with value normalisation on, IPPO's
    critic then runs away on this task (value estimates drifting to -700 and beyond, the
    advantage std from 6 to over 400 within 40k steps at N = 6, while MAPPO's stays near 3:
    `value_norm_probe.py`), which inflates IPPO's gradient variance for a
    reason that is not the critic's conditioning. At 0.95 both critics are stable at every N.
    `env_steps` is per seed and per critic, rounded down to whole iterations of
    `num_envs * rollout_len`.
    """

    num_agents: tuple[int, ...] = (2, 3, 4, 6)
    seeds: int = 32
    env_steps: int = 40_000  # per seed and critic; ~10 min for N = 2, 3, 4, 6 on the 2-core CPU
    num_envs: int = 16  # B
    rollout_len: int = 25  # T, one particle-spread episode
    phases: int = 3  # equal spans of iterations the ratio is reported on (early / middle / late)
    hidden_dim: int = 64
    num_epochs: int = 4
    num_minibatches: int = 4
    grad_var_samples: int = 64
    lr: float = 3e-3
    gamma: float = 0.95  # see the docstring: at 0.99 IPPO's normalised critic diverges here
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    value_norm: bool = True  # MAPPO's running normalisation of the value targets, for both critics

    def __post_init__(self):
        agents = self.num_agents
        if (not isinstance(agents, tuple) or not agents
                or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2 for n in agents)):
            raise ValueError(f"CriticTrainingConfig.num_agents must be a non-empty tuple of integers >= 2 "
                             f"(a critic comparison needs other agents), got {agents!r}")
        if len(set(agents)) != len(agents):
            raise ValueError(f"CriticTrainingConfig.num_agents must not repeat a value, got {agents!r}")
        if not isinstance(self.value_norm, (bool, np.bool_)):
            raise ValueError(f"CriticTrainingConfig.value_norm must be True or False, got {self.value_norm!r}")
        _check_int("seeds", self.seeds, 2)  # a paired bootstrap needs at least two seeds
        for name in ("env_steps", "num_envs", "rollout_len", "phases", "hidden_dim", "num_epochs",
                     "num_minibatches", "grad_var_samples"):
            _check_int(name, getattr(self, name), 1)
        if self.num_envs % self.num_minibatches:
            raise ValueError(f"CriticTrainingConfig.num_minibatches ({self.num_minibatches}) must divide "
                             f"num_envs ({self.num_envs})")
        if self.iterations < self.phases:
            raise ValueError(f"CriticTrainingConfig.env_steps ({self.env_steps}) must give at least one "
                             f"iteration of num_envs * rollout_len = {self.num_envs * self.rollout_len} "
                             f"env steps per phase ({self.phases} phases), i.e. be >= "
                             f"{self.phases * self.num_envs * self.rollout_len}")
        PPOHParams.create(**self.hparams()._asdict())  # ranges, with the field named on failure

    @property
    def iterations(self) -> int:
        return self.env_steps // (self.num_envs * self.rollout_len)

    def ppo_config(self) -> PPOConfig:
        return PPOConfig(hidden_dim=self.hidden_dim, num_epochs=self.num_epochs,
                         num_minibatches=self.num_minibatches, grad_var_samples=self.grad_var_samples,
                         value_norm=self.value_norm)

    def hparams(self) -> PPOHParams:
        return PPOHParams(lr=self.lr, gamma=self.gamma, gae_lambda=self.gae_lambda, clip_eps=self.clip_eps,
                          ent_coef=self.ent_coef)

    def runner_config(self) -> RunnerConfig:
        return RunnerConfig(num_envs=self.num_envs, rollout_len=self.rollout_len,
                            total_env_steps=self.iterations * self.num_envs * self.rollout_len)


class CriticRuns(NamedTuple):
    """Per-iteration logs of one N; critic axis: centralized (MAPPO) first, independent (IPPO)."""

    pg_variance: jax.Array  # (S, 2, I) float32, variance of grad log pi * A, summed over actor params
    advantage_std: jax.Array  # (S, 2, I) float32, std of the unnormalised GAE advantages of the rollout
    episode_return: jax.Array  # (S, 2, I) float32, training return of the episodes ended in the iteration


def make_train_fns(config: CriticTrainingConfig, num_agents: int):
    """`(train_centralized, train_independent)`, each `train(key, hparams) -> (RunnerState, metrics)`."""
    env = envs.make("particle-spread", num_agents=num_agents)
    ppo, runner = config.ppo_config(), config.runner_config()
    return tuple(make_train(env, make(env.spec, ppo), runner) for make in (make_mappo, make_ippo))


def train_critics(seed_keys: jax.Array, config: CriticTrainingConfig, num_agents: int) -> CriticRuns:
    """Both critics on the same seed keys `(S,)`: `CriticRuns (S, 2, I)`. Pure; the caller jits."""
    hparams = config.hparams()
    logs = []
    for train in make_train_fns(config, num_agents):
        _, metrics = jax.vmap(train, in_axes=(0, None))(seed_keys, hparams)
        logs.append(CriticRuns(*(metrics[name] for name in LOGGED)))
    return jax.tree.map(lambda cen, ind: jnp.stack([cen, ind], axis=1), *logs)


def make_critic_runs_fn(config: CriticTrainingConfig, num_agents: int,
                        devices: Sequence[jax.Device] | None = None):
    """The jitted `(key) -> CriticRuns (S, 2, I)` program of one N (one compile).

    `key` is split into `config.seeds` seed keys, shared by both critics. With several
    `devices` (default `jax.devices()`) the seeds are split evenly over them with
    `shard_map` (padded to a multiple of the device count, the padding dropped); on a CPU
    start Python with `XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`.
    """
    if num_agents not in config.num_agents:
        raise ValueError(f"num_agents must be one of config.num_agents {config.num_agents}, got {num_agents!r}")
    return jax.jit(lambda key: shard_over_seeds(lambda k: train_critics(k, config, num_agents),
                                                jax.random.split(key, config.seeds), devices))


def run_critic_training(key: jax.Array | int = 0, config: CriticTrainingConfig | None = None,
                        **overrides) -> dict[int, CriticRuns]:
    """Runs every N of the config: `{N: CriticRuns (S, 2, I) as NumPy arrays}`.

    Args:
        key: a JAX key or an int seed; every N uses the same key (seed s has the same key
            in every N and under both critics).
        config: a `CriticTrainingConfig`; keyword `overrides` replace its fields.
    """
    config = dataclasses.replace(config or CriticTrainingConfig(), **overrides)
    if isinstance(key, int):
        key = jax.random.key(key)
    return {n: jax.tree.map(np.asarray, make_critic_runs_fn(config, n)(key)) for n in config.num_agents}
