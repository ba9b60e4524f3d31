"""Logging sinks: TensorBoard event files read back against metrics.jsonl (per seed and step, after a resume
too), a fake W&B module, the sweep member writer, no sink imports without the flags, missing packages."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import types

import numpy as np
import pytest

from jaxmarl_lab.cli import main
from jaxmarl_lab.runs import training
from jaxmarl_lab.runs.checkpoint import config_hash, save_checkpoint
from jaxmarl_lab.runs.config import load_run_config
from jaxmarl_lab.runs.layout import CHECKPOINT
from jaxmarl_lab.runs.sinks import wandb_run_id, write_member_curve
from tests.helpers import one_error_line

# IQL on the lesson grid, 2 seeds: 8 iterations of 4 envs x 10 steps (40 env steps each), a chunk every 2.
FLAGS = ["--learner", "iql", "--env", "grid-world", "--set", "env_kwargs.layout=lesson", "--steps", "320",
         "--set", "runner.num_envs=4", "--set", "runner.rollout_len=10", "--set", "runner.buffer_capacity=100",
         "--set", "runner.batch_size=8", "--seeds", "2", "--seed", "5", "--chunk-updates", "2", "--no-progress",
         "--no-plot"]
SEEDS = (5, 6)


def read_events(path: str) -> list:
    """The events of one TFRecord event file: u64 length, u32 crc, payload, u32 crc per record."""
    from tensorboardX.proto.event_pb2 import Event

    with open(path, "rb") as f:
        data = f.read()
    events, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        event = Event()
        event.ParseFromString(data[pos + 12:pos + 12 + length])
        events.append(event)
        pos += 12 + length + 4
    return events


def event_files(folder: str) -> list[str]:
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if "tfevents" in n]


def scalars(folder: str, purge: bool = True) -> dict[str, list[tuple[int, float]]]:
    """`{tag: [(step, value), ...]}` as TensorBoard's event accumulator loads a run folder: files in name order;
    in a file whose version is >= 2, a SessionLog START at step P drops the points seen so far with step >= P
    (`_CheckForRestartAndMaybePurge`). `purge=False`: every point on disk."""
    from tensorboardX.proto.event_pb2 import SessionLog

    points: dict[str, list] = {}
    for path in event_files(folder):
        version = 0
        for e in read_events(path):
            if e.file_version:
                version = float(e.file_version.split(":")[1])
            if purge and version >= 2 and e.HasField("session_log") and e.session_log.status == SessionLog.START:
                points = {tag: [(s, v) for s, v in pts if s < e.step] for tag, pts in points.items()}
            for v in e.summary.value:
                if v.HasField("simple_value"):
                    points.setdefault(v.tag, []).append((e.step, v.simple_value))
    return points


def expected(run_dir: str, seed_index: int) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl's points of one seed, as float32 (TensorBoard's simple_value); nulls left out."""
    out: dict[str, list] = {}
    for row in training.read_metrics(os.path.join(run_dir, "metrics.jsonl")):
        for name, values in row.items():
            if name not in ("iteration", "env_steps") and values[seed_index] is not None:
                out.setdefault(name, []).append((row["env_steps"], float(np.float32(values[seed_index]))))
    return out


def hparams_of(folder: str) -> dict:
    """The hparams of the session-start summary in a run folder."""
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    for path in event_files(folder):
        for e in read_events(path):
            for v in e.summary.value:
                if v.tag == "_hparams_/session_start_info":
                    data = HParamsPluginData.FromString(v.metadata.plugin_data.content)
                    return {k: getattr(h, h.WhichOneof("kind")) for k, h in data.session_start_info.hparams.items()}
    return {}


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory) -> tuple[str, str]:
    pytest.importorskip("tensorboardX")
    root = tmp_path_factory.mktemp("sinks")
    run_dir, tb = str(root / "runs" / "iql-lesson"), str(root / "tb")
    assert main(["train", *FLAGS, "--run-dir", run_dir, "--tensorboard", tb]) == 0
    return run_dir, tb


