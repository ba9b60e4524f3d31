"""The critic comparison through the command line: `learner` as a sweep dimension (MAPPO vs
IPPO, each its own compile group, equal to standalone training runs), and the contradictions
that would silently train the wrong critic (`ippo` with `critic="centralized"`, a search over
`critic`) refused with one line before anything is traced."""

from __future__ import annotations

import json
import os
import sys

import jax
import numpy as np
import pytest

from jaxmarl_lab import cli
from jaxmarl_lab.runner import make_train
from jaxmarl_lab.runs.config import RunConfig, build
from jaxmarl_lab.sweeps import run as sweep
from tests.helpers import one_error_line

TINY_PPO = {"env": "particle-spread", "env_kwargs": {"num_agents": 2},
            "runner": {"total_env_steps": 400, "num_envs": 4, "rollout_len": 10},
            "config": {"hidden_dim": 16, "num_minibatches": 2, "num_epochs": 1}, "seed": 3, "num_seeds": 2}


@pytest.mark.parametrize("learner, critic", [("ippo", "centralized"), ("mappo", "independent")])
def test_a_critic_that_contradicts_the_learner_is_one_line(learner, critic, capsys, tmp_path):
    line = one_error_line(capsys, ["train", "--learner", learner, "--set", f"config.critic={critic}", "--steps",
                                   "400", "--run-dir", str(tmp_path / "run")])
    assert f"learner {learner!r} means config.critic=" in line and f"config.critic={critic!r}" in line
    assert ("use learner 'mappo'" if critic == "centralized" else "use learner 'ippo'") in line
    assert not (tmp_path / "run").exists()


def test_the_critic_the_learner_names_may_be_repeated():
    built = build(RunConfig(learner="ippo", config={"critic": "independent"}))
    assert built.learner_config.critic == "independent"


