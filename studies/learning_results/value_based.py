"""Learning benchmark of IQL, VDN and QMIX: mean and 95% CI over seeds, on this CPU.

Each learner is trained as ONE jit-compiled program, `jax.vmap` of `make_train` over
the seed keys (`--seeds`, default 8); its greedy policy is then scored by a second,
also vmapped, jit. Compile time is measured separately (`lower().compile()`), so the
reported env-steps/s is training wall time excluding compilation (all seeds together).

Tasks:
  lesson  grid-world 4x4, 2 agents, the fixed "lesson" layout (optimum: 3 steps).
          Score: greedy steps-to-goal; target: the 3-step optimum in >= 90% of seeds.
  grid5   grid-world 5x5, 3 agents, random starts and goals. Score: mean greedy steps
          over a fixed set of 1000 layouts (drawn with a fixed key by `reset_state`),
          episodes that fail counting as max_steps (50), divided by the mean exact
          optimum of the same layouts. Target: ratio <= 1.15 for VDN and QMIX. The agents
          use grid-world's egocentric view (`observation="egocentric"`) with their previous
          action appended (`obs_last_action=True`; see TASKS).
  spread  particle-spread, 3 agents, discrete. Score: greedy per-agent return (each
          agent's reward summed over the 25-step episode, averaged over agents) over
          1000 episodes, beside a random and the scripted policy
          (`jaxmarl_lab.baselines`). Target: VDN and QMIX at -18 or better.

    python -m studies.learning_results.value_based --task all --seeds 8 --json out.json

Run it from a checkout's root. Results of each task are also written to
studies/learning_results/results/learning_value_based_<task>.json.
The exact optimum of the grid5 layouts comes from an A* search over the solver's own
successor function (`grid_world._successors`) with the admissible, consistent bound
"max over agents of the Manhattan distance to goal"; it is checked against the BFS
`grid_world.optimal_steps` on the first layouts, and cached in studies/learning_results/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import math
import os
import platform
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxmarl_lab import envs, stats
from jaxmarl_lab.baselines import make_evaluate_policy, random_policy, scripted_spread_policy
from jaxmarl_lab.envs.grid_world import _successors, optimal_steps
from jaxmarl_lab.learners.value_based import ValueConfig, ValueHParams, make_iql, make_qmix, make_vdn
from jaxmarl_lab.runner import RunnerConfig, make_evaluate, make_train

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
LEARNERS: dict[str, Callable] = {"IQL": make_iql, "VDN": make_vdn, "QMIX": make_qmix}
EVAL_EPISODES = 1000
GRID5_LAYOUT_SEED = 2024


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Everything that defines one benchmark task (one config shared by all learners)."""

    env_name: str
    env_kwargs: dict
    value: ValueConfig
    runner: RunnerConfig
    hparams: ValueHParams
    learner_hparams: dict = dataclasses.field(default_factory=dict)  # learner -> {field: value}
    train_env_params: dict = dataclasses.field(default_factory=dict)  # env param overrides for training only

    def hparams_for(self, learner: str) -> ValueHParams:
        return self.hparams._replace(**self.learner_hparams.get(learner, {}))


