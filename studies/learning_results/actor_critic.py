"""Learning results of the actor-critic learners (MAPPO, IPPO, MADDPG) on lesson, rendezvous, particle-spread, grid5.

Each learner trains `--seeds` seeds as ONE vmapped, jitted program; reported per
learner: mean and 95% t-interval over seeds of the greedy policy's score, the training
return of the last 5% of iterations, compile time, wall time and env-steps/s.

Tasks (`--task`):
  spread             particle-spread N=3 discrete; per-agent return (PettingZoo's scale)
                     beside uniform-random and the scripted assignment policy
  spread-continuous  particle-spread N=3, Box(0,1,(5,)) actions; MAPPO and MADDPG
  rendezvous         multi-step rendezvous; greedy return against the closed-form optimum
                     of the same evaluation episodes
  lesson, grid5      grid-world lesson / 5x5 with 3 agents on 1000 fixed random layouts;
                     greedy steps to goal against the exact (BFS/A*) optimum

    python -m studies.learning_results.actor_critic                  # spread: MAPPO + IPPO 5M, MADDPG 2M
    python -m studies.learning_results.actor_critic --task rendezvous --steps 500000
    python -m studies.learning_results.actor_critic --steps 1000000 --seeds 2 --learners mappo ippo

Run it from a checkout's root; results go to studies/learning_results/results/ (or `--json`).

MAPPO and IPPO use identical hyperparameters (below); only the critic differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxmarl_lab import envs
from jaxmarl_lab.baselines import make_evaluate_policy, random_policy, scripted_spread_policy
from jaxmarl_lab.envs import rendezvous
from jaxmarl_lab.learners import MADDPGConfig, MADDPGHParams, PPOConfig, PPOHParams, make_ippo, make_maddpg, make_mappo
from jaxmarl_lab.runner import RunnerConfig, make_evaluate, make_train
from studies.learning_results.value_based import RESULTS_DIR, grid5_layouts, make_layout_evaluate, mean_ci, timed_jit

PPO_CONFIG = PPOConfig(hidden_dim=64, num_epochs=4, num_minibatches=4, grad_var_samples=0)
PPO_HPARAMS = PPOHParams(lr=3e-3, gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01)
DEFAULT_STEPS = {"mappo": 5_000_000, "ippo": 5_000_000, "maddpg": 2_000_000}
EVAL_EPISODES = 128


def learner_setup(name: str, env, steps: int, task: str, ppo: dict | None = None, anneal_lr: bool = False):
    """`(learner, RunnerConfig, hparams, description)` for one learner on one task.

    `ppo` overrides MAPPO/IPPO hyperparameters by name; `anneal_lr` decays their lr linearly
    to 0 over the run's `steps`."""
    if name in ("mappo", "ippo"):
        make = make_mappo if name == "mappo" else make_ippo
        config, hparams = PPO_CONFIG, PPO_HPARAMS
        if task == "rendezvous":
            hparams = hparams._replace(lr=1e-3, ent_coef=0.0)
        if task == "spread":
            # 25-step episodes that always truncate: at gamma 0.99 GAE bootstraps a ~100-step return
            # the critic never sees whole (IPPO's value estimate then runs away; see the variance
            # experiment's part 2). 8 seeds x 5M steps: MAPPO -12.63 at 0.99, -9.34 at 0.95.
            hparams = hparams._replace(gamma=0.95)
        if task == "spread-continuous":
            hparams = hparams._replace(lr=1e-3, ent_coef=0.0)
        hparams = hparams._replace(**(ppo or {}), **({"lr_anneal_steps": float(steps)} if anneal_lr else {}))
        # grid-world: one 50-step episode per rollout (with 10-step rollouts 1-2 of 8 lesson seeds
        # settled on a policy that never reached the goal; with 50, none did)
        rollout = 50 if task in ("lesson", "grid5") else 25
        runner = RunnerConfig(num_envs=64, rollout_len=rollout, total_env_steps=steps)
        learner = make(env.spec, config)
    elif name == "maddpg":
        config, hparams = MADDPGConfig(), MADDPGHParams()
        runner = RunnerConfig(num_envs=16, rollout_len=25, total_env_steps=steps, buffer_capacity=4000,
                              batch_size=32, updates_per_rollout=4)
        learner = make_maddpg(env.spec, config)
    else:
        raise ValueError(f"unknown learner {name!r}; valid: mappo, ippo, maddpg")
    return learner, runner, hparams, {"config": dataclasses.asdict(config), "hparams": hparams._asdict()}


