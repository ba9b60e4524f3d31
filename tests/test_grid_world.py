"""Tests of grid-world: exact solver, hand-built steps, a property test against the
pure-Python joint move, a scripted optimal episode and input validation."""

from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmarl_lab.envs.grid_world import (
    LESSON_GOALS,
    LESSON_STARTS,
    GridWorld,
    GridWorldState,
    _python_joint_move,
    move_agents,
    optimal_plan,
    optimal_return,
    optimal_steps,
)

STAY, UP, DOWN, LEFT, RIGHT = range(5)
KEY = jax.random.key(0)


@functools.lru_cache(maxsize=None)
def jitted(num_agents=2, height=4, width=4, layout="random"):
    """(env, jitted step, jitted reset), one compile per configuration."""
    env = GridWorld(num_agents, height, width, layout)
    return env, jax.jit(env.step), jax.jit(env.reset)


def make_state(pos, goals, step=0):
    return GridWorldState(pos=jnp.asarray(pos, jnp.int32), goals=jnp.asarray(goals, jnp.int32),
                          step=jnp.asarray(step, jnp.int32))


def step_once(pos, goals, actions, num_agents=None, height=4, width=4, step=0, **overrides):
    """One env.step from a hand-built state on a random-layout env."""
    env, step_fn, _ = jitted(num_agents or len(pos), height, width)
    params = env.default_params(**overrides)
    return step_fn(KEY, make_state(pos, goals, step), jnp.asarray(actions, jnp.int32), params)


# ----- exact solver --------------------------------------------------------------------
def test_lesson_optimum_is_exactly_three():
    # Agent 0 walks right 3 cells, agent 1 walks down 3 cells leaving (0, 3) on step 1,
    # so they never conflict; Manhattan distances (3 and 3) say 3 is also a lower bound.
    assert optimal_steps(4, 4, LESSON_STARTS, LESSON_GOALS) == 3
    assert len(optimal_plan(4, 4, LESSON_STARTS, LESSON_GOALS)) == 3


@pytest.mark.parametrize("height, width, starts, goals, expected", [
    # Already solved.
    (4, 4, [(1, 1), (2, 2)], [(1, 1), (2, 2)], 0),
    # 2x2 swap of neighbours: a direct swap is blocked, and moving into a cell that
    # stays occupied is blocked, so with parity (each needs an odd number of moves)
    # 2 steps cannot work; 3 do: 0 down while 1 follows left, 0 right, 0 up.
    (2, 2, [(0, 0), (0, 1)], [(0, 1), (0, 0)], 3),
    # Crossing: both unique shortest paths pass (1, 1) at step 1, so one agent waits
    # one step: 2 + 1 = 3.
    (3, 3, [(1, 0), (0, 1)], [(1, 2), (2, 1)], 3),
    # Agent 1 sits on its goal in agent 0's way: it steps down while 0 follows into
    # (0, 1), then steps back up while 0 moves on: 2 steps, the Manhattan bound.
    (2, 3, [(0, 0), (0, 1)], [(0, 2), (0, 1)], 2),
    # Three agents on a 2x2 with one hole rotate clockwise in one step, each following.
    (2, 2, [(0, 0), (0, 1), (1, 1)], [(0, 1), (1, 1), (1, 0)], 1),
    # A full 2x2: only rotations of all four are possible, so a transposition is
    # unreachable, and one rotation takes 1 step.
    (2, 2, [(0, 0), (0, 1), (1, 1), (1, 0)], [(0, 1), (0, 0), (1, 1), (1, 0)], -1),
    (2, 2, [(0, 0), (0, 1), (1, 1), (1, 0)], [(0, 1), (1, 1), (1, 0), (0, 0)], 1),
])
def test_bfs_hand_layouts(height, width, starts, goals, expected):
    assert optimal_steps(height, width, starts, goals) == expected


