"""The training loop: one pure function, jit-compiled once, vmappable over keys and hparams.

    train = make_train(env, learner, RunnerConfig(...))
    final, metrics = jax.jit(train)(key, hparams)
    finals, metrics = jax.jit(jax.vmap(train))(keys, stacked_hparams)   # seeds x hparams

Each iteration is a fused `lax.scan`: `rollout_len` steps of act -> env.step_batch on
`num_envs` environments, giving sequences `Transition (B, T, ...)`. Off-policy learners
add them to the replay buffer and take `updates_per_rollout` updates on sampled
sequences; on-policy learners (`Learner.on_policy`, e.g. MAPPO) update on them directly.
`make_runner` exposes the pieces (`init`, `iterate`) for loops that run in chunks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxmarl_lab.replay import BufferState, make_buffer
from jaxmarl_lab.types import EnvProtocol, EnvSpec, HParams, Learner, LearnerState, Policy, TimeStep, Transition
from jaxmarl_lab.validation import check_positive_int

MAX_ENV_STEPS = 2**31 - 1  # learner states count environment steps per seed in int32


@dataclasses.dataclass(frozen=True)
class RunnerConfig:
    """Sizes and schedule of an off-policy training run; validated on construction."""

    num_envs: int = 16  # B, environments stepped in parallel
    rollout_len: int = 25  # T, steps per environment per iteration (the stored sequence length)
    total_env_steps: int = 100_000  # training budget; iterations = total // (B * T)
    buffer_capacity: int = 5_000  # sequences held by the replay buffer
    batch_size: int = 32  # sequences per update
    updates_per_rollout: int = 1  # learner updates after each rollout
    learning_starts: int = 0  # environment steps before the first update

    def __post_init__(self):
        for name in ("num_envs", "rollout_len", "total_env_steps", "buffer_capacity", "batch_size",
                     "updates_per_rollout"):
            check_positive_int(f"RunnerConfig.{name}", getattr(self, name))
        check_positive_int("RunnerConfig.learning_starts", self.learning_starts, minimum=0)
        if self.total_env_steps > MAX_ENV_STEPS:
            raise ValueError(f"RunnerConfig.total_env_steps must be <= {MAX_ENV_STEPS:,} (2**31 - 1: learners count "
                             f"environment steps in int32), got {self.total_env_steps:,}")
        if self.batch_size > self.buffer_capacity:
            raise ValueError(f"RunnerConfig.batch_size ({self.batch_size}) must be <= "
                             f"RunnerConfig.buffer_capacity ({self.buffer_capacity})")
        if self.total_env_steps < self.steps_per_iteration:
            raise ValueError(f"RunnerConfig.total_env_steps ({self.total_env_steps}) must be >= "
                             f"num_envs * rollout_len ({self.steps_per_iteration})")

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.rollout_len

    @property
    def num_iterations(self) -> int:
        return self.total_env_steps // self.steps_per_iteration


class RunnerState(NamedTuple):
    learner: LearnerState  # the learner's state (NamedTuple with hparams, env_steps, updates)
    buffer: BufferState
    env_state: Any  # batched environment state
    timestep: TimeStep  # (B, ...) latest timestep
    first: jax.Array  # (B,) bool, timestep.obs starts an episode
    carry: jax.Array  # (B, N, H) recurrent state of the acting networks
    episode_return: jax.Array  # (B,) float32, per-agent mean reward summed so far
    episode_length: jax.Array  # (B,) int32
    key: jax.Array


class Runner(NamedTuple):
    init: Callable[[jax.Array, HParams], RunnerState]
    iterate: Callable[[RunnerState], tuple[RunnerState, dict]]


def check_learner_fits(env: EnvProtocol, learner: Learner) -> None:
    """Refuses a learner built for another environment than `env` (compares `learner.spec` with `env.spec`).

    The fields in `EnvSpec.SHAPE_FIELDS` are compared: the sizes, the action kind and the action
    bounds shape the learner's networks and actions; the name, task and reward bounds do not. A
    learner whose `spec` is None (built by hand) is not checked.

    Raises:
        ValueError: naming each differing field with the learner's and the env's value.
    """
    if learner.spec is None:
        return
    diffs = [f"{f.name} {getattr(learner.spec, f.name)!r} (learner) vs {getattr(env.spec, f.name)!r} (env)"
             for f in dataclasses.fields(learner.spec)
             if f.name in EnvSpec.SHAPE_FIELDS and getattr(learner.spec, f.name) != getattr(env.spec, f.name)]
    if diffs:
        raise ValueError(f"learner was built for a different environment: {', '.join(diffs)}")


def make_runner(env: EnvProtocol, learner: Learner, config: RunnerConfig, env_params: Any = None) -> Runner:
    """`init(key, hparams) -> RunnerState` and one training iteration `iterate(state)`.

    Raises:
        ValueError: if `learner` was built for an environment with another spec than `env`'s.
    """
    check_learner_fits(env, learner)
    env_params = env.default_params() if env_params is None else env_params
    buffer = make_buffer(config.buffer_capacity, config.batch_size)
    b, t = config.num_envs, config.rollout_len
    act = jax.vmap(learner.act, in_axes=(0, None, 0, 0, None))

    def init(key: jax.Array, hparams: HParams) -> RunnerState:
        key_env, key_learner, key_item, key = jax.random.split(key, 4)
        env_state, timestep = env.reset_batch(key_env, env_params, b)
        learner_state = learner.init(key_learner, hparams)
        carry = jnp.broadcast_to(learner.initial_carry(), (b,) + learner.initial_carry().shape)
        actions, _ = act(jax.random.split(key_item, b), learner_state, timestep, carry, True)
        example = jax.tree.map(lambda x: jnp.zeros((t,) + x.shape[1:], x.dtype),
                               _transition(timestep, jnp.ones((b,), bool), actions, timestep))
        buffer_state = BufferState((), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32)) if learner.on_policy \
            else buffer.init(example)
        return RunnerState(learner_state, buffer_state, env_state, timestep, jnp.ones((b,), bool),
                           carry, jnp.zeros((b,)), jnp.zeros((b,), jnp.int32), key)

    def env_step(state: RunnerState, _):
        key, key_act, key_env = jax.random.split(state.key, 3)
        actions, carry = act(jax.random.split(key_act, b), state.learner, state.timestep, state.carry, True)
        env_state, timestep = env.step_batch(key_env, state.env_state, actions, env_params)
        transition = _transition(state.timestep, state.first, actions, timestep)
        done = timestep.done
        ret = state.episode_return + timestep.reward.mean(axis=-1)
        length = state.episode_length + 1
        ended = (jnp.where(done, ret, 0.0).sum(), jnp.where(done, length, 0).sum(), done.sum())
        state = state._replace(env_state=env_state, timestep=timestep, first=done, carry=carry, key=key,
                               episode_return=jnp.where(done, 0.0, ret), episode_length=jnp.where(done, 0, length))
        return state, (transition, ended)

    def learn(state: RunnerState, _):
        key, key_sample, key_update = jax.random.split(state.key, 3)
        ready = buffer.can_sample(state.buffer) & (state.learner.env_steps >= config.learning_starts)

        def do_update(learner_state):
            batch = buffer.sample(key_sample, state.buffer)
            return learner.update(key_update, learner_state, batch)

        shapes = jax.eval_shape(do_update, state.learner)[1]
        skip = lambda s: (s, jax.tree.map(lambda m: jnp.full(m.shape, jnp.nan, m.dtype), shapes))
        learner_state, metrics = jax.lax.cond(ready, do_update, skip, state.learner)
        return state._replace(learner=learner_state, key=key), metrics

    def learn_on_policy(state: RunnerState, sequences: Transition):
        key, key_update = jax.random.split(state.key)
        learner_state, metrics = learner.update(key_update, state.learner, sequences)
        return state._replace(learner=learner_state, key=key), jax.tree.map(lambda m: m[None], metrics)

    def iterate(state: RunnerState) -> tuple[RunnerState, dict]:
        state, (traj, ended) = jax.lax.scan(env_step, state, None, length=t)
        sequences = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), traj)  # (B, T, ...)
        learner_state = state.learner._replace(env_steps=state.learner.env_steps + b * t)
        state = state._replace(learner=learner_state)
        if learner.on_policy:
            state, update_metrics = learn_on_policy(state, sequences)
        else:
            state = state._replace(buffer=buffer.add(state.buffer, sequences))
            state, update_metrics = jax.lax.scan(learn, state, None, length=config.updates_per_rollout)
        ret_sum, len_sum, episodes = (x.sum() for x in ended)
        metrics = {k: v.mean() for k, v in update_metrics.items()}
        metrics.update(episode_return=jnp.where(episodes > 0, ret_sum / jnp.maximum(episodes, 1), jnp.nan),
                       episode_length=jnp.where(episodes > 0, len_sum / jnp.maximum(episodes, 1), jnp.nan),
                       episodes=episodes, env_steps=state.learner.env_steps)
        return state, metrics

    return Runner(init, iterate)


def _transition(timestep: TimeStep, first: jax.Array, actions: jax.Array, next_timestep: TimeStep) -> Transition:
    """The batched `Transition` of acting on `timestep` and reaching `next_timestep`."""
    return Transition(obs=timestep.obs, global_state=timestep.global_state, avail_actions=timestep.avail_actions,
                      first=first, action=actions, reward=next_timestep.reward,
                      terminated=next_timestep.terminated, truncated=next_timestep.truncated,
                      next_obs=next_timestep.final_obs, next_global_state=next_timestep.final_global_state,
                      next_avail_actions=next_timestep.avail_actions)


def make_train(env: EnvProtocol, learner: Learner, config: RunnerConfig,
               env_params: Any = None) -> Callable[[jax.Array, HParams], tuple[RunnerState, dict]]:
    """`train(key, hparams) -> (RunnerState, metrics)`: the whole run as one pure function.

    `metrics` holds one entry per iteration, each `(num_iterations,)`: episode_return
    (per-agent reward summed over an episode, averaged over agents and the episodes
    that ended in the iteration; NaN if none did), episode_length, episodes, env_steps,
    and the learner's update metrics (NaN before learning starts).
    """
    runner = make_runner(env, learner, config, env_params)

    def train(key: jax.Array, hparams: HParams) -> tuple[RunnerState, dict]:
        state = runner.init(key, hparams)
        return jax.lax.scan(lambda s, _: runner.iterate(s), state, None, length=config.num_iterations)

    return train


def run_episodes(env: EnvProtocol, policy: Policy, carry: Any, key: jax.Array, num_episodes: int, max_steps: int,
                 env_params: Any) -> dict:
    """Scores the first episode of `num_episodes` environments run in parallel, in jit.

    `policy(key, timestep, carry) -> (actions, carry)` acts for ONE environment (it is
    vmapped here); `carry` is its initial recurrent state. Runs `max_steps` steps and
    returns `returns (K,)` (per-agent mean reward summed over the episode), `lengths (K,)`,
    `terminated (K,)` (the episode reached a terminal state) and `finished (K,)`.
    """
    act = jax.vmap(policy)
    key_reset, key = jax.random.split(key)
    env_state, timestep = env.reset_batch(key_reset, env_params, num_episodes)
    carry = jnp.broadcast_to(carry, (num_episodes,) + jnp.shape(carry))

    def step(state, key):
        env_state, timestep, carry, ret, length, live, term = state
        key_act, key_env = jax.random.split(key)
        actions, carry = act(jax.random.split(key_act, num_episodes), timestep, carry)
        env_state, timestep = env.step_batch(key_env, env_state, actions, env_params)
        ret = ret + live * timestep.reward.mean(axis=-1)
        length = length + live
        term = term | (live.astype(bool) & timestep.terminated)
        live = live * (1.0 - timestep.done)
        return (env_state, timestep, carry, ret, length, live, term), None

    zeros = jnp.zeros((num_episodes,))
    init = (env_state, timestep, carry, zeros, zeros, jnp.ones((num_episodes,)), jnp.zeros((num_episodes,), bool))
    (_, _, _, ret, length, live, term), _ = jax.lax.scan(step, init, jax.random.split(key, max_steps))
    return {"returns": ret, "lengths": length, "terminated": term, "finished": live == 0.0}


def make_evaluate(env: EnvProtocol, learner: Learner, num_episodes: int, max_steps: int,
                  env_params: Any = None) -> Callable[[jax.Array, LearnerState], dict]:
    """`evaluate(key, learner_state) -> dict`: the greedy policy's first episodes, in jit.

    See `run_episodes` for what the dict holds.

    Raises:
        ValueError: for a non-positive count, or a `learner` built for another spec than `env`'s.
    """
    check_learner_fits(env, learner)
    num_episodes = check_positive_int("num_episodes", num_episodes)
    max_steps = check_positive_int("max_steps", max_steps)
    env_params = env.default_params() if env_params is None else env_params

    def evaluate(key: jax.Array, learner_state: LearnerState) -> dict:
        policy = lambda k, timestep, carry: learner.act(k, learner_state, timestep, carry, False)
        return run_episodes(env, policy, learner.initial_carry(), key, num_episodes, max_steps, env_params)

    return evaluate
