"""The `jaxmarl-lab` train / eval / list / bench commands: help, end to end, and one clear line per bad input."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil

import pytest

from jaxmarl_lab import envs
from jaxmarl_lab.cli import build_parser, main
from jaxmarl_lab.commands.train import parse_assignment
from jaxmarl_lab.runs.config import learner_names
from jaxmarl_lab.runs.marl_eval import check_marl_eval
from tests.helpers import one_error_line, snapshot

# IQL on the lesson grid: 40 iterations in chunks of 4 (10 checkpoints; each orbax save spends about 0.15 s
# syncing files on this machine, so a checkpoint per iteration would cost the suite seconds).
TINY_FLAGS = ["--learner", "iql", "--env", "grid-world", "--set", "env_kwargs.layout=lesson",
              "--set", "runner.num_envs=4", "--set", "runner.rollout_len=5", "--set", "runner.buffer_capacity=64",
              "--set", "runner.batch_size=8", "--set", "runner.updates_per_rollout=1",
              "--steps", "800", "--chunk-updates", "4", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("cli") / "iql-lesson")
    assert main(["train", *TINY_FLAGS, "--run-dir", path]) == 0
    return path


def subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["train", "eval", "bench", "list"])
def test_help_shows_every_option_with_its_default(command):
    p = subparser(command)
    options = p.format_help().split("\noptions:\n", 1)[1]
    entries = re.split(r"\n  (?=-)", "\n" + options)  # one entry per option, with its help text
    checked = 0
    for action in p._actions:
        if action.option_strings and action.dest != "help":
            entry = next(e for e in entries if e.startswith(action.option_strings[0]))
            assert "default" in entry, entry
            checked += 1
    assert checked >= (0 if command == "list" else 3)


def test_train_eval_and_marl_eval_end_to_end(run_dir, tmp_path, capsys):
    capsys.readouterr()
    assert sorted(os.listdir(run_dir)) == [".jaxmarl-lab-run", ".lock", "checkpoint", "config.json",
                                           "learning_curve.png", "metrics.jsonl", "train.json"]
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["learner"] == "iql" and config["env_kwargs"] == {"layout": "lesson"}
    assert config["runner"] == {"num_envs": 4, "rollout_len": 5, "buffer_capacity": 64, "batch_size": 8,
                                "updates_per_rollout": 1,
                                "total_env_steps": 800}
    out_json = str(tmp_path / "marl.json")
    assert main(["eval", run_dir, "--episodes", "3", "--marl-eval", out_json]) == 0
    out = capsys.readouterr().out
    assert "greedy return (per agent), 3 episodes per seed" in out
    assert "optimum (breadth-first search, fixed layout): 0.970" in out  # 3 steps x 0.01 below 1
    res = json.load(open(os.path.join(run_dir, "eval.json")))
    assert len(res["returns"]) == 1 and len(res["returns"][0]) == 3
    data = json.load(open(out_json))
    check_marl_eval(data)
    run = data["grid-world"]["layout=lesson"]["iql"]["run_0"]
    assert len(run["step_1"]["return"]) == 3 and len(run["absolute_metrics"]["return"]) == 30


def test_config_file_and_flags_compose(run_dir, tmp_path):
    """A saved config.json is a valid --config; flags override it; --env drops the old env's options."""
    from jaxmarl_lab.commands.train import run_config_from_args

    args = subparser("train").parse_args(["--config", os.path.join(run_dir, "config.json"), "--seeds", "3",
                                          "--set", "hparams.lr=0.01", "--set", "runner.num_envs=8"])
    run = run_config_from_args(args)
    assert (run.learner, run.env, run.num_seeds, run.hparams["lr"], run.runner["num_envs"]) == \
        ("iql", "grid-world", 3, 0.01, 8)
    assert run.env_kwargs == {"layout": "lesson"}
    run = run_config_from_args(subparser("train").parse_args(["--config", os.path.join(run_dir, "config.json"),
                                                              "--env", "particle-spread"]))
    assert run.env_kwargs == {} and run.learner == "iql"
    assert parse_assignment("env_kwargs.form=multi-step") == ("env_kwargs", "form", "multi-step")
    assert parse_assignment("config.recurrent=true") == ("config", "recurrent", True)


@pytest.mark.slow
def test_train_and_eval_with_the_previous_action_observed(tmp_path, capsys):
    """`env_kwargs.obs_last_action=true` wraps the env (O grows by A = 5) through train, checkpoint and eval."""
    path = str(tmp_path / "iql-lesson-last-action")
    assert main(["train", *TINY_FLAGS, "--set", "env_kwargs.obs_last_action=true", "--run-dir", path]) == 0
    config = json.load(open(os.path.join(path, "config.json")))
    assert config["env_kwargs"] == {"layout": "lesson", "obs_last_action": True}
    capsys.readouterr()
    assert main(["eval", path, "--episodes", "2"]) == 0
    assert "optimum (breadth-first search, fixed layout): 0.970" in capsys.readouterr().out
    assert envs.make("grid-world", **config["env_kwargs"]).spec.obs_dim == \
        envs.make("grid-world", layout="lesson").spec.obs_dim + 5


def test_resume_of_a_finished_run_changes_nothing(run_dir, capsys):
    before = snapshot(os.path.join(run_dir, "checkpoint"))
    assert main(["train", "--resume", run_dir, "--no-progress", "--no-plot"]) == 0
    assert snapshot(os.path.join(run_dir, "checkpoint")) == before and all(k.startswith("40" + os.sep) for k in before)


