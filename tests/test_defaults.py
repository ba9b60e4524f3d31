"""One home for defaults: the command line, the sweep and the library read the same settings; the
warnings of `runs.diagnostics` fire on the failures they name; returns are per agent everywhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab import envs
from jaxmarl_lab.commands.train import run_config_from_args
from jaxmarl_lab.envs.rendezvous import team_reward
from jaxmarl_lab.learners import PPOConfig, ValueHParams, preset
from jaxmarl_lab.learners.defaults import BASE, PRESETS
from jaxmarl_lab.runner import RunnerConfig, make_train, run_episodes
from jaxmarl_lab.runs import diagnostics
from jaxmarl_lab.runs.config import LEARNERS, RunConfig, build, preset_env_note, with_preset_env_kwargs
from jaxmarl_lab.runs.scoring import optimal_returns
from jaxmarl_lab.runs.training import train_run
from jaxmarl_lab.sweeps import run as sweep
from jaxmarl_lab.types import Learner
from studies.critic_variance.critic_training import CriticTrainingConfig

#: The env (registry name, env_kwargs) of each preset's task key.
TASK_ENVS = {"grid-world:lesson": ("grid-world", {"layout": "lesson"}),
             "grid-world:random": ("grid-world", {"num_agents": 3, "height": 5, "width": 5}),
             "particle-spread:discrete": ("particle-spread", {"num_agents": 3}),
             "particle-spread:continuous": ("particle-spread", {"continuous_actions": True}),
             "rendezvous:one-step": ("rendezvous", {}),
             "rendezvous:multi-step": ("rendezvous", {"form": "multi-step"})}
CELLS = sorted(PRESETS)  # every (learner, task) with a preset; each learner x task where it applies has one


def _cli_run(learner: str, env: str, env_kwargs: dict) -> RunConfig:
    """The RunConfig `jaxmarl-lab train --learner L --env E --set env_kwargs.K=V ...` builds."""
    sets = [f"env_kwargs.{k}={json.dumps(v)}" for k, v in env_kwargs.items()]
    args = argparse.Namespace(config=None, env=env, learner=learner, set=sets, steps=None, seeds=None, seed=None)
    return run_config_from_args(args)


@pytest.mark.parametrize("learner,task", CELLS, ids=[f"{a}-{b}" for a, b in CELLS])
def test_cli_sweep_and_library_read_the_same_defaults(learner, task):
    env_name, env_kwargs = TASK_ENVS[task]
    run = _cli_run(learner, env_name, env_kwargs)
    assert run.config == {} and run.hparams == {} and run.runner == {}  # nothing given: all from the defaults
    built = build(run)  # the command line
    entry, spec = LEARNERS[learner], built.env.spec
    expected = preset(learner, spec)
    if (learner, task) in PRESETS:
        assert expected.source == PRESETS[(learner, task)].source  # the tuned preset, not the base
    else:
        assert expected == BASE[learner]
    # The command line: the preset over the class defaults (and the critic the learner's name fixes).
    assert built.learner_config == entry.config_cls(**{**expected.config, **entry.fixed})
    assert built.hparams == entry.hparams_cls.create(**expected.hparams)
    assert built.runner == RunnerConfig(**expected.runner)
    # The sweep: a one-point search over a field every learner has, at its preset value.
    grad_norm = built.hparams.max_grad_norm
    spec_sweep = sweep.SweepSpec(base=run, search={"max_grad_norm": [grad_norm]})
    dims = sweep.parse_search(spec_sweep)
    (group,) = sweep.make_groups(spec_sweep, dims, sweep.expand_points(spec_sweep, dims))
    assert group.built.learner_config == built.learner_config and group.built.runner == built.runner
    np.testing.assert_allclose(np.asarray(group.hparams, np.float64)[:, 0], np.asarray(built.hparams, np.float64),
                               rtol=1e-6)
    # The library: make_<alg>(spec) and init(key) with no settings.
    library = entry.make(spec)
    key = jax.random.PRNGKey(0)
    shapes = jax.eval_shape(library.init, key)
    want = jax.eval_shape(lambda k: built.learner.init(k, built.hparams), key)
    assert jax.tree.structure(shapes) == jax.tree.structure(want)
    assert [x.shape for x in jax.tree.leaves(shapes)] == [x.shape for x in jax.tree.leaves(want)]
    state = library.init(key)
    np.testing.assert_allclose(np.asarray(state.hparams, np.float64), np.asarray(built.hparams, np.float64), rtol=1e-6)


def test_experiment_metrics_are_off_unless_asked_for():
    """PPO's pg_variance costs per-sample gradients on every update: only the critic-variance study asks."""
    assert PPOConfig().grad_var_samples == 0
    assert all(tuned.config.get("grad_var_samples", 0) == 0 for tuned in PRESETS.values())
    assert CriticTrainingConfig().ppo_config().grad_var_samples == 64  # the study sets it explicitly


