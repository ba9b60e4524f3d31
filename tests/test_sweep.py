"""Sweeps: search spaces, bad input, IQM ranking, a point equal to a standalone train,
chunked equal to unchunked, resume after an interruption, the files and the command.

The trained sweep is tiny (IQL on the grid-world lesson, 800 env steps, 3 points x 2 seeds)
and compiled twice in all (1 and 6 members per chunk); multi-device and multi-host runs are
in test_sweep_multihost.py.
"""

from __future__ import annotations

import csv
import json
import math
import socket
import sys
import time

import jax
import numpy as np
import pytest
from scipy import stats

from jaxmarl_lab import cli
from jaxmarl_lab import stats as lab_stats
from jaxmarl_lab.runner import make_train
from jaxmarl_lab.runs.config import RunConfig, build, load_run_config
from jaxmarl_lab.sweeps import report as sweep_report
from jaxmarl_lab.sweeps import run as sweep

BASE = {"env": "grid-world", "env_kwargs": {"layout": "lesson"}, "learner": "iql",
        "runner": {"total_env_steps": 800, "num_envs": 4, "rollout_len": 10, "buffer_capacity": 100,
                   "batch_size": 8, "updates_per_rollout": 1},
        "seed": 5, "num_seeds": 2}
SPEC = {**BASE, "search": {"lr": [3e-4, 1e-3, 3e-3]}}


