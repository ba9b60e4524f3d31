"""`jaxmarl-lab demo`: roll out every environment under jit + vmap, print returns and speed."""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from jaxmarl_lab import envs
from jaxmarl_lab.baselines import random_actions


def random_policy_returns(env, key: jax.Array, num_envs: int, num_steps: int):
    """Mean per-agent episode return of uniformly random actions, over all episodes that ended.

    Runs `num_envs` environments for `num_steps` steps in one jitted `lax.scan`.
    Returns `(mean_return, episodes_ended)`.
    """
    params = env.default_params()

    def body(carry, key):
        state, timestep, running, total, count = carry
        key_act, key_step = jax.random.split(key)
        actions = jax.vmap(random_actions, in_axes=(0, None, 0))(
            jax.random.split(key_act, num_envs), env.spec, timestep.avail_actions)
        state, timestep = env.step_batch(key_step, state, actions, params)
        running = running + timestep.reward.mean(axis=-1)  # (B,) per-agent return so far
        done = timestep.done
        total = total + jnp.where(done, running, 0.0).sum()
        return (state, timestep, jnp.where(done, 0.0, running), total, count + done.sum()), None

    def run(key):
        key_reset, key_scan = jax.random.split(key)
        state, timestep = env.reset_batch(key_reset, params, num_envs)
        carry = (state, timestep, jnp.zeros(num_envs), jnp.zeros(()), jnp.zeros((), jnp.int32))
        (_, _, _, total, count), _ = jax.lax.scan(body, carry, jax.random.split(key_scan, num_steps))
        return total / jnp.maximum(count, 1), count

    return jax.jit(run)(key)


def demo(args: argparse.Namespace) -> int:
    """Rolls out each environment's example variants (`envs.example_cases`) with random actions and prints
    what it finds, with the optimum where the environment describes one (`describe_optimum`)."""
    print(f"jax {jax.__version__}, devices: {[d.device_kind for d in jax.devices()]}")
    print(f"{args.num_envs} parallel environments x {args.num_steps} steps each, random actions\n")
    key = jax.random.PRNGKey(args.seed)
    for name, kwargs in envs.example_cases():
        env = envs.make(name, **kwargs)
        spec = env.spec
        start = time.perf_counter()
        mean_return, episodes = random_policy_returns(env, key, args.num_envs, args.num_steps)
        seconds = time.perf_counter() - start
        label = name + "".join(f" {k}={v}" for k, v in kwargs.items())
        print(f"{label}: N={spec.num_agents} obs={spec.obs_dim} state={spec.state_dim} "
              f"{spec.action_kind} actions of size {spec.action_size}")
        print(f"  random policy: mean per-agent return {float(mean_return):.3f} over {int(episodes)} episodes "
              f"({args.num_envs * args.num_steps / seconds:.3g} env-steps/s including compilation)")
        optimum = env.describe_optimum(env.default_params())
        if optimum is not None:
            print(f"  {optimum}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="roll out every environment under jit + vmap",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--num-envs", type=int, default=1024, help="parallel environments")
    p.add_argument("--num-steps", type=int, default=200, help="steps per environment")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=demo, positive=("num_envs", "num_steps"))