TASKS: dict[str, TaskConfig] = {
    "lesson": TaskConfig(
        "grid-world", dict(num_agents=2, height=4, width=4, layout="lesson"),
        ValueConfig(hidden_dim=64, recurrent=False),
        RunnerConfig(num_envs=8, rollout_len=10, total_env_steps=20_000, buffer_capacity=1000,
                     batch_size=32, updates_per_rollout=8),
        ValueHParams(lr=1e-3, gamma=0.95, td_lambda=0.6, eps_decay_steps=10_000, target_tau=0.1)),
    # Sparse team reward (paid only when all 3 agents stand on their goals at once): without
    # shaping IQL never learned (all 8 seeds hit the 50-step limit). Potential-based shaping 0.3
    # during training (same optimal policies). With the default "coords" view the agents do
    # not see the others' goals, and greedy MLP agents deadlock on ~20% of layouts (GRU agents
    # on ~2%; 2-seed probes at 1M steps: ratio 3.0-3.3 MLP, 1.41-1.43 GRU). The egocentric
    # view (relative offsets, every agent's goal, a 5 x 5 occupancy window) makes the state
    # Markov and collisions one input away: VDN MLP 128, 2 seeds, ratio 1.60-1.68 at 200k
    # steps and 1.30-1.32 at 1M (97% of layouts solved, 85-87% at the optimum). Most of the
    # layouts left were lost to noise in the last weights (the target network, ~10 updates
    # behind, solved a third of them), so lr anneals linearly to 0 over the run: 1.164-1.166
    # at 1M (98.6% solved). The failures left were mostly joint states in which the same moves
    # kept being blocked (two agents aiming at one cell every step), which a memoryless agent
    # cannot see; with its previous action in its input (`obs_last_action`, EPyMARL's default)
    # it can: VDN 1.079-1.100 at 1M (99.3-99.5% solved). See this study's README.md.
    "grid5": TaskConfig(
        "grid-world", dict(num_agents=3, height=5, width=5, layout="random", observation="egocentric",
                           obs_last_action=True),
        ValueConfig(hidden_dim=128, recurrent=False),
        RunnerConfig(num_envs=16, rollout_len=10, total_env_steps=1_000_000, buffer_capacity=5000,
                     batch_size=32, updates_per_rollout=8),
        ValueHParams(lr=1e-3, gamma=0.95, td_lambda=0.6, eps_decay_steps=200_000, target_tau=0.1,
                     lr_anneal_steps=1_000_000),
        train_env_params={"shaping": 0.3}),
    "spread": TaskConfig(
        "particle-spread", dict(num_agents=3),
        ValueConfig(hidden_dim=64, recurrent=False),
        RunnerConfig(num_envs=16, rollout_len=25, total_env_steps=2_000_000, buffer_capacity=5000,
                     batch_size=32, updates_per_rollout=1),
        ValueHParams(lr=2e-3, gamma=0.9, td_lambda=0.6, eps_decay_steps=200_000, target_tau=0.2),
        # QMIX diverged in 2 of 8 seeds at lr 2e-3 / tau 0.2 (-23.3, -36.4; mean -18.29 +- 6.82).
        learner_hparams={"QMIX": dict(lr=1e-3, target_tau=0.1)}),
}


# ----- statistics -------------------------------------------------------------------------
def mean_ci(values: Any) -> dict:
    """Mean and 95% t-interval half-width over seeds (`jaxmarl_lab.stats.mean_ci`), with the values."""
    x = np.asarray(values, np.float64)
    mean, half = stats.mean_ci(x)
    return {"mean": mean, "ci95": half, "per_seed": x.tolist()}