def train_seeds(name: str, env, steps: int, seeds: int, task: str, args: argparse.Namespace):
    """Trains `seeds` seeds as one vmapped jit: (final RunnerState, metrics, learner, runner, row)."""
    learner, runner, hparams, described = learner_setup(name, env, steps, task, args.ppo, args.anneal_lr)
    train = jax.vmap(make_train(env, learner, runner), in_axes=(0, None))
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    (final, metrics), compile_s, run_s = timed_jit(train, keys, hparams)
    last = max(1, runner.num_iterations // 20)
    train_return = np.nanmean(np.asarray(metrics["episode_return"])[:, -last:], axis=1)
    env_steps = runner.num_iterations * runner.steps_per_iteration
    row = {"learner": name, "env_steps_per_seed": env_steps, "seeds": seeds,
           "final_train_return": mean_ci(train_return), "compile_s": compile_s, "train_s": run_s,
           "env_steps_per_s": seeds * env_steps / run_s, "runner": dataclasses.asdict(runner), **described}
    return final, learner, row


def greedy_returns(env, learner, final, key) -> np.ndarray:
    """Greedy per-agent returns `(seeds, EVAL_EPISODES)` on the env's own episodes."""
    evaluate = jax.jit(jax.vmap(make_evaluate(env, learner, EVAL_EPISODES, int(env.default_params().max_steps)),
                                in_axes=(None, 0)))
    return np.asarray(evaluate(key, final.learner)["returns"])


def uniform_policy(spec):
    """Uniform random actions in the action box (continuous) or over actions (discrete)."""
    if spec.is_discrete:
        return random_policy(spec)
    return lambda key, obs: jax.random.uniform(key, (spec.num_agents, spec.action_size),
                                               minval=spec.action_low, maxval=spec.action_high)


def run_spread(args, continuous: bool) -> dict:
    env = envs.make("particle-spread", num_agents=3, continuous_actions=continuous)
    policies = [("random", uniform_policy(env.spec))] + ([] if continuous else
                                                           [("scripted", scripted_spread_policy(env))])
    baselines = {name: mean_ci(np.asarray(jax.jit(make_evaluate_policy(env, p, 1024))(jax.random.PRNGKey(2))))
                 for name, p in policies}
    rows = []
    for name in args.learners:
        steps = args.steps or DEFAULT_STEPS[name]
        final, learner, row = train_seeds(name, env, steps, args.seeds, args.task, args)
        row["greedy_return"] = mean_ci(greedy_returns(env, learner, final, jax.random.PRNGKey(1)).mean(axis=1))
        rows.append(row)
        report(row, "greedy_return")
    return {"baselines": baselines, "learners": rows}


def run_rendezvous(args) -> dict:
    """Multi-step rendezvous: greedy return against the closed-form optimum of the same episodes."""
    env = envs.make("rendezvous", form="multi-step")
    params = env.default_params()
    key = jax.random.PRNGKey(1)
    key_reset, _ = jax.random.split(key)  # run_episodes resets with the first half of this split
    starts = np.asarray(env.reset_batch(key_reset, params, EVAL_EPISODES)[0].pos)
    if starts.shape[0] != EVAL_EPISODES:  # a batch-minor state would put the batch last
        raise RuntimeError("unexpected batched rendezvous state layout")
    optimum = np.asarray([rendezvous.optimal_return(params, s).ret for s in starts])
    rand = np.asarray(jax.jit(make_evaluate_policy(env, uniform_policy(env.spec), EVAL_EPISODES))(key))
    baselines = {"random": mean_ci(rand), "optimum": mean_ci(optimum)}
    rows = []
    for name in args.learners:
        steps = args.steps or 1_000_000
        final, learner, row = train_seeds(name, env, steps, args.seeds, "rendezvous", args)
        returns = greedy_returns(env, learner, final, key)  # (seeds, K), same episodes as `optimum`
        row["greedy_return"] = mean_ci(returns.mean(axis=1))
        row["gap_to_optimum"] = mean_ci((returns - optimum[None]).mean(axis=1))
        row["fraction_of_random_to_optimum"] = mean_ci(
            (returns.mean(axis=1) - rand.mean()) / (optimum.mean() - rand.mean()))
        rows.append(row)
        report(row, "greedy_return")
    return {"baselines": baselines, "learners": rows}


def run_grid(args, task: str) -> dict:
    """grid-world lesson (optimum 3 steps) or 5x5x3 random layouts, greedy steps against the BFS optimum."""
    if task == "lesson":
        env = envs.make("grid-world", layout="lesson")
        p = env.default_params()
        starts, goals = np.asarray(p.starts)[None], np.asarray(p.goals)[None]
        optimal = np.asarray([3])
    else:
        env = envs.make("grid-world", num_agents=3, height=5, width=5, layout="random")
        starts, goals, optimal = grid5_layouts(env, 1000, verify=3)
    rows = []
    for name in args.learners:
        steps = args.steps or (200_000 if task == "lesson" else 2_000_000)
        final, learner, row = train_seeds(name, env, steps, args.seeds, task, args)
        evaluate = jax.jit(jax.vmap(make_layout_evaluate(env, learner, 50), in_axes=(0, None, None)))
        steps_taken = np.asarray(evaluate(final.learner, jnp.asarray(starts), jnp.asarray(goals)))  # (seeds, K)
        row["greedy_steps"] = mean_ci(steps_taken.mean(axis=1))
        row["ratio_to_optimal"] = mean_ci(steps_taken.mean(axis=1) / optimal.mean())
        row["at_optimum_fraction"] = mean_ci((steps_taken == optimal[None]).mean(axis=1))
        rows.append(row)
        report(row, "greedy_steps")
    return {"mean_optimal_steps": float(optimal.mean()), "layouts": len(optimal), "learners": rows}


def report(row: dict, measure: str) -> None:
    g, t = row[measure], row["final_train_return"]
    print(f"| {row['learner']} | {row['env_steps_per_seed']:,} | {g['mean']:.3f} ± {g['ci95']:.3f} | "
          f"{t['mean']:.2f} ± {t['ci95']:.2f} | {row['compile_s']:.0f} | {row['train_s']:.0f} | "
          f"{row['env_steps_per_s']:.3g} |", flush=True)


TASKS = {"spread": ("mappo", "ippo", "maddpg"), "spread-continuous": ("mappo", "maddpg"),
         "rendezvous": ("mappo", "ippo", "maddpg"), "lesson": ("mappo", "ippo"), "grid5": ("mappo", "ippo")}


def parse_overrides(parser: argparse.ArgumentParser, pairs: list[str]) -> dict:
    """`["gamma=0.95", ...]` -> `{"gamma": 0.95}`, each name a PPOHParams field with a number."""
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in PPOHParams._fields:
            parser.error(f"--ppo: unknown hyperparameter {name!r}; valid: {', '.join(PPOHParams._fields)}")
        try:
            out[name] = float(value)
        except ValueError:
            parser.error(f"--ppo {name}: expected a number, got {value!r}")
    try:
        PPOHParams.create(**out)  # range check, naming the field, its value and the allowed range
    except ValueError as error:
        parser.error(f"--ppo: {error}")
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m studies.learning_results.actor_critic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="spread", choices=sorted(TASKS))
    parser.add_argument("--learners", nargs="+", default=None, choices=["mappo", "ippo", "maddpg"],
                        help="default: every learner the task reports")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps per seed (default: spread 5M PPO / 2M MADDPG, rendezvous 1M, "
                             "lesson 200k, grid5 2M)")
    parser.add_argument("--ppo", nargs="+", default=[], metavar="NAME=VALUE",
                        help="override MAPPO/IPPO hyperparameters, e.g. --ppo gamma=0.95 ent_coef=0.005")
    parser.add_argument("--anneal-lr", action="store_true",
                        help="MAPPO/IPPO: decay lr linearly to 0 over the run (lr_anneal_steps = --steps)")
    parser.add_argument("--json", default=None, help="default: studies/learning_results/results/learning_actor_critic_TASK.json")
    args = parser.parse_args(argv)
    args.ppo = parse_overrides(parser, args.ppo)
    args.learners = args.learners or list(TASKS[args.task])
    if args.seeds < 2:
        parser.error(f"--seeds must be >= 2 for a confidence interval, got {args.seeds}")
    print(f"# task {args.task}, {args.seeds} seeds per learner in one vmapped run; "
          f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
    measure = "greedy steps" if args.task in ("lesson", "grid5") else "greedy return"
    print(f"| learner | env steps | {measure} | train return (last 5%) | compile s | train s | env-steps/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    if args.task in ("spread", "spread-continuous"):
        result = run_spread(args, continuous=args.task == "spread-continuous")
    elif args.task == "rendezvous":
        result = run_rendezvous(args)
    else:
        result = run_grid(args, args.task)
    for name, stat in result.get("baselines", {}).items():
        print(f"{name:>8}: {stat['mean']:.3f} ± {stat['ci95']:.3f}")
    if "mean_optimal_steps" in result:
        print(f"optimum: {result['mean_optimal_steps']:.3f} steps (mean over {result['layouts']} layouts)")
    result.update(task=args.task, jax=jax.__version__, device=jax.devices()[0].device_kind)
    path = args.json or os.path.join(RESULTS_DIR, f"learning_actor_critic_{args.task}.json")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
