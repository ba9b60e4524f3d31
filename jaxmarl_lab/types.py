"""Shared types of jaxmarl-lab.

Dimension letters used in every shape comment of the project:

    T  time steps of a rollout          B  batch (environments, samples)
    N  agents                           O  per-agent observation size
    S  global-state size                A  per-agent action size: number of discrete
    D  continuous action dimension         choices, or D for continuous actions
    H  hidden units

Agents are always an array axis, never dict keys.

The contracts between the parts are typed here: `EnvProtocol` (what the runner,
`testing.check_env` and the interop adapters call on an environment), `Learner` and
the `LearnerState` it must return, and `Policy` (one environment's acting function).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

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


class RewardBounds(NamedTuple):
    """What an environment's params allow one agent to receive (the reward fields of `EnvSpec`)."""

    reward_low: float  # lowest reward of one agent in one step (-inf if unbounded)
    reward_high: float  # highest reward of one agent in one step (+inf if unbounded)
    max_return: float  # largest return of one agent from any state, also past a truncation
    max_steps: int  # episode length before truncation


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
        task: the variant of the environment that its learners' default settings are tuned
            for (`learners.defaults`), e.g. "lesson" or "random" layouts of grid-world,
            "one-step" or "multi-step" rendezvous; "" when there is only one.
        reward_low: lowest reward one agent can receive in one step (-inf if unbounded).
        reward_high: highest reward one agent can receive in one step (+inf if unbounded).
        max_return: largest return one agent can collect from any state, discounted or not,
            also past a truncation (what a value estimate can never exceed); +inf if unknown.
        max_steps: steps after which an episode is truncated (0 if unknown).

    The reward fields describe the environment's default params (`RewardBounds` of other
    params: `Environment.reward_bounds(params)`). Returns everywhere in jaxmarl-lab are
    per agent: each agent's rewards summed over the episode, averaged over the agents.
    """

    name: str
    num_agents: int
    obs_dim: int
    state_dim: int
    action_kind: ActionKind
    action_size: int
    action_low: float = -math.inf
    action_high: float = math.inf
    task: str = ""
    reward_low: float = -math.inf
    reward_high: float = math.inf
    max_return: float = math.inf
    max_steps: int = 0

    #: The fields that shape a learner's networks and actions (`runner.check_learner_fits` compares them).
    SHAPE_FIELDS = ("num_agents", "obs_dim", "state_dim", "action_kind", "action_size", "action_low", "action_high")

    def value_range(self, gamma: float) -> tuple[float, float]:
        """`(low, high)`: what a per-agent value estimate with discount `gamma` can be.

        high is `max_return`; low is `min(reward_low, 0)` per step over `1 / (1 - gamma)`
        steps (value targets bootstrap through truncation, so the horizon is the discount's,
        not the episode's), or over `max_steps` steps when `gamma` is 1 (-inf if unknown).
        """
        worst = min(self.reward_low, 0.0)
        if gamma < 1.0:
            low = worst / (1.0 - gamma) if worst < 0 else 0.0
        else:
            low = worst * self.max_steps if self.max_steps and worst < 0 else (0.0 if worst == 0 else -math.inf)
        return low, self.max_return

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


@runtime_checkable
class EnvProtocol(Protocol):
    """The environment API: what the runner, `testing.check_env` and the interop adapters use.

    `envs.core.Environment` (every registered environment, and wrappers such as
    `LastActionObs`) and `interop.JaxMARLEnv` satisfy it; `isinstance(env, EnvProtocol)`
    checks that the members exist (not their signatures).

        state, timestep = env.reset(key, params)                  # one environment
        state, timestep = env.step(key, state, actions, params)   # auto-resets
        state, timestep = env.reset_batch(key, params, B)         # B environments, one key
        state, timestep = env.step_batch(key, state, actions, params)

    States are opaque pytrees (create batched ones with `reset_batch`); params are a
    pytree of (possibly traced, vmappable) numbers, `None` meaning `default_params()`.
    """

    #: True when batched states keep the batch axis last (see `envs.core`); timesteps are batch-major anyway.
    batch_minor: bool

    @property
    def spec(self) -> EnvSpec:
        """The static `EnvSpec`."""
        ...

    @property
    def unwrapped(self) -> EnvProtocol:
        """The innermost environment under any wrappers; the environment itself if unwrapped."""
        ...

    def default_params(self) -> Any:
        """Default params (an environment may accept overrides as keyword arguments)."""
        ...

    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, TimeStep]:
        """Starts an episode: `(state, TimeStep)`, obs `(N, O)`."""
        ...

    def step(self, key: jax.Array, state: Any, actions: jax.Array, params: Any = None) -> tuple[Any, TimeStep]:
        """One joint action, `(N,)` int32 or `(N, D)` float32; auto-resets at an episode's end."""
        ...

    def reset_batch(self, key: jax.Array, params: Any = None, batch_size: int = 1) -> tuple[Any, TimeStep]:
        """Starts `batch_size` episodes: a batched state and a `TimeStep` `(B, ...)`."""
        ...

    def step_batch(self, key: jax.Array, state: Any, actions: jax.Array,
                   params: Any = None) -> tuple[Any, TimeStep]:
        """Steps a batch: actions `(B, N)` or `(B, N, D)`, `TimeStep` `(B, ...)`."""
        ...

    def time_limit(self, params: Any) -> jax.Array:
        """Steps after which an episode is truncated, `()` int32."""
        ...


#: One environment's acting function, `policy(key, timestep, carry) -> (actions, carry)`:
#: actions `(N,)` int32 or `(N, D)` float32 for the `TimeStep` of ONE environment (vmap over
#: environments), `carry` its recurrent state (any pytree; an empty array when it has none).
Policy = Callable[[jax.Array, TimeStep, Any], tuple[jax.Array, Any]]

#: A learner's hyperparameters: its own `<Alg>HParams` NamedTuple of scalars, traced inside
#: the learner state. `Any` in signatures, as each learner accepts only its own class.
HParams = Any

_State = TypeVar("_State", bound="LearnerState")


@runtime_checkable
class LearnerState(Protocol):
    """What every learner state provides, beyond its own parameters and optimizer states.

    A learner state is a `NamedTuple` pytree (so `jit`, `vmap` over seeds or hparams, `scan`
    and checkpointing work on it) with at least these fields, on which the runner
    (`runner.make_runner`) and the run loop (`runs.training`) rely:

    - `hparams`: the learner's `HParams`, traced scalars (a stack of them is vmapped without
      recompiling);
    - `env_steps`: `()` int32, environment steps acted so far; the runner advances it by
      `B * T` after each rollout with `_replace`, and exploration and learning-rate
      schedules read it;
    - `updates`: `()` int32, update calls so far; `update` increments it, and
      `runs.training` uses it to tell whether an iteration updated (its losses count).

    The runner also requires every floating leaf to be a parameter it may check for NaN.
    """

    @property
    def hparams(self) -> HParams:
        ...

    @property
    def env_steps(self) -> jax.Array:
        ...

    @property
    def updates(self) -> jax.Array:
        ...

    def _replace(self: _State, **fields: Any) -> _State:
        """A copy with `fields` replaced (every NamedTuple has it)."""
        ...


class Learner(NamedTuple):
    """A learner as a triple of pure functions, like an optax transformation.

    - `init(key, hparams) -> state`: fresh learner state holding `hparams` (traced scalars).
    - `initial_carry() -> carry`: recurrent state of one environment's agents, `(N, H)`.
    - `act(key, state, timestep, carry, explore) -> (actions, carry)`: one environment's
      joint action, `(N,)` int32 or `(N, D)` float32 (vmap over environments); `explore`
      is a Python bool.
    - `update(key, state, batch) -> (state, metrics)`: one learning step on a batch of
      sequences `Transition (B, T, ...)` (the rollout itself for on-policy learners);
      metrics are named scalars. It is the step a runner jit-compiles.

    The state is a `LearnerState`: a NamedTuple with `hparams`, `env_steps` (the runner
    advances it; exploration schedules depend on it) and `updates`. In the signatures below
    the state *argument* is `Any`, because each learner accepts only its own state class.

    `spec` is the `EnvSpec` the learner was built from (every `make_<alg>` sets it); the
    runner refuses an environment whose spec differs from it. A hand-built learner may
    leave it None, and then nothing is checked.
    """

    init: Callable[[jax.Array, HParams], LearnerState]
    initial_carry: Callable[[], jax.Array]
    act: Callable[[jax.Array, Any, TimeStep, jax.Array, bool], tuple[jax.Array, jax.Array]]
    update: Callable[[jax.Array, Any, Transition], tuple[LearnerState, dict[str, jax.Array]]]
    on_policy: bool = False  # update takes the rollout just collected, not replayed sequences
    spec: EnvSpec | None = None  # the environment the learner was built for; None: unknown, not checked
