"""Learning results of the actor-critic learners on particle-spread (N = 3, discrete).

Each learner trains `--seeds` seeds as ONE vmapped, jitted program. Reported per
learner: the per-agent return (each agent's reward summed over the 25-step episode,
averaged over agents; PettingZoo's scale) of the trained policy, mean and 95%
t-interval over seeds, beside a uniform-random policy and the scripted assignment
policy, with env steps, compile time, wall time and env-steps/s.

    python benchmarks/learning_actor_critic.py                       # MAPPO + IPPO 5M, MADDPG 2M
    python benchmarks/learning_actor_critic.py --steps 1000000 --seeds 2 --learners mappo ippo

MAPPO and IPPO use identical hyperparameters (below); only the critic differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from learning_value_based import mean_ci, timed_jit  # noqa: E402  (a sibling script)

from jaxmarl_lab import envs  # noqa: E402
from jaxmarl_lab.baselines import make_evaluate_policy, random_policy, scripted_spread_policy  # noqa: E402
from jaxmarl_lab.learners import PPOConfig, PPOHParams, make_ippo, make_mappo  # noqa: E402
from jaxmarl_lab.runner import RunnerConfig, make_evaluate, make_train  # noqa: E402

PPO_CONFIG = PPOConfig(hidden_dim=64, num_epochs=4, num_minibatches=4, grad_var_samples=0)
PPO_HPARAMS = PPOHParams(lr=3e-3, gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01)
DEFAULT_STEPS = {"mappo": 5_000_000, "ippo": 5_000_000, "maddpg": 2_000_000}
EVAL_EPISODES = 128


def learner_setup(name: str, env, steps: int):
    """`(learner, RunnerConfig, hparams, description)` for one learner."""
    if name in ("mappo", "ippo"):
        make = make_mappo if name == "mappo" else make_ippo
        runner = RunnerConfig(num_envs=64, rollout_len=25, total_env_steps=steps)
        return make(env.spec, PPO_CONFIG), runner, PPO_HPARAMS, {
            "config": dataclasses.asdict(PPO_CONFIG), "hparams": PPO_HPARAMS._asdict()}
    if name == "maddpg":
        from jaxmarl_lab.learners import MADDPGConfig, MADDPGHParams, make_maddpg
        config, hparams = MADDPGConfig(), MADDPGHParams()
        runner = RunnerConfig(num_envs=16, rollout_len=25, total_env_steps=steps, buffer_capacity=4000,
                              batch_size=32, updates_per_rollout=4)
        return make_maddpg(env.spec, config), runner, hparams, {
            "config": dataclasses.asdict(config), "hparams": hparams._asdict()}
    raise ValueError(f"unknown learner {name!r}; valid: mappo, ippo, maddpg")


def run_learner(name: str, env, steps: int, seeds: int) -> dict:
    learner, runner, hparams, described = learner_setup(name, env, steps)
    train = jax.vmap(make_train(env, learner, runner), in_axes=(0, None))
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    (final, metrics), compile_s, run_s = timed_jit(train, keys, hparams)
    evaluate = jax.jit(jax.vmap(make_evaluate(env, learner, EVAL_EPISODES, 25), in_axes=(None, 0)))
    greedy = np.asarray(evaluate(jax.random.PRNGKey(1), final.learner)["returns"]).mean(axis=1)
    last = max(1, runner.num_iterations // 20)
    train_return = np.nanmean(np.asarray(metrics["episode_return"])[:, -last:], axis=1)
    env_steps = runner.num_iterations * runner.steps_per_iteration
    return {"learner": name, "env_steps_per_seed": env_steps, "seeds": seeds,
            "greedy_return": mean_ci(greedy), "final_train_return": mean_ci(train_return),
            "compile_s": compile_s, "train_s": run_s, "env_steps_per_s": seeds * env_steps / run_s,
            "runner": dataclasses.asdict(runner), **described}


def baselines(env) -> dict:
    out = {}
    for name, policy in (("random", random_policy(env.spec)), ("scripted", scripted_spread_policy(env))):
        returns = jax.jit(make_evaluate_policy(env, policy, 1024))(jax.random.PRNGKey(2))
        out[name] = mean_ci(np.asarray(returns))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", nargs="+", default=["mappo", "ippo", "maddpg"],
                        choices=["mappo", "ippo", "maddpg"])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="env steps per seed (default: 5M PPO, 2M MADDPG)")
    parser.add_argument("--json", default="benchmarks/results/learning_actor_critic.json")
    args = parser.parse_args(argv)
    env = envs.make("particle-spread", num_agents=3)
    print(f"# particle-spread N=3 discrete, {args.seeds} seeds per learner in one vmapped run; "
          f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
    result = {"baselines": baselines(env), "learners": []}
    for name, stat in result["baselines"].items():
        print(f"{name:>8}: return {stat['mean']:.2f} ± {stat['ci95']:.2f} (1024 episodes)")
    print("| learner | env steps | greedy return | train return (last 5%) | compile s | train s | env-steps/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.learners:
        row = run_learner(name, env, args.steps or DEFAULT_STEPS[name], args.seeds)
        result["learners"].append(row)
        g, t = row["greedy_return"], row["final_train_return"]
        print(f"| {name} | {row['env_steps_per_seed']:,} | {g['mean']:.2f} ± {g['ci95']:.2f} | "
              f"{t['mean']:.2f} ± {t['ci95']:.2f} | {row['compile_s']:.0f} | {row['train_s']:.0f} | "
              f"{row['env_steps_per_s']:.3g} |", flush=True)
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