# ----- warnings --------------------------------------------------------------------------
def test_schedule_longer_than_the_budget():
    """The issue's case: epsilon over 50k steps in a 20k-step run ends at 1 - 0.95 * 0.4 = 0.62."""
    (message,) = diagnostics.schedule_warnings(ValueHParams.create(eps_decay_steps=50_000.0), 20_000)
    assert "hparams.eps_decay_steps = 50,000" in message and "ends at 0.62," in message
    assert diagnostics.schedule_warnings(ValueHParams.create(eps_decay_steps=20_000.0), 20_000) == []
    (message,) = diagnostics.schedule_warnings(ValueHParams.create(eps_decay_steps=0.0, lr_anneal_steps=4e4), 10_000)
    assert "hparams.lr_anneal_steps" in message and "ends at 0.000375" in message  # 5e-4 * (1 - 1/4)


def test_values_beyond_the_largest_return():
    """grid-world lesson: no return exceeds 1 - 0.01; the issue's QMIX Q_tot of 130 (65 per agent) does."""
    spec = envs.make("grid-world", layout="lesson").spec
    assert spec.max_return == pytest.approx(0.99) and spec.reward_low == pytest.approx(-0.01)
    low, high = spec.value_range(0.95)
    assert high == pytest.approx(0.99) and low == pytest.approx(-0.01 / 0.05)
    healthy = {"value_max": np.array([[0.5], [0.97]]), "value_min": np.array([[-0.2], [-0.1]])}
    assert diagnostics.value_warnings(spec, 0.95, healthy) == []
    untrained = {"value_max": np.array([[4.4]]), "value_min": np.array([[-2.6]])}  # an untrained QMIX mixer's
    assert diagnostics.value_warnings(spec, 0.95, untrained) == []
    runaway = {"value_max": np.array([[0.5], [65.0]]), "value_min": np.array([[-0.2], [-0.1]])}
    (message,) = diagnostics.value_warnings(spec, 0.99, runaway, first_iteration=11)
    assert "65 per agent at iteration 12" in message and "largest possible return 0.99" in message
    sunk = {"value_max": np.array([[0.5]]), "value_min": np.array([[-30.0]])}  # below -2 - 10 * 2
    assert "smallest possible return -2" in diagnostics.value_warnings(spec, 0.995, sunk)[0]
    spread = envs.make("particle-spread").spec  # rewards <= 0, unbounded below: only the top is checked
    assert diagnostics.value_warnings(spread, 0.99, {"value_max": [[-0.5]], "value_min": [[-1e4]]}) == []
    assert diagnostics.value_warnings(spread, 0.99, {"value_max": [[30.0]], "value_min": [[-1e4]]}) != []


def test_greedy_no_better_than_random():
    assert diagnostics.greedy_warnings(0.97, -0.32, 0.97) == []
    assert "no better than random" in diagnostics.greedy_warnings(-0.5, -0.32, 0.97)[0]
    assert diagnostics.greedy_warnings(-0.30, -0.32, 0.97) != []  # 0.02 < 5% of the 1.29 gap
    assert diagnostics.greedy_warnings(-20.0, -26.7) == []  # no optimum: 5% of |random|


@pytest.mark.slow  # CI runs it with -m slow; keeps the default suite under 6 minutes on 2 cores
def test_train_run_warns_of_each_failure(tmp_path):
    """Tiny QMIX runs on the lesson layout: lr 0 learns nothing (greedy no better than random; epsilon's
    10k-step schedule outlasts the 2k-step budget), lr 1 sends the Q-values far past the bound of 0.99."""
    base = RunConfig(env="grid-world", env_kwargs={"layout": "lesson"}, learner="qmix",
                     runner={"total_env_steps": 2000})
    out = io.StringIO()
    result = train_run(dataclasses.replace(base, hparams={"lr": 0.0}), str(tmp_path / "still"), plot=False,
                       stream=out)
    text = out.getvalue()
    assert "warning: hparams.eps_decay_steps = 10,000 is longer than the training budget of 2,000" in text
    assert "warning: the greedy policy at the end returns -0.500 per agent, no better than random" in text
    assert "value estimates" not in text  # an untrained network's values stay inside the bounds
    assert result.greedy_return == [pytest.approx(-0.5)] and result.optimum == pytest.approx(0.97)
    assert result.greedy_length == [50.0]  # never at the goal: every greedy episode runs to max_steps
    assert len(result.warnings) == 2
    out = io.StringIO()
    result = train_run(dataclasses.replace(base, hparams={"lr": 1.0, "gamma": 0.99}), str(tmp_path / "wild"),
                       plot=False, stream=out)
    assert "warning: value estimates reach" in out.getvalue()
    assert "beyond the largest possible return 0.99 (gamma 0.99)" in out.getvalue()
    with pytest.warns(diagnostics.TrainingWarning, match="no better than random"):  # without progress output
        train_run(dataclasses.replace(base, hparams={"lr": 0.0}), str(tmp_path / "quiet"), plot=False,
                  progress=False)


