"""Part 2 of the critic-variance study: MAPPO vs IPPO trained on particle-spread, the run behind `results/part2/`.

For each N in `--num-agents`, MAPPO (centralized critic) and IPPO (independent critic)
train `--seeds` paired seeds with identical PPO hyperparameters (those of
`studies/learning_results/actor_critic.py`) as one jit-compiled, vmapped program; the
per-sample policy-gradient variance is logged every iteration. Compile and run times
are measured apart. Writes the table (CSV), everything (JSON, incl. per-seed phase means
and timings) and the plot (PNG) to `studies/critic_variance/results/part2/` (or `--out`), and
prints a markdown table for the README. It is `python -m studies.critic_variance --part 2` with
that output folder; every option of that command applies. From a checkout's root:

    python -m studies.critic_variance.part2                        # 32 seeds, 40k steps
    python -m studies.critic_variance.part2 --env-steps 5000000    # on a GPU
    python -m studies.critic_variance.part2 --num-agents 3 --seeds 8 --env-steps 20000 --out runs/part2
    python -m studies.critic_variance.part2 --rewrite-from-raw DIR # re-summarize a run's saved raw arrays

A run also writes its raw arrays (`critic_variance_training_raw.npz`); those of the committed
results are not kept in the tree, and
`git show 0a96c82:benchmarks/results/critic_variance_training/critic_variance_training_raw.npz > FILE`
restores them.

On a CPU the script asks XLA for one host device per core (before importing JAX), and the
seeds are split across them.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")

from studies.critic_variance import critic_training  # noqa: E402  (after XLA_FLAGS)
from studies.critic_variance import critic_training_report as report  # noqa: E402
from studies.critic_variance.cli import main  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "part2")


def rewrite_from_raw(out_dir: str) -> None:
    """Recomputes the table, JSON and plot from the saved raw arrays (no training), keeping
    the config, timings and key of the run that made them."""
    stem = os.path.join(out_dir, "critic_variance_training")
    with open(stem + ".json") as f:
        payload = json.load(f)
    config = critic_training.CriticTrainingConfig(**{**payload["config"],
                                                     "num_agents": tuple(payload["config"]["num_agents"])})
    extra = {k: payload[k] for k in ("key_seed", "timing", "devices", "platform", "jax", "complete") if k in payload}
    out = report.write_outputs(report.load_raw(stem + "_raw.npz"), config, out_dir, extra)
    print(report.format_table(out["records"]))
    print(report.format_markdown(out["records"], out["final"]))


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--rewrite-from-raw"]:  # e.g. after a change to the report: no retraining
        rewrite_from_raw(argv[1] if len(argv) > 1 else OUT)
        sys.exit(0)
    if "--out" not in argv:
        argv += ["--out", OUT]
    sys.exit(main(["--part", "2"] + argv))