def test_bfs_max_depth_and_optimal_return():
    assert optimal_steps(4, 4, LESSON_STARTS, LESSON_GOALS, max_depth=2) == -1
    env = GridWorld(layout="lesson")
    assert optimal_return(4, 4, env.default_params()) == pytest.approx(1 - 3 * 0.01)
    # Goal out of reach within max_steps=2: the return is two step costs.
    assert optimal_return(4, 4, env.default_params(max_steps=2)) == pytest.approx(-0.02)
    with pytest.raises(ValueError, match="fixed layout"):
        optimal_return(4, 4, GridWorld().default_params())


# ----- hand-built steps ----------------------------------------------------------------
@pytest.mark.parametrize("pos, actions, expected", [
    # Walls: up from row 0 and right from col 3 stay; left from (3, 3) moves.
    ([(0, 0), (3, 3)], [UP, RIGHT], [(0, 0), (3, 3)]),
    ([(0, 0), (3, 3)], [LEFT, LEFT], [(0, 0), (3, 2)]),
    # Both aim at (0, 1): both stay.
    ([(0, 0), (0, 2)], [RIGHT, LEFT], [(0, 0), (0, 2)]),
    # Swap blocked.
    ([(0, 0), (0, 1)], [RIGHT, LEFT], [(0, 0), (0, 1)]),
    # Following an agent that moves away is allowed.
    ([(0, 0), (0, 1)], [RIGHT, RIGHT], [(0, 1), (0, 2)]),
    # Moving into a cell whose agent stays is blocked.
    ([(0, 0), (0, 1)], [RIGHT, STAY], [(0, 0), (0, 1)]),
    # Chain: agent 2 hits the wall, so 1 (aiming at 2's cell) stops in round 1 and
    # 0 (aiming at 1's cell) stops in round 2.
    ([(0, 1), (0, 2), (0, 3)], [RIGHT, RIGHT, RIGHT], [(0, 1), (0, 2), (0, 3)]),
    # Chain through a same-target conflict: 2 and 3 both aim at (0, 3) and stay, so
    # 1 (following 2) stops in round 2 and 0 (following 1) in round 3.
    ([(0, 0), (0, 1), (0, 2), (1, 3)], [RIGHT, RIGHT, RIGHT, UP],
     [(0, 0), (0, 1), (0, 2), (1, 3)]),
    # Same line, but 3 goes away: everyone moves.
    ([(0, 0), (0, 1), (0, 2), (1, 3)], [RIGHT, RIGHT, RIGHT, DOWN],
     [(0, 1), (0, 2), (0, 3), (2, 3)]),
    # A 4-cycle rotation on a 2x2 block is allowed (no pair swaps).
    ([(0, 0), (0, 1), (1, 1), (1, 0)], [RIGHT, DOWN, LEFT, UP],
     [(0, 1), (1, 1), (1, 0), (0, 0)]),
])
def test_hand_built_moves(pos, actions, expected):
    goals = [(3, 0), (2, 0), (2, 1), (2, 2)][:len(pos)]  # no agent reaches its goal
    state, ts = step_once(pos, goals, actions)
    np.testing.assert_array_equal(state.pos, expected)
    np.testing.assert_allclose(ts.reward, np.full(len(pos), -0.01), rtol=1e-6)
    assert not ts.terminated and not ts.truncated and int(state.step) == 1


def test_reward_and_termination_on_goal_step():
    env, step_fn, _ = jitted(layout="lesson")
    params = env.default_params()
    goals = np.array(LESSON_GOALS)
    # Only agent 0 arrives: step cost only.
    state, ts = step_fn(KEY, make_state([(0, 2), (1, 3)], goals, 1), jnp.array([RIGHT, STAY]), params)
    np.testing.assert_allclose(ts.reward, [-0.01, -0.01], rtol=1e-6)
    assert not ts.terminated and int(state.step) == 2
    # Both arrive: goal reward minus step cost, terminated, and auto-reset.
    state, ts = step_fn(KEY, make_state([(0, 2), (2, 3)], goals, 2), jnp.array([RIGHT, DOWN]), params)
    np.testing.assert_allclose(ts.reward, [0.99, 0.99], rtol=1e-6)
    assert ts.terminated and not ts.truncated
    # final_obs: own pos, own goal, other's pos, all on goals, scaled by 3.
    np.testing.assert_allclose(ts.final_obs, [[0, 1, 0, 1, 1, 1], [1, 1, 1, 1, 0, 1]])
    np.testing.assert_allclose(ts.final_global_state, [0, 1, 1, 1, 0, 1, 1, 1])
    np.testing.assert_array_equal(state.pos, LESSON_STARTS)
    assert int(state.step) == 0
    np.testing.assert_allclose(ts.obs, [[0, 0, 0, 1, 0, 1], [0, 1, 1, 1, 0, 0]])


