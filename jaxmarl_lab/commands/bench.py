"""`jaxmarl-lab bench`: quick throughput of the environments and of one training configuration.

Environments: the example variants of every registered environment (`envs.example_cases`),
each `--num-envs` copies stepped `--num-steps` times with uniformly random actions in one
jitted `lax.scan` (compiled first, then timed `--repeats` times; the median is reported).
Training: the default run of `--learner` on `--env` (see `jaxmarl-lab train --help`), one
jitted chunk of `--train-iterations` iterations, compiled first, then timed. Numbers are
env steps per second of wall time.
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np


def make_rollout(env, num_envs: int, num_steps: int):
    """`rollout(key) -> total reward`: `num_envs` envs x `num_steps` random steps (not jitted)."""
    from jaxmarl_lab.baselines import random_actions

    params = env.default_params()
    sample = jax.vmap(random_actions, in_axes=(0, None, 0))

    def body(carry, key):
        state, timestep, total = carry
        key_act, key_step = jax.random.split(key)
        actions = sample(jax.random.split(key_act, num_envs), env.spec, timestep.avail_actions)
        state, timestep = env.step_batch(key_step, state, actions, params)
        return (state, timestep, total + timestep.reward.sum()), None

    def rollout(key):
        key_reset, key_scan = jax.random.split(key)
        state, timestep = env.reset_batch(key_reset, params, num_envs)
        (_, _, total), _ = jax.lax.scan(body, (state, timestep, 0.0), jax.random.split(key_scan, num_steps))
        return total

    return rollout


def time_compiled(fn, args: tuple, repeats: int) -> tuple[float, float]:
    """`(compile_s, median run_s)` of `jax.jit(fn)(*args)`."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return compile_s, float(np.median(times))


def bench_envs(num_envs: int, num_steps: int, repeats: int, names: list[str] | None = None) -> None:
    from jaxmarl_lab import envs

    print(f"environments: {num_envs} envs x {num_steps} steps, random actions, median of {repeats} runs")
    for name, kwargs in envs.example_cases():
        if names and name not in names:
            continue
        env = envs.make(name, **kwargs)
        compile_s, run_s = time_compiled(make_rollout(env, num_envs, num_steps), (jax.random.PRNGKey(0),), repeats)
        label = name + "".join(f" {k}={v}" for k, v in kwargs.items())
        print(f"  {label:<40} {num_envs * num_steps / run_s:>14,.0f} env-steps/s   (compile {compile_s:.1f} s)")


def bench_training(learner: str, env_name: str, iterations: int, repeats: int) -> None:
    from jaxmarl_lab.runs.config import RunConfig
    from jaxmarl_lab.runs.training import make_training

    run = RunConfig(env=env_name, env_kwargs={}, learner=learner)
    training = make_training(run)
    runner = training.built.runner
    state = training.init()
    compile_s, run_s = time_compiled(lambda s: training.chunk(s, iterations), (state,), repeats)
    steps = iterations * runner.steps_per_iteration
    print(f"training: {learner} on {env_name} (defaults of `jaxmarl-lab train --learner {learner} --env {env_name}`:"
          f" {runner.num_envs} envs x {runner.rollout_len} steps per iteration, {training.built.learner_config})")
    print(f"  {iterations} iterations = {steps:,} env steps: {steps / run_s:,.0f} env-steps/s including updates, "
          f"median of {repeats} (compile {compile_s:.1f} s)")


def bench(args: argparse.Namespace) -> int:
    """Prints the device, the jax version, env throughput and training throughput."""
    from jaxmarl_lab import envs

    unknown = sorted(set(args.bench_envs or ()) - set(envs.registered_names()))
    if unknown:
        raise ValueError(f"--bench-envs {unknown} unknown; valid names: {', '.join(envs.registered_names())}")
    devices = jax.devices()
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {[d.device_kind for d in devices]}, "
          f"python {platform.python_version()}, {platform.machine()}")
    if not args.skip_envs:
        bench_envs(args.num_envs, args.num_steps, args.repeats, args.bench_envs)
    if not args.skip_training:
        bench_training(args.learner, args.env, args.train_iterations, args.repeats)
    return 0


def add_parser(sub) -> None:
    from jaxmarl_lab.runs.config import learner_names

    p = sub.add_parser("bench", help="env and training throughput on this machine",
                       description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--num-envs", type=int, default=1024, help="parallel environments for the env benchmark")
    p.add_argument("--num-steps", type=int, default=100, help="steps per environment for the env benchmark")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median reported)")
    p.add_argument("--bench-envs", nargs="+", metavar="NAME", default=None,
                   help="environments of the env benchmark (default None: all registered ones)")
    p.add_argument("--learner", default="mappo", choices=learner_names(), help="learner of the training benchmark")
    p.add_argument("--env", default="particle-spread", help="environment of the training benchmark")
    p.add_argument("--train-iterations", type=int, default=20, help="iterations per timed training chunk")
    p.add_argument("--skip-envs", action="store_true", help="skip the environment benchmark")
    p.add_argument("--skip-training", action="store_true", help="skip the training benchmark")
    p.set_defaults(func=bench, positive=("num_envs", "num_steps", "repeats", "train_iterations"))