# ----- training ---------------------------------------------------------------------------
def timed_jit(fn: Callable, *args) -> tuple[Any, float, float]:
    """Compiles `fn` for `args` (timed), then runs it once (timed): (out, compile_s, run_s)."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, compile_s, time.perf_counter() - start


def train_seeds(task: TaskConfig, env, learner, seeds: int, hparams: ValueHParams,
                env_params: Any = None) -> tuple[Any, dict]:
    """Trains `seeds` runs as one vmapped jit; returns final learner states and timings."""
    train = make_train(env, learner, task.runner, env_params)
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    (final, metrics), compile_s, run_s = timed_jit(jax.vmap(train, in_axes=(0, None)), keys, hparams)
    steps = seeds * task.runner.num_iterations * task.runner.steps_per_iteration
    last = np.asarray(metrics["episode_return"])[:, -max(1, task.runner.num_iterations // 20):]
    timing = {"hparams": {k: float(v) for k, v in hparams._asdict().items()},
              "env_steps_per_seed": task.runner.num_iterations * task.runner.steps_per_iteration,
              "compile_s": compile_s, "train_s": run_s, "env_steps_per_s": steps / run_s,
              "final_train_return": float(np.nanmean(last))}
    return final.learner, timing


def describe(task: TaskConfig) -> dict:
    return {"env": task.env_name, "env_kwargs": task.env_kwargs, "value_config": dataclasses.asdict(task.value),
            "runner_config": dataclasses.asdict(task.runner),
            "hparams": {k: float(v) for k, v in task.hparams._asdict().items()},
            "learner_hparams": task.learner_hparams, "train_env_params": task.train_env_params}


# ----- task: lesson -----------------------------------------------------------------------
def run_lesson(seeds: int, learners: list[str]) -> dict:
    task = TASKS["lesson"]
    env = envs.make(task.env_name, **task.env_kwargs)
    rows = {}
    for name in learners:
        learner = LEARNERS[name](env.spec, task.value)
        states, timing = train_seeds(task, env, learner, seeds, task.hparams_for(name))
        evaluate = make_evaluate(env, learner, num_episodes=1, max_steps=50)
        keys = jax.random.split(jax.random.PRNGKey(1), seeds)
        out = jax.jit(jax.vmap(evaluate))(keys, states)
        lengths = np.asarray(out["lengths"])[:, 0]
        solved = np.asarray(out["terminated"])[:, 0]
        steps = np.where(solved, lengths, 50)
        rows[name] = {"greedy_steps": mean_ci(steps), "optimal_fraction": float(np.mean(steps == 3)),
                      **timing}
        print(f"  lesson {name}: steps per seed {steps.tolist()}  ({timing['train_s']:.1f} s)", flush=True)
    return {"task": "lesson", "config": describe(task), "optimal_steps": 3, "learners": rows}


# ----- task: grid5 ------------------------------------------------------------------------
def astar_steps(height: int, width: int, starts: Any, goals: Any) -> int:
    """Exact fewest joint steps to the goals, A* over `grid_world._successors`.

    The heuristic max_i |p_i - g_i|_1 is admissible and consistent (each agent moves at
    most one cell per step), so the first time the goal is popped its cost is optimal.
    Ties on f prefer deeper nodes. Returns -1 if the goals are unreachable.
    """
    start = tuple((int(r), int(c)) for r, c in starts)
    goal = tuple((int(r), int(c)) for r, c in goals)

    def bound(node):
        return max(abs(a[0] - g[0]) + abs(a[1] - g[1]) for a, g in zip(node, goal))

    best = {start: 0}
    frontier = [(bound(start), 0, start)]  # (f, -g, node)
    while frontier:
        _, neg_g, node = heapq.heappop(frontier)
        g = -neg_g
        if node == goal:
            return g
        if g > best[node]:
            continue
        for _, child in _successors(height, width, node):
            if g + 1 < best.get(child, 1 << 30):
                best[child] = g + 1
                heapq.heappush(frontier, (g + 1 + bound(child), -(g + 1), child))
    return -1


def grid5_layouts(env, count: int, verify: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed evaluation layouts `(K, N, 2)` x2 and their exact optima `(K,)` (cached)."""
    env = env.unwrapped  # the grid-world itself, under any observation wrapper
    keys = jax.random.split(jax.random.PRNGKey(GRID5_LAYOUT_SEED), count)
    states = jax.jit(jax.vmap(env.reset_state, in_axes=(0, None)))(keys, env.default_params())
    starts, goals = np.asarray(states.pos), np.asarray(states.goals)
    cache = os.path.join(RESULTS_DIR, f"grid5_optimal_seed{GRID5_LAYOUT_SEED}_{count}.json")
    if os.path.exists(cache):
        with open(cache) as f:
            optimal = np.asarray(json.load(f)["optimal_steps"])
    else:
        optimal = np.asarray([astar_steps(env.height, env.width, s, g) for s, g in zip(starts, goals)])
        os.makedirs(RESULTS_DIR, exist_ok=True)
        with open(cache, "w") as f:
            json.dump({"seed": GRID5_LAYOUT_SEED, "optimal_steps": optimal.tolist()}, f)
    for i in range(verify):  # the exact BFS of grid_world agrees on the first layouts
        bfs = optimal_steps(env.height, env.width, starts[i], goals[i])
        assert bfs == optimal[i], f"layout {i}: A* {optimal[i]} != BFS {bfs}"
    assert np.all(optimal > 0), "every layout must be reachable and unsolved"
    return starts, goals, optimal


def make_layout_evaluate(env, learner, max_steps: int) -> Callable:
    """`evaluate(learner_state, starts (K, N, 2), goals (K, N, 2)) -> steps (K,)`.

    One greedy episode per given layout (GridWorldParams with `random_layout=False`),
    vmapped over layouts; an episode not solved within `max_steps` counts as max_steps.
    """
    base = env.default_params(max_steps=max_steps)

    def one(learner_state, starts, goals):
        params = base.replace(random_layout=jnp.asarray(False), starts=starts, goals=goals)
        env_state, timestep = env.reset(jax.random.PRNGKey(0), params)
        carry = learner.initial_carry()

        def step(state, key):
            env_state, timestep, carry, length, live = state
            actions, carry = learner.act(key, learner_state, timestep, carry, False)
            env_state, timestep = env.step(key, env_state, actions, params)
            solved_now = live & timestep.terminated
            length = length + live.astype(jnp.int32)
            return (env_state, timestep, carry, length, live & ~timestep.terminated & ~solved_now), solved_now

        init = (env_state, timestep, carry, jnp.zeros((), jnp.int32), jnp.ones((), bool))
        (_, _, _, length, _), solved = jax.lax.scan(step, init, jax.random.split(jax.random.PRNGKey(1), max_steps))
        return jnp.where(solved.any(), length, max_steps)

    return jax.vmap(one, in_axes=(None, 0, 0))