def test_preset_env_options_apply_unless_the_run_sets_them():
    """Value-based learners on random grid-world were tuned with the egocentric view, the previous action and
    shaping 0.3 while training: a run gets them unless it sets them, and evaluation never plays the shaping."""
    grid5 = {"num_agents": 3, "height": 5, "width": 5}
    built = build(RunConfig(env="grid-world", env_kwargs=grid5, learner="vdn"))
    tuned = envs.make("grid-world", **grid5, observation="egocentric", obs_last_action=True)
    assert built.env.unwrapped.observation == "egocentric" and built.env.spec.obs_dim == tuned.spec.obs_dim
    assert float(built.train_env_params.shaping) == pytest.approx(0.3) and float(built.env_params.shaping) == 0.0
    note = preset_env_note(RunConfig(env="grid-world", env_kwargs=grid5, learner="vdn"), built.env.spec)
    assert "observation='egocentric', obs_last_action=True" in note and "shaping=0.3 while training" in note
    own = build(RunConfig(env="grid-world", env_kwargs={**grid5, "observation": "coords"},
                          env_params={"shaping": 0.1}, learner="vdn"))
    assert own.env.unwrapped.observation == "coords"  # the run's value wins; obs_last_action it left unset
    assert own.env.spec.obs_dim == envs.make("grid-world", **grid5, obs_last_action=True).spec.obs_dim
    assert float(own.train_env_params.shaping) == float(own.env_params.shaping) == pytest.approx(0.1)
    written = with_preset_env_kwargs(RunConfig(env="grid-world", env_kwargs=grid5, learner="vdn"), built.env.spec)
    assert written.env_kwargs == {**grid5, "observation": "egocentric", "obs_last_action": True}  # config.json's
    assert build(written).env.spec == built.env.spec
    assert build(written, env_presets=False).env.spec == built.env.spec  # how a run directory is read back
    older = build(RunConfig(env="grid-world", env_kwargs=grid5, learner="vdn"), env_presets=False)
    assert older.env.observation == "coords"  # a run directory from before presets held env options
    lesson = build(RunConfig(env="grid-world", env_kwargs={"layout": "lesson"}, learner="vdn"))  # no options there
    assert lesson.env.observation == "coords" and float(lesson.train_env_params.shaping) == 0.0
    assert preset_env_note(RunConfig(env="grid-world", env_kwargs={"layout": "lesson"}, learner="vdn"),
                           lesson.env.spec) is None


# ----- per-agent returns -----------------------------------------------------------------
class _ConstantState(NamedTuple):
    hparams: jax.Array  # () unused
    env_steps: jax.Array  # () int32
    updates: jax.Array  # () int32


def _constant_learner(spec, action: float) -> Learner:
    """Plays `action` in every component for every agent; learns nothing."""
    def init(key, hparams=None):
        return _ConstantState(jnp.zeros(()), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def act(key, state, timestep, carry, explore):
        return jnp.full(spec.action_shape, action, jnp.float32), carry

    def update(key, state, batch):
        return state._replace(updates=state.updates + 1), {"loss": jnp.zeros(())}

    return Learner(init, lambda: jnp.zeros(()), act, update, on_policy=True, spec=spec)


def test_returns_are_per_agent_in_closed_form():
    """One-step rendezvous, N = 4, target 0.7: every agent plays 1.7, so the team reward, paid to each agent, is
    -(4 * 1^2 + 0) = -4. A per-agent return is -4 (a sum over agents would be -16); the optimum, every agent at
    the target, is 0, and the env's bound says so."""
    env = envs.make("rendezvous", num_agents=4)
    params = env.default_params()
    assert float(team_reward(jnp.full((4, 1), 1.7), params.target, params.coupling)) == pytest.approx(-4.0)
    learner = _constant_learner(env.spec, 1.7)
    config = RunnerConfig(num_envs=4, rollout_len=2, total_env_steps=16)
    _, metrics = jax.jit(make_train(env, learner, config))(jax.random.PRNGKey(0), None)
    np.testing.assert_allclose(np.asarray(metrics["episode_return"]), -4.0, rtol=1e-6)  # runner, metrics.jsonl, sweep
    policy = lambda key, timestep, carry: learner.act(key, None, timestep, carry, False)
    played = run_episodes(env, policy, jnp.zeros(()), jax.random.PRNGKey(1), 8, 1, params)
    np.testing.assert_allclose(np.asarray(played["returns"]), -4.0, rtol=1e-6)  # eval, marl-eval export
    optimum, _ = optimal_returns(env, params, jax.random.PRNGKey(1), 8)
    np.testing.assert_allclose(optimum, 0.0, atol=1e-6)
    assert env.spec.max_return == 0.0 and math.isinf(env.spec.reward_low)