def test_truncation_at_max_steps_with_auto_reset():
    env, step_fn, _ = jitted(layout="lesson")
    params = env.default_params(max_steps=3)
    state, ts = step_fn(KEY, make_state([(1, 1), (2, 2)], LESSON_GOALS, 2), jnp.array([STAY, STAY]),
                        params)
    assert ts.truncated and not ts.terminated
    np.testing.assert_allclose(ts.reward, [-0.01, -0.01], rtol=1e-6)
    third = 1 / 3
    np.testing.assert_allclose(ts.final_obs[0], [third, third, 0, 1, 2 * third, 2 * third], rtol=1e-6)
    np.testing.assert_allclose(ts.obs[0], [0, 0, 0, 1, 0, 1])
    np.testing.assert_array_equal(state.pos, LESSON_STARTS)
    assert int(state.step) == 0


def test_spec_and_observation_layout():
    env = GridWorld(num_agents=3, height=3, width=5)
    spec = env.spec
    assert (spec.name, spec.num_agents, spec.obs_dim, spec.state_dim) == ("grid-world", 3, 8, 12)
    assert spec.is_discrete and spec.action_size == 5
    state = make_state([(0, 0), (1, 2), (2, 4)], [(2, 0), (0, 4), (1, 1)])
    obs = env.observe(state, env.default_params())
    # Rows / 2, columns / 4; agent 1 sees itself, its goal, then agents 0 and 2.
    np.testing.assert_allclose(obs[1], [0.5, 0.5, 0, 1, 0, 0, 1, 1])
    gstate = env.global_state(state, env.default_params())
    np.testing.assert_allclose(gstate[:6], [0, 0, 0.5, 0.5, 1, 1])
    assert obs.dtype == gstate.dtype == jnp.float32