def test_tensorboard_holds_metrics_jsonl_per_seed_and_step(tb_run):
    run_dir, tb = tb_run
    assert sorted(os.listdir(os.path.join(tb, "iql-lesson"))) == ["seed_5", "seed_6"]
    for s, seed in enumerate(SEEDS):
        folder = os.path.join(tb, "iql-lesson", f"seed_{seed}")
        got, want = scalars(folder), expected(run_dir, s)
        assert {"episode_return", "loss", "epsilon", "updates"} <= set(want)
        assert got == want  # every metric, every env step 40 ... 320, this seed's value
        assert [step for step, _ in got["loss"]] == list(range(80, 321, 40))  # iteration 1 has no update yet
        assert scalars(folder, purge=False) == got  # a fresh run: nothing purged
        hp = hparams_of(folder)
        assert hp["seed"] == seed and hp["learner"] == "iql" and hp["runner.num_envs"] == 4
    assert expected(run_dir, 0) != expected(run_dir, 1)  # the seeds differ, so the per-seed check can fail


def test_a_fresh_run_refuses_a_name_already_logged(tb_run, tmp_path, capsys):
    _, tb = tb_run
    other = str(tmp_path / "elsewhere" / "iql-lesson")  # another folder with the same last name
    line = one_error_line(capsys, ["train", *FLAGS, "--run-dir", other, "--tensorboard", tb])
    assert "already holds events of a run named 'iql-lesson'" in line and not os.path.exists(other)


def test_overwrite_hides_the_points_of_the_run_logged_before(tb_run, tmp_path):
    tb = str(tmp_path / "tb")
    shutil.copytree(tb_run[1], tb)
    other = str(tmp_path / "elsewhere" / "iql-lesson")
    assert main(["train", *FLAGS, "--set", "hparams.lr=0.01", "--run-dir", other, "--tensorboard", tb,
                 "--overwrite"]) == 0
    folder = os.path.join(tb, "iql-lesson", "seed_5")
    assert scalars(folder) == expected(other, 0) != expected(tb_run[0], 0)  # only the new run's points
    assert len(scalars(folder, purge=False)["epsilon"]) == 2 * len(expected(other, 0)["epsilon"])


def test_resume_after_the_checkpoint_leaves_one_point_per_step(tb_run, tmp_path):
    """Metrics logged past the checkpoint (as a kill leaves them) are recomputed on --resume: TensorBoard
    shows each step once, with metrics.jsonl's value."""
    finished, tb_finished = tb_run
    run_dir, tb = str(tmp_path / "iql-lesson"), str(tmp_path / "tb")
    shutil.copytree(finished, run_dir)
    shutil.copytree(tb_finished, tb)
    run = load_run_config(os.path.join(run_dir, "config.json"))
    t = training.make_training(run)
    state, _ = t.chunk(t.init(), 2)  # the checkpoint of iteration 2 (80 env steps)
    shutil.rmtree(os.path.join(run_dir, CHECKPOINT))  # the finished run's; replaced by iteration 2's
    save_checkpoint(os.path.join(run_dir, CHECKPOINT), state,
                    {"run": run.to_dict(), "config_hash": config_hash(run.to_dict()), "num_iterations": 8,
                     "chunk_updates": 2, "iteration": 2})
    assert main(["train", "--resume", run_dir, "--tensorboard", tb, "--no-progress", "--no-plot"]) == 0
    for s, seed in enumerate(SEEDS):
        folder = os.path.join(tb, "iql-lesson", f"seed_{seed}")
        on_disk = scalars(folder, purge=False)["epsilon"]
        assert len(on_disk) > len({step for step, _ in on_disk})  # steps 120 ... 320 were written twice
        events = read_events(event_files(folder)[-1])  # the resumed writer's file opens with the purge
        start = next(i for i, e in enumerate(events) if e.HasField("session_log"))
        assert events[start].session_log.status == 1 and events[start].step == 81  # START: hides steps >= 81
        assert not any(e.HasField("summary") for e in events[:start])
        shown = scalars(folder)
        assert shown == expected(run_dir, s)
        assert all(len(pts) == len({step for step, _ in pts}) for pts in shown.values())