def test_a_search_over_the_critic_is_refused(tmp_path, capsys):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({**TINY_PPO, "learner": "mappo", "search": {"critic": ["centralized", "independent"]}}))
    line = one_error_line(capsys, ["sweep", "--config", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert "search name 'critic' cannot vary" in line and '"learner": ["mappo", "ippo"]' in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("search, match", [
    ({"learner": "mappo"}, "must be a list of learner names"),
    ({"learner": ["mappo", "ppo"]}, "unknown learner 'ppo'"),
    ({"learner": ["mappo", "mappo"]}, "names a learner twice"),
    ({"learner": ["mappo", "iql"], "clip_eps": [0.1]}, "'clip_eps' is not a hyperparameter"),
])
def test_bad_learner_dimensions_are_refused(search, match):
    with pytest.raises(ValueError, match=match):
        sweep.parse_search(sweep.SweepSpec.from_dict({**TINY_PPO, "learner": "mappo", "search": search}))


@pytest.mark.slow  # CI runs it with -m slow; keeps the default suite under 6 minutes on 2 cores
def test_learner_is_a_sweep_dimension_whose_members_equal_standalone_runs(tmp_path, capsys):
    """MAPPO vs IPPO x 2 seeds x 2 learning rates through `jaxmarl-lab sweep`: two compile groups, and
    each member's final return is that of `make_train` of the member's own run config."""
    path = tmp_path / "critics.json"
    path.write_text(json.dumps({**TINY_PPO, "learner": "mappo",
                                "search": {"learner": ["mappo", "ippo"], "lr": [1e-3, 3e-3]}}))
    assert cli.main(["sweep", "--config", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    capsys.readouterr()
    with open(tmp_path / "out" / "results.json") as f:
        rows = json.load(f)["rows"]
    assert len(rows) == 8 and {r["learner"] for r in rows} == {"mappo", "ippo"}
    assert len({r["group"] for r in rows}) == 2  # one compiled program per learner
    for row in (rows[0], rows[-1]):
        run = RunConfig.from_dict({**{k: v for k, v in TINY_PPO.items() if k not in ("seed", "num_seeds")},
                                   "learner": row["learner"], "hparams": {"lr": row["lr"]}})
        built = build(run)
        _, metrics = jax.jit(make_train(built.env, built.learner, built.runner, built.env_params))(
            jax.random.PRNGKey(row["seed"]), built.hparams)
        tail = max(1, built.runner.num_iterations // 10)
        assert row["final_return"] == pytest.approx(float(np.nanmean(metrics["episode_return"][-tail:])), rel=1e-5)
    # the critics really differ (400 steps are too few for the sampled actions, hence the returns, to differ)
    by = {(r["learner"], r["lr"], r["seed_index"]): r["final_value_loss"] for r in rows}
    assert abs(by[("mappo", 1e-3, 0)] - by[("ippo", 1e-3, 0)]) > 1e-3
    with open(tmp_path / "out" / "best_config.json") as f:
        assert json.load(f)["learner"] in ("mappo", "ippo")


# ----- what a sweep gives per member: learning curves, a greedy evaluation, the best member's run ------------
ONE_STEP = {"env": "rendezvous", "env_kwargs": {"num_agents": 2}, "learner": "mappo",  # one-step: optimum 0
            "runner": {"total_env_steps": 1600, "num_envs": 8, "rollout_len": 10},
            "config": {"hidden_dim": 16, "num_minibatches": 2, "num_epochs": 2},
            "seed": 7, "num_seeds": 2, "eval_episodes": 4, "search": {"lr": [1e-3, 1e-2]}}


@pytest.fixture(scope="module")
def one_step_sweep(tmp_path_factory):
    """The sweep run in two calls (one chunk, then the rest), as an interrupted sweep resumes."""
    out = tmp_path_factory.mktemp("one_step") / "out"
    spec = sweep.SweepSpec.from_dict(ONE_STEP)
    lines = []
    first = sweep.run_sweep(spec, str(out), chunk_size=1, max_chunks=1, progress=lines.append)
    with open(out / "curves.jsonl", "a") as f:  # a killed writer's curve of a member never written to results.json
        f.write(json.dumps({"point": 1, "seed_index": 1, "env_steps": [1], "episode_return": [99.0]}) + "\n")
    result = sweep.run_sweep(spec, str(out), chunk_size=1, progress=lines.append)
    assert not first.complete and result.complete
    return out, result, lines


def test_every_member_has_its_learning_curve_once(one_step_sweep):
    out, result, _ = one_step_sweep
    with open(out / "curves.jsonl") as f:
        curves = [json.loads(line) for line in f]
    assert sorted((c["point"], c["seed_index"]) for c in curves) == [(p, s) for p in range(2) for s in range(2)]
    built = build(RunConfig.from_dict({k: v for k, v in ONE_STEP.items() if k not in ("search", "eval_episodes")}))
    iterations = built.runner.num_iterations  # 1600 / 80 = 20 iterations: one bin each
    row = next(r for r in result.rows if (r["point"], r["seed_index"]) == (1, 1))
    curve = next(c for c in curves if (c["point"], c["seed_index"]) == (1, 1))
    hparams = built.hparams._replace(lr=np.float32(row["lr"]))
    _, metrics = jax.jit(make_train(built.env, built.learner, built.runner, built.env_params))(
        jax.random.PRNGKey(row["seed"]), hparams)
    expected = np.asarray(metrics["episode_return"], np.float64)
    got = np.array([np.nan if v is None else v for v in curve["episode_return"]])
    assert len(got) == iterations and curve["env_steps"] == [80 * (i + 1) for i in range(iterations)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)  # not the stray line's 99.0


def test_greedy_evaluation_and_the_best_member_match_jaxmarl_lab_eval(one_step_sweep, capsys):
    out, result, lines = one_step_sweep
    assert all(r["greedy_optimum"] == 0.0 for r in result.rows)  # the closed-form one-step optimum
    assert len({r["greedy_return"] for r in result.rows}) == 4  # the members' greedy policies differ
    best = max(result.rows, key=lambda r: r["greedy_return"])
    with open(out / "best_member" / "config.json") as f:
        saved = json.load(f)
    assert (saved["seed"], saved["num_seeds"], saved["hparams"]["lr"]) == (best["seed"], 1, best["lr"])
    assert cli.main(["eval", str(out / "best_member"), "--episodes", "4"]) == 0
    capsys.readouterr()
    with open(out / "best_member" / "eval.json") as f:
        evaluated = json.load(f)
    assert evaluated["mean"] == pytest.approx(best["greedy_return"], rel=1e-5, abs=1e-6)
    assert any("members/s" in line and "to go" in line for line in lines)


def test_without_greedy_evaluation_the_best_final_return_is_saved_and_renders(tmp_path, capsys):
    spec = {"env": "grid-world", "env_kwargs": {"layout": "lesson"}, "learner": "iql",
            "runner": {"total_env_steps": 4000, "num_envs": 4, "rollout_len": 10, "buffer_capacity": 500,
                       "batch_size": 8}, "seed": 7, "num_seeds": 2, "eval_episodes": 0, "search": {"lr": [1e-2]}}
    result = sweep.run_sweep(sweep.SweepSpec.from_dict(spec), str(tmp_path / "out"), progress=False)
    assert "greedy_return" not in result.rows[0] and "greedy_optimum" not in result.rows[0]
    best = max(result.rows, key=lambda r: r["final_return"])
    with open(tmp_path / "out" / "best_member" / "config.json") as f:
        assert json.load(f)["seed"] == best["seed"]
    assert cli.main(["render", "--run", str(tmp_path / "out" / "best_member"), "--out", str(tmp_path / "render")]) == 0
    assert (tmp_path / "render" / "episode.gif").stat().st_size > 0


def test_sweep_tensorboard_and_wandb_mirror_every_member(one_step_sweep, tmp_path, monkeypatch, capsys):
    """Through `jaxmarl-lab sweep --tensorboard DIR --wandb P`: one TensorBoard run per member holding its
    curve from curves.jsonl and its summaries; one W&B run receiving every member's row."""
    from tests.test_sinks import FakeWandb, scalars

    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(ONE_STEP))
    out, tb = tmp_path / "out", tmp_path / "tb"
    assert cli.main(["sweep", "--config", str(path), "--out", str(out), "--quiet", "--tensorboard", str(tb),
                     "--wandb", "proj", "--wandb-mode", "offline"]) == 0
    capsys.readouterr()
    with open(out / "results.json") as f:
        rows = json.load(f)["rows"]
    with open(out / "curves.jsonl") as f:
        curves = {(c["point"], c["seed_index"]): c for c in map(json.loads, f)}
    assert sorted(os.listdir(tb / "out")) == [f"p{p:04d}_seed{s}" for p in range(2) for s in range(2)]
    for row in rows:
        logged = scalars(str(tb / "out" / f"p{row['point']:04d}_seed{row['seed_index']}"))
        curve = curves[(row["point"], row["seed_index"])]
        assert [s for s, _ in logged["episode_return"]] == curve["env_steps"]
        np.testing.assert_allclose([v for _, v in logged["episode_return"]], curve["episode_return"], rtol=1e-6)
        assert logged["summary/greedy_return"] == [(curve["env_steps"][-1], pytest.approx(row["greedy_return"]))]
    assert len(fake.inits) == 1 and fake.inits[0]["name"] == "out" and fake.finished == 1
    assert [values["member/greedy_return"] for _, values in fake.logs] == [r["greedy_return"] for r in rows]
    assert [values["member/lr"] for _, values in fake.logs] == [r["lr"] for r in rows]


def test_readme_critic_sweep_file_is_the_mappo_vs_ippo_comparison(tmp_path):
    """README's critics.toml, as written: 2 learners x 2 learning rates x 8 seeds, one program per learner."""
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    (block,) = re.findall(r"```toml\n(# critics.toml.*?)```", readme, re.S)
    path = tmp_path / "critics.toml"
    path.write_text(block)
    spec = sweep.load_sweep(str(path))
    dims = sweep.parse_search(spec)
    groups = sweep.make_groups(spec, dims, sweep.expand_points(spec, dims))
    assert [g.built.learner_config.critic for g in groups] == ["centralized", "independent"]
    assert [len(g.points) for g in groups] == [2, 2] and spec.base.num_seeds == 8
    assert spec.base.env == "particle-spread"
