"""Tests of the MAPPO-vs-IPPO critic variance experiment while training, on tiny sizes."""

from __future__ import annotations

import csv
import json
import sys
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from jaxmarl_lab import stats as lab_stats
from studies.critic_variance import critic_training_report as report
from studies.critic_variance.cli import main
from studies.critic_variance.critic_training import (
    CriticRuns,
    CriticTrainingConfig,
    make_critic_runs_fn,
    make_train_fns,
)

# 2 agents, 2 seeds, 3 iterations of 2 envs x 25 steps (one whole episode per env and iteration)
TINY = CriticTrainingConfig(num_agents=(2,), seeds=2, env_steps=150, num_envs=2, rollout_len=25, hidden_dim=8,
                            num_epochs=1, num_minibatches=1, grad_var_samples=8)
KEY = jax.random.key(3)


@pytest.fixture(scope="module")
def tiny_runs():
    return jax.tree.map(np.asarray, make_critic_runs_fn(TINY, 2, jax.devices()[:1])(KEY))


def test_envs_stays_out_of_sys_modules():
    assert "envs" not in sys.modules


@pytest.mark.slow  # the study's training runs; the engine's own tests cover MAPPO and IPPO
def test_both_critics_log_finite_per_iteration_variances(tiny_runs):
    assert isinstance(tiny_runs, CriticRuns)
    for field in tiny_runs:
        assert field.shape == (TINY.seeds, 2, TINY.iterations)
        assert np.isfinite(field).all()
    assert (tiny_runs.pg_variance > 0).all()
    # paired seeds: the same key gives both critics the same first rollout, hence the same returns
    np.testing.assert_array_equal(tiny_runs.episode_return[:, 0, 0], tiny_runs.episode_return[:, 1, 0])
    # ... and different seeds differ
    assert tiny_runs.episode_return[0, 0, 0] != tiny_runs.episode_return[1, 0, 0]
    # after the first update the policies part (the critics' advantages differ)
    assert not np.allclose(tiny_runs.pg_variance[:, 0, 1:], tiny_runs.pg_variance[:, 1, 1:])


@pytest.mark.slow
def test_vmapped_seeds_equal_a_separate_run(tiny_runs):
    # independent reference: the runner's own train function for IPPO, seed 1 alone
    seed_key = jax.random.split(KEY, TINY.seeds)[1]
    _, metrics = jax.jit(make_train_fns(TINY, 2)[1])(seed_key, TINY.hparams())
    for name in ("pg_variance", "episode_return", "advantage_std"):
        np.testing.assert_allclose(getattr(tiny_runs, name)[1, 1], metrics[name], rtol=2e-4, atol=1e-6)


def test_phase_ratio_and_cis_on_synthetic_runs_with_known_ratio():
    rng = np.random.default_rng(0)
    seeds, iterations = 400, 9
    cen = rng.lognormal(0.0, 0.5, size=(seeds, iterations))
    # independent = 2x centralized in the first third, 0.5x in the last; per-seed noise on top
    factor = np.repeat([2.0, 1.0, 0.5], 3) * rng.lognormal(0.0, 0.1, size=(seeds, iterations))
    var = np.stack([cen, cen * factor], axis=1)  # (S, 2, I)
    ret = np.stack([np.full((seeds, iterations), -20.0), np.full((seeds, iterations), -30.0)], axis=1)
    ret = ret + rng.standard_normal(ret.shape)
    var[0, 1, 4] = np.nan  # one missing iteration: skipped within the span
    var[1, 0, 6:] = np.nan  # a seed with no finite value in the late span: out of that ratio only
    runs = CriticRuns(pg_variance=var, advantage_std=np.ones_like(var), episode_return=ret)
    config = SimpleNamespace(num_envs=4, rollout_len=25, phases=3)
    rows = report.summarize({3: runs}, config, num_bootstrap=500)
    assert [r["phase"] for r in rows] == ["early", "middle", "late"]
    assert [(r["iter_start"], r["iter_end"]) for r in rows] == [(0, 3), (3, 6), (6, 9)]
    assert rows[2]["env_steps_start"] == 600 and rows[2]["env_steps_end"] == 900
    assert [r["valid_seeds"] for r in rows] == [seeds, seeds, seeds - 1]
    for row, want in zip(rows, (2.0, 1.0, 0.5)):
        truth = want * np.exp(0.1 ** 2 / 2)  # E[cen * factor] / E[cen], factor independent of cen
        assert row["pg_variance_ratio_ci_low"] < truth < row["pg_variance_ratio_ci_high"]
        assert row["pg_variance_ratio"] == pytest.approx(want, rel=0.05)
        assert row["pg_variance_ratio_ci_high"] - row["pg_variance_ratio_ci_low"] < 0.1 * want
        assert row["return_centralized_ci_low"] < -20.0 < row["return_centralized_ci_high"]
        assert row["return_independent"] == pytest.approx(-30.0, abs=0.2)
    assert rows[0]["frac_seeds_independent_higher"] == 1.0 and rows[2]["frac_seeds_independent_higher"] == 0.0
    # the ratio is the ratio of seed means, computed by hand for the middle span; the geometric one too
    means = np.nanmean(var[:, :, 3:6], axis=-1)
    assert rows[1]["pg_variance_ratio"] == pytest.approx(means[:, 1].mean() / means[:, 0].mean())
    assert rows[1]["pg_variance_geo_ratio"] == pytest.approx(np.exp(np.log(means[:, 1] / means[:, 0]).mean()))
    for row, want in zip(rows, (2.0, 1.0, 0.5)):
        assert row["pg_variance_geo_ratio_ci_low"] < row["pg_variance_geo_ratio"] < row["pg_variance_geo_ratio_ci_high"]
        assert row["pg_variance_geo_ratio"] == pytest.approx(want, rel=0.05)
        # advantage std of 1 everywhere: the per-advantage-variance ratio is the same number
        assert row["pg_variance_per_adv_var_geo_ratio"] == pytest.approx(row["pg_variance_geo_ratio"])
    finals = report.final_returns({3: runs}, config)
    assert finals[0]["iter_start"] == 8 and finals[0]["return_independent"] == pytest.approx(
        ret[:, 1, 8].mean())


