"""Tests of the centralized-vs-independent critic variance experiment (the textbook experiment)."""

from __future__ import annotations

import csv
import dataclasses
import json
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmarl_lab
from jaxmarl_lab import stats as lab_stats
from jaxmarl_lab.cli import COMMANDS
from jaxmarl_lab.envs.rendezvous import team_reward
from studies.critic_variance import variance_report
from studies.critic_variance.cli import main
from studies.critic_variance.variance import (
    SeedResult,
    VarianceConfig,
    cell_lr,
    curvature,
    expected_team_reward,
    make_cells,
    make_sweep_fn,
    masked_team_reward,
    run_seed,
    run_seeds_cells,
    seed_draws,
)

KEY = jax.random.key(7)
SMALL = VarianceConfig(num_agents=(4,), couplings=(1.0,), seeds=3, steps=6)


def reference_seed(means0: np.ndarray, noise: np.ndarray, config: VarianceConfig, coupling: float):
    """The textbook loop for one seed, both critics, written out plainly in float64.

    Returns `(grad_var (2,), final expected reward (2,), final means (2, N))`, centralized first.
    """
    sigma, target = config.sigma, config.target
    n = means0.shape[0]

    def reward(a):  # -(sum_i (a_i - t)^2 + c sum_{i<j} (a_i - a_j)^2)
        pairs = sum((a[i] - a[j]) ** 2 for i in range(n) for j in range(i + 1, n))
        return -(np.sum((a - target) ** 2) + coupling * pairs)

    out_var, out_reward, out_means = [], [], []
    for critic in ("centralized", "independent"):
        mu = means0.astype(np.float64).copy()
        b_running = np.zeros(n)
        var_sum = 0.0
        for t in range(config.steps):
            actions = mu + sigma * noise[t]  # (B, N)
            returns = np.array([reward(a) for a in actions])  # (B,)
            baseline = returns.mean() if critic == "centralized" else b_running  # scalar or (N,)
            terms = (returns[:, None] - baseline) * (actions - mu) / sigma ** 2  # (B, N)
            var_sum += np.var(terms, axis=0).mean()
            mu = mu + config.lr * terms.mean(axis=0)
            b_running = b_running + config.baseline_rate * (returns.mean() - b_running)
        pairs = sum((mu[i] - mu[j]) ** 2 + 2 * sigma ** 2 for i in range(n) for j in range(i + 1, n))
        out_var.append(var_sum / config.steps)
        out_reward.append(-(np.sum((mu - target) ** 2 + sigma ** 2) + coupling * pairs))
        out_means.append(mu)
    return np.array(out_var), np.array(out_reward), np.array(out_means)


def test_envs_stays_out_of_sys_modules():
    assert "envs" not in sys.modules


@pytest.mark.parametrize("n, coupling", [(2, 1.0), (4, 0.25), (5, 4.0)])
def test_masked_reward_matches_team_reward(n, coupling):
    actions = jax.random.normal(KEY, (7, n))
    want = jax.vmap(lambda a: team_reward(a[:, None], 0.7, coupling))(actions)
    got = masked_team_reward(actions, jnp.ones(n), 0.7, coupling)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # padded with garbage agents behind a mask: the same
    padded = jnp.concatenate([actions, 100.0 * jnp.ones((7, 3))], axis=1)
    mask = jnp.concatenate([jnp.ones(n), jnp.zeros(3)])
    np.testing.assert_allclose(masked_team_reward(padded, mask, 0.7, coupling), want, rtol=1e-5)


def test_expected_reward_closed_form_matches_monte_carlo():
    means, sigma, coupling = jnp.array([0.1, -0.4, 0.9]), 0.25, 1.0
    samples = means + sigma * jax.random.normal(KEY, (400_000, 3))
    monte_carlo = float(jnp.mean(masked_team_reward(samples, jnp.ones(3), 0.7, coupling)))
    closed = float(expected_team_reward(means, jnp.ones(3), 0.7, coupling, sigma))
    assert closed == pytest.approx(monte_carlo, abs=5e-3)