def test_list_names_every_env_learner_and_field(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in envs.registered_names() + learner_names():
        assert re.search(rf"^{name}: ", out, re.M), name
    for field in ("lr=0.0005", "eps_decay_steps=50000.0", "clip_eps=0.2", "tau=0.01", "layout='random'",
                  "local_ratio=0.5", "coupling=1.0", "lr=0.003", "learning_starts=0",
                  "on particle-spread:discrete: hparams.gamma=0.95"):
        assert field in out, field
    assert out.count("obs_last_action=False") == len(envs.registered_names())


def test_bench_prints_device_version_and_rates(capsys):
    assert main(["bench", "--num-envs", "8", "--num-steps", "4", "--repeats", "1", "--skip-training",
                 "--bench-envs", "rendezvous"]) == 0
    out = capsys.readouterr().out
    assert re.match(r"jax \d+\.\d+\.\d+, backend \w+, devices \[", out)
    assert len(re.findall(r"rendezvous.* [\d,]+ env-steps/s", out)) == 2  # one-step and multi-step


# ----- bad input: one line, exit status 2, naming what is wrong and what is allowed -------------------
def test_unknown_env(capsys):
    line = one_error_line(capsys, ["train", "--env", "nope"])
    assert "'nope'" in line and "grid-world, particle-spread, rendezvous" in line


def test_unknown_learner(capsys):
    line = one_error_line(capsys, ["train", "--learner", "nope"])
    assert "'nope'" in line and ", ".join(learner_names()) in line


def test_learner_that_does_not_apply_to_the_env(capsys):
    line = one_error_line(capsys, ["train", "--learner", "qmix", "--env", "rendezvous"])
    assert "'qmix' needs discrete actions" in line and "continuous" in line


def test_out_of_range_numbers(capsys):
    line = one_error_line(capsys, ["train", "--set", "hparams.lr=-1"])
    assert "PPOHParams.lr" in line and "got -1" in line and "[0.0, inf]" in line
    line = one_error_line(capsys, ["train", "--set", "runner.num_envs=0"])
    assert "num_envs" in line and "0" in line
    line = one_error_line(capsys, ["train", "--set", "env_params.max_steps=0"])
    assert "max_steps" in line
    line = one_error_line(capsys, ["train", "--seeds", "0"])
    assert "--seeds must be an integer >= 1, got 0" in line
    line = one_error_line(capsys, ["train", "--env", "grid-world", "--set", "env_kwargs.obs_last_action=yes"])
    assert "obs_last_action must be True or False, got 'yes'" in line


def test_unknown_field_and_bad_set(capsys):
    line = one_error_line(capsys, ["train", "--set", "hparams.learning_rate=1"])
    assert "learning_rate" in line and "lr" in line
    line = one_error_line(capsys, ["train", "--set", "model.width=3"])
    assert "'model'" in line and "env_kwargs, env_params, config, hparams, runner" in line


def test_existing_run_dir_without_overwrite(run_dir, capsys):
    line = one_error_line(capsys, ["train", *TINY_FLAGS, "--run-dir", run_dir])
    assert run_dir in line and "--overwrite" in line and "--resume" in line


def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    line = one_error_line(capsys, ["train", *TINY_FLAGS, "--run-dir", str(tmp_path), "--overwrite"])
    assert "nothing was deleted" in line and (tmp_path / "notes.txt").exists()


@pytest.mark.parametrize("damage", ["truncated array file", "removed array file", "garbage meta",
                                    "garbage array metadata", "empty step folder"])
def test_corrupt_checkpoint_on_eval_and_resume(run_dir, tmp_path, capsys, damage):
    copy = str(tmp_path / "corrupt")
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(".lock"))
    step = os.path.join(copy, "checkpoint", "40")
    data = max((os.path.join(root, n) for root, _, names in os.walk(os.path.join(step, "state")) for n in names
                if os.sep + "d" + os.sep in os.path.join(root, n)), key=os.path.getsize)
    if damage == "truncated array file":
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 3)
    elif damage == "removed array file":
        os.unlink(data)
    elif damage == "garbage meta":
        with open(os.path.join(step, "meta", "metadata"), "w") as f:
            f.write('{"format": ')
    elif damage == "garbage array metadata":
        with open(os.path.join(step, "state", "_METADATA"), "wb") as f:
            f.write(os.urandom(64))
    else:
        shutil.rmtree(step)
        os.mkdir(step)
    before = snapshot(copy)
    for argv in (["eval", copy, "--episodes", "2"], ["train", "--resume", copy]):
        line = one_error_line(capsys, argv)
        assert "corrupt" in line and step in line, (damage, argv, line)
    assert snapshot(copy) == before  # refused before anything was rewritten


def test_mismatched_checkpoint_on_resume(run_dir, tmp_path, capsys):
    copy = str(tmp_path / "mismatched")
    shutil.copytree(run_dir, copy)
    config = json.load(open(os.path.join(copy, "config.json")))
    config["config"] = {"hidden_dim": 32}
    json.dump(config, open(os.path.join(copy, "config.json"), "w"))
    line = one_error_line(capsys, ["train", "--resume", copy])
    assert "mismatched" in line and "config.json" in line


def test_resume_and_eval_of_missing_or_wrong_directories(tmp_path, capsys):
    missing = str(tmp_path / "missing")
    assert missing in one_error_line(capsys, ["train", "--resume", missing])
    assert missing in one_error_line(capsys, ["eval", missing])
    line = one_error_line(capsys, ["eval", str(tmp_path)])
    assert "not a jaxmarl-lab run directory" in line
    line = one_error_line(capsys, ["train", "--resume", str(tmp_path), "--env", "grid-world"])
    assert "cannot be combined with --env" in line


def test_debug_shows_the_traceback():
    with pytest.raises(ValueError, match="unknown environment"):
        main(["--debug", "train", "--env", "nope"])
