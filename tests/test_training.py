"""Long runs: checkpointed chunks, bit-identical resume (also after SIGKILL), non-finite stop,
evaluation with optimum gaps, marl-eval export and learning curves."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxmarl_lab import envs
from jaxmarl_lab.baselines import random_actions
from jaxmarl_lab.envs.rendezvous import team_reward
from jaxmarl_lab.runner import run_episodes
from jaxmarl_lab.runs import marl_eval, training
from jaxmarl_lab.runs.checkpoint import config_hash, latest_step, load_checkpoint, read_meta, save_checkpoint
from jaxmarl_lab.runs.config import RunConfig
from jaxmarl_lab.runs.evaluation import episode_starts, evaluate_run, optimal_returns, summarize
from jaxmarl_lab.runs.plots import curve_band, plot_run_dir
from jaxmarl_lab.stats import mean_ci, t_quantile_975
from tests.helpers import write_npz_checkpoint

# Off-policy (replay buffer, target network) and two vmapped seeds: 4 iterations of 4 envs x 5 steps.
TINY = RunConfig(env="grid-world", env_kwargs={"layout": "lesson"}, learner="iql",
                 runner={"num_envs": 4, "rollout_len": 5, "buffer_capacity": 64, "batch_size": 8,
                         "updates_per_rollout": 1,
                         "total_env_steps": 80}, num_seeds=2)


# 40 iterations of IQL on the lesson grid, a checkpoint after every one (tests/test_cli.py trains the same run).
SIGKILL_FLAGS = ["--learner", "iql", "--env", "grid-world", "--set", "env_kwargs.layout=lesson",
                 "--set", "runner.num_envs=4", "--set", "runner.rollout_len=5", "--set", "runner.buffer_capacity=64",
                 "--set", "runner.batch_size=8", "--set", "runner.updates_per_rollout=1",
                 "--steps", "800", "--chunk-updates", "1", "--no-progress"]


def leaves(run_dir: str) -> list[np.ndarray]:
    """Every leaf of the run directory's checkpoint, on the host."""
    return [np.asarray(x) for x in jax.tree.leaves(training.load_run_state(run_dir)[2])]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> str:
    """TINY trained without interruption, a checkpoint every 2 iterations."""
    run_dir = str(tmp_path_factory.mktemp("runs") / "full")
    training.train_run(TINY, run_dir, chunk_updates=2, progress=False)
    return run_dir


