"""Real learning, short enough for CI: each value-based learner solves grid-world `lesson`.

The lesson layout's optimum is exactly 3 steps (proved by the breadth-first solver in
tests/test_grid_world.py). A random policy almost never finishes it in 3 steps; after
20k environment steps each learner's greedy policy must take exactly 3 and terminate.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxmarl_lab import envs
from jaxmarl_lab.envs import grid_world
from jaxmarl_lab.learners import ValueConfig, ValueHParams, make_iql, make_qmix, make_vdn
from jaxmarl_lab.runner import RunnerConfig, make_evaluate, make_train

RUNNER = RunnerConfig(num_envs=8, rollout_len=10, total_env_steps=20_000, buffer_capacity=1000,
                      batch_size=32, updates_per_rollout=8)
HPARAMS = ValueHParams(lr=1e-3, gamma=0.95, td_lambda=0.6, eps_decay_steps=10_000.0, target_tau=0.1)


@pytest.mark.parametrize("make", [make_iql, make_vdn, make_qmix], ids=["iql", "vdn", "qmix"])
def test_greedy_policy_reaches_the_lesson_optimum(make):
    env = envs.make("grid-world", layout="lesson")
    params = env.default_params()
    optimum = grid_world.optimal_steps(4, 4, np.asarray(params.starts), np.asarray(params.goals))
    assert optimum == 3
    learner = make(env.spec, ValueConfig(hidden_dim=64))
    final, metrics = jax.jit(make_train(env, learner, RUNNER))(jax.random.PRNGKey(0), HPARAMS)
    loss = np.asarray(metrics["loss"])
    filling = RUNNER.batch_size // RUNNER.num_envs - 1  # iterations before the buffer holds a batch
    assert np.all(np.isnan(loss[:filling])) and np.all(np.isfinite(loss[filling:]))
    result = jax.jit(make_evaluate(env, learner, num_episodes=4, max_steps=50))(jax.random.PRNGKey(1), final.learner)
    np.testing.assert_array_equal(np.asarray(result["lengths"]), optimum)
    assert np.all(np.asarray(result["terminated"]))
    # Return: goal reward 1 minus 3 steps at 0.01, per agent.
    np.testing.assert_allclose(np.asarray(result["returns"]), 0.97, atol=1e-5)


@pytest.mark.slow
def test_recurrent_qmix_reaches_the_lesson_optimum():
    """The GRU path: sequences with hidden state reset at episode starts."""
    env = envs.make("grid-world", layout="lesson")
    learner = make_qmix(env.spec, ValueConfig(hidden_dim=32, recurrent=True))
    final, _ = jax.jit(make_train(env, learner, RUNNER))(jax.random.PRNGKey(0), HPARAMS)
    result = jax.jit(make_evaluate(env, learner, num_episodes=4, max_steps=50))(jax.random.PRNGKey(1), final.learner)
    np.testing.assert_array_equal(np.asarray(result["lengths"]), 3)