def run_grid5(seeds: int, learners: list[str]) -> dict:
    task = TASKS["grid5"]
    env = envs.make(task.env_name, **task.env_kwargs)
    max_steps = 50
    starts, goals, optimal = grid5_layouts(env, EVAL_EPISODES, verify=3)
    mean_opt = float(optimal.mean())
    print(f"  grid5: {len(optimal)} layouts, mean optimal steps {mean_opt:.3f}", flush=True)
    rows = {}
    for name in learners:
        learner = LEARNERS[name](env.spec, task.value)
        states, timing = train_seeds(task, env, learner, seeds, task.hparams_for(name),
                                     env.default_params(**task.train_env_params))
        evaluate = jax.jit(jax.vmap(make_layout_evaluate(env, learner, max_steps), in_axes=(0, None, None)))
        steps = np.asarray(evaluate(states, jnp.asarray(starts), jnp.asarray(goals)))  # (seeds, K)
        ratio = steps.mean(axis=1) / mean_opt
        rows[name] = {"mean_greedy_steps": mean_ci(steps.mean(axis=1)), "ratio_to_optimal": mean_ci(ratio),
                      "solved_fraction": mean_ci((steps < max_steps).mean(axis=1)),
                      "optimal_fraction": mean_ci((steps == optimal[None]).mean(axis=1)), **timing}
        print(f"  grid5 {name}: ratio per seed {np.round(ratio, 3).tolist()}  ({timing['train_s']:.1f} s)",
              flush=True)
    return {"task": "grid5", "config": describe(task), "layouts": len(optimal), "layout_seed": GRID5_LAYOUT_SEED,
            "mean_optimal_steps": mean_opt, "max_steps": max_steps, "learners": rows}


# ----- task: spread -----------------------------------------------------------------------
def run_spread(seeds: int, learners: list[str]) -> dict:
    task = TASKS["spread"]
    env = envs.make(task.env_name, **task.env_kwargs)
    key = jax.random.PRNGKey(7)
    baselines = {}
    for name, policy in (("random", random_policy(env.spec)), ("scripted", scripted_spread_policy(env))):
        returns = np.asarray(jax.jit(make_evaluate_policy(env, policy, EVAL_EPISODES))(key))
        baselines[name] = {"mean": float(returns.mean()),
                           "ci95": float(1.96 * returns.std(ddof=1) / math.sqrt(len(returns)))}
    rows = {}
    for name in learners:
        learner = LEARNERS[name](env.spec, task.value)
        states, timing = train_seeds(task, env, learner, seeds, task.hparams_for(name))
        evaluate = make_evaluate(env, learner, num_episodes=EVAL_EPISODES, max_steps=25)
        out = jax.jit(jax.vmap(evaluate, in_axes=(None, 0)))(key, states)
        per_seed = np.asarray(out["returns"]).mean(axis=1)
        rows[name] = {"greedy_return": mean_ci(per_seed), **timing}
        print(f"  spread {name}: return per seed {np.round(per_seed, 2).tolist()}  ({timing['train_s']:.1f} s)",
              flush=True)
    return {"task": "spread", "config": describe(task), "episodes": EVAL_EPISODES, "baselines": baselines,
            "learners": rows}


# ----- report -----------------------------------------------------------------------------
def fmt(stat: dict, digits: int = 2) -> str:
    return f"{stat['mean']:.{digits}f} ± {stat['ci95']:.{digits}f}"


