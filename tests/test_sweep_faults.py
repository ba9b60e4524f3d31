"""Fault injection on `jaxmarl-lab sweep`: a second process is refused, Ctrl-C / SIGTERM end with
the resume line and lose no run, the coordinator listens only where it is told, and every bad
input (a file as --out, a damaged results.json, a huge search, a bad or too small memory budget)
is one `jaxmarl-lab: error:` line before anything is compiled, changing nothing.

Two sweeps are compiled in all: one in a subprocess (the signal test) and one in this process
(shared by the permission test and the signal test's resume); the rest fail before compiling.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from jaxmarl_lab.cli import main
from jaxmarl_lab.runs.files import DirLock
from jaxmarl_lab.sweeps import run as sweep
from jaxmarl_lab.sweeps import space as sweep_space
from tests.helpers import one_error_line

# IQL on the lesson grid; 40,000 env steps make a chunk of one run last a few tenths of a second.
BASE = {"env": "grid-world", "env_kwargs": {"layout": "lesson"}, "learner": "iql",
        "runner": {"total_env_steps": 40000, "num_envs": 4, "rollout_len": 10, "buffer_capacity": 100,
                   "batch_size": 8, "updates_per_rollout": 1},
        "seed": 5, "num_seeds": 2}
SPEC = {**BASE, "search": {"lr": [3e-4, 1e-3, 3e-3, 1e-2]}}  # 4 points x 2 seeds = 8 runs
ONE = {**BASE, "num_seeds": 1, "search": {"lr": [1e-3]}}  # one run, the same compiled program
COMMAND = [sys.executable, "-m", "jaxmarl_lab.cli"]
FINGERPRINT = sweep.SweepSpec.from_dict(SPEC).fingerprint()


def write_config(tmp_path, values: dict = SPEC) -> str:
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(values))
    return str(path)


def digest(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def no_compile(monkeypatch):
    """Fails the test if the sweep gets as far as compiling a program."""
    def compiled_program(*args, **kwargs):
        raise AssertionError("the sweep compiled a program before refusing its input")

    monkeypatch.setattr(sweep, "compiled_program", compiled_program)


def members(out) -> list[tuple[int, int]]:
    with open(os.path.join(out, "results.json")) as f:
        return [(r["point"], r["seed_index"]) for r in json.load(f)["rows"]]


# ----- one process per folder --------------------------------------------------------------------
def test_a_second_process_is_refused_with_the_holders_pid(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with DirLock(str(out), "sweep folder"):
        proc = subprocess.run([*COMMAND, "sweep", "--config", write_config(tmp_path), "--out", str(out)],
                              capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("jaxmarl-lab: error: sweep folder") and f"pid {os.getpid()}" in lines[0]
    assert os.listdir(out) == [".lock"]  # nothing trained, nothing written


# ----- Ctrl-C and SIGTERM ------------------------------------------------------------------------
@pytest.mark.slow
def test_ctrl_c_ends_with_the_resume_line_and_the_rerun_loses_and_repeats_nothing(tmp_path):
    out, config = str(tmp_path / "out"), write_config(tmp_path)
    argv = ["sweep", "--config", config, "--out", out, "--chunk-size", "1"]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device, whatever earlier tests set
    proc = subprocess.Popen([*COMMAND, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = b""
    while not re.search(rb"chunk 1/\d+ ", line):  # the first chunk is written: the sweep is under way
        line = proc.stderr.readline()
        assert line or proc.poll() is None, "the sweep ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Segmentation" not in err
    last = err.strip().splitlines()[-1]
    match = re.fullmatch(rf"interrupted \((\d+) runs? (?:are|is) saved in {re.escape(out)}\); "
                         r"run the same command again to resume", last)
    assert match, last
    saved = members(out)
    assert len(saved) == int(match.group(1)) and 1 <= len(saved) < 8
    with open(os.path.join(out, "results.json")) as f:
        before = {(r["point"], r["seed_index"]): r for r in json.load(f)["rows"]}
    (tmp_path / "out" / ".tmp-killed.json").write_text('{"half')  # what a kill in mid-write leaves
    assert main([*argv, "--quiet"]) == 0
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]
    assert members(out) == [(p, s) for p in range(4) for s in range(2)]  # every run once, in order
    with open(os.path.join(out, "results.json")) as f:
        after = {(r["point"], r["seed_index"]): r for r in json.load(f)["rows"]}
    assert all(json.dumps(after[m]) == json.dumps(before[m]) for m in before)  # saved runs kept as they were


# ----- the coordinator ---------------------------------------------------------------------------
def _listening(port: int) -> list:
    """Addresses with a TCP socket listening on `port` (Linux /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            host, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(host)  # 32-bit words in host (little-endian) order
                found.append(ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))))
    return found


