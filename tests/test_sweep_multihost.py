"""A sweep split over 4 devices, or over 2 processes, gives the rows of a one-device run.

Each case runs `tests/sweep_worker.py` in subprocesses (XLA_FLAGS and `jax.distributed` only
take effect before JAX's backend starts), with a timeout so a test can never hang; the
reference is the same sweep in this process on one device. The sweep (that of
test_sweep.py, whose compiled program this file reuses when run in the same session) has
3 points x 2 seeds = 6 members with 1 member per device per chunk, so on 4 devices the second
chunk holds 2 padding members, and every device runs the same per-device program as the
reference: results must agree to float32 rounding.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxmarl_lab.sweeps import run as sweep

pytestmark = pytest.mark.slow  # subprocesses: run by `python -m pytest -q -m slow` (CI runs both)

SPEC = {"env": "grid-world", "env_kwargs": {"layout": "lesson"}, "learner": "iql",
        "runner": {"total_env_steps": 800, "num_envs": 4, "rollout_len": 10, "buffer_capacity": 100,
                   "batch_size": 8, "updates_per_rollout": 1},
        "seed": 5, "num_seeds": 2, "search": {"lr": [3e-4, 1e-3, 3e-3]}}  # as in test_sweep.py

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sweep_worker.py")
TIMEOUT_S = 420


def _env() -> dict:
    env = dict(os.environ)
    env.pop("JAX_COORDINATOR_ADDRESS", None)
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keyed(rows: list[dict]) -> dict:
    return {(r["point"], r["seed_index"]): r for r in rows}


def assert_rows_close(a: list[dict], b: list[dict]) -> None:
    """Same members and hyperparameters in the same order; metrics equal to float32 rounding
    (NaN equal to NaN). XLA compiles the per-device program of a multi-device mesh with
    slightly different fusions, so the last bits of losses may differ (measured: <= 2e-7
    relative); a real mismatch (another seed, point or key) differs in the first digits."""
    assert len(a) == len(b) and list(a[0]) == list(b[0])
    ids = ("point", "seed_index", "seed", "group", "lr")
    assert [[r[k] for k in ids] for r in a] == [[r[k] for k in ids] for r in b]
    values = lambda rows: np.array([[r[k] for k in rows[0]] for r in rows], np.float64)
    np.testing.assert_allclose(values(a), values(b), rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> list:
    """Rows of the sweep on this process's first device."""
    out = tmp_path_factory.mktemp("single")
    return sweep.run_sweep(sweep.SweepSpec.from_dict(SPEC), str(out), chunk_size=1, progress=False,
                           devices=jax.devices()[:1]).rows


def test_sharded_over_4_devices_equals_one_device(single, tmp_path):
    proc = subprocess.run([sys.executable, WORKER, "devices", str(tmp_path), json.dumps(SPEC)], env=_env(),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "devices.json") as f:
        sharded = json.load(f)["rows"]
    assert len(single) == len(sharded) == 6  # padding (2 members of the second chunk) dropped
    assert sorted(_keyed(single)) == [(p, s) for p in range(3) for s in range(2)]
    assert_rows_close(single, sharded)  # every (point, seed): same hyperparameters and metrics
    finals = [r["final_return"] for r in single]
    assert len(set(finals)) > 1 or len({r["final_loss"] for r in single}) > 1  # the members really differ


def test_two_processes_equal_one_process(single, tmp_path):
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, WORKER, "host", str(tmp_path), json.dumps(SPEC), str(port), str(i)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=TIMEOUT_S)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    hosts = []
    for i in range(2):
        with open(tmp_path / f"host{i}.json") as f:
            hosts.append(json.load(f))
    assert [h["devices"] for h in hosts] == [2, 2] and [h["local"] for h in hosts] == [1, 1]
    assert_rows_close(hosts[0]["rows"], single)  # gathered to both processes, equal to 1 process
    assert_rows_close(hosts[1]["rows"], single)
    # written once, by process 0
    assert (tmp_path / "process0" / "results.json").exists() and (tmp_path / "process0" / "best_config.json").exists()
    assert not (tmp_path / "process1").exists()
    with open(tmp_path / "process0" / "results.json") as f:
        written = json.load(f)
    assert written["complete"] and written["processes"] == 2 and len(written["rows"]) == 6


def test_two_processes_through_the_command_equal_one_process(single, tmp_path):
    """`jaxmarl-lab sweep --coordinator ... --num-processes 2 --process-id I`, as README shows it: nothing touches
    JAX before `jax.distributed.initialize`; process 0 writes the rows of one process and the best member."""
    port = _free_port()
    config = tmp_path / "sweep.json"
    config.write_text(json.dumps(SPEC))
    env = {k: v for k, v in _env().items() if k != "XLA_FLAGS"}
    procs = [subprocess.Popen([sys.executable, "-m", "jaxmarl_lab", "sweep", "--config", str(config), "--out",
                               str(tmp_path / "out"), "--chunk-size", "1", "--coordinator", f"127.0.0.1:{port}",
                               "--num-processes", "2", "--process-id", str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=TIMEOUT_S)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    assert "on 2 device(s)" in logs[0] and "6 runs; points ranked" in logs[0]
    with open(tmp_path / "out" / "results.json") as f:
        written = json.load(f)
    assert written["complete"] and written["processes"] == 2
    assert_rows_close(written["rows"], single)
    best = max(written["rows"], key=lambda r: r["greedy_return"])
    with open(tmp_path / "out" / "best_member" / "config.json") as f:
        assert json.load(f)["seed"] == best["seed"]