def test_small_cell_matches_unbatched_reference_loop():
    raw = make_sweep_fn(SMALL)(KEY)
    seed_keys = jax.random.split(KEY, SMALL.seeds)  # the sweep's own seed keys
    for s in range(SMALL.seeds):
        means0, noise = seed_draws(seed_keys[s], 4, SMALL)
        grad_var, final, means = reference_seed(np.asarray(means0), np.asarray(noise), SMALL, 1.0)
        np.testing.assert_allclose(raw.grad_var[s, 0], grad_var, rtol=1e-4)
        np.testing.assert_allclose(raw.final_reward[s, 0], final, rtol=1e-5)
        np.testing.assert_allclose(raw.final_means[s, 0], means, rtol=1e-5, atol=1e-6)
    assert not raw.diverged.any()


def test_vmap_over_seeds_equals_separate_runs():
    config = dataclasses.replace(SMALL, seeds=4, seed_chunk=3)  # also crosses a block boundary
    raw = make_sweep_fn(config)(KEY)
    cell = jax.tree.map(lambda x: x[0], make_cells(config))
    single = jax.jit(run_seed, static_argnums=2)
    for s, seed_key in enumerate(jax.random.split(KEY, config.seeds)):
        alone = single(seed_key, cell, config)
        for got, want in zip(jax.tree.map(lambda x: x[s, 0], raw), alone):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)  # float32 fusion order


def test_padded_cell_equals_unpadded_run():
    padded = dataclasses.replace(SMALL, num_agents=(2, 16), couplings=(0.25, 1.0), seeds=5, steps=20)
    unpadded = dataclasses.replace(padded, num_agents=(2,), couplings=(1.0,))
    raw_padded = make_sweep_fn(padded)(KEY)
    raw_alone = make_sweep_fn(unpadded)(KEY)
    index = padded.cells.index((2, 1.0))
    np.testing.assert_allclose(raw_padded.grad_var[:, index], raw_alone.grad_var[:, 0], rtol=1e-5)
    np.testing.assert_allclose(raw_padded.final_reward[:, index], raw_alone.final_reward[:, 0], rtol=1e-5)
    np.testing.assert_allclose(raw_padded.final_means[:, index, :, :2], raw_alone.final_means[:, 0], rtol=1e-5)
    np.testing.assert_array_equal(raw_padded.final_means[:, index, :, 2:], 0.0)  # padding never moves


def test_diverged_seeds_are_counted_and_excluded():
    config = dataclasses.replace(SMALL, seeds=6, steps=100)
    cells = make_cells(dataclasses.replace(config, couplings=(1.0, 1.0)))
    cells = cells._replace(lr=jnp.array([config.lr, 5.0]))  # the second cell: lr * lambda = 50
    raw = jax.tree.map(np.asarray, jax.jit(run_seeds_cells, static_argnums=2)(
        jax.random.split(KEY, config.seeds), cells, config))
    assert not raw.diverged[:, 0].any() and raw.diverged[:, 1].all()
    row = variance_report.summarize_cell(raw, 1, 4, 1.0, 5.0)
    assert row["diverged_frac_centralized"] == 1.0 and row["diverged_frac_independent"] == 1.0
    assert row["valid_seeds"] == 0 and np.isnan(row["grad_var_ratio"])
    # one seed diverged under one critic only: it leaves both critics' numbers
    grad_var = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, np.nan], [2.0, 4.0]])[:, None]
    reward = np.array([[-1.0, -1.0], [-2.0, -3.0], [-5.0, np.nan], [-3.0, -5.0]])[:, None]
    fake = SeedResult(grad_var=grad_var, final_reward=reward, final_means=np.zeros((4, 1, 2, 1)),
                      diverged=~np.isfinite(grad_var))
    row = variance_report.summarize_cell(fake, 0, 1, 1.0, 0.02, num_bootstrap=200)
    assert row["valid_seeds"] == 3 and row["diverged_frac_independent"] == 0.25
    assert row["diverged_frac_centralized"] == 0.0
    assert row["grad_var_ratio"] == pytest.approx(8.0 / 4.0)
    assert row["outcome_var_ratio"] == pytest.approx(np.var([-1, -3, -5]) / np.var([-1, -2, -3]))
    assert row["mean_final_reward_centralized"] == pytest.approx(-2.0)