def table(result: dict, seeds: int) -> str:
    task, rows = result["task"], result["learners"]
    lines = []
    if task == "lesson":
        lines += [f"### lesson (grid-world 4x4, 2 agents; optimum 3 steps), {seeds} seeds",
                  "| learner | greedy steps (mean ± 95% CI) | seeds at optimum | env steps/seed | train s | "
                  "env steps/s | compile s |", "|---|---|---|---|---|---|---|"]
        for name, r in rows.items():
            lines.append(f"| {name} | {fmt(r['greedy_steps'])} | {r['optimal_fraction']:.0%} | "
                         f"{r['env_steps_per_seed']:,} | {r['train_s']:.1f} | {r['env_steps_per_s']:,.0f} | "
                         f"{r['compile_s']:.1f} |")
    elif task == "grid5":
        lines += [f"### grid5 (grid-world 5x5, 3 agents, random layouts), {seeds} seeds, "
                  f"{result['layouts']} fixed layouts, mean optimum {result['mean_optimal_steps']:.3f} steps",
                  "| learner | greedy steps | ratio to optimal | solved | at optimum | env steps/seed | train s | "
                  "env steps/s | compile s |", "|---|---|---|---|---|---|---|---|---|"]
        for name, r in rows.items():
            lines.append(f"| {name} | {fmt(r['mean_greedy_steps'], 3)} | {fmt(r['ratio_to_optimal'], 3)} | "
                         f"{fmt(r['solved_fraction'], 3)} | {fmt(r['optimal_fraction'], 3)} | "
                         f"{r['env_steps_per_seed']:,} | {r['train_s']:.1f} | {r['env_steps_per_s']:,.0f} | "
                         f"{r['compile_s']:.1f} |")
    else:
        lines += [f"### spread (particle-spread N=3, discrete), {seeds} seeds, greedy per-agent return over "
                  f"{result['episodes']} episodes", "| policy | per-agent return (mean ± 95% CI) | env steps/seed | "
                  "train s | env steps/s | compile s |", "|---|---|---|---|---|---|"]
        for name, b in result["baselines"].items():
            lines.append(f"| {name} (over episodes) | {b['mean']:.2f} ± {b['ci95']:.2f} | – | – | – | – |")
        for name, r in rows.items():
            lines.append(f"| {name} | {fmt(r['greedy_return'])} | {r['env_steps_per_seed']:,} | "
                         f"{r['train_s']:.1f} | {r['env_steps_per_s']:,.0f} | {r['compile_s']:.1f} |")
    overrides = result["config"].get("learner_hparams") or {}
    if overrides:
        lines.append(f"hparams {result['config']['hparams']}; per-learner overrides {overrides}")
    return "\n".join(lines)


RUNNERS = {"lesson": run_lesson, "grid5": run_grid5, "spread": run_spread}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m studies.learning_results.value_based", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=[*RUNNERS, "all"], default="all")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--json", default=None, help="also write all results to this JSON file")
    parser.add_argument("--learners", nargs="+", choices=list(LEARNERS), default=list(LEARNERS),
                        help="a subset replaces only those rows of the task's JSON in studies/learning_results/results/")
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps per seed instead of the task's budget (a smoke run; results then "
                             "go to --json only, not to studies/learning_results/results/)")
    args = parser.parse_args(argv)
    if args.steps is not None:
        if args.steps < 1:
            parser.error(f"--steps must be a positive integer, got {args.steps}")
        for key, task in TASKS.items():
            hparams = task.hparams  # an lr anneal over the whole run still ends with the run
            if float(hparams.lr_anneal_steps) == task.runner.total_env_steps:
                hparams = hparams._replace(lr_anneal_steps=args.steps)
            TASKS[key] = dataclasses.replace(task, hparams=hparams,
                                             runner=dataclasses.replace(task.runner, total_env_steps=args.steps))
    print(f"# jax {jax.__version__} on {jax.devices()[0].device_kind} ({platform.processor() or platform.machine()},"
          f" {os.cpu_count()} cores); CI: 95% t-interval over seeds", flush=True)
    tasks = list(RUNNERS) if args.task == "all" else [args.task]
    results = {}
    for name in tasks:
        result = RUNNERS[name](args.seeds, args.learners)
        result["seeds"] = args.seeds
        path = os.path.join(RESULTS_DIR, f"learning_value_based_{name}.json")
        if set(args.learners) != set(LEARNERS) and os.path.exists(path):
            with open(path) as f:
                previous = json.load(f)
            if previous.get("seeds") == args.seeds:  # keep the other learners' rows of the last full run
                default_hp = previous["config"]["hparams"]
                rows = {k: {"hparams": default_hp, **v} for k, v in previous["learners"].items()}
                rows.update(result["learners"])
                result["learners"] = {k: rows[k] for k in LEARNERS if k in rows}
        results[name] = result
        print(table(result, args.seeds), flush=True)
        if args.steps is not None:
            continue
        os.makedirs(RESULTS_DIR, exist_ok=True)
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
