"""Part 2 of the critic-variance experiment: MAPPO vs IPPO trained on particle-spread.

For each N in `--num-agents`, MAPPO (centralized critic) and IPPO (independent critic)
train `--seeds` paired seeds with identical PPO hyperparameters (those of
`benchmarks/learning_actor_critic.py`) as one jit-compiled, vmapped program; the
per-sample policy-gradient variance is logged every iteration. Compile and run times
are measured apart. Writes the table (CSV), everything (JSON, incl. per-seed phase means
and timings) and the plot (PNG), and prints a markdown table for the README.

    python benchmarks/critic_variance_training.py                        # 32 seeds, 40k steps
    python benchmarks/critic_variance_training.py --env-steps 5000000    # on a GPU
    python benchmarks/critic_variance_training.py --num-agents 3 --seeds 8 --env-steps 20000

On a CPU the script asks XLA for one host device per core (before importing JAX), and the
seeds are split across them.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")

from jaxmarl_lab.cli import main  # noqa: E402  (after XLA_FLAGS)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "critic_variance_training")

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--out" not in argv:
        argv += ["--out", OUT]
    sys.exit(main(["variance", "--part", "2"] + argv))
