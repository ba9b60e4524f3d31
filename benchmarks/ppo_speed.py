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
             per iteration, one forward pass of both networks over the whole rollout (the
             actor's log-probabilities acting needs, the critic's values GAE needs), then
             epochs x minibatches Adam steps on the gradient of a bare PPO-shaped loss of two
             plain-jnp 64-unit tanh MLPs (actor 5 logits, critic 1 value) over minibatches of
             the same size, on fixed random data. No env, no sampling, no GAE recursion, no
             distributions, no value normalisation. `steps / floor` is a ceiling on the
             training env-steps/s of any JAX implementation on this machine. Both MLPs take the
             observation + agent id (IPPO's shapes); MAPPO's critic input is larger, so for
             MAPPO this is a looser ceiling. It is timed once per row, which also shows the
             run-to-run noise of the machine. With seeds vmapped, every seed has its own
             networks and data.

    python benchmarks/ppo_speed.py                 # IPPO and MAPPO
    python benchmarks/ppo_speed.py --iterations 20 --repeats 3
    python benchmarks/ppo_speed.py --compare jaxmarl --jaxmarl-baselines /path/to/JaxMARL/baselines

`--compare jaxmarl` instead times JaxMARL's own `make_train` beside ours in one process (see
`compare_jaxmarl`); it needs `jaxmarl` plus hydra-core, omegaconf and wandb importable (their baseline
scripts import them) and the `baselines/` folder of JaxMARL's repository, which the pip package lacks.
"""

from __future__ import annotations

import argparse
import importlib.util
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


def floor_seconds(spec, iterations: int, repeats: int, seeds: int = 1) -> float:
    """Time of the bare training arithmetic for `iterations` iterations of `seeds` seeds (module docstring).

    With `seeds` > 1 the same program is vmapped over seeds, each with its own parameters, optimizer
    state and data, as a vmapped training run has: no seed shares a matmul operand with another.
    """
    n, epochs, minibatches = spec.num_agents, CONFIG.num_epochs, CONFIG.num_minibatches
    rows = NUM_ENVS * ROLLOUT * n // minibatches  # agent-steps per minibatch
    in_dim = spec.obs_dim + n  # observation + agent id, as the shared-parameter networks see it
    h = CONFIG.hidden_dim
    tx = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(5e-4))

    def mlp_init(key, sizes):
        keys = jax.random.split(key, len(sizes) - 1)
        return [(jax.random.normal(k, (a, b)) / jnp.sqrt(a), jnp.zeros(b)) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

    def mlp(params, x):
        for i, (w, b) in enumerate(params):
            x = x @ w + b
            x = jnp.tanh(x) if i < len(params) - 1 else x
        return x

    def setup(key):
        """Fixed random networks and data of one seed."""
        k_a, k_c, k_x, k_u, k_v = jax.random.split(key, 5)
        params = (mlp_init(k_a, [in_dim, h, h, spec.action_size]), mlp_init(k_c, [in_dim, h, h, 1]))
        x = jax.random.normal(k_x, (minibatches, rows, in_dim))
        act = jax.random.randint(k_u, (minibatches, rows), 0, spec.action_size)
        adv = jax.random.normal(k_v, (minibatches, rows))
        return params, x, act, adv

    def loss(params, x, a, adv, old_logp, target):
        logp_all = jax.nn.log_softmax(mlp(params[0], x))
        logp = jnp.take_along_axis(logp_all, a[:, None], axis=1)[:, 0]
        ratio = jnp.exp(logp - old_logp)
        entropy = -(jnp.exp(logp_all) * logp_all).sum(-1)
        value = mlp(params[1], x)[:, 0]
        return -(ratio * adv).mean() + 0.5 * ((value - target) ** 2).mean() - 0.01 * entropy.mean()

    def run(params, x, act, adv):
        def iteration(carry, _):
            """One forward pass of both networks over the whole rollout (what acting and GAE need),
            then epochs x minibatches Adam steps."""
            params, _ = carry
            flat = x.reshape(-1, in_dim)
            logp_all = jax.nn.log_softmax(mlp(params[0], flat))
            old_logp = jnp.take_along_axis(logp_all, act.reshape(-1, 1), axis=1).reshape(act.shape)
            target = mlp(params[1], flat)[:, 0].reshape(adv.shape) + adv

            def grad_step(carry, m):
                params, opt_state = carry
                grads = jax.grad(loss)(params, x[m], act[m], adv[m], old_logp[m], target[m])
                updates, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), None

            return jax.lax.scan(grad_step, carry, jnp.tile(jnp.arange(minibatches), epochs))[0], None

        (params, _), _ = jax.lax.scan(iteration, (params, tx.init(params)), None, length=iterations)
        return jax.tree.map(jnp.sum, params)

    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    if seeds == 1:
        return median_seconds(run, setup(keys[0]), repeats)
    return median_seconds(jax.vmap(run), jax.jit(jax.vmap(setup))(keys), repeats)


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


JAXMARL_IPPO = {  # baselines/IPPO/config/ippo_ff_mpe.yaml, at the sizes above
    "LR": 2.5e-4, "NUM_ENVS": NUM_ENVS, "NUM_STEPS": ROLLOUT, "UPDATE_EPOCHS": 4, "NUM_MINIBATCHES": 4,
    "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "ENT_COEF": 0.01, "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5,
    "ACTIVATION": "tanh", "ENV_NAME": "MPE_simple_spread_v3", "ENV_KWARGS": {}, "ANNEAL_LR": True}
JAXMARL_MAPPO = {  # baselines/MAPPO/config/mappo_homogenous_rnn_mpe.yaml (GRU; JaxMARL has no FF MAPPO for MPE)
    "LR": 2e-3, "NUM_ENVS": NUM_ENVS, "NUM_STEPS": ROLLOUT, "FC_DIM_SIZE": 128, "GRU_HIDDEN_DIM": 128,
    "UPDATE_EPOCHS": 4, "NUM_MINIBATCHES": 4, "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2,
    "SCALE_CLIP_EPS": False, "ENT_COEF": 0.01, "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5, "ACTIVATION": "tanh",
    "ENV_NAME": "MPE_simple_spread_v3", "ENV_KWARGS": {}, "ANNEAL_LR": True}
COMPARE_ROWS = (  # name, JaxMARL baseline file under baselines/, its config, our learner, our PPOConfig
    ("ippo", "IPPO/ippo_ff_mpe.py", JAXMARL_IPPO, make_ippo,
     PPOConfig(hidden_dim=64, num_epochs=4, num_minibatches=4, activation="tanh", value_loss="clipped",
               value_norm=False, grad_var_samples=0)),
    ("mappo-gru", "MAPPO/mappo_rnn_mpe.py", JAXMARL_MAPPO, make_mappo,
     PPOConfig(hidden_dim=128, recurrent=True, num_epochs=4, num_minibatches=4, activation="relu",
               value_loss="clipped", value_norm=False, grad_var_samples=0)),
)


def load_jaxmarl_baselines(baselines_dir: str | None):
    """JaxMARL's baseline modules {file: module}, or a string saying what is missing and how to get it."""
    try:
        import jaxmarl  # noqa: F401
        import wandb
    except ImportError as e:
        return (f"skipped: {e.name} is not importable; install it with `pip install jaxmarl==0.2.0 "
                "hydra-core omegaconf wandb` (see docs/benchmarks.md)")
    modules = {}
    for _, path, *_ in COMPARE_ROWS:
        if baselines_dir is None:
            try:
                modules[path] = importlib.import_module("baselines." + path[:-3].replace("/", "."))
                continue
            except ImportError as e:
                return (f"skipped: JaxMARL's baselines are not importable ({e}); get them with `git clone "
                        "https://github.com/FLAIROx/JaxMARL` and pass --jaxmarl-baselines JaxMARL/baselines")
        file = os.path.join(baselines_dir, path)
        if not os.path.exists(file):
            return f"skipped: {file} not found; --jaxmarl-baselines must be the baselines/ folder of JaxMARL's repo"
        spec = importlib.util.spec_from_file_location("jaxmarl_baseline_" + path[:-3].replace("/", "_"), file)
        modules[path] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[path])
    wandb.init(mode="disabled")  # their make_train logs each update through wandb.log in an io_callback
    return modules


