"""The `jaxmarl-lab` command line.

    jaxmarl-lab demo      # roll out every environment under jit + vmap, print returns and speed
    jaxmarl-lab list      # registered environments and their specs
    jaxmarl-lab variance --seeds 10000 --out runs/variance [--curvature-scaled-lr]
                          # centralized vs independent baseline: gradient-variance table + plot
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxmarl_lab import envs
from jaxmarl_lab.testing import random_actions


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
        done = timestep.terminated | timestep.truncated
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
    """Rolls out each environment with random actions and prints what it finds."""
    from jaxmarl_lab.envs import grid_world, rendezvous

    print(f"jax {jax.__version__}, devices: {[d.device_kind for d in jax.devices()]}")
    print(f"{args.num_envs} parallel environments x {args.num_steps} steps each, random actions\n")
    key = jax.random.PRNGKey(args.seed)
    for name, kwargs in (("grid-world", {}), ("grid-world", {"layout": "lesson"}),
                         ("rendezvous", {}), ("rendezvous", {"form": "multi-step"}),
                         ("particle-spread", {})):
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
        if name == "grid-world" and kwargs.get("layout") == "lesson":
            params = env.default_params()
            steps = grid_world.optimal_steps(env.height, env.width, np.asarray(params.starts), np.asarray(params.goals))
            print(f"  exact optimum (breadth-first search): {steps} steps, "
                  f"return {grid_world.optimal_return(env.height, env.width, params):.3f}")
        if name == "rendezvous" and kwargs.get("form") is None:
            value, _ = rendezvous.one_step_optimum(env.default_params(), spec.num_agents, env.dim)
            print(f"  closed-form optimum: team reward {value:.3f} (every agent plays the target)")
    return 0


def list_envs(args: argparse.Namespace) -> int:
    """Prints the registered environments and their default specs."""
    del args
    for name in envs.registered_names():
        print(f"{name}: {envs.make(name).spec}")
    return 0


def variance(args: argparse.Namespace) -> int:
    """Runs the critic-variance sweep, writes CSV/JSON/PNG under `--out` and prints the table."""
    # One XLA host device per core, so the seeds are split over the cores; it only takes
    # effect if JAX's backend has not started yet in this process, and never overrides the user.
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")
    from jaxmarl_lab.experiments import variance as experiment
    from jaxmarl_lab.experiments import variance_report

    config = experiment.VarianceConfig(num_agents=tuple(args.num_agents), couplings=tuple(args.couplings),
                                       seeds=args.seeds, steps=args.steps,
                                       curvature_scaled_lr=args.curvature_scaled_lr)
    start = time.perf_counter()
    records, _ = experiment.run_variance_sweep(jax.random.key(args.key), config)
    seconds = time.perf_counter() - start
    print(f"{len(config.cells)} cells x 2 critics x {config.seeds} seeds x {config.steps} steps, "
          f"{'curvature-scaled' if config.curvature_scaled_lr else 'plain'} lr, {seconds:.1f} s "
          f"(compile included); ratios are independent / centralized, 95% bootstrap CIs")
    print(variance_report.format_table(records))
    paths = variance_report.write_outputs(records, config, args.out,
                                          {"key_seed": args.key, "seconds": seconds})
    print("wrote " + ", ".join(paths.values()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxmarl-lab", description="JAX-vectorized multi-agent RL.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="roll out every environment under jit + vmap",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p_demo.add_argument("--num-envs", type=int, default=1024, help="parallel environments")
    p_demo.add_argument("--num-steps", type=int, default=200, help="steps per environment")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.set_defaults(func=demo)
    p_list = sub.add_parser("list", help="registered environments and their specs")
    p_list.set_defaults(func=list_envs)
    p_var = sub.add_parser("variance", help="centralized vs independent critic: policy-gradient variance sweep",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p_var.add_argument("--seeds", type=int, default=10_000, help="seeds per cell")
    p_var.add_argument("--steps", type=int, default=400, help="REINFORCE steps per run")
    p_var.add_argument("--num-agents", type=int, nargs="+", default=[2, 4, 8, 16])
    p_var.add_argument("--couplings", type=float, nargs="+", default=[0.25, 1.0, 4.0])
    p_var.add_argument("--curvature-scaled-lr", action="store_true",
                       help="scale each cell's lr by 2(1 + 4*1) / 2(1 + c N): lr * curvature = 0.2 in every "
                            "cell (the independent critic can still diverge from gradient noise)")
    p_var.add_argument("--key", type=int, default=0, help="seed of the JAX key")
    p_var.add_argument("--out", default="runs/variance", help="folder for variance.{csv,json,png}")
    p_var.set_defaults(func=variance)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("num_envs", "num_steps", "seeds", "steps"):
        value = getattr(args, name, 1)
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