def _loopback(address) -> bool:
    return address.is_loopback or bool(getattr(address, "ipv4_mapped", None) and address.ipv4_mapped.is_loopback)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads the Linux socket tables")
def test_the_coordinator_listens_only_on_its_address_and_sigterm_exits_143(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "out")
    proc = subprocess.Popen([*COMMAND, "sweep", "--config", write_config(tmp_path), "--out", out,
                             "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0",
                             "--init-timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline, addresses = time.monotonic() + 120, []
        while not addresses and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            addresses = _listening(port)  # process 0 waits for process 1 inside jax.distributed.initialize
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err.decode()
    assert addresses, err
    assert all(_loopback(a) for a in addresses), addresses  # not [::] or 0.0.0.0: every interface
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (f"interrupted (nothing is saved in {out} yet); run the same command "
                                           f"again to resume")


def test_coordinator_bind_is_passed_to_jax_and_needs_a_coordinator(tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep.jax.distributed, "initialize", lambda *args, **kwargs: calls.append(kwargs))
    assert sweep.init_distributed("10.0.0.5:1234", num_processes=2, process_id=0)
    assert sweep.init_distributed("10.0.0.5:1234", num_processes=2, process_id=0, bind="0.0.0.0:1234")
    assert [c["coordinator_bind_address"] for c in calls] == ["10.0.0.5:1234", "0.0.0.0:1234"]
    with pytest.raises(ValueError, match="coordinator bind address must be HOST:PORT"):
        sweep.init_distributed("10.0.0.5:1234", num_processes=2, process_id=0, bind="0.0.0.0")
    line = one_error_line(capsys, ["sweep", "--config", write_config(tmp_path), "--out", str(tmp_path / "out"),
                                   "--coordinator-bind", "0.0.0.0:1234"])
    assert "--coordinator-bind 0.0.0.0:1234 is for a multi-host sweep" in line
    assert not (tmp_path / "out").exists()


def test_cpu_devices_that_cannot_take_effect_are_one_line(tmp_path, capsys, no_compile, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))  # the command appends to it: restored after
    assert len(sweep.jax.devices()) != 3  # JAX's backend has started here, with another device count
    line = one_error_line(capsys, ["sweep", "--config", write_config(tmp_path), "--out", str(tmp_path / "out"),
                                   "--cpu-devices", "3"])
    assert "--cpu-devices 3 did not take effect: JAX's CPU backend had already started" in line
    assert not (tmp_path / "out").exists()


# ----- the files ---------------------------------------------------------------------------------
def test_every_file_gets_the_permissions_of_results_json_and_temp_files_are_removed(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".jaxmarl-lab-sweep").write_text("{}")  # a sweep folder: the marker is the first file a sweep writes
    (out / ".tmp-abc123").write_text("cut off")  # a writer killed mid-write
    previous = os.umask(0o022)
    try:
        assert main(["sweep", "--config", write_config(tmp_path, ONE), "--out", str(out), "--chunk-size", "1",
                     "--quiet"]) == 0
    finally:
        os.umask(previous)
    names = ["best_config.json", "curves.jsonl", "ranking.csv", "results.csv", "results.json", "sweep.png"]
    modes = {n: os.stat(out / n).st_mode & 0o777 for n in names}
    assert set(modes.values()) == {0o644}, modes  # 0666 minus the umask, as results.json
    assert sorted(os.listdir(out)) == sorted([".jaxmarl-lab-sweep", ".lock", "best_member", *names])  # no temp file


def test_a_folder_a_sweep_did_not_write_is_refused_and_left_as_it_was(tmp_path, capsys, no_compile):
    out = tmp_path / "project"
    out.mkdir()
    for name, text in (("results.csv", "my,table"), ("notes.txt", "mine"), (".tmp-draft", "mine too")):
        (out / name).write_text(text)
    line = one_error_line(capsys, ["sweep", "--config", write_config(tmp_path), "--out", str(out), "--overwrite"])
    assert "a sweep did not write" in line
    assert sorted(os.listdir(out)) == [".tmp-draft", "notes.txt", "results.csv"]
    assert (out / "results.csv").read_text() == "my,table"


def test_out_being_a_file_is_one_line_before_anything_is_built(tmp_path, capsys, no_compile, monkeypatch):
    monkeypatch.setattr(sweep, "make_groups", lambda *a: pytest.fail("built the sweep's groups"))
    path = tmp_path / "results"
    path.write_bytes(b"my notes")
    config = write_config(tmp_path)
    line = one_error_line(capsys, ["sweep", "--config", config, "--out", str(path)])
    assert f"sweep folder {str(path)!r} is a file, not a folder" in line
    line = one_error_line(capsys, ["sweep", "--config", config, "--out", str(path / "sub")])
    assert f"lies under {str(path)!r}, which is a file" in line
    assert path.read_bytes() == b"my notes"


ROW = {"point": 0, "seed_index": 0, "seed": 5, "group": 0, "lr": 3e-4, "final_return": 0.5}
ours = lambda *rows: {"fingerprint": FINGERPRINT, "rows": list(rows)}  # a results.json of this sweep


@pytest.mark.parametrize("content, problem", [
    ([ROW], "not a sweep's results file (an object with 'fingerprint' and 'rows' is expected, got a JSON list)"),
    ({"rows": [ROW]}, "an object with 'fingerprint' and 'rows' is expected, got an object with keys ['rows']"),
    ({"fingerprint": FINGERPRINT, "rows": {"0": ROW}}, "'rows' must be a list of objects"),
    (ours(ROW, 7), "row 1 must be an object, got a JSON number"),
    (ours({"point": 0, "seed_index": 0}), "row 0 lacks ['seed', 'final_return', 'lr']"),
    (ours({**ROW, "point": 4}), "row 0 has point 4, not an integer in [0, 4)"),
    (ours({**ROW, "point": -1}), "row 0 has point -1, not an integer in [0, 4)"),
    (ours({**ROW, "point": "0"}), "row 0 has point '0', not an integer"),
    (ours({**ROW, "seed_index": 1.0}), "row 0 has seed_index 1.0, not an integer in [0, 2)"),
    (ours(ROW, {**ROW}), "row 1 repeats point 0, seed_index 0"),
    (ours({**ROW, "final_return": "high"}), "final_return 'high', not a number"),
    (b"\xff\xfe not text", "is not a readable JSON file"),
])
def test_a_damaged_results_json_is_one_line_and_nothing_is_rewritten(content, problem, tmp_path, capsys, no_compile):
    out = tmp_path / "out"
    out.mkdir()
    path = out / "results.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    before = digest(path)
    line = one_error_line(capsys, ["sweep", "--config", write_config(tmp_path), "--out", str(out)])
    assert line.startswith(f"jaxmarl-lab: error: {path}") and problem in line, line
    assert digest(path) == before and sorted(os.listdir(out)) == [".lock", "results.json"]


# ----- sizes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("values, count", [
    ({"search": {"lr": {"log_uniform": [1e-5, 1e-2], "num": 100_000_000}}}, "100,000,000 points (lr 100,000,000)"),
    ({"search": {"lr": {"uniform": [1e-4, 1e-2], "num": 2000}, "gamma": [0.9, 0.95, 0.99],
                 "hidden_dim": {"int_uniform": [8, 10_000], "num": 10**12}}},
     "59,958,000 points (lr 2,000 x gamma 3 x hidden_dim 9,993)"),
    ({"mode": "random", "num_samples": 10**9, "search": {"lr": {"log_uniform": [1e-5, 1e-2]}}},
     "'num_samples' must be an integer in [1, 1,000,000]"),
])
def test_a_huge_search_is_refused_before_its_points_are_expanded(values, count, tmp_path, capsys, no_compile):
    config = write_config(tmp_path, {**BASE, **values})
    start = time.perf_counter()
    line = one_error_line(capsys, ["sweep", "--config", config, "--out", str(tmp_path / "out")])
    assert time.perf_counter() - start < 1.0
    assert count in line and ("cap of 1,000,000" in line or "1,000,000]" in line), line
    assert not (tmp_path / "out").exists()


