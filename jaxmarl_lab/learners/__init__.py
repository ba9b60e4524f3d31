"""Learners: each `make_<alg>(spec, config) -> Learner(init, initial_carry, act, update)`."""

from jaxmarl_lab.learners.defaults import Preset, preset
from jaxmarl_lab.learners.maddpg import MADDPGConfig, MADDPGHParams, MADDPGState, make_maddpg
from jaxmarl_lab.learners.ppo import PPOConfig, PPOHParams, PPOState, make_ippo, make_mappo, make_ppo
from jaxmarl_lab.learners.value_based import (
                                              ValueConfig,
                                              ValueHParams,
                                              ValueState,
                                              make_iql,
                                              make_qmix,
                                              make_value_learner,
                                              make_vdn,
)

__all__ = ["MADDPGConfig", "MADDPGHParams", "MADDPGState", "PPOConfig", "PPOHParams", "PPOState", "Preset", "ValueConfig",
           "ValueHParams", "ValueState", "make_iql", "make_ippo", "make_maddpg", "make_mappo", "make_ppo",
           "make_qmix", "make_vdn", "make_value_learner", "preset"]