def test_bootstrap_mean_ci_covers_the_mean():
    x = np.random.default_rng(1).exponential(2.0, size=3000)
    mean, low, high = lab_stats.bootstrap_mean_ci(x, rng=0)
    assert low < 2.0 < high and low < mean < high and high - low < 0.3
    assert np.isnan(lab_stats.bootstrap_mean_ci(x[:1])[1])


@pytest.mark.parametrize("field, value, match", [
    ("num_agents", (1, 3), "num_agents must be a non-empty tuple of integers >= 2"),
    ("num_agents", (), "num_agents"),
    ("num_agents", (3, 3), "must not repeat"),
    ("seeds", 1, "seeds must be an integer >= 2, got 1"),
    ("env_steps", 100, r"env_steps \(100\) must give at least one iteration"),
    ("num_minibatches", 3, r"num_minibatches \(3\) must divide num_envs \(2\)"),
    ("lr", -1.0, "lr must be in"),
])
def test_bad_config_is_refused_with_a_clear_message(field, value, match):
    with pytest.raises(ValueError, match=match):
        CriticTrainingConfig(**{**{f: getattr(TINY, f) for f in ("num_agents", "seeds", "env_steps", "num_envs",
                                                                  "rollout_len", "num_minibatches")},
                                field: value})


def test_cli_refuses_bad_input_before_tracing(capsys):
    assert main(["--part", "2", "--num-agents", "1", "3"]) == 2
    assert "num_agents must be a non-empty tuple of integers >= 2" in capsys.readouterr().err
    assert main(["--part", "2", "--seeds", "1"]) == 2
    assert "seeds must be an integer >= 2" in capsys.readouterr().err


@pytest.mark.slow  # the study's training runs; the engine's own tests cover MAPPO and IPPO
def test_writers(tiny_runs, tmp_path):
    out = report.write_outputs({2: tiny_runs}, TINY, str(tmp_path), {"key_seed": 3}, blocks=3)
    with open(out["paths"]["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["phase"] for r in rows] == ["early", "middle", "late"] and rows[0]["num_agents"] == "2"
    with open(out["paths"]["json"]) as f:
        payload = json.load(f)
    assert payload["config"]["seeds"] == 2 and payload["key_seed"] == 3
    assert np.asarray(payload["per_seed_phase_means"]["2"]["late"]["pg_variance"]).shape == (2, 2)
    assert (tmp_path / "critic_variance_training.png").stat().st_size > 1000
    for got, want in zip(report.load_raw(out["paths"]["raw"])[2], tiny_runs):
        np.testing.assert_array_equal(got, want)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no temporary file left behind
    assert "| 2 |" in report.format_markdown(out["records"], out["final"])