def test_points_are_counted_in_closed_form():
    dims = {"lr": {"log_uniform": [1e-4, 1e-2], "num": 3}, "gamma": [0.9, 0.99],
            "hidden_dim": {"int_uniform": [8, 12], "num": 4}, "mixer_embed_dim": {"int_uniform": [1, 3], "num": 7}}
    for drop in [(), ("lr",), ("gamma", "mixer_embed_dim"), ("hidden_dim",)]:
        spec = sweep.SweepSpec.from_dict({**BASE, "search": {k: v for k, v in dims.items() if k not in drop}})
        parsed = sweep.parse_search(spec)
        assert sweep_space.num_points(spec, parsed) == len(sweep.expand_points(spec, parsed))
    for low, high in [(0, 0), (0, 1), (3, 17), (-5, 40)]:
        for num in range(1, 50):
            dim = sweep.Dimension("k", "config", "k", None, "int_uniform", low, high, num)
            assert sweep_space.num_values(dim) == len(sweep_space.grid_values(dim)), (low, high, num)


@pytest.mark.parametrize("value, shown", [("-5", "-5"), ("0", "0"), ("nan", "nan"), ("inf", "inf")])
def test_a_memory_budget_not_above_zero_is_one_line(value, shown, tmp_path, capsys, no_compile):
    line = one_error_line(capsys, ["sweep", "--config", write_config(tmp_path), "--out", str(tmp_path / "out"),
                                   "--memory-budget-mb", value])
    assert line == f"jaxmarl-lab: error: --memory-budget-mb must be a number of MiB > 0, got {shown}"
    assert not (tmp_path / "out").exists()


