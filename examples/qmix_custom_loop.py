"""QMIX from a hand-written JAX loop: the learners are importable on their own.

No `jaxmarl_lab.runner`, no replay module: this script steps grid-world's `lesson`
layout itself with `learner.act`, stacks the steps into `Transition` sequences
`(B, T, ...)` and calls `jax.jit(learner.update)` several times on each fresh batch
(a Q-learner may learn from the rollout it just collected; the runner's replay buffer
decorrelates the data and is the better default).

    python examples/qmix_custom_loop.py     # 250 rollouts x 8 updates; compilation is most of the time

The lesson's optimum is 3 steps (per-agent return 1 - 3 * 0.01 = 0.97); an untrained
greedy policy usually wanders for all 50 steps (return -0.50).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from jaxmarl_lab import envs
from jaxmarl_lab.learners import ValueConfig, ValueHParams, make_qmix
from jaxmarl_lab.types import Transition

NUM_ENVS, ROLLOUT_LEN, EVAL_STEPS = 8, 10, 50


def make_collect(env, learner, params):
    """`collect(key, learner_state, env_state, timestep, first) -> (..., Transition (B, T, ...))`."""
    act = jax.vmap(learner.act, in_axes=(0, None, 0, 0, None))
    carry0 = jnp.zeros((NUM_ENVS,) + learner.initial_carry().shape)  # feed-forward nets ignore it

    def one_step(loop, key):
        learner_state, env_state, timestep, first = loop
        key_act, key_env = jax.random.split(key)
        actions, _ = act(jax.random.split(key_act, NUM_ENVS), learner_state, timestep, carry0, True)
        env_state, next_ts = env.step_batch(key_env, env_state, actions, params)
        transition = Transition(obs=timestep.obs, global_state=timestep.global_state,
                                avail_actions=timestep.avail_actions, first=first, action=actions,
                                reward=next_ts.reward, terminated=next_ts.terminated, truncated=next_ts.truncated,
                                next_obs=next_ts.final_obs, next_global_state=next_ts.final_global_state,
                                next_avail_actions=next_ts.avail_actions)
        return (learner_state, env_state, next_ts, next_ts.done), transition

    def collect(key, learner_state, env_state, timestep, first):
        loop = (learner_state, env_state, timestep, first)
        (_, env_state, timestep, first), steps = jax.lax.scan(one_step, loop, jax.random.split(key, ROLLOUT_LEN))
        batch = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)  # (T, B, ...) -> (B, T, ...)
        return env_state, timestep, first, batch

    return collect


def make_greedy_return(env, learner, params):
    """`greedy_return(key, learner_state) -> (return, steps)` of one greedy episode."""
    def greedy_return(key, learner_state):
        key_reset, key = jax.random.split(key)
        state, timestep = env.reset(key_reset, params)

        def one_step(loop, key):
            state, timestep, ret, steps, live = loop
            actions, _ = learner.act(key, learner_state, timestep, learner.initial_carry(), False)
            state, timestep = env.step(key, state, actions, params)
            ret, steps = ret + live * timestep.reward.mean(), steps + live
            return (state, timestep, ret, steps, live * (1.0 - timestep.done)), None

        loop = (state, timestep, jnp.zeros(()), jnp.zeros(()), jnp.ones(()))
        (_, _, ret, steps, _), _ = jax.lax.scan(one_step, loop, jax.random.split(key, EVAL_STEPS))
        return ret, steps

    return greedy_return


def main(num_iterations: int = 250, updates_per_iteration: int = 8, seed: int = 0, verbose: bool = True) -> dict:
    """Trains QMIX on the lesson layout; returns the greedy returns before and after, and the losses."""
    env = envs.make("grid-world", layout="lesson")
    params = env.default_params()
    learner = make_qmix(env.spec, ValueConfig(hidden_dim=32))
    hparams = ValueHParams.create(lr=1e-3, gamma=0.95, td_lambda=0.6, target_tau=0.1,
                                  eps_decay_steps=10_000.0)
    collect = jax.jit(make_collect(env, learner, params))
    update = jax.jit(learner.update)
    greedy_return = jax.jit(make_greedy_return(env, learner, params))

    key_init, key_env, key = jax.random.split(jax.random.PRNGKey(seed), 3)
    state = learner.init(key_init, hparams)
    env_state, timestep = env.reset_batch(key_env, params, NUM_ENVS)
    first = jnp.ones((NUM_ENVS,), bool)
    before, _ = greedy_return(jax.random.PRNGKey(1), state)
    losses, start = [], time.perf_counter()
    for i in range(num_iterations):
        key, key_collect, key_update = jax.random.split(key, 3)
        env_state, timestep, first, batch = collect(key_collect, state, env_state, timestep, first)
        state = state._replace(env_steps=state.env_steps + NUM_ENVS * ROLLOUT_LEN)  # drives the epsilon anneal
        for _ in range(updates_per_iteration):
            state, metrics = update(key_update, state, batch)  # QMIX's update ignores its key
        losses.append(float(metrics["loss"]))
        if verbose and ((i + 1) % max(1, num_iterations // 5) == 0 or i + 1 == num_iterations):
            ret, steps = greedy_return(jax.random.PRNGKey(1), state)
            print(f"rollout {i + 1:4d}  loss {losses[-1]:.4f}  epsilon {float(metrics['epsilon']):.2f}  "
                  f"greedy return {float(ret):+.2f} in {int(steps)} steps")
    after, steps = greedy_return(jax.random.PRNGKey(1), state)
    if verbose:
        print(f"greedy return {float(before):+.2f} before, {float(after):+.2f} after ({int(steps)} steps; "
              f"optimum +0.97 in 3), {time.perf_counter() - start:.1f} s")
    return {"before": float(before), "after": float(after), "steps": int(steps), "losses": losses}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-iterations", type=int, default=250, help="rollouts of 8 envs x 10 steps")
    parser.add_argument("--updates-per-iteration", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    cli = parser.parse_args()
    main(cli.num_iterations, cli.updates_per_iteration, cli.seed)