def test_run_directory_contents(full_run):
    assert sorted(os.listdir(full_run)) == [".jaxmarl-lab-run", ".lock", "checkpoint", "config.json",
                                            "learning_curve.png", "metrics.jsonl", "train.json"]
    assert os.listdir(os.path.join(full_run, "checkpoint")) == ["4"]  # only the latest step is kept
    assert RunConfig.from_dict(json.load(open(os.path.join(full_run, "config.json")))) == TINY
    rows = training.read_metrics(os.path.join(full_run, "metrics.jsonl"))
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    assert [r["env_steps"] for r in rows] == [20, 40, 60, 80]
    assert all(len(r["loss"]) == 2 for r in rows)  # one value per seed
    with open(os.path.join(full_run, "learning_curve.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_holds_the_whole_training_state(full_run):
    built, run, state, meta = training.load_run_state(full_run)
    assert meta["iteration"] == 4 and meta["config_hash"] == config_hash(TINY.to_dict())
    np.testing.assert_array_equal(state.learner.env_steps, [80, 80])
    np.testing.assert_array_equal(state.buffer.size, [16, 16])  # 4 iterations x 4 sequences, per seed
    assert state.learner.updates.tolist() == [3, 3]  # iteration 1 holds 4 < batch_size 8 sequences: no update
    assert not np.array_equal(state.key[0], state.key[1])  # each seed carries its own key
    # target network, optimizer moments and env state are in it too
    assert len(jax.tree.leaves(state.learner.opt_state)) > 0 and len(jax.tree.leaves(state.env_state)) > 0
    fresh = training.make_training(TINY).init()
    assert jax.tree.structure(fresh) == jax.tree.structure(state)


def test_resume_from_a_checkpoint_is_bit_identical(full_run, tmp_path):
    """Iterations 1-2 run, checkpointed, read back from disk and continued == one uninterrupted run."""
    run_dir = str(tmp_path / "resumed")
    shutil.copytree(full_run, run_dir)
    t = training.make_training(TINY)
    state, _ = t.chunk(t.init(), 2)
    meta = {"run": TINY.to_dict(), "config_hash": config_hash(TINY.to_dict()), "num_iterations": 4,
            "chunk_updates": 2, "iteration": 2}
    shutil.rmtree(os.path.join(run_dir, "checkpoint"))
    save_checkpoint(os.path.join(run_dir, "checkpoint"), state, meta)
    halfway = leaves(run_dir)
    training.resume_run(run_dir, progress=False, plot=False)
    resumed, full = leaves(run_dir), leaves(full_run)
    assert len(resumed) == len(full) > 20
    assert all(np.array_equal(a, b) for a, b in zip(resumed, full))
    assert not all(np.array_equal(a, b) for a, b in zip(halfway, full))  # the resume did train
    # metrics rows past the checkpoint were dropped and written again, identically
    assert training.read_metrics(os.path.join(run_dir, "metrics.jsonl")) == \
        training.read_metrics(os.path.join(full_run, "metrics.jsonl"))


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_gives_identical_params(tmp_path):
    run_dir = str(tmp_path / "killed")
    flags = [*SIGKILL_FLAGS, "--no-plot"]
    proc = subprocess.Popen([sys.executable, "-m", "jaxmarl_lab", "train", *flags, "--run-dir", run_dir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    path = os.path.join(run_dir, "checkpoint")
    deadline = time.time() + 120
    while latest_step(path) is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    killed_at = read_meta(path)["iteration"]
    assert 1 <= killed_at < 40  # killed mid-run (40 iterations in all)
    from jaxmarl_lab.cli import main
    assert main(["train", "--resume", run_dir, "--no-plot", "--no-progress"]) == 0
    reference = str(tmp_path / "reference")
    assert main(["train", *flags, "--run-dir", reference]) == 0
    resumed, full = leaves(run_dir), leaves(reference)
    assert len(resumed) == len(full) and all(np.array_equal(a, b) for a, b in zip(resumed, full))
    assert read_meta(path)["iteration"] == 40


def damaged_copies(full_run: str, tmp_path) -> dict[str, str]:
    """Copies of full_run's checkpoint folder, each damaged one way."""
    out = {}
    for how in ("truncated array file", "removed array file", "garbage meta", "garbage array metadata"):
        path = str(tmp_path / how.replace(" ", "-"))
        shutil.copytree(os.path.join(full_run, "checkpoint"), path)
        state = os.path.join(path, "4", "state")
        data = sorted((os.path.join(root, n) for root, _, names in os.walk(state) for n in names
                       if os.sep + "d" + os.sep in os.path.join(root, n)), key=os.path.getsize)[-1]
        if how == "truncated array file":
            with open(data, "r+b") as f:
                f.truncate(os.path.getsize(data) // 2)
        elif how == "removed array file":
            os.unlink(data)
        elif how == "garbage meta":
            with open(os.path.join(path, "4", "meta", "metadata"), "w") as f:
                f.write("{not json")
        else:
            with open(os.path.join(state, "_METADATA"), "w") as f:
                f.write("\x00garbage")
        out[how] = path
    return out


def test_load_checkpoint_refuses_corrupt_and_mismatched(full_run, tmp_path):
    path = os.path.join(full_run, "checkpoint")
    template = jax.eval_shape(training.make_training(TINY).init)
    good_hash = config_hash(TINY.to_dict())
    for how, damaged in damaged_copies(full_run, tmp_path).items():
        with pytest.raises(ValueError, match="corrupt") as info:
            load_checkpoint(damaged, template, good_hash)
        assert len(str(info.value).splitlines()) == 1, (how, str(info.value))
    with pytest.raises(ValueError, match="mismatched: written for run config"):
        load_checkpoint(path, template, "0" * 16)
    wider = RunConfig.from_dict({**TINY.to_dict(), "config": {"hidden_dim": 32}})
    with pytest.raises(ValueError, match=r"mismatched: leaf \d+ is float32\(2, (\d+, )?64\), the run config expects "
                                         r"float32\(2, (\d+, )?32\)"):
        load_checkpoint(path, jax.eval_shape(training.make_training(wider).init), good_hash)


def test_an_old_npz_checkpoint_is_read_and_resumed_into_the_new_format(full_run, tmp_path):
    """A run directory from before orbax (checkpoint.npz, format 1, as the old writer wrote it) still
    evaluates, and resumes bit-identically; the resumed run's checkpoint is an orbax folder."""
    run_dir = str(tmp_path / "old")
    shutil.copytree(full_run, run_dir, ignore=shutil.ignore_patterns("checkpoint", ".lock"))
    t = training.make_training(TINY)
    state, _ = t.chunk(t.init(), 2)
    meta = {"run": TINY.to_dict(), "config_hash": config_hash(TINY.to_dict()), "num_iterations": 4,
            "chunk_updates": 2, "iteration": 2}
    npz = os.path.join(run_dir, "checkpoint.npz")
    write_npz_checkpoint(npz, state, meta)
    assert read_meta(npz)["iteration"] == 2
    _, _, loaded, _ = training.load_run_state(run_dir)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(state)))
    training.resume_run(run_dir, progress=False, plot=False)
    assert sorted(os.listdir(run_dir)) == [".jaxmarl-lab-run", ".lock", "checkpoint", "config.json",
                                           "learning_curve.png", "metrics.jsonl", "train.json"]
    resumed, full = leaves(run_dir), leaves(full_run)
    assert len(resumed) == len(full) and all(np.array_equal(a, b) for a, b in zip(resumed, full))
    truncated = str(tmp_path / "truncated.npz")
    write_npz_checkpoint(truncated, state, meta)
    with open(truncated, "r+b") as f:
        f.truncate(os.path.getsize(truncated) // 2)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_checkpoint(truncated, jax.eval_shape(t.init), config_hash(TINY.to_dict()))


def test_non_finite_loss_stops_with_the_update_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    from jaxmarl_lab.cli import main
    run_dir = str(tmp_path / "nan")
    flags = [f for f in SIGKILL_FLAGS if f not in ("--chunk-updates", "1")]
    # lr=1e30 gives a non-finite loss at iteration 3 (update 2); two seeds, as TINY (compiled once)
    assert main(["train", *flags, "--set", "hparams.lr=1e30", "--steps", "200", "--chunk-updates", "2",
                 "--seeds", "2", "--run-dir", run_dir]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and re.search(r"^jaxmarl-lab: error: non-finite loss or parameters at update 3 of 10 \(seed 0, "
                                         r"learner update 2\).*last good checkpoint \(iteration 2\) is kept", lines[0]), lines
    _, _, state, meta = training.load_run_state(run_dir)
    assert meta["iteration"] == 2
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.learner.params))
    rows = training.read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    assert [r["iteration"] for r in rows] == [1, 2, 3] and rows[2]["loss"] == [None, None]


def test_load_trained_picks_one_seed(full_run):
    built, run, learner_state = training.load_trained(full_run, seed_index=1)
    _, _, state, _ = training.load_run_state(full_run)
    assert all(np.array_equal(a, b[1]) for a, b in zip(jax.tree.leaves(learner_state),
                                                       jax.tree.leaves(state.learner)))
    _, timestep = built.env.reset(jax.random.PRNGKey(0), built.env_params)
    act = jax.jit(lambda k, s, ts: built.learner.act(k, s, ts, built.learner.initial_carry(), False)[0])
    actions = act(jax.random.PRNGKey(1), learner_state, timestep)
    assert actions.shape == (2,)
    with pytest.raises(ValueError, match=r"seed_index must be in \[0, 2\)"):
        training.load_trained(full_run, seed_index=2)


def test_t_quantile_and_mean_ci_match_scipy():
    for df in (1, 2, 5, 29, 30, 31, 57, 400):
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-6)
    x = np.array([1.0, 2.5, 0.5, 4.0, 3.0])
    mean, half = mean_ci(x)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert mean == pytest.approx(x.mean()) and half == pytest.approx((high - low) / 2)


def test_curve_band_matches_a_per_iteration_t_interval():
    returns = np.array([[1.0, 2.0, 4.0], [0.0, np.nan, 2.0], [np.nan, np.nan, 5.0]])
    mean, half = curve_band(returns)
    np.testing.assert_allclose(mean, [7 / 3, 1.0, 5.0])
    assert half[0] == pytest.approx(stats.t.ppf(0.975, 2) * stats.sem([1.0, 2.0, 4.0]))
    assert half[1] == pytest.approx(stats.t.ppf(0.975, 1) * stats.sem([0.0, 2.0]))
    assert np.isnan(half[2])


def test_episode_starts_are_the_starts_run_episodes_plays():
    """Agents that never move earn T x the team reward of their start: checks the reconstruction."""
    env = envs.make("rendezvous", num_agents=3, form="multi-step")
    params = env.default_params()
    key = jax.random.PRNGKey(3)
    still = lambda k, ts, carry: (jnp.zeros(env.spec.action_shape), carry)
    out = jax.jit(lambda k: run_episodes(env, still, jnp.zeros(()), k, 6, 25, params))(key)
    starts = episode_starts(env, key, params, 6).pos  # (6, N, D)
    expected = 25 * np.array([team_reward(s, params.target, params.coupling) for s in starts])
    np.testing.assert_allclose(out["returns"], expected, rtol=1e-4)
    optimum, _ = optimal_returns(env, params, key, 6)
    assert np.all(optimum >= np.asarray(out["returns"]) - 1e-4)


def test_grid_world_optimum_per_random_layout_bounds_every_policy():
    env = envs.make("grid-world")  # random layouts, 2 agents on 4 x 4
    params = env.default_params()
    key = jax.random.PRNGKey(5)
    optimum, how = optimal_returns(env, params, key, 32)
    assert how == "breadth-first search per episode layout"
    starts = episode_starts(env, key, params, 32)
    # At least the largest Manhattan distance of any agent to its goal must be walked.
    walk = np.abs(np.asarray(starts.pos) - np.asarray(starts.goals)).sum(-1).max(-1)
    bound = 1.0 - 0.01 * walk
    assert np.all(optimum <= bound + 1e-6) and np.mean(np.isclose(optimum, bound)) > 0.8
    policy = lambda k, ts, carry: (random_actions(k, env.spec, ts.avail_actions), carry)
    random_returns = np.asarray(jax.jit(lambda k: run_episodes(env, policy, jnp.zeros(()), k, 32, 50, params))(key)[
        "returns"])
    assert np.all(random_returns <= optimum + 1e-5)
    summary = summarize(random_returns[None], optimum)
    assert summary["gap_mean"] > 0 and 0 <= summary["optimal_fraction"] < 1


def test_evaluate_run_reports_the_lesson_optimum_gap(full_run):
    res = evaluate_run(full_run, episodes=4)
    assert res["optimum_mean"] == pytest.approx(1.0 - 3 * 0.01)  # lesson layout: 3 steps at 0.01 each
    returns = np.array(res["returns"])
    assert returns.shape == (2, 4) and res["ci_over"] == "seeds"
    assert res["mean"] == pytest.approx(returns.mean())
    assert res["gap_mean"] == pytest.approx(0.97 - returns.mean(), abs=1e-6)
    assert res["env_steps"] == 80 and res["seeds"] == [0, 1]


def test_marl_eval_export_has_the_documented_structure(full_run, tmp_path):
    res, absolute = evaluate_run(full_run, episodes=3), evaluate_run(full_run, episodes=30, seed=1)
    other = {**res, "learner": "vdn", "run_dir": "elsewhere"}
    data = marl_eval.marl_eval_data([res, other], [absolute, {**absolute, "run_dir": "elsewhere"}])
    assert list(data) == ["grid-world"] and list(data["grid-world"]) == ["layout=lesson"]
    algos = data["grid-world"]["layout=lesson"]
    assert sorted(algos) == ["iql", "vdn"] and sorted(algos["iql"]) == ["run_0", "run_1"]
    run = algos["iql"]["run_1"]
    assert list(run) == ["step_1", "absolute_metrics"]  # absolute_metrics last, as marl-eval reads it
    assert run["step_1"]["step_count"] == 80 and run["step_1"]["return"] == res["returns"][1]
    assert len(run["absolute_metrics"]["return"]) == 30
    path = str(tmp_path / "marl.json")
    marl_eval.write_marl_eval(path, data)
    marl_eval.check_marl_eval(json.load(open(path)))
    broken = json.loads(json.dumps(data))
    del broken["grid-world"]["layout=lesson"]["vdn"]["run_0"]["absolute_metrics"]
    with pytest.raises(ValueError, match="vdn/run_0: needs step_<i> entries"):
        marl_eval.check_marl_eval(broken)
    with pytest.raises(ValueError, match="both hold seed 0 of iql"):
        marl_eval.marl_eval_data([res, {**res, "run_dir": "copy"}], [absolute, {**absolute, "run_dir": "copy"}])
    try:  # marl-eval's own pipeline, where it is installed
        from marl_eval.utils.data_processing_utils import data_process_pipeline
    except ImportError:
        return
    processed = data_process_pipeline(json.load(open(path)), ["return"])
    assert processed["extra"]["number_of_runs"] == 2 and processed["extra"]["number_of_steps"] == 1


def test_plot_run_dir_without_metrics_writes_nothing(tmp_path):
    assert plot_run_dir(str(tmp_path)) is False