def compare_row(name, module, jm_config, make_learner, config, total_steps, seeds, repeats) -> dict:
    """Compile JaxMARL's `make_train(config)` and ours, then time them alternately; env-steps/s of each."""
    iterations = total_steps // (NUM_ENVS * ROLLOUT)
    steps = seeds * iterations * NUM_ENVS * ROLLOUT
    theirs = module.make_train(dict(jm_config, TOTAL_TIMESTEPS=total_steps))
    env = envs.make("particle-spread", num_agents=3)
    ours = make_train(env, make_learner(env.spec, config),
                      RunnerConfig(num_envs=NUM_ENVS, rollout_len=ROLLOUT, total_env_steps=total_steps))
    hparams = PPOHParams.create(lr=jm_config["LR"], vf_coef=0.5, ent_coef=0.01, max_grad_norm=0.5, clip_eps=0.2,
                                lr_anneal_steps=float(total_steps))
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    if seeds == 1:
        runs = {"jaxmarl": (theirs, (keys[0],)), "ours": (ours, (keys[0], hparams))}
    else:  # vmapped over keys the same way for both, as their scripts do
        runs = {"jaxmarl": (jax.vmap(theirs), (keys,)), "ours": (jax.vmap(ours, in_axes=(0, None)), (keys, hparams))}
    compiled, compile_s, times = {}, {}, {k: [] for k in runs}
    for k, (fn, args) in runs.items():  # ahead-of-time compilation, outside the timing
        start = time.perf_counter()
        compiled[k] = jax.jit(fn).lower(*args).compile()
        compile_s[k] = time.perf_counter() - start
    for _ in range(repeats):  # A, B, A, B, ...
        for k, (_, args) in runs.items():
            start = time.perf_counter()
            jax.block_until_ready(compiled[k](*args))
            times[k].append(time.perf_counter() - start)
    row = {"learner": name, "jaxmarl_baseline": module.__file__, "seeds": seeds, "env_steps": steps,
           "compile_s": compile_s, "times_s": times}
    for k in runs:
        row[f"{k}_steps_per_s"] = steps / statistics.median(times[k])
    row["ratio_ours_over_jaxmarl"] = row["ours_steps_per_s"] / row["jaxmarl_steps_per_s"]
    if not config.recurrent:  # the floor's networks are this config's feed-forward ones
        row["floor_s"] = floor_seconds(env.spec, iterations, repeats, seeds)
        row["ceiling_steps_per_s"] = steps / row["floor_s"]
        row["ceiling_over_jaxmarl"] = row["ceiling_steps_per_s"] / row["jaxmarl_steps_per_s"]
    return row