def test_a_run_larger_than_the_memory_budget_is_refused_before_compiling(tmp_path, capsys, no_compile):
    line = one_error_line(capsys, ["sweep", "--config", write_config(tmp_path), "--out", str(tmp_path / "out"),
                                   "--memory-budget-mb", "0.001"])  # 1,048 bytes
    assert re.search(r"one sweep run \(one point, one seed\) needs about [\d.]+ (KiB|MiB) by its shapes", line), line
    assert "more than the memory budget of 1.0 KiB per device" in line
    assert "runner.num_envs" in line and "--memory-budget-mb" in line
    assert not (tmp_path / "out").exists()  # the folder made for the sweep is gone again
    plan = sweep.plan_chunks(6, 2, one_member=100, budget=250)  # several fit: chunks as before
    assert (plan.per_device, plan.chunk) == (2, 4)
    with pytest.raises(ValueError, match="more than the memory budget"):
        sweep.plan_chunks(6, 2, one_member=100, budget=99)
    assert math.isclose(sweep.plan_chunks(6, 2, 100, 10**6, chunk_size=1).chunk, 2)


@pytest.mark.slow
def test_cpu_devices_through_the_command_really_runs_on_that_many_devices(tmp_path):
    """Building every command's parser starts no JAX backend, so `--cpu-devices 2` takes effect."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run([*COMMAND, "sweep", "--config", write_config(tmp_path, ONE), "--out", str(tmp_path / "o"),
                           "--cpu-devices", "2"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "on 2 device(s)" in proc.stderr, proc.stderr
