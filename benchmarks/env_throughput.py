"""Environment throughput: random-action rollouts fully inside `jit`.

Protocol (the same for every environment, ours and JaxMARL's): one jitted function
runs a `lax.scan` of `--steps` (100) batched steps over B environments with random
actions drawn inside the scan; each step's observations and rewards are summed into
the scan output so that nothing is dead code. The function is compiled once (timed
separately), then timed `--repeats` times with fresh keys; we report the median.

    python benchmarks/env_throughput.py                      # all envs, all B
    python benchmarks/env_throughput.py --compare jaxmarl    # + JaxMARL simple spread

For our environments `native` is `env.step_batch` (batch-minor for particle-spread)
and `vmap` is `jax.vmap(env.step)` over per-environment states.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from typing import Callable

import jax

from jaxmarl_lab import envs

BATCH_SIZES = (1, 64, 1024, 4096, 16384)


def random_actions(key: jax.Array, spec, batch: int) -> jax.Array:
    """Uniformly random joint actions `(B, N)` int32 or `(B, N, D)` float32."""
    if spec.is_discrete:
        return jax.random.randint(key, (batch, spec.num_agents), 0, spec.action_size)
    shape = (batch, spec.num_agents, spec.action_size)
    if math.isfinite(spec.action_low) and math.isfinite(spec.action_high):
        return jax.random.uniform(key, shape, minval=spec.action_low, maxval=spec.action_high)
    return jax.random.normal(key, shape)


def ours_rollout(env, batch: int, steps: int, mode: str) -> Callable[[jax.Array], jax.Array]:
    """A jitted rollout of `steps` x `batch` env steps of one of our environments."""
    params = env.default_params()
    spec = env.spec

    def rollout(key: jax.Array) -> jax.Array:
        key_reset, key_scan = jax.random.split(key)
        if mode == "native":
            state, _ = env.reset_batch(key_reset, params, batch)
            step = lambda k, s, a: env.step_batch(k, s, a, params)
        else:
            state, _ = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, batch), params)
            vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))
            step = lambda k, s, a: vstep(jax.random.split(k, batch), s, a, params)

        def scan_step(state, key):
            key_act, key_step = jax.random.split(key)
            state, ts = step(key_step, state, random_actions(key_act, spec, batch))
            return state, ts.obs.sum() + ts.reward.sum()

        _, sums = jax.lax.scan(scan_step, state, jax.random.split(key_scan, steps))
        return sums.sum()

    return jax.jit(rollout)


def jaxmarl_rollout(batch: int, steps: int) -> Callable[[jax.Array], jax.Array]:
    """The same protocol on JaxMARL's `MPE_simple_spread_v3` (dict-of-agents API)."""
    import jaxmarl  # optional: only for --compare jaxmarl

    env = jaxmarl.make("MPE_simple_spread_v3")
    agents = env.agents

    def rollout(key: jax.Array) -> jax.Array:
        key_reset, key_scan = jax.random.split(key)
        _, state = jax.vmap(env.reset)(jax.random.split(key_reset, batch))

        def scan_step(state, key):
            key_act, key_step = jax.random.split(key)
            acts = jax.random.randint(key_act, (len(agents), batch), 0, 5)
            actions = {a: acts[i] for i, a in enumerate(agents)}
            obs, state, rew, _, _ = jax.vmap(env.step)(jax.random.split(key_step, batch), state, actions)
            return state, sum(obs[a].sum() + rew[a].sum() for a in agents)

        _, sums = jax.lax.scan(scan_step, state, jax.random.split(key_scan, steps))
        return sums.sum()

    return jax.jit(rollout)


def measure(fn: Callable[[jax.Array], jax.Array], batch: int, steps: int, repeats: int) -> dict:
    """Compile time and the median env-steps/s over `repeats` timed calls."""
    start = time.perf_counter()
    fn(jax.random.PRNGKey(0)).block_until_ready()
    compile_s = time.perf_counter() - start
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(jax.random.PRNGKey(i + 1)).block_until_ready()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"compile_s": compile_s, "median_s": median, "steps_per_s": batch * steps / median}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=envs.registered_names(), choices=envs.registered_names())
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=list(BATCH_SIZES))
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--compare", choices=["jaxmarl"], default=None)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    print(f"# jax {jax.__version__} on {jax.devices()[0].device_kind} ({platform.processor() or platform.machine()}),"
          f" {args.steps} steps per rollout, median of {args.repeats}")
    print(f"{'env':<34}{'B':>7}{'steps/s':>12}{'compile s':>11}")
    rows = []

    def report(name: str, batch: int, result: dict) -> None:
        rows.append({"env": name, "batch": batch, **result})
        print(f"{name:<34}{batch:>7}{result['steps_per_s']:>12.3g}{result['compile_s']:>11.2f}", flush=True)

    for name in args.envs:
        env = envs.make(name)
        modes = ["native", "vmap"] if env.batch_minor else ["native"]
        for mode in modes:
            for batch in args.batch_sizes:
                label = f"{name} ({mode})" if env.batch_minor else name
                report(label, batch, measure(ours_rollout(env, batch, args.steps, mode), batch, args.steps, args.repeats))
    if args.compare == "jaxmarl":
        for batch in args.batch_sizes:
            report("jaxmarl MPE_simple_spread_v3", batch,
                   measure(jaxmarl_rollout(batch, args.steps), batch, args.steps, args.repeats))
        ours = {r["batch"]: r["steps_per_s"] for r in rows if r["env"] == "particle-spread (native)"}
        ours_vmap = {r["batch"]: r["steps_per_s"] for r in rows if r["env"] == "particle-spread (vmap)"}
        theirs = {r["batch"]: r["steps_per_s"] for r in rows if r["env"].startswith("jaxmarl")}
        print("\nparticle-spread / JaxMARL simple spread, same process:")
        for batch in sorted(theirs):
            if batch in ours:
                extra = f", vmap {ours_vmap[batch] / theirs[batch]:.2f}x" if batch in ours_vmap else ""
                print(f"  B={batch:>6}: native {ours[batch] / theirs[batch]:.2f}x{extra}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