def compare_jaxmarl(args) -> dict | None:
    """`--compare jaxmarl`: JaxMARL's IPPO-FF and MAPPO (GRU) `make_train` against ours, same process."""
    modules = load_jaxmarl_baselines(args.jaxmarl_baselines)
    if isinstance(modules, str):
        print(f"ppo_speed --compare jaxmarl {modules}")
        return None
    device = jax.devices()[0].device_kind
    load_before = os.getloadavg()
    print(f"# vs JaxMARL on MPE_simple_spread_v3 / particle-spread N=3: {NUM_ENVS} envs x {ROLLOUT} steps, 4 epochs "
          f"x 4 minibatches, {args.total_timesteps} env steps per seed; jax {jax.__version__} on {device}, "
          f"{os.cpu_count()} CPUs, load {load_before[0]:.2f}; alternating, median of {args.repeats}")
    print("# ippo: JaxMARL IPPO-FF (tanh 64) vs ours (tanh 64, clipped value loss, no value normalisation)")
    print("# mappo-gru: JaxMARL has no feed-forward MAPPO for MPE; its MAPPO for MPE is mappo_rnn_mpe.py (GRU 128, "
          "relu): compared with our recurrent MAPPO (GRU 128, relu, clipped value loss, no value normalisation)")
    print("# ceiling: env steps / the floor (the bare arithmetic of acting, values and the update; see the module")
    print("# docstring) at the same seeds, with no env at all: a ceiling for any JAX implementation of this config on")
    print("# this machine (feed-forward rows only)")
    print("| learner | seeds | JaxMARL env-steps/s | ours env-steps/s | ours / JaxMARL | ceiling env-steps/s | "
          "ceiling / JaxMARL | compile s (JaxMARL, ours) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for name, path, jm_config, make_learner, config in COMPARE_ROWS:
        if name not in args.learners and name.split("-")[0] not in args.learners:
            continue
        for seeds in sorted({1, args.seeds} - {0}):
            r = compare_row(name, modules[path], jm_config, make_learner, config, args.total_timesteps, seeds,
                            args.repeats)
            rows.append(r)
            ceiling = (f"{r['ceiling_steps_per_s']:.3g} | {r['ceiling_over_jaxmarl']:.2f}x" if "floor_s" in r
                       else "- | -")
            print(f"| {name} | {seeds} | {r['jaxmarl_steps_per_s']:.3g} | {r['ours_steps_per_s']:.3g} | "
                  f"{r['ratio_ours_over_jaxmarl']:.2f}x | {ceiling} | "
                  f"{r['compile_s']['jaxmarl']:.1f}, {r['compile_s']['ours']:.1f} |", flush=True)
    result = {"device": device, "jax": jax.__version__, "cpu_count": os.cpu_count(), "load_before": load_before,
              "load_after": os.getloadavg(), "total_timesteps_per_seed": args.total_timesteps,
              "repeats": args.repeats, "rows": rows}
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", nargs="+", default=["ippo", "mappo"], choices=["ippo", "mappo"])
    parser.add_argument("--iterations", type=int, default=40, help="rollout+update iterations per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=None,
                        help="also measure this many seeds vmapped (default 10, JaxMARL's shipped config; "
                             "16 with --compare); 0: skip")
    parser.add_argument("--json", default=None,
                        help="default: benchmarks/results/ppo_speed.json, or ppo_compare.json with --compare")
    parser.add_argument("--compare", choices=["jaxmarl"],
                        help="time JaxMARL's IPPO-FF and MAPPO make_train against ours, alternately, same process")
    parser.add_argument("--jaxmarl-baselines", metavar="DIR",
                        help="the baselines/ folder of a JaxMARL checkout (default: import `baselines`)")
    parser.add_argument("--total-timesteps", type=int, default=1_000_000,
                        help="--compare: env steps per seed of each training run")
    args = parser.parse_args(argv)
    for name, value, low in (("--iterations", args.iterations, 1), ("--repeats", args.repeats, 1),
                             ("--seeds", args.seeds, 0), ("--total-timesteps", args.total_timesteps, NUM_ENVS * ROLLOUT)):
        if value is not None and value < low:
            parser.error(f"{name} must be an integer >= {low}, got {value}")
    if args.compare:
        args.json = args.json or "benchmarks/results/ppo_compare.json"
        args.seeds = 16 if args.seeds is None else args.seeds
        return compare_jaxmarl(args)
    args.json = args.json or "benchmarks/results/ppo_speed.json"
    args.seeds = 10 if args.seeds is None else args.seeds
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
    spec = envs.make("particle-spread", num_agents=3).spec
    for r in rows if args.seeds else []:
        iterations = args.iterations // 2 or 1
        r[f"train_steps_per_s_{args.seeds}_seeds"] = measure_seeds(r["learner"], iterations, args.repeats, args.seeds)
        r[f"ceiling_steps_per_s_{args.seeds}_seeds"] = (args.seeds * NUM_ENVS * ROLLOUT * iterations
                                                        / floor_seconds(spec, iterations, args.repeats, args.seeds))
        print(f"{r['learner']}, {args.seeds} seeds vmapped: {r[f'train_steps_per_s_{args.seeds}_seeds']:.3g} "
              f"env-steps/s (all seeds together); ceiling {r[f'ceiling_steps_per_s_{args.seeds}_seeds']:.3g}",
              flush=True)
    result = {"device": device, "jax": jax.__version__, "cpu_count": os.cpu_count(), "rows": rows}
    if args.json:
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