def test_egocentric_observation_worked_by_hand():
    env = GridWorld(num_agents=3, height=3, width=5, observation="egocentric", view_radius=1)
    assert env.spec.obs_dim == 2 + 4 * 2 + 2 * 9 and env.spec.state_dim == 12
    state = make_state([(0, 0), (1, 0), (2, 4)], [(2, 4), (0, 0), (1, 1)])
    obs = np.asarray(env.observe(state, env.default_params()))
    # Offsets are (row, col) / (2, 4). Agent 0 at (0, 0): goal offset (2, 4) -> (1, 1);
    # agent 1 is at (+1, 0) -> (0.5, 0) and its goal is (-1, 0) from it -> (-0.5, 0);
    # agent 2 is at (+2, +4) -> (1, 1), its goal (-1, -3) from it -> (-0.5, -0.75).
    np.testing.assert_allclose(obs[0, :10], [1, 1, 0.5, 0, -0.5, 0, 1, 1, -0.5, -0.75])
    # 3 x 3 window around (0, 0), row-major from (-1, -1): only (1, 0) (index 7) holds an agent;
    # row -1 (indices 0-2) and column -1 (indices 3, 6) are off the grid.
    np.testing.assert_array_equal(obs[0, 10:19], [0, 0, 0, 0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(obs[0, 19:], [1, 1, 1, 1, 0, 0, 1, 0, 0])
    # Agent 2 at the corner (2, 4): nobody in its window; row 3 and column 5 are off the grid.
    np.testing.assert_array_equal(obs[2, 10:19], np.zeros(9))
    np.testing.assert_array_equal(obs[2, 19:], [0, 0, 1, 0, 0, 1, 1, 1, 1])
    # Agent 1 at (1, 0) sees agent 0 above it (index 1) and agent 0's goal offset (2, 4) -> (1, 1).
    np.testing.assert_array_equal(obs[1, 10:19], [0, 1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(obs[1, 2:6], [-0.5, 0, 1, 1])
    assert obs.dtype == np.float32


def test_egocentric_observation_is_translation_invariant():
    # The same relative arrangement away from every wall gives the same observation.
    env = GridWorld(num_agents=2, height=7, width=7, observation="egocentric", view_radius=1)
    a = env.observe(make_state([(2, 2), (2, 3)], [(4, 4), (1, 1)]), env.default_params())
    b = env.observe(make_state([(3, 3), (3, 4)], [(5, 5), (2, 2)]), env.default_params())
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_random_reset_cells_distinct_and_not_solved():
    # 2 agents on a 2x2: 1 draw in 12 puts both on their goals and must be redrawn.
    env = GridWorld(num_agents=2, height=2, width=2)
    states, ts = jax.jit(lambda k: env.reset_batch(k, env.default_params(), 256))(KEY)
    cells = np.asarray(states.pos[..., 0] * 2 + states.pos[..., 1])  # (256, 2)
    goals = np.asarray(states.goals[..., 0] * 2 + states.goals[..., 1])
    assert np.all(cells[:, 0] != cells[:, 1]) and np.all(goals[:, 0] != goals[:, 1])
    assert not np.any(np.all(cells == goals, axis=-1))
    assert ts.obs.shape == (256, 2, 6) and ts.global_state.shape == (256, 8)


# ----- property test ---------------------------------------------------------------------
@st.composite
def joint_moves(draw):
    height, width = draw(st.integers(2, 4)), draw(st.integers(2, 4))
    n = draw(st.integers(1, 3))
    cells = draw(st.lists(st.integers(0, height * width - 1), min_size=n, max_size=n, unique=True))
    actions = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    return height, width, [divmod(c, width) for c in cells], actions


# The grid size is traced, so this compiles once per N (env.transition is move_agents
# with a static size plus the reward; the hand-built tests above go through env.step).
jitted_move = jax.jit(move_agents)


@settings(max_examples=200, deadline=None)
@given(joint_moves())
def test_jax_joint_move_matches_python(case):
    height, width, pos, actions = case
    next_pos = jitted_move(jnp.asarray(pos, jnp.int32), jnp.asarray(actions, jnp.int32),
                           height, width)
    got = [tuple(p) for p in np.asarray(next_pos).tolist()]
    assert got == list(_python_joint_move(height, width, pos, actions))
    assert len(set(got)) == len(got)


# ----- scripted optimal episode ------------------------------------------------------
def test_optimal_plan_executed_on_lesson():
    env, step_fn, reset_fn = jitted(layout="lesson")
    params = env.default_params()
    state, _ = reset_fn(KEY, params)
    total, ends = np.zeros(2), []
    for t, joint in enumerate(optimal_plan(4, 4, LESSON_STARTS, LESSON_GOALS), start=1):
        state, ts = step_fn(jax.random.fold_in(KEY, t), state, jnp.asarray(joint, jnp.int32), params)
        total += np.asarray(ts.reward)
        ends.append(bool(ts.terminated))
    assert ends == [False, False, True]
    np.testing.assert_allclose(total, [0.97, 0.97], rtol=1e-5)
    assert total[0] == pytest.approx(optimal_return(4, 4, params), rel=1e-5)


def test_vmap_over_params():
    env, _, reset_fn = jitted(layout="lesson")
    params = jax.tree.map(lambda *x: jnp.stack(x), env.default_params(step_cost=0.0),
                          env.default_params(step_cost=0.5))
    state, _ = reset_fn(KEY, env.default_params())
    step = jax.vmap(env.step, in_axes=(None, None, None, 0))
    _, ts = jax.jit(step)(KEY, state, jnp.array([RIGHT, DOWN]), params)
    np.testing.assert_allclose(ts.reward, [[0, 0], [-0.5, -0.5]])


# ----- bad input -----------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"num_agents": 0}, "num_agents"),
    ({"height": 1}, "height.*2 x 2"),
    ({"width": 1}, "width.*2 x 2"),
    ({"num_agents": 5, "height": 2, "width": 2}, "num_agents=5 exceeds the 4 cells"),
    ({"layout": "maze"}, "layout"),
    ({"layout": "lesson", "num_agents": 3}, "lesson"),
    ({"layout": "lesson", "height": 5}, "lesson"),
    ({"observation": "pixels"}, "observation.*coords.*egocentric"),
    ({"observation": "egocentric", "view_radius": 0}, "view_radius"),
])
def test_bad_constructor_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GridWorld(**kwargs)


@pytest.mark.parametrize("overrides, match", [
    ({"step_cost": -0.1}, "step_cost"),
    ({"max_steps": 0}, "max_steps"),
    ({"max_steps": 2.5}, "whole number"),
    ({"goal_reward": float("nan")}, "goal_reward"),
    ({"starts": [(0, 0), (0, 0)]}, "distinct"),
    ({"goals": [(0, 0), (4, 0)]}, "grid"),
    ({"goals": [(0, 0)]}, "shape"),
    ({"starts": LESSON_GOALS}, "goal"),
    ({"speed": 1.0}, "unknown"),
])
def test_bad_params(overrides, match):
    with pytest.raises(ValueError, match=match):
        GridWorld(layout="lesson").default_params(**overrides)


@pytest.mark.parametrize("actions, match", [
    (jnp.array([0.0, 1.0]), "int"),
    (jnp.array([0, 1, 2], jnp.int32), "shape"),
    (jnp.array([[0, 1]], jnp.int32), "shape"),
])
def test_bad_actions(actions, match):
    env, _, reset_fn = jitted()
    state, _ = reset_fn(KEY, env.default_params())
    with pytest.raises(ValueError, match=match):
        env.step(KEY, state, actions)


def test_envs_not_imported_bare():
    assert "envs" not in sys.modules


def test_distinct_cells_is_uniform_over_ordered_draws():
    """3 of 4 cells: 4*3*2 = 24 ordered draws, each with probability 1/24."""
    from jaxmarl_lab.envs.grid_world import distinct_cells

    draws = jax.jit(jax.vmap(lambda k: distinct_cells(k, 3, 4)))(jax.random.split(jax.random.PRNGKey(5), 48000))
    draws = np.asarray(draws)
    assert np.all((draws[:, 0] != draws[:, 1]) & (draws[:, 1] != draws[:, 2]) & (draws[:, 0] != draws[:, 2]))
    _, counts = np.unique(draws, axis=0, return_counts=True)
    assert len(counts) == 24
    # 2000 expected per draw, standard deviation about 44: allow 5 sigma.
    assert np.all(np.abs(counts - 2000) < 220), counts


def test_potential_based_shaping_telescopes():
    """Lesson with shaping 0.1: each step pays 0.1 x (decrease of summed Manhattan distance).

    The optimal plan closes the distance 3 + 3 = 6 in 3 steps, so the shaping adds exactly
    0.1 * 6 = 0.6 over the episode (0 when the goals are reached, as phi telescopes):
    return = 1 - 3 * 0.01 + 0.6 = 1.57 per agent.
    """
    from jaxmarl_lab.envs.grid_world import optimal_plan

    env = GridWorld(layout="lesson")
    params = env.default_params(shaping=0.1)
    plan = optimal_plan(4, 4, LESSON_STARTS, LESSON_GOALS)
    state, ts = env.reset(jax.random.PRNGKey(0), params)
    total = np.zeros(2)
    step = jax.jit(env.step)
    for actions in plan:
        state, ts = step(jax.random.PRNGKey(1), state, jnp.asarray(actions, jnp.int32), params)
        total += np.asarray(ts.reward)
    assert bool(ts.terminated)
    np.testing.assert_allclose(total, 1.57, atol=1e-5)
    with pytest.raises(ValueError, match="shaping must be >= 0"):
        env.default_params(shaping=-1.0)
