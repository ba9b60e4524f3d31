"""Ctrl-C at random moments: how `jaxmarl-lab train` and `sweep` end when SIGINT (or SIGTERM) arrives.

    python tests/interrupt_stress.py --tries 27                 # train, SIGINT
    python tests/interrupt_stress.py --tries 12 --command sweep --signal TERM

Each try starts the command in a fresh process on a tiny run and sends the signal after a
delay drawn uniformly from [0, --max-delay] seconds, which spans importing JAX, building,
compiling and training. Each ending is classified:

  clean      exit 128 + signal number, the last stderr line is the one-line message, no traceback
  finished   the command completed before the signal arrived (exit 0; not a failure)
  swallowed  the signal arrived while the command ran, but it went on and exited 0
  traceback  a Python traceback on stderr
  segfault   killed by SIGSEGV / SIGABRT
  other      anything else (printed)

"finished" means the process ended before the signal was due, so no signal was sent.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile

TRAIN = ["train", "--learner", "iql", "--env", "grid-world", "--set", "env_kwargs.layout=lesson",
         "--set", "runner.num_envs=4", "--set", "runner.rollout_len=5", "--set", "runner.buffer_capacity=64",
         "--set", "runner.batch_size=8", "--set", "runner.updates_per_rollout=1",
         "--steps", "4000", "--chunk-updates", "2", "--no-plot"]
SWEEP_SPEC = {"env": "grid-world", "env_kwargs": {"layout": "lesson"}, "learner": "iql", "num_seeds": 2,
              "runner": {"num_envs": 4, "rollout_len": 5, "buffer_capacity": 64, "batch_size": 8,
                         "updates_per_rollout": 1,
                         "total_env_steps": 400},
              "search": {"lr": [1e-3, 3e-3, 1e-2, 3e-2]}}


def one_try(command: str, signum: int, delay: float, folder: str) -> tuple[str, str]:
    if command == "train":
        argv = [*TRAIN, "--run-dir", os.path.join(folder, "run")]
    else:
        config = os.path.join(folder, "sweep.json")
        with open(config, "w") as f:
            json.dump(SWEEP_SPEC, f)
        argv = ["sweep", "--config", config, "--out", os.path.join(folder, "out"), "--chunk-size", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "jaxmarl_lab", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=delay)
        sent = False  # it ended before the signal was due
    except subprocess.TimeoutExpired:
        proc.send_signal(signum)
        sent = True
    out, err = proc.communicate(timeout=300)
    code = proc.returncode
    lines = err.strip().splitlines()
    if "Traceback" in err:
        return "traceback", err[-300:]
    if code in (-signal.SIGSEGV, -signal.SIGABRT, 139, 134):
        return "segfault", f"exit {code}"
    if code == 128 + signum and lines and "interrupted" in lines[-1]:
        return "clean", lines[-1]
    if code == 0:
        return ("swallowed" if sent else "finished"), out[-120:]
    return "other", f"exit {code}: {err[-300:]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=27)
    parser.add_argument("--command", choices=["train", "sweep"], default="train")
    parser.add_argument("--signal", choices=["INT", "TERM"], default="INT")
    parser.add_argument("--max-delay", type=float, default=12.0, help="seconds; the signal comes in [0, this]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    signum = getattr(signal, f"SIG{args.signal}")
    tally: collections.Counter = collections.Counter()
    for i in range(args.tries):
        delay = rng.uniform(0.0, args.max_delay)
        with tempfile.TemporaryDirectory() as folder:
            kind, detail = one_try(args.command, signum, delay, folder)
        tally[kind] += 1
        last = detail.strip().splitlines()[-1] if detail.strip() else ""
        print(f"try {i + 1:2d}: signal after {delay:5.2f} s -> {kind}: {last}", flush=True)
    print(json.dumps({"command": args.command, "signal": args.signal, "tries": args.tries, **dict(tally)}))


if __name__ == "__main__":
    main()
