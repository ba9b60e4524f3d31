"""Fault injection on `jaxmarl-lab train` / `eval`: no command loses a user's data, a second process
is refused, Ctrl-C and SIGTERM end cleanly, and every bad input is one `jaxmarl-lab: error:` line."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxmarl_lab.cli import main
from jaxmarl_lab.runs import checkpoint, training
from jaxmarl_lab.runs.config import RunConfig, seed_keys
from jaxmarl_lab.runs.files import DirLock
from jaxmarl_lab.runs.layout import CHECKPOINT, CONFIG, MARKER, METRICS, NPZ_CHECKPOINT, read_metrics
from tests.helpers import one_error_line, snapshot, write_npz_checkpoint

# 8 iterations of IQL on the lesson grid, a checkpoint after every one (compiled once per test process).
FLAGS = ["--learner", "iql", "--env", "grid-world", "--set", "env_kwargs.layout=lesson",
         "--set", "runner.num_envs=4", "--set", "runner.rollout_len=5", "--set", "runner.buffer_capacity=64",
         "--set", "runner.batch_size=8", "--set", "runner.updates_per_rollout=1",
         "--steps", "160", "--chunk-updates", "1", "--no-progress", "--no-plot"]
COMMAND = [sys.executable, "-m", "jaxmarl_lab"]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("faults") / "good")
    assert main(["train", *FLAGS, "--run-dir", path]) == 0
    return path


@pytest.fixture
def run_copy(good_run, tmp_path) -> str:
    path = str(tmp_path / "run")
    shutil.copytree(good_run, path, ignore=shutil.ignore_patterns(".lock"))
    return path


# ----- data loss --------------------------------------------------------------------------------------
def test_overwrite_refuses_a_project_folder_holding_config_json(tmp_path, capsys):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text("{}")
    (project / "README.md").write_text("my notes")
    (project / "src" / "model.py").write_text("x = 1")
    before = snapshot(str(project))
    line = one_error_line(capsys, ["train", *FLAGS, "--run-dir", str(project), "--overwrite"])
    assert "nothing was deleted" in line
    assert snapshot(str(project)) == before


def test_overwrite_refuses_a_run_holding_other_files(run_copy, capsys):
    with open(os.path.join(run_copy, "notes.txt"), "w") as f:
        f.write("mine")
    before = snapshot(run_copy)
    line = one_error_line(capsys, ["train", *FLAGS, "--run-dir", run_copy, "--overwrite"])
    assert "notes.txt" in line
    assert snapshot(run_copy) == before


def test_overwrite_refuses_the_working_directory_and_its_parents(run_copy, capsys, monkeypatch):
    before = snapshot(run_copy)
    monkeypatch.chdir(run_copy)
    line = one_error_line(capsys, ["train", *FLAGS, "--run-dir", ".", "--overwrite"])
    assert "working directory" in line
    os.mkdir(os.path.join(run_copy, "inside"))
    monkeypatch.chdir(os.path.join(run_copy, "inside"))
    one_error_line(capsys, ["train", *FLAGS, "--run-dir", "..", "--overwrite"])
    os.rmdir(os.path.join(run_copy, "inside"))
    assert snapshot(run_copy) == before


def test_overwrite_refuses_a_symlink_and_keeps_its_target(run_copy, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(run_copy, target_is_directory=True)
    before = snapshot(run_copy)
    line = one_error_line(capsys, ["train", *FLAGS, "--run-dir", str(link), "--overwrite"])
    assert "symlink" in line
    assert snapshot(run_copy) == before and link.is_symlink()


@pytest.mark.parametrize("value", ["abc", "[1,2]", '{"a":1}', "true"])
def test_overwrite_with_a_bad_value_keeps_the_old_run(run_copy, capsys, value):
    before = snapshot(run_copy)
    line = one_error_line(capsys, ["train", *FLAGS, "--run-dir", run_copy, "--overwrite", "--set",
                                   f"hparams.lr={value}"])
    assert "lr" in line
    assert snapshot(run_copy) == before


def test_overwrite_replaces_a_run(run_copy, capsys):
    stale = os.path.join(run_copy, ".tmp-stale")
    open(stale, "w").close()
    assert main(["train", *FLAGS, "--run-dir", run_copy, "--overwrite", "--steps", "80"]) == 0
    assert not os.path.exists(stale) and os.path.exists(os.path.join(run_copy, MARKER))
    assert checkpoint.read_meta(os.path.join(run_copy, CHECKPOINT))["iteration"] == 4
    assert [r["iteration"] for r in read_metrics(os.path.join(run_copy, METRICS))] == [1, 2, 3, 4]


def test_overwrite_replaces_a_checkpoint_folder_only_as_orbax_writes_it(good_run, run_copy, tmp_path, capsys):
    """checkpoint/ is the one tree --overwrite removes: a user's file in it, or a symlink anywhere in it
    (even where orbax writes a folder), stops the overwrite and nothing is deleted."""
    folder = os.path.join(run_copy, CHECKPOINT)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("mine")
    for plant in (lambda: open(os.path.join(folder, "notes.txt"), "w").close(),
                  lambda: os.mkdir(os.path.join(folder, "8", "mine")),
                  lambda: os.symlink(theirs, os.path.join(folder, "7")),
                  lambda: os.symlink(theirs, os.path.join(folder, "8", "state", "d", "x"))):
        plant()
        before = snapshot(run_copy)
        line = one_error_line(capsys, ["train", *FLAGS, "--run-dir", run_copy, "--overwrite"])
        assert "checkpoint" in line and "nothing was deleted" in line, line
        assert snapshot(run_copy) == before and (theirs / "keep.txt").read_text() == "mine"
        shutil.rmtree(folder)
        shutil.copytree(os.path.join(good_run, CHECKPOINT), folder)
    os.mkdir(os.path.join(folder, "9.orbax-checkpoint-tmp"))  # a save killed mid-write: orbax's, so it goes
    assert main(["train", *FLAGS, "--run-dir", run_copy, "--overwrite", "--steps", "40"]) == 0
    assert os.listdir(folder) == ["2"] and (theirs / "keep.txt").read_text() == "mine"


def test_resume_removes_a_killed_saves_temporary_folder(good_run, run_copy):
    """A save killed before orbax's rename leaves `<step>.orbax-checkpoint-tmp` (and a kill while orbax
    deletes the older step leaves part of it): --resume continues from the newest complete step, removes
    the temporary folder, and the run ends as the uninterrupted one."""
    folder = os.path.join(run_copy, CHECKPOINT)
    t = training.make_training(training.load_run_state(good_run)[1])
    state = t.init()
    for _ in range(6):
        state, _ = t.chunk(state, 1)
    meta = {k: v for k, v in checkpoint.read_meta(folder).items() if k not in ("format", "treedef", "leaves")}
    shutil.rmtree(folder)
    checkpoint.save_checkpoint(folder, state, {**meta, "iteration": 6})
    shutil.copytree(os.path.join(folder, "6"), os.path.join(folder, "4"))  # an older step, half deleted
    shutil.rmtree(os.path.join(folder, "4", "state"))
    shutil.copytree(os.path.join(folder, "6"), os.path.join(folder, "7.orbax-checkpoint-tmp"))
    assert checkpoint.latest_step(folder) == 6 and checkpoint.read_meta(folder)["iteration"] == 6
    assert main(["train", "--resume", run_copy, "--no-progress", "--no-plot"]) == 0
    assert os.listdir(folder) == ["8"]
    resumed, full = (jax.tree.leaves(training.load_run_state(d)[2]) for d in (run_copy, good_run))
    assert all(np.array_equal(a, b) for a, b in zip(resumed, full))


def test_resume_reports_a_damaged_metrics_line_and_rewrites_nothing(run_copy, capsys):
    path = os.path.join(run_copy, METRICS)
    with open(path) as f:
        lines = f.readlines()
    lines[2] = lines[2][:10] + "\n"  # damage line 3 of 8
    with open(path, "w") as f:
        f.writelines(lines)
    before = snapshot(run_copy)
    line = one_error_line(capsys, ["train", "--resume", run_copy, "--no-progress"])
    assert "line 3" in line and "metrics.jsonl" in line
    assert snapshot(run_copy) == before


def test_resume_cuts_only_a_torn_last_line(run_copy, capsys):
    path = os.path.join(run_copy, METRICS)
    rows = read_metrics(path)
    with open(path, "a") as f:
        f.write('{"iteration": 9, "env_st')  # a kill in the middle of a write
    assert main(["train", "--resume", run_copy, "--no-progress", "--no-plot"]) == 0
    assert read_metrics(path) == rows and open(path).read().endswith("}\n")


def test_resume_refuses_a_folder_that_only_holds_a_run_config(good_run, tmp_path, capsys):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(os.path.join(good_run, CONFIG), project / CONFIG)  # a valid RunConfig, but not a run
    (project / ".tmp-draft").write_text("mine")
    line = one_error_line(capsys, ["train", "--resume", str(project), "--no-progress"])
    assert "not a jaxmarl-lab run directory" in line
    assert sorted(os.listdir(project)) == [".tmp-draft", CONFIG]


def test_a_second_process_is_refused_with_the_holders_pid(run_copy, capsys):
    before = snapshot(run_copy)
    with DirLock(run_copy, "run directory"):
        line = one_error_line(capsys, ["train", "--resume", run_copy, "--no-progress"])
        assert f"pid {os.getpid()}" in line
        line = one_error_line(capsys, ["train", *FLAGS, "--run-dir", run_copy, "--overwrite"])
        assert f"pid {os.getpid()}" in line
    assert snapshot(run_copy) == before


@pytest.mark.slow
def test_two_concurrent_trains_leave_one_consistent_run(tmp_path):
    run_dir = str(tmp_path / "both")
    flags = [f for f in FLAGS if f != "--no-progress"]
    procs = [subprocess.Popen([*COMMAND, "train", *flags, "--run-dir", run_dir, "--overwrite"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1].decode() for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], errs  # one trains, the other is refused (locked, or the folder appeared)
    assert [r["iteration"] for r in read_metrics(os.path.join(run_dir, METRICS))] == list(range(1, 9))


# ----- bad input: one line, exit 2 --------------------------------------------------------------------
def test_bad_inputs_are_one_line(tmp_path, capsys):
    run_dir = str(tmp_path / "never")
    cases = [
        (["--config", str(tmp_path)], "is a directory"),
        (["--seed", str(2**64)], "seed"),
        (["--steps", "99999999999999999999999"], "total_env_steps"),
        (["--memory-budget-mb", "-5"], "--memory-budget-mb"),
    ]
    for extra, needle in cases:
        start = time.perf_counter()
        line = one_error_line(capsys, ["train", *FLAGS, *extra, "--run-dir", run_dir])
        assert needle in line, (extra, line)
        assert time.perf_counter() - start < 30, extra
        assert not os.path.exists(run_dir), extra


def test_a_run_too_large_for_memory_is_refused_before_allocating(tmp_path, capsys):
    start = time.perf_counter()
    line = one_error_line(capsys, ["train", "--set", "runner.num_envs=670000", "--steps", "20000000",
                                   "--run-dir", str(tmp_path / "r")])
    assert "memory" in line and "num_envs" in line and time.perf_counter() - start < 60
    assert not os.path.exists(tmp_path / "r")


def test_too_many_seeds_is_refused_fast_and_keys_are_closed_form(tmp_path, capsys):
    start = time.perf_counter()
    line = one_error_line(capsys, ["train", *FLAGS, "--seeds", "100000", "--memory-budget-mb", "64",
                                   "--run-dir", str(tmp_path / "r")])
    assert "--seeds" in line and time.perf_counter() - start < 30
    expected = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in (7, 8, 9, 2**32 - 1)])
    assert np.array_equal(seed_keys(7, 3), expected[:3]) and np.array_equal(seed_keys(2**32 - 1, 1), expected[3:])


def test_abbreviated_flags_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--step", "800"])
    assert exit_info.value.code == 2
    assert "--step" in capsys.readouterr().err


def test_steps_not_a_multiple_of_an_iteration_are_stated(tmp_path, capsys):
    flags = [f for f in FLAGS if f != "--no-progress"]
    assert main(["train", *flags, "--steps", "179", "--run-dir", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "training 160 steps" in err, err


def test_read_only_parent_is_one_line(tmp_path, capsys, monkeypatch):
    def refuse(path, mode=0o777):
        raise PermissionError(errno.EACCES, "Permission denied", path)
    monkeypatch.setattr(os, "mkdir", refuse)  # root ignores chmod, so the refusal is injected
    line = one_error_line(capsys, ["train", *FLAGS, "--run-dir", str(tmp_path / "ro" / "run")])
    assert "permission denied" in line.lower()


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    """The disk fills while orbax writes iteration 3 (in its background thread): one line, iteration 2 kept."""
    calls = {"n": 0}
    save_fn = ocp.JsonCheckpointHandler._save_fn

    async def full_disk(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await save_fn(self, *args, **kwargs)
    monkeypatch.setattr(ocp.JsonCheckpointHandler, "_save_fn", full_disk)
    run_dir = str(tmp_path / "full")
    line = one_error_line(capsys, ["train", *FLAGS, "--run-dir", run_dir])
    assert "iteration 3" in line and "No space left on device" in line, line
    assert "previous checkpoint (iteration 2) is kept" in line, line
    assert checkpoint.read_meta(os.path.join(run_dir, CHECKPOINT))["iteration"] == 2
    assert not [n for n in os.listdir(run_dir) if n.startswith(".tmp-")]
    assert checkpoint.latest_step(os.path.join(run_dir, CHECKPOINT)) == 2  # the half-written step is no checkpoint
    monkeypatch.setattr(ocp.JsonCheckpointHandler, "_save_fn", save_fn)
    assert main(["train", "--resume", run_dir, "--no-progress", "--no-plot"]) == 0
    assert os.listdir(os.path.join(run_dir, CHECKPOINT)) == ["8"]  # resume removed the failed save's tmp folder


def test_eval_of_a_huge_episode_count_is_one_line(good_run, capsys):
    start = time.perf_counter()
    line = one_error_line(capsys, ["eval", good_run, "--episodes", "100000000"])
    assert "--episodes" in line and "memory" in line and time.perf_counter() - start < 60


def test_crafted_array_header_is_refused_before_allocating(run_copy, capsys):
    """An old-format checkpoint.npz whose array header claims 10^12 floats."""
    _, _, state, meta = training.load_run_state(run_copy)
    shutil.rmtree(os.path.join(run_copy, CHECKPOINT))
    path = os.path.join(run_copy, NPZ_CHECKPOINT)
    write_npz_checkpoint(path, state, {k: v for k, v in meta.items() if k not in ("format", "treedef", "leaves")})
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    members["leaf_00000.npy"] = header.getvalue() + b"\0" * 64  # magic, header, a few bytes of "data"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    line = one_error_line(capsys, ["eval", run_copy, "--episodes", "2"])
    assert "1000000000000" in line and "corrupt" in line


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "removed"])
def test_a_damaged_array_file_is_one_line_in_a_real_process(run_copy, damage):
    """In a process of its own (where nothing catches Python's "Exception ignored" reports, as pytest does):
    when orbax abandons its other reads after one fails, their reports do not reach stderr."""
    data = max((os.path.join(root, n) for root, _, names in os.walk(os.path.join(run_copy, CHECKPOINT, "8", "state"))
                for n in names if os.sep + "d" + os.sep in os.path.join(root, n)), key=os.path.getsize)
    if damage == "removed":
        os.unlink(data)
    else:
        with open(data, "r+b") as f:
            f.truncate(100)
    for argv in (["eval", run_copy, "--episodes", "2"], ["train", "--resume", run_copy, "--no-progress"]):
        proc = subprocess.run([*COMMAND, *argv], capture_output=True, text=True, timeout=300)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("jaxmarl-lab: error: checkpoint") and "corrupt" in lines[0], lines


# ----- numbers that lie ---------------------------------------------------------------------------------
def test_non_finite_checkpoint_is_refused_by_eval_and_resume(run_copy, capsys):
    built, run, state, meta = training.load_run_state(run_copy)
    leaves, treedef = jax.tree.flatten(state.learner)
    first = next(i for i, x in enumerate(leaves) if np.issubdtype(x.dtype, np.floating))
    leaves[first] = leaves[first].at[(0,) * leaves[first].ndim].set(np.nan)
    state = state._replace(learner=jax.tree.unflatten(treedef, leaves))
    shutil.rmtree(os.path.join(run_copy, CHECKPOINT))
    checkpoint.save_checkpoint(os.path.join(run_copy, CHECKPOINT), state,
                               {k: v for k, v in meta.items() if k not in ("format", "treedef", "leaves")})
    for argv in (["eval", run_copy, "--episodes", "2"], ["train", "--resume", run_copy, "--no-progress"]):
        line = one_error_line(capsys, argv)
        assert "non-finite" in line, argv


# ----- interrupts -------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_with_the_resume_line_and_resume_completes(tmp_path, signum, code):
    run_dir = str(tmp_path / "sig")
    flags = [f for f in FLAGS if f != "--no-progress"]
    flags[flags.index("--steps") + 1] = "4000"  # 200 iterations: long enough to be interrupted
    proc = subprocess.Popen([*COMMAND, "train", *flags, "--run-dir", run_dir], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    line = b""
    while b"steps/s" not in line:  # a progress line after a compiled chunk: training is under way
        line = proc.stderr.readline()
        assert line or proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == code, err
    assert "Traceback" not in err and "Segmentation" not in err
    assert err.strip().splitlines()[-1] == f"interrupted; continue with: jaxmarl-lab train --resume {run_dir}"
    done = checkpoint.read_meta(os.path.join(run_dir, CHECKPOINT))["iteration"]
    assert 1 <= done < 200
    assert main(["train", "--resume", run_dir, "--no-progress", "--no-plot"]) == 0
    assert [r["iteration"] for r in read_metrics(os.path.join(run_dir, METRICS))] == list(range(1, 201))


def test_run_config_from_dict_refuses_seeds_beyond_32_bits():
    with pytest.raises(ValueError, match="seed"):
        RunConfig.from_dict({"seed": 2**32 - 1, "num_seeds": 2})
    assert json.loads(json.dumps(RunConfig.from_dict({"seed": 2**32 - 2, "num_seeds": 2}).to_dict()))["seed"] > 0


def test_run_directory_holds_the_marker_and_config(good_run):
    names = set(os.listdir(good_run))
    assert {MARKER, CONFIG, CHECKPOINT, METRICS} <= names
