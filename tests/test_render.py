"""Rendering: the drawn positions are the environment's, the files hold every frame, bad input is one line.

Pixel checks: the centre of an agent's disc must have that agent's colour, so a frame
that drew the wrong positions (or none) fails. Positions are checked against the env
stepped independently (grid-world: the breadth-first solver's plan; particle-spread:
`env.step` with the same actions).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from jaxmarl_lab import cli, envs, render  # noqa: E402
from jaxmarl_lab.envs import grid_world  # noqa: E402


def _plan_policy(plan):
    """Plays a fixed joint-action plan; the carry counts steps (stays put after the plan)."""
    table = jnp.asarray(list(plan) + [(0, 0)], jnp.int32)

    def policy(key, timestep, carry):
        return table[jnp.minimum(carry, len(plan))], carry + 1

    return policy, jnp.zeros((), jnp.int32)


def test_grid_world_lesson_episode_frames_and_files(tmp_path):
    env = envs.make("grid-world", layout="lesson")
    params = env.default_params()
    plan = grid_world.optimal_plan(4, 4, grid_world.LESSON_STARTS, grid_world.LESSON_GOALS)
    assert len(plan) == 3
    policy, carry = _plan_policy(plan)
    episode = jax.jit(lambda k: render.episode_positions(env, params, policy, carry, k, 10))(jax.random.PRNGKey(0))
    assert render.episode_length(episode) == 3  # the plan solves the lesson in 3 steps, then the episode ends
    np.testing.assert_array_equal(np.asarray(episode.terminated), np.arange(11) == 3)
    agents = np.asarray(episode.agents)
    np.testing.assert_array_equal(agents[0], grid_world.LESSON_STARTS)
    np.testing.assert_array_equal(agents[3], grid_world.LESSON_GOALS)
    np.testing.assert_array_equal(agents[4:], agents[3:4].repeat(7, 0))  # frozen after the end
    np.testing.assert_array_equal(np.asarray(episode.targets)[0], grid_world.LESSON_GOALS)
    # Independent replay of the same plan with the solver's pure-Python joint move.
    pos = [tuple(c) for c in grid_world.LESSON_STARTS]
    for t, joint in enumerate(plan, start=1):
        pos = grid_world._python_joint_move(4, 4, tuple(pos), joint)
        np.testing.assert_array_equal(agents[t], pos)

    frames = render.draw_frames(env, episode, params)
    assert len(frames) == 4
    for t, frame in enumerate(frames):
        for i, (row, col) in enumerate(agents[t].astype(int)):
            x, y = render.grid_cell_centre(row, col)
            assert tuple(frame[y, x]) == render.agent_colour(i), f"agent {i} not drawn at its cell in frame {t}"
    # Frame 0: agent 1 stands on agent 0's goal (the disc covers the centre, the goal colour the corner);
    # agent 1's goal (3, 3) is empty and goal-coloured at its centre.
    x, y = render.grid_cell_centre(0, 3)
    assert tuple(frames[0][y - 15, x - 15]) == render.goal_colour(0)
    x, y = render.grid_cell_centre(3, 3)
    assert tuple(frames[0][y, x]) == render.goal_colour(1)

    paths = render.write_episode(frames, str(tmp_path), fps=5, strip_frames=10)
    gif = Image.open(paths["gif"])
    assert gif.n_frames == 4
    gif.seek(3)
    x, y = render.grid_cell_centre(*grid_world.LESSON_GOALS[1])
    assert gif.convert("RGB").getpixel((x, y)) == render.agent_colour(1)
    strip = Image.open(paths["strip"])
    assert strip.size == (4 * frames[0].shape[1] + 3 * 4, frames[0].shape[0])


def test_particle_spread_positions_match_env_step_and_pixels():
    env = envs.make("particle-spread")
    params = env.default_params()
    joint = jnp.asarray([2, 4, 0], jnp.int32)  # right, up, no-op
    policy = lambda key, timestep, carry: (joint, carry)
    key = jax.random.PRNGKey(3)
    episode = jax.jit(lambda k: render.episode_positions(env, params, policy, jnp.zeros(()), k, 30))(key)
    assert render.episode_length(episode) == 25  # mpe2's 25-step episodes, ended by truncation
    assert not np.asarray(episode.terminated).any()
    key_reset, _ = jax.random.split(key)
    state, _ = env.reset(key_reset, params)
    np.testing.assert_allclose(np.asarray(episode.agents[0]), np.asarray(state.agent_pos.T), atol=1e-6)
    np.testing.assert_allclose(np.asarray(episode.targets), np.broadcast_to(state.landmark_pos.T, (31, 3, 2)))
    step = jax.jit(env.step)
    for t in range(1, 26):  # observation layout [vel (2), pos (2), ...]; final_obs is before the auto-reset
        state, ts = step(jax.random.PRNGKey(t), state, joint, params)
        np.testing.assert_allclose(np.asarray(episode.agents[t]), np.asarray(ts.final_obs[:, 2:4]), atol=1e-5)
        np.testing.assert_allclose(np.asarray(episode.reward[t]), np.asarray(ts.reward), atol=1e-5)
    assert bool(ts.truncated)
    frames = render.draw_frames(env, episode, params)
    assert len(frames) == 26
    extent = render.plane_extent(render.trim(episode))
    last = env.spec.num_agents - 1  # drawn last, so never covered by another agent
    for t in (0, 12, 25):
        x, y = render.plane_to_pixel(*np.asarray(episode.agents[t, last]), extent)
        assert tuple(frames[t][int(y), int(x)]) == render.agent_colour(last)


def test_rendezvous_cannot_be_rendered():
    with pytest.raises(ValueError, match="grid-world, particle-spread"):
        render.check_renderable(envs.make("rendezvous"))


def test_cli_writes_gif_and_strip(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["render", "--env", "particle-spread", "--steps", "7", "--out", str(out), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "7 steps" in printed
    assert Image.open(out / "episode.gif").n_frames == 8
    assert Image.open(out / "episode_strip.png").width == 8 * render.PLANE_PX + 7 * 4


@pytest.mark.parametrize("argv,message", [
    (["--env", "simple-spread"], "unknown environment 'simple-spread'; valid names: grid-world, particle-spread, "
                                 "rendezvous"),
    (["--env", "rendezvous"], "cannot render 'rendezvous': render supports grid-world, particle-spread"),
    (["--run", "no/such/run"], "run directory 'no/such/run' does not exist"),
    (["--env-kwargs", "{oops"], "--env-kwargs must be a JSON object"),
])
def test_cli_bad_input_is_one_line(argv, message, tmp_path, capsys):
    assert cli.main(["render", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxmarl-lab: error: ") and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "episode.gif").exists()


def test_cli_steps_zero_is_refused(capsys):
    assert cli.main(["render", "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--steps must be an integer >= 1, got 0" in err


@pytest.mark.slow
def test_cli_renders_a_trained_run_greedily(tmp_path, capsys):
    """`--run`: the rendered episode is the run's greedy policy, checked against `make_evaluate`."""
    from jaxmarl_lab.runner import make_evaluate
    from jaxmarl_lab.runs.config import RunConfig
    from jaxmarl_lab.runs.training import load_trained, train_run

    run = RunConfig.from_dict({"env": "grid-world", "env_kwargs": {"layout": "lesson"}, "learner": "iql",
                               "config": {"hidden_dim": 8},
                               "runner": {"num_envs": 4, "rollout_len": 5, "total_env_steps": 40,
                                          "buffer_capacity": 8, "batch_size": 4}})
    train_run(run, str(tmp_path / "run"), progress=False, plot=False)
    assert cli.main(["render", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    steps, ret = re.search(r"(\d+) steps .*per-agent return (-?[\d.]+)", printed).groups()
    built, _, state = load_trained(str(tmp_path / "run"))
    evaluate = jax.jit(make_evaluate(built.env, built.learner, num_episodes=1, max_steps=50))
    result = evaluate(jax.random.PRNGKey(0), state)  # greedy on a fixed layout: the key does not matter
    assert int(steps) == int(result["lengths"][0])
    assert float(ret) == pytest.approx(float(result["returns"][0]), abs=1e-3)
    assert Image.open(tmp_path / "out" / "episode.gif").n_frames == int(steps) + 1
