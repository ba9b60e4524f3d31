"""Bad input refused before tracing: non-numeric hyperparameters, a learner built for another env.

Nothing here is traced or compiled: learners and runners are built, never run.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

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
)
from jaxmarl_lab.learners.common import check_hparams
from jaxmarl_lab.learners.maddpg import MADDPG_HPARAM_RANGES
from jaxmarl_lab.learners.ppo import PPO_HPARAM_RANGES
from jaxmarl_lab.learners.value_based import _HPARAM_RANGES as VALUE_HPARAM_RANGES
from jaxmarl_lab.runner import RunnerConfig, make_evaluate, make_runner, make_train
from jaxmarl_lab.types import Learner

# hyperparameter class, its learning-rate field (MADDPG has one per network), its ranges
HPARAMS = {"value": (ValueHParams, "lr", VALUE_HPARAM_RANGES), "ppo": (PPOHParams, "lr", PPO_HPARAM_RANGES),
           "maddpg": (MADDPGHParams, "lr_actor", MADDPG_HPARAM_RANGES)}
NOT_REAL = {"str": "abc", "numeric-str": "1e-3", "list": [1, 2], "dict": {"a": 1}, "bool": True,
            "numpy-bool": np.bool_(False), "none": None, "complex": complex(1, 1),
            "numpy-complex": np.complex64(1), "array": np.array([1e-3, 2e-3]), "1-element-array": np.array([1e-3]),
            "object": object(), "huge-int": 10**400}
REAL = {"float": 1e-3, "int": 1, "numpy-float32": np.float32(1e-3), "numpy-int64": np.int64(2),
        "0-d-array": np.array(1e-3), "0-d-int-array": np.array(0, np.int32)}
RUNNER = RunnerConfig(num_envs=2, rollout_len=5, total_env_steps=50, buffer_capacity=8, batch_size=2)


# ----------------------------------------------------------------------------------
# Hyperparameters: a real scalar number, or one error naming the field and the value
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", NOT_REAL.values(), ids=NOT_REAL.keys())
@pytest.mark.parametrize("alg", HPARAMS)
def test_create_refuses_a_value_that_is_not_a_real_scalar(alg, value):
    cls, lr, _ = HPARAMS[alg]
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{lr} must be a real number") as error:
        cls.create(**{lr: value})
    assert "got " in str(error.value)


@pytest.mark.parametrize("alg", HPARAMS)
def test_create_checks_the_type_of_every_field(alg):
    cls = HPARAMS[alg][0]
    for name in cls._fields:
        with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{name} must be a real number, got 'x'"):
            cls.create(**{name: "x"})


@pytest.mark.parametrize("value", REAL.values(), ids=REAL.keys())
@pytest.mark.parametrize("alg", HPARAMS)
def test_create_accepts_real_scalars(alg, value):
    cls, lr, _ = HPARAMS[alg]
    assert getattr(cls.create(**{lr: value}), lr) is value


@pytest.mark.parametrize("alg", HPARAMS)
def test_create_keeps_the_range_checks(alg):
    cls, lr, _ = HPARAMS[alg]
    for bad in (-1.0, -1, np.float32(-1e-3), float("nan"), float("inf")):
        with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{lr} must be in \[0.0, inf\]"):
            cls.create(**{lr: bad})


@pytest.mark.parametrize("alg", HPARAMS)
def test_stacks_built_by_the_constructor_are_still_range_checked(alg):
    """A sweep stacks points as `cls(*(np.asarray(column, np.float32) ...))`: (P,) arrays, not via `create`."""
    cls, lr, ranges = HPARAMS[alg]
    stack = cls(*(np.asarray([v, v], np.float32) for v in cls()))
    check_hparams(stack, ranges)  # no error
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.{lr} must be in"):
        check_hparams(stack._replace(**{lr: np.asarray([1e-3, -1.0], np.float32)}), ranges)


# ----------------------------------------------------------------------------------
# A learner remembers the spec it was built for; the runner refuses another env
# ----------------------------------------------------------------------------------
def _spread(num_agents: int, **kwargs):
    return envs.make("particle-spread", num_agents=num_agents, **kwargs)


@pytest.mark.parametrize("make", [make_iql, make_vdn, make_qmix], ids=["iql", "vdn", "qmix"])
def test_value_learners_keep_their_spec(make):
    spec = _spread(2).spec
    assert make(spec, ValueConfig(hidden_dim=8)).spec == spec


@pytest.mark.parametrize("make", [make_mappo, make_ippo], ids=["mappo", "ippo"])
def test_ppo_learners_keep_their_spec(make):
    spec = _spread(2).spec
    assert make(spec, PPOConfig(hidden_dim=8)).spec == spec


def test_maddpg_keeps_its_spec():
    spec = envs.make("rendezvous").spec
    assert make_maddpg(spec, MADDPGConfig(hidden_dim=8)).spec == spec


def test_runner_refuses_a_learner_built_for_other_agents():
    learner = make_vdn(_spread(2).spec, ValueConfig(hidden_dim=8))
    env = _spread(3)
    with pytest.raises(ValueError, match=r"^learner was built for a different environment: ") as error:
        make_runner(env, learner, RUNNER)
    message = str(error.value)
    assert "num_agents 2 (learner) vs 3 (env)" in message
    assert "obs_dim 12 (learner) vs 18 (env)" in message
    assert "state_dim 24 (learner) vs 54 (env)" in message
    with pytest.raises(ValueError, match="num_agents 2 \\(learner\\) vs 3 \\(env\\)"):
        make_train(env, learner, RUNNER)  # make_train builds a runner first
    with pytest.raises(ValueError, match="num_agents 2 \\(learner\\) vs 3 \\(env\\)"):
        make_evaluate(env, learner, num_episodes=1, max_steps=5)


def test_runner_refuses_a_learner_built_without_the_wrapper():
    """`obs_last_action=True` widens the observation; a learner for the bare env does not fit."""
    bare, wrapped = _spread(3), _spread(3, obs_last_action=True)
    learner = make_mappo(bare.spec, PPOConfig(hidden_dim=8, num_minibatches=1))
    with pytest.raises(ValueError, match=r"different environment: obs_dim 18 \(learner\) vs 23 \(env\)$"):
        make_runner(wrapped, learner, RUNNER)
    make_runner(wrapped, make_mappo(wrapped.spec, PPOConfig(hidden_dim=8, num_minibatches=1)), RUNNER)


def test_runner_refuses_other_action_bounds():
    env = envs.make("rendezvous")
    boxed = dataclasses.replace(env.spec, action_low=-1.0, action_high=1.0)
    with pytest.raises(ValueError, match=r"action_low -1.0 \(learner\) vs -inf \(env\), "
                                         r"action_high 1.0 \(learner\) vs inf \(env\)"):
        make_runner(env, make_maddpg(boxed, MADDPGConfig(hidden_dim=8)), RUNNER)


def test_runner_accepts_a_matching_learner_or_one_without_a_spec():
    env = _spread(2)
    learner = make_vdn(env.spec, ValueConfig(hidden_dim=8))
    make_runner(env, learner, RUNNER)
    make_runner(_spread(3), learner._replace(spec=None), RUNNER)  # hand-built learners may leave it out
    assert Learner(*learner[:4]).spec is None  # positional construction keeps working
    # only what shapes the learner matters, not the registry name
    renamed = dataclasses.replace(env.spec, name="particle-spread-copy")
    make_runner(env, make_vdn(renamed, ValueConfig(hidden_dim=8)), RUNNER)
