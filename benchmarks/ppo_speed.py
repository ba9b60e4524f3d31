"""MAPPO / IPPO training speed at a JaxMARL-comparable config, with a breakdown of where time goes.

Config (JaxMARL's IPPO-FF settings, for a side-by-side comparison): particle-spread N = 3,
discrete, 16 envs x 128 steps per rollout, 4 epochs x 4 minibatches, a 64-unit tanh
MLP for actor and critic, one seed. Training env-steps/s is measured on a compiled
`train` after compilation, as the median of `--repeats` runs.

Breakdown, each timed as its own compiled scan over the same number of iterations:
  env      : env.step_batch with random actions only,
  rollout  : the policy acting + env stepping (no update),
  update   : the PPO update alone on a fixed rollout,
  train    : the fused loop (rollout + update), what users run.
  floor    : the arithmetic any implementation of this config must do, and nothing else:
             per iteration, epochs x minibatches Adam steps on the gradient of a bare
             PPO-shaped loss of two plain-jnp 64-unit tanh MLPs (actor 5 logits, critic 1
             value) over minibatches of the same size, on fixed random data. No env, no
             GAE, no distributions, no value normalisation. `steps / floor` is a ceiling
             on the training env-steps/s of any implementation on this machine. Both
             MLPs take the observation + agent id (IPPO's shapes); MAPPO's critic input
             is larger, so for MAPPO this is a looser ceiling. It is timed once per row,
             which also shows the run-to-run noise of the machine.

    python benchmarks/ppo_speed.py                 # IPPO and MAPPO
    python benchmarks/ppo_speed.py --iterations 20 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import optax

from jaxmarl_lab import envs
from jaxmarl_lab.baselines import random_actions
from jaxmarl_lab.learners import PPOConfig, PPOHParams, make_ippo, make_mappo
from jaxmarl_lab.runner import RunnerConfig, make_runner, make_train

NUM_ENVS, ROLLOUT = 16, 128
CONFIG = PPOConfig(hidden_dim=64, num_epochs=4, num_minibatches=4, activation="tanh", grad_var_samples=0)
HPARAMS = PPOHParams(lr=5e-4)


def median_seconds(fn, args, repeats: int) -> float:
    compiled = jax.jit(fn).lower(*args).compile()
    jax.block_until_ready(compiled(*args))  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def floor_seconds(spec, iterations: int, repeats: int) -> float:
    """Time of the bare update arithmetic for `iterations` iterations (see the module docstring)."""
    n, epochs, minibatches = spec.num_agents, CONFIG.num_epochs, CONFIG.num_minibatches
    rows = NUM_ENVS * ROLLOUT * n // minibatches  # agent-steps per minibatch
    in_dim = spec.obs_dim + n  # observation + agent id, as the shared-parameter networks see it
    key = jax.random.PRNGKey(0)

    def mlp_init(key, sizes):
        keys = jax.random.split(key, len(sizes) - 1)
        return [(jax.random.normal(k, (a, b)) / jnp.sqrt(a), jnp.zeros(b)) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

    def mlp(params, x):
        for i, (w, b) in enumerate(params):
            x = x @ w + b
            x = jnp.tanh(x) if i < len(params) - 1 else x
        return x

    k_a, k_c, k_x, k_u, k_v = jax.random.split(key, 5)
    h = CONFIG.hidden_dim
    params = (mlp_init(k_a, [in_dim, h, h, spec.action_size]), mlp_init(k_c, [in_dim, h, h, 1]))
    x = jax.random.normal(k_x, (minibatches, rows, in_dim))
    act = jax.random.randint(k_u, (minibatches, rows), 0, spec.action_size)
    adv = jax.random.normal(k_v, (minibatches, rows))
    tx = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(5e-4))

    def loss(params, x, a, adv):
        logp_all = jax.nn.log_softmax(mlp(params[0], x))
        logp = jnp.take_along_axis(logp_all, a[:, None], axis=1)[:, 0]
        ratio = jnp.exp(logp - jax.lax.stop_gradient(logp))
        entropy = -(jnp.exp(logp_all) * logp_all).sum(-1)
        value = mlp(params[1], x)[:, 0]
        return -(ratio * adv).mean() + 0.5 * ((value - adv) ** 2).mean() - 0.01 * entropy.mean()

    def grad_step(carry, m):
        params, opt_state = carry
        grads = jax.grad(loss)(params, x[m], act[m], adv[m])
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    def run(params):
        order = jnp.tile(jnp.arange(minibatches), epochs * iterations)
        (params, _), _ = jax.lax.scan(grad_step, (params, tx.init(params)), order)
        return jax.tree.map(jnp.sum, params)
    return median_seconds(run, (params,), repeats)


def measure_seeds(name: str, iterations: int, repeats: int, seeds: int) -> float:
    """Training env-steps/s summed over `seeds` seeds vmapped in one program."""
    env = envs.make("particle-spread", num_agents=3)
    learner = (make_mappo if name == "mappo" else make_ippo)(env.spec, CONFIG)
    runner_config = RunnerConfig(num_envs=NUM_ENVS, rollout_len=ROLLOUT,
                                 total_env_steps=NUM_ENVS * ROLLOUT * iterations)
    train = jax.vmap(make_train(env, learner, runner_config), in_axes=(0, None))
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    return seeds * NUM_ENVS * ROLLOUT * iterations / median_seconds(train, (keys, HPARAMS), repeats)


def measure(name: str, iterations: int, repeats: int) -> dict:
    env = envs.make("particle-spread", num_agents=3)
    learner = (make_mappo if name == "mappo" else make_ippo)(env.spec, CONFIG)
    runner_config = RunnerConfig(num_envs=NUM_ENVS, rollout_len=ROLLOUT,
                                 total_env_steps=NUM_ENVS * ROLLOUT * iterations)
    steps = NUM_ENVS * ROLLOUT * iterations
    key = jax.random.PRNGKey(0)
    out = {"learner": name, "env_steps": steps}

    train = make_train(env, learner, runner_config)
    out["train_s"] = median_seconds(train, (key, HPARAMS), repeats)

    params = env.default_params()

    def env_only(key):
        def body(carry, key):
            state, ts = carry
            k_act, k_env = jax.random.split(key)
            acts = jax.vmap(random_actions, in_axes=(0, None, 0))(jax.random.split(k_act, NUM_ENVS), env.spec,
                                                                 ts.avail_actions)
            return env.step_batch(k_env, state, acts, params), None
        carry = env.reset_batch(key, params, NUM_ENVS)
        carry, _ = jax.lax.scan(body, carry, jax.random.split(key, ROLLOUT * iterations))
        return carry[1].reward.sum()
    out["env_s"] = median_seconds(env_only, (key,), repeats)

    runner = make_runner(env, learner, runner_config)
    state = jax.jit(runner.init)(key, HPARAMS)
    act = jax.vmap(learner.act, in_axes=(0, None, 0, 0, None))

    def rollout_only(state):
        def body(s, _):
            key, k_act, k_env = jax.random.split(s.key, 3)
            actions, carry = act(jax.random.split(k_act, NUM_ENVS), s.learner, s.timestep, s.carry, True)
            env_state, ts = env.step_batch(k_env, s.env_state, actions, params)
            return s._replace(env_state=env_state, timestep=ts, carry=carry, key=key), ts.reward.sum()
        return jax.lax.scan(body, state, None, length=ROLLOUT * iterations)[1].sum()
    out["rollout_s"] = median_seconds(rollout_only, (state,), repeats)

    state1, _ = jax.jit(runner.iterate)(state)  # a real rollout to update on
    from jaxmarl_lab.runner import _transition  # noqa: F401  (documented private helper)

    def collect(state):
        def body(s, _):
            key, k_act, k_env = jax.random.split(s.key, 3)
            actions, carry = act(jax.random.split(k_act, NUM_ENVS), s.learner, s.timestep, s.carry, True)
            env_state, ts = env.step_batch(k_env, s.env_state, actions, params)
            tr = _transition(s.timestep, s.first, actions, ts)
            done = ts.terminated | ts.truncated
            return s._replace(env_state=env_state, timestep=ts, carry=carry, key=key, first=done), tr
        _, traj = jax.lax.scan(body, state, None, length=ROLLOUT)
        return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), traj)
    batch = jax.jit(collect)(state1)

    def update_only(learner_state, batch):
        def body(ls, key):
            ls, metrics = learner.update(key, ls, batch)
            return ls, metrics["policy_loss"]
        return jax.lax.scan(body, learner_state, jax.random.split(key, iterations))[1].sum()
    out["update_s"] = median_seconds(update_only, (state1.learner, batch), repeats)
    out["floor_s"] = floor_seconds(env.spec, iterations, repeats)
    out["ceiling_steps_per_s"] = steps / out["floor_s"]
    out["train_steps_per_s"] = steps / out["train_s"]
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", nargs="+", default=["ippo", "mappo"], choices=["ippo", "mappo"])
    parser.add_argument("--iterations", type=int, default=40, help="rollout+update iterations per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=10,
                        help="also measure this many seeds vmapped (JaxMARL's shipped config runs 10); 0: skip")
    parser.add_argument("--json", default="benchmarks/results/ppo_speed.json")
    args = parser.parse_args(argv)
    device = jax.devices()[0].device_kind
    print(f"# particle-spread N=3, {NUM_ENVS} envs x {ROLLOUT} steps, {CONFIG.num_epochs} epochs x "
          f"{CONFIG.num_minibatches} minibatches, 64-unit tanh MLP, 1 seed; jax {jax.__version__} on {device}, "
          f"median of {args.repeats}")
    print(f"# {args.iterations} iterations = {NUM_ENVS * ROLLOUT * args.iterations} env steps per timed run")
    print("| learner | train env-steps/s | train s | env only s | act+env s | update only s | floor s | "
          "ceiling env-steps/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for name in args.learners:
        r = measure(name, args.iterations, args.repeats)
        rows.append(r)
        print(f"| {name} | {r['train_steps_per_s']:.3g} | {r['train_s']:.3f} | {r['env_s']:.3f} | "
              f"{r['rollout_s']:.3f} | {r['update_s']:.3f} | {r['floor_s']:.3f} | "
              f"{r['ceiling_steps_per_s']:.3g} |", flush=True)
    for r in rows if args.seeds else []:
        r[f"train_steps_per_s_{args.seeds}_seeds"] = measure_seeds(r["learner"], args.iterations // 2 or 1,
                                                                   args.repeats, args.seeds)
        print(f"{r['learner']}, {args.seeds} seeds vmapped: {r[f'train_steps_per_s_{args.seeds}_seeds']:.3g} "
              "env-steps/s (all seeds together)", flush=True)
    result = {"device": device, "jax": jax.__version__, "cpu_count": os.cpu_count(), "rows": rows}
    if args.json:
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