def test_bootstrap_ci_covers_known_variance_ratio_and_shrinks():
    rng = np.random.default_rng(0)
    widths = []
    for n in (200, 5000):
        x, y = 2.0 * rng.standard_normal(n), rng.standard_normal(n)  # variances 4 and 1
        ratio, low, high = lab_stats.bootstrap_ratio_ci(x, y, "var", rng=1)
        assert low < 4.0 < high and low < ratio < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 3  # ~ 1/sqrt(n): 5x narrower expected
    x, y = rng.exponential(3.0, 4000), rng.exponential(1.0, 4000)  # means 3 and 1
    ratio, low, high = lab_stats.bootstrap_ratio_ci(x, y, "mean", rng=2)
    assert low < 3.0 < high
    assert np.isnan(lab_stats.bootstrap_ratio_ci(x[:1], y[:1])[0])


def test_curvature_scaled_lr_keeps_reference_cell_and_removes_curvature_divergence():
    config = VarianceConfig(curvature_scaled_lr=True)
    assert cell_lr(config, 4, 1.0) == pytest.approx(config.lr)
    steps = [cell_lr(config, n, c) * curvature(n, c) for n, c in config.cells]
    np.testing.assert_allclose(steps, config.lr * curvature(4, 1.0))  # 0.2 everywhere
    # N=16, c=4: plain lr * lambda = 0.02 * 130 = 2.6 > 2, so even the centralized critic
    # (whose gradient noise is small) diverges; scaled, it does not. The independent critic
    # can still diverge from its gradient noise, which the curvature does not capture.
    hard = dataclasses.replace(config, num_agents=(16,), couplings=(4.0,), seeds=8)
    assert not np.asarray(make_sweep_fn(hard)(KEY).diverged)[..., 0].any()
    plain = dataclasses.replace(hard, curvature_scaled_lr=False)
    assert np.asarray(make_sweep_fn(plain)(KEY).diverged)[..., 0].all()


def test_config_validation():
    with pytest.raises(ValueError, match="seeds"):
        VarianceConfig(seeds=0)
    with pytest.raises(ValueError, match="couplings"):
        VarianceConfig(couplings=(-1.0,))


def test_writers_and_cli(tmp_path, capsys):
    assert main(["--seeds", "12", "--steps", "15", "--out", str(tmp_path),
                 "--num-agents", "2", "4", "--couplings", "1"]) == 0
    printed = capsys.readouterr().out
    assert "N= 4 c=1" in printed
    with open(tmp_path / "variance.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["num_agents"]) for r in rows] == [2, 4]
    with open(tmp_path / "variance.json") as f:
        payload = json.load(f)
    assert payload["config"]["seeds"] == 12 and payload["config"]["steps"] == 15
    assert len(payload["records"]) == 2
    assert (tmp_path / "variance.png").stat().st_size > 1000


def test_the_engine_does_not_depend_on_the_study():
    """The study is research beside the package: `jaxmarl_lab` never imports `studies`, and the
    former `jaxmarl-lab variance` command is the study's own `python -m studies.critic_variance`."""
    package = pathlib.Path(jaxmarl_lab.__file__).resolve().parent
    importing = [str(p) for p in package.rglob("*.py")
                 if re.search(r"^\s*(from|import)\s+studies\b", p.read_text(), re.MULTILINE)]
    assert importing == []
    assert "variance" not in COMMANDS
    root = package.parent
    result = subprocess.run([sys.executable, "-m", "studies.critic_variance", "--help"], cwd=root,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    for option in ("--part", "--seeds", "--curvature-scaled-lr", "--env-steps", "--no-value-norm"):
        assert option in result.stdout