def _same(a, b) -> bool:
    """Equal rows, NaN equal to NaN."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_envs_stays_out_of_sys_modules():
    assert "envs" not in sys.modules


@pytest.mark.parametrize("values, match", [
    ({**BASE, "search": {}}, "search' is empty"),
    ({**BASE}, "search' is empty"),
    ({**BASE, "search": {"learning_rate": [1e-3]}}, "'learning_rate' is not a .* valid names .*lr"),
    ({**BASE, "search": {"lr": [1e-3, -1.0]}}, r"search point 1 .*lr must be in \[0.0, inf\], got -1.0"),
    ({**BASE, "search": {"gamma": {"uniform": [0.5, 1.5], "num": 3}}}, r"'gamma' range .*gamma must be in"),
    ({**BASE, "search": {"lr": {"log_uniform": [0.0, 1e-2], "num": 3}}}, "log_uniform needs low > 0"),
    ({**BASE, "search": {"lr": {"log_uniform": [1e-4, 1e-2]}}}, "a grid needs 'num'"),
    ({**BASE, "search": {"lr": []}}, "empty list"),
    ({**BASE, "search": {"lr": [1e-3]}, "mode": "random"}, "num_samples"),
    ({**BASE, "search": {"hidden_dim": [0, 8]}}, "hidden_dim"),
    ({**BASE, "search": {"lr": [1e-3]}, "trials": 3}, "unknown sweep keys"),
])
def test_bad_search_is_refused_before_tracing(values, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        sweep.run_sweep(sweep.SweepSpec.from_dict(values), str(tmp_path), progress=False)
    assert not (tmp_path / "results.json").exists()


def test_unreachable_coordinator_is_a_clear_error_not_a_hang():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ValueError, match=f"coordinator 127.0.0.1:{port} unreachable after 1 s"):
        sweep.init_distributed(f"127.0.0.1:{port}", num_processes=2, process_id=1, timeout=1)
    assert time.monotonic() - start < 10
    with pytest.raises(ValueError, match="process_id must be an integer"):
        sweep.init_distributed("127.0.0.1:1234", num_processes=2)
    with pytest.raises(ValueError, match="0 <= process_id < num_processes"):
        sweep.init_distributed("127.0.0.1:1234", num_processes=2, process_id=2)
    with pytest.raises(ValueError, match="HOST:PORT"):
        sweep.check_coordinator("localhost", 1)


def test_grid_random_and_groups():
    spec = sweep.SweepSpec.from_dict({**BASE, "search": {
        "lr": {"log_uniform": [1e-4, 1e-2], "num": 3}, "config.hidden_dim": [16, 32], "gamma": [0.9, 0.99]}})
    dims = sweep.parse_search(spec)
    assert [(d.section, d.field) for d in dims] == [("hparams", "lr"), ("config", "hidden_dim"), ("hparams", "gamma")]
    points = sweep.expand_points(spec, dims)
    assert len(points) == 12 and len({json.dumps(p, sort_keys=True) for p in points}) == 12
    np.testing.assert_allclose(sorted({p["lr"] for p in points}), [1e-4, 1e-3, 1e-2])  # geometric grid
    groups = sweep.make_groups(spec, dims, points)
    assert [g.overrides for g in groups] == [{"config.hidden_dim": 16}, {"config.hidden_dim": 32}]
    for g in groups:  # each group's points share the shape, and their hparams are stacked in order
        assert {points[i]["config.hidden_dim"] for i in g.points} == {g.built.learner_config.hidden_dim}
        np.testing.assert_allclose(g.hparams.lr, [points[i]["lr"] for i in g.points], rtol=1e-6)
        assert g.hparams.td_lambda.shape == (6,)  # base values broadcast over the points
    random = {**BASE, "mode": "random", "num_samples": 4000, "sample_seed": 3,
              "search": {"lr": {"log_uniform": [1e-4, 1e-2]}, "hidden_dim": {"int_uniform": [8, 10]}}}
    spec = sweep.SweepSpec.from_dict(random)
    points = sweep.expand_points(spec, sweep.parse_search(spec))
    lr = np.array([p["lr"] for p in points])
    assert lr.min() >= 1e-4 and lr.max() <= 1e-2
    # log-uniform: log10(lr) is uniform on [-4, -2], so each half of the decades holds half the draws
    assert abs(np.mean(lr < 1e-3) - 0.5) < 0.03 and abs(np.mean(lr < 10 ** -3.5) - 0.25) < 0.03
    assert {p["hidden_dim"] for p in points} == {8, 9, 10}
    again = sweep.expand_points(spec, sweep.parse_search(spec))
    assert again == points  # reproducible from sample_seed


def test_iqm_and_bootstrap_against_scipy():
    rng = np.random.default_rng(0)
    for n in range(1, 10):
        x = rng.normal(size=n)
        assert math.isclose(lab_stats.iqm(x), stats.trim_mean(x, 0.25), rel_tol=1e-12)
    x = np.array([0.0, 1.0, 2.0, 100.0])
    assert lab_stats.iqm(x) == 1.5  # the outlier and the minimum are trimmed
    centre, low, high = lab_stats.bootstrap_iqm_ci(rng.normal(3.0, 1.0, size=40))
    assert low < centre < high and low < 3.0 < high and high - low < 1.5
    assert lab_stats.bootstrap_iqm_ci([2.0, math.nan]) == (2.0, 2.0, 2.0)
    rows = [{"point": p, "seed_index": s, "x": p, "final_return": v}
            for p, values in enumerate([[1, 2, 3, 4], [5, 5, 5, -50], [0, 0, 0, 0]]) for s, v in enumerate(values)]
    ranking = sweep_report.rank_points(rows, ["x"])
    assert [r["point"] for r in ranking] == [1, 0, 2] and [r["rank"] for r in ranking] == [1, 2, 3]
    assert ranking[0]["iqm"] == 5.0 and ranking[0]["mean"] == -8.75  # IQM is robust to the bad seed


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The sweep with a memory budget of one member per chunk, its progress lines and folder."""
    spec = sweep.SweepSpec.from_dict(SPEC)
    dims = sweep.parse_search(spec)
    group = sweep.make_groups(spec, dims, sweep.expand_points(spec, dims))[0]
    lines, out = [], tmp_path_factory.mktemp("sweep")
    budget = sweep.sweep_member_bytes(group.built, spec.eval_episodes)  # one member per chunk
    result = sweep.run_sweep(spec, str(out), memory_budget=budget, progress=lines.append)
    return result, lines, out


def test_sweep_rows_and_memory_chunking(swept):
    result, lines, _ = swept
    assert result.complete and result.chunks_run == 6  # 6 members, one per chunk
    assert any("too large for one pass, running in chunks" in line for line in lines)
    assert [(r["point"], r["seed_index"], r["seed"], r["lr"]) for r in result.rows] == \
        [(p, s, 5 + s, lr) for p, lr in enumerate(SPEC["search"]["lr"]) for s in range(2)]
    assert all(r["env_steps"] == 800 for r in result.rows)
    assert len({r["final_loss"] for r in result.rows}) == 6  # every member trained differently


