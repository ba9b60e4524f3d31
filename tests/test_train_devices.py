"""`jaxmarl-lab train --seeds S` splits the seeds over the devices: through the command on 4 host
devices (`--cpu-devices 4`, in a subprocess: XLA_FLAGS only take effect before JAX starts) it
gives the metrics and parameters of the same run on this process's one device."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxmarl_lab.cli import build_parser
from jaxmarl_lab.commands.train import run_config_from_args
from jaxmarl_lab.runs import training
from jaxmarl_lab.runs.layout import METRICS, read_metrics
from jaxmarl_lab.runs.training import seed_mesh

FLAGS = ["--learner", "iql", "--env", "grid-world", "--set", "env_kwargs.layout=lesson", "--steps", "2000",
         "--set", "runner.num_envs=4", "--set", "runner.rollout_len=10", "--set", "runner.buffer_capacity=100",
         "--set", "runner.batch_size=8", "--set", "runner.updates_per_rollout=1", "--seeds", "4", "--seed", "11",
         "--no-plot"]


def test_seed_mesh_takes_the_most_devices_that_divide_the_seeds():
    devices = ["a", "b", "c", "d"]
    assert [seed_mesh(s, devices).devices.size for s in (1, 2, 3, 4, 6, 16)] == [1, 2, 3, 4, 3, 4]


@pytest.mark.slow
def test_seeds_split_over_4_devices_through_the_command_equal_one_device(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run([sys.executable, "-m", "jaxmarl_lab", "train", *FLAGS, "--cpu-devices", "4",
                           "--run-dir", str(tmp_path / "four")], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "x 4 seed(s) on 4 device(s)" in proc.stdout

    assert len(jax.local_devices()) == 1
    run = run_config_from_args(build_parser().parse_args(["train", *FLAGS]))
    training.train_run(run, str(tmp_path / "one"), progress=False, plot=False)

    rows = {name: read_metrics(str(tmp_path / name / METRICS)) for name in ("four", "one")}
    assert len(rows["four"]) == len(rows["one"]) == 50
    for a, b in zip(rows["four"], rows["one"]):
        assert a.keys() == b.keys()
        for key in a:
            x = np.array(a[key], dtype=np.float64)  # null (no episode ended) -> nan
            np.testing.assert_allclose(x, np.array(b[key], dtype=np.float64), rtol=1e-5, atol=1e-6, err_msg=key)
    params = [jax.tree.leaves(training.load_run_state(str(tmp_path / name))[2].learner) for name in ("four", "one")]
    for a, b in zip(*params):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    seeds = np.asarray(params[1][0])
    assert not np.allclose(seeds[0], seeds[1])  # the four seeds really differ
