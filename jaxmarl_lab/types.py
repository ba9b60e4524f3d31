"""Shared types of jaxmarl-lab.

Dimension letters used in every shape comment of the project:

    T  time steps of a rollout          B  batch (environments, samples)
    N  agents                           O  per-agent observation size
    S  global-state size                A  per-agent action size: number of discrete
    D  continuous action dimension         choices, or D for continuous actions
    H  hidden units

Agents are always an array axis, never dict keys.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal, NamedTuple

import jax

ActionKind = Literal["discrete", "continuous"]


class TimeStep(NamedTuple):
    """What an environment returns from `reset` and `step` (one environment, unbatched).

    `final_obs` and `final_global_state` are the observation and state reached by the
    step *before* any auto-reset: bootstrap a truncated episode from them. On steps
    that did not end an episode they equal `obs` and `global_state`.
    """

    obs: jax.Array  # (N, O) float32
    global_state: jax.Array  # (S,) float32, what a centralized critic or mixer sees
    reward: jax.Array  # (N,) float32
    terminated: jax.Array  # () bool, the episode reached a terminal state
    truncated: jax.Array  # () bool, the episode hit its time limit (bootstrap)
    avail_actions: jax.Array  # (N, A) bool
    final_obs: jax.Array  # (N, O) float32
    final_global_state: jax.Array  # (S,) float32

    @property
    def done(self) -> jax.Array:
        """`terminated | truncated`: the next observation starts a new episode."""
        return self.terminated | self.truncated


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static description of an environment, all a learner needs to build itself.

    Attributes:
        name: registry name of the environment.
        num_agents: N.
        obs_dim: O, per-agent observation size.
        state_dim: S, global-state size.
        action_kind: "discrete" (actions `(N,)` int32) or "continuous" (`(N, D)` float32).
        action_size: A, the number of discrete choices, or D for continuous actions.
        action_low: lower bound of each continuous action component (-inf if unbounded).
        action_high: upper bound of each continuous action component (+inf if unbounded).
    """

    name: str
    num_agents: int
    obs_dim: int
    state_dim: int
    action_kind: ActionKind
    action_size: int
    action_low: float = -math.inf
    action_high: float = math.inf

    @property
    def is_discrete(self) -> bool:
        return self.action_kind == "discrete"

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of the joint action of one environment: `(N,)` or `(N, D)`."""
        if self.is_discrete:
            return (self.num_agents,)
        return (self.num_agents, self.action_size)


class Transition(NamedTuple):
    """One environment step as learners see it. Replay stores sequences `(T, ...)` of these.

    `next_obs`/`next_global_state` are the observation and state reached by the step,
    before any auto-reset (`TimeStep.final_obs`), so truncated episodes bootstrap from
    them. `first` marks the first step of an episode, where recurrent state is reset.
    """

    obs: jax.Array  # (N, O) float32
    global_state: jax.Array  # (S,) float32
    avail_actions: jax.Array  # (N, A) bool, for obs
    first: jax.Array  # () bool, obs starts an episode
    action: jax.Array  # (N,) int32 or (N, D) float32
    reward: jax.Array  # (N,) float32
    terminated: jax.Array  # () bool
    truncated: jax.Array  # () bool
    next_obs: jax.Array  # (N, O) float32
    next_global_state: jax.Array  # (S,) float32
    next_avail_actions: jax.Array  # (N, A) bool (of the next timestep; after a reset, the reset's)

    @property
    def done(self) -> jax.Array:
        """`terminated | truncated`: the episode ended with this step."""
        return self.terminated | self.truncated


class Learner(NamedTuple):
    """A learner as a triple of pure functions, like an optax transformation.

    - `init(key, hparams) -> state`: fresh learner state holding `hparams` (traced scalars).
    - `initial_carry() -> carry`: recurrent state of one environment's agents, `(N, H)`.
    - `act(key, state, timestep, carry, explore) -> (actions, carry)`: one environment's
      joint action (vmap over environments); `explore` is a Python bool.
    - `update(key, state, batch) -> (state, metrics)`: one learning step on a batch of
      sequences `Transition (B, T, ...)`; the step a runner jit-compiles.

    Every learner state has an `env_steps` field (environment steps acted so far; the
    runner advances it) on which exploration schedules depend.

    `spec` is the `EnvSpec` the learner was built from (every `make_<alg>` sets it); the
    runner refuses an environment whose spec differs from it. A hand-built learner may
    leave it None, and then nothing is checked.
    """

    init: Callable[..., Any]
    initial_carry: Callable[..., Any]
    act: Callable[..., Any]
    update: Callable[..., Any]
    on_policy: bool = False  # update takes the rollout just collected, not replayed sequences
    spec: EnvSpec | None = None  # the environment the learner was built for; None: unknown, not checked