def test_member_curve_for_sweeps(tmp_path):
    pytest.importorskip("tensorboardX")
    steps = np.array([100, 200, 300])
    path = write_member_curve(str(tmp_path), "p001_seed2", steps, {"episode_return": np.array([-1.0, np.nan, 0.5])},
                              {"lr": np.float32(0.25), "hidden_dim": 64, "seed": 2}, {"final_return": 0.5})
    assert path == os.path.join(str(tmp_path), "p001_seed2")
    assert scalars(path) == {"episode_return": [(100, -1.0), (300, 0.5)], "summary/final_return": [(300, 0.5)]}
    assert hparams_of(path) == {"lr": 0.25, "hidden_dim": 64.0, "seed": 2.0}
    # written again (a sweep run again): the old points are hidden, the new ones shown
    write_member_curve(str(tmp_path), "p001_seed2", steps[:2], {"episode_return": np.array([2.0, 3.0])}, {}, {})
    assert scalars(path) == {"episode_return": [(100, 2.0), (200, 3.0)]}
    with pytest.raises(ValueError, match="shape"):
        write_member_curve(str(tmp_path), "bad", steps, {"episode_return": np.zeros(2)}, {}, {})


class FakeWandb(types.ModuleType):
    """Records `wandb.init(**kwargs)`, `run.log(values, step=...)` and `run.finish()`."""

    def __init__(self):
        super().__init__("wandb")
        self.inits, self.logs, self.finished = [], [], 0

    def init(self, **kwargs):
        self.inits.append(kwargs)
        fake = self

        class Run:
            def log(self, values, step):
                fake.logs.append((step, dict(values)))

            def finish(self):
                fake.finished += 1

        return Run()


def test_wandb_receives_config_and_per_seed_metrics(monkeypatch, tmp_path):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run_dir = str(tmp_path / "iql-lesson")
    assert main(["train", *FLAGS, "--run-dir", run_dir, "--wandb", "proj", "--wandb-mode", "offline"]) == 0
    (init,) = fake.inits
    with open(os.path.join(run_dir, "config.json")) as f:
        assert init["config"] == json.load(f)
    assert init["project"] == "proj" and init["name"] == "iql-lesson" and init["mode"] == "offline"
    assert init["resume"] == "allow" and init["id"] == wandb_run_id(run_dir) and len(init["id"]) == 16
    rows = training.read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    assert [step for step, _ in fake.logs] == [r["env_steps"] for r in rows] == list(range(40, 321, 40))
    for (_, values), row in zip(fake.logs, rows):
        want = {f"seed_{seed}/{k}": v[s] for k, v in row.items() if k not in ("iteration", "env_steps")
                for s, seed in enumerate(SEEDS) if v[s] is not None}
        assert values == want
    assert fake.finished == 1
    assert main(["train", "--resume", run_dir, "--wandb", "proj", "--no-progress", "--no-plot"]) == 0
    assert fake.inits[1]["id"] == init["id"] and "mode" not in fake.inits[1]  # the same W&B run continues
    assert len(fake.logs) == len(rows) and fake.finished == 2  # a finished run logs nothing new


@pytest.mark.parametrize("flag, module, install", [("--tensorboard", "tensorboardX", "'jaxmarl-lab[tensorboard]'"),
                                                   ("--wandb", "wandb", "pip install wandb")])
def test_a_missing_package_is_one_line_before_anything_is_written(monkeypatch, tmp_path, capsys, flag, module,
                                                                  install):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    run_dir, target = str(tmp_path / "run"), str(tmp_path / "tb")
    line = one_error_line(capsys, ["train", *FLAGS, "--run-dir", run_dir, flag, target])
    assert flag in line and install in line and module in line
    assert os.listdir(tmp_path) == []


@pytest.mark.slow  # CI runs it with -m slow; keeps the default suite under 6 minutes on 2 cores
def test_a_plain_train_imports_neither_sink_package(tmp_path):
    code = ("import sys; from jaxmarl_lab.cli import main; "
            f"assert main(['train', *{FLAGS!r}, '--steps', '80', '--run-dir', {str(tmp_path / 'run')!r}]) == 0; "
            "loaded = [m for m in ('wandb', 'tensorboardX') if m in sys.modules]; assert not loaded, loaded")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's jaxmarl_lab
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.path.exists(os.path.join(str(tmp_path / "run"), CHECKPOINT))