def test_sweep_point_equals_standalone_train(swept):
    result = swept[0]
    built = build(RunConfig.from_dict({**BASE, "hparams": {"lr": 1e-3}}))
    train = jax.jit(make_train(built.env, built.learner, built.runner, built.env_params))
    for s in range(2):
        _, metrics = train(jax.random.PRNGKey(5 + s), built.hparams)  # the lesson preset's, with lr 1e-3
        row = next(r for r in result.rows if r["point"] == 1 and r["seed_index"] == s)
        returns = np.asarray(metrics["episode_return"])  # (20,), last tenth = 2 iterations
        np.testing.assert_allclose(row["final_return"], np.nanmean(returns[-2:]), rtol=1e-6)
        np.testing.assert_allclose(row["mean_return"], np.nanmean(returns), rtol=1e-6)
        np.testing.assert_allclose(row["final_loss"], np.nanmean(np.asarray(metrics["loss"])[-2:]), rtol=1e-6)


def test_chunked_equals_unchunked(swept, tmp_path):
    whole = sweep.run_sweep(sweep.SweepSpec.from_dict(SPEC), str(tmp_path), progress=False)
    assert whole.chunks_run == 1  # all 6 members in one chunk (the default budget fits them)
    for a, b in zip(swept[0].rows, whole.rows):
        assert (a["point"], a["seed_index"]) == (b["point"], b["seed_index"])
        np.testing.assert_allclose([a[k] for k in sorted(a) if k != "group"],
                                   [b[k] for k in sorted(a) if k != "group"], rtol=1e-5, atol=1e-6)


def test_resume_after_interruption_loses_nothing(swept, tmp_path):
    spec = sweep.SweepSpec.from_dict(SPEC)
    first = sweep.run_sweep(spec, str(tmp_path), chunk_size=1, max_chunks=2, progress=False)
    assert not first.complete and first.chunks_run == 2 and not first.ranking
    with open(tmp_path / "results.json") as f:
        partial = json.load(f)
    assert not partial["complete"] and len(partial["rows"]) == 2
    assert not (tmp_path / "best_config.json").exists()
    (tmp_path / ".tmp-crash.json").write_text("{\"half")  # a write cut off by the interruption is ignored
    second = sweep.run_sweep(spec, str(tmp_path), chunk_size=1, progress=False)
    assert second.complete and second.chunks_run == 4  # only the 4 members not yet written
    assert _same(second.rows, swept[0].rows)
    other = sweep.SweepSpec.from_dict({**SPEC, "seed": 6})
    with pytest.raises(FileExistsError, match="different sweep"):
        sweep.run_sweep(other, str(tmp_path), progress=False)


def test_files_and_best_config(swept):
    result, _, out = swept
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {"lr", "seed", "final_return", "mean_return"} <= set(rows[0])
    by_point = {}
    for r in rows:
        by_point.setdefault(int(r["point"]), []).append(float(r["final_return"]))
    iqms = {p: stats.trim_mean(v, 0.25) for p, v in by_point.items()}
    best = max(iqms, key=iqms.get)
    assert result.ranking[0]["point"] == best
    assert math.isclose(result.ranking[0]["iqm"], iqms[best], rel_tol=1e-9)
    assert all(r["ci_low"] <= r["iqm"] <= r["ci_high"] for r in result.ranking)
    run = load_run_config(str(out / "best_config.json"))
    built = build(run)
    assert math.isclose(float(built.hparams.lr), SPEC["search"]["lr"][best])
    assert (run.env, run.learner, run.seed, run.num_seeds, run.runner) == \
        ("grid-world", "iql", 5, 2, SPEC["runner"])
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "results.json") as f:
        data = json.load(f)
    assert data["complete"] and [r["point"] for r in data["ranking"]] == [r["point"] for r in result.ranking]


def test_command(swept, tmp_path, capsys):
    _, _, out = swept
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(SPEC))
    assert cli.main(["sweep", "--config", str(path), "--out", str(out), "--quiet"]) == 0  # all rows there
    printed = capsys.readouterr().out
    assert "6 runs" in printed and "#1" in printed and "best_config.json" in printed
    path.write_text(json.dumps({**SPEC, "search": {"lr": [-1.0]}}))
    assert cli.main(["sweep", "--config", str(path), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jaxmarl-lab: error: search point 0") and "lr" in err[0]
