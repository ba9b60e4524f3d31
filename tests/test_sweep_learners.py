"""The critic comparison through the command line: `learner` as a sweep dimension (MAPPO vs
IPPO, each its own compile group, equal to standalone training runs), and the contradictions
that would silently train the wrong critic (`ippo` with `critic="centralized"`, a search over
`critic`) refused with one line before anything is traced."""

from __future__ import annotations

import json

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
