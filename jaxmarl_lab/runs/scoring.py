"""Scores of learner states on fixed episodes: greedy returns and the exact optimum of the same episodes.

    out = evaluate_state(built, learner_states, key, episodes)    # greedy returns (S, K), lengths, finished
    optimum, how = optimal_returns(built.env, built.env_params, key, episodes)

Both play the same K episode starts for a given key (common random numbers): the first episode
of each of K environments reset with the first half of `jax.random.split(key)`, as
`runner.run_episodes` does. Returns are per agent (each agent's rewards summed over the episode,
averaged over agents). `runs.evaluation` (`jaxmarl-lab eval`) reads these; the end of a training
run (`runs.training.end_scores`) scores the same way inside its compiled cache.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxmarl_lab.envs.core import Environment
from jaxmarl_lab.runner import make_evaluate
from jaxmarl_lab.types import EnvProtocol
from jaxmarl_lab.validation import check_positive_int


def horizon(env: EnvProtocol, params: Any) -> int:
    """Steps that always finish the first episode: the env's time limit."""
    return int(np.asarray(env.time_limit(params)))


def episode_starts(env: EnvProtocol, key: jax.Array, params: Any, num_episodes: int) -> Any:
    """The initial env states of the episodes `runner.run_episodes(..., key, num_episodes, ...)` plays.

    `run_episodes` resets with the first half of `jax.random.split(key)`; so does this
    (tests check the two agree by scoring a policy whose return is known from the starts).
    """
    reset = jax.jit(lambda key, params: env.reset_batch(jax.random.split(key)[0], params, num_episodes)[0])
    return jax.device_get(reset(key, params))


def optimal_returns(env: Environment, params: Any, key: jax.Array,
                    num_episodes: int) -> tuple[np.ndarray | None, str]:
    """`(optimum (K,), how)`: each episode's exact optimal per-agent return, or `(None, why not)`.

    The environment's `optimal_returns` hook, given the starts of the K episodes
    `runner.run_episodes(..., key, num_episodes, ...)` plays (`episode_starts`).
    """
    return env.optimal_returns(params, episode_starts(env, key, params, num_episodes))


def evaluate_state(built, learner_states: Any, key: jax.Array, episodes: int) -> dict:
    """Greedy returns `(S, K)` (and lengths, finished) of seed-stacked learner states, in one jit."""
    episodes = check_positive_int("episodes", episodes)
    evaluate = make_evaluate(built.env, built.learner, episodes, horizon(built.env, built.env_params),
                             built.env_params)
    out = jax.jit(jax.vmap(evaluate, in_axes=(None, 0)))(key, learner_states)
    return {k: np.asarray(v) for k, v in jax.device_get(out).items()}
