"""The environment hooks (`envs.core.Environment`): optimum, demo line, drawing and examples come from the env.

The expected optima are what `runs.evaluation.optimal_returns` computed before it asked the
environments (its per-name branches), for the same keys: 7 episodes each.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmarl_lab import envs, render
from jaxmarl_lab.envs import GridView, PlaneView
from jaxmarl_lab.runs.evaluation import episode_starts, optimal_returns

# (name, env kwargs, param overrides, seed) -> (optimum of the 7 episodes, how)
BEFORE = [
    (("grid-world", {}, {}, 0), (1.0 - 0.01 * np.array([3, 4, 2, 4, 4, 2, 3]), "breadth-first search per episode layout")),
    (("grid-world", {"num_agents": 3, "height": 3, "width": 3}, {}, 3),
     (1.0 - 0.01 * np.array([4, 4, 2, 3, 4, 4, 3]), "breadth-first search per episode layout")),
    (("grid-world", {"layout": "lesson"}, {}, 0), (np.full(7, 1.0 - 0.01 * 3), "breadth-first search, fixed layout")),
    (("rendezvous", {}, {}, 0), (np.zeros(7), "closed form (one-step)")),
    (("rendezvous", {"form": "multi-step"}, {}, 0),
     (np.array([-57.1735414141, -47.1409152472, -46.7363177613, -68.3042900677, -18.1518018415, -28.6880069703,
                -78.7493046007]), "closed form from each episode's start")),
    (("rendezvous", {"form": "multi-step", "dim": 1, "num_agents": 2}, {"coupling": 0.3}, 3),
     (np.array([-0.9781007683, -3.3690847653, -2.8324829407, -16.7029232325, -4.7000534238, -3.5057260134,
                -5.6638467201]), "closed form from each episode's start")),
    (("particle-spread", {}, {}, 0), (None, "no exact optimum is known for particle-spread")),
]


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "obs_last_action"])
@pytest.mark.parametrize("case,expected", BEFORE, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c, _ in BEFORE])
def test_optimal_returns_hook_gives_what_evaluation_computed_before(case, expected, wrapped):
    name, kwargs, overrides, seed = case
    env = envs.make(name, obs_last_action=wrapped, **kwargs)
    params = env.default_params(**overrides)
    key = jax.random.PRNGKey(seed)
    got, how = env.optimal_returns(params, episode_starts(env, key, params, 7))
    want, want_how = expected
    assert how == want_how
    if want is None:
        assert got is None
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    again, again_how = optimal_returns(env, params, key, 7)  # what evaluation reports
    assert again_how == how and (again is None) == (got is None)
    if got is not None:
        np.testing.assert_array_equal(again, got)


def test_too_large_grid_world_search_is_declined():
    env = envs.make("grid-world", num_agents=4, height=5, width=5)  # 25 ** 4 joint positions
    optimum, how = optimal_returns(env, env.default_params(), jax.random.PRNGKey(0), 3)
    assert optimum is None and how == "BFS over 5x5 with 4 agents is too large"


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "obs_last_action"])
def test_describe_optimum_is_the_demo_line(wrapped):
    line = lambda name, **kw: (lambda e: e.describe_optimum(e.default_params()))(
        envs.make(name, obs_last_action=wrapped, **kw))
    assert line("grid-world", layout="lesson") == "exact optimum (breadth-first search): 3 steps, return 0.970"
    assert line("rendezvous") == "closed-form optimum: team reward -0.000 (every agent plays the target)"
    assert line("grid-world") is None  # random layouts: one optimum per episode
    assert line("rendezvous", form="multi-step") is None
    assert line("particle-spread") is None


def test_render_hooks_and_the_renderable_names():
    assert render.renderable_names() == ["grid-world", "particle-spread"]
    grid, spread = envs.make("grid-world", height=3, width=5), envs.make("particle-spread")
    assert grid.render_view(grid.default_params()) == GridView(3, 5)
    view = spread.render_view(spread.default_params(agent_size=0.2))
    assert isinstance(view, PlaneView) and float(view.agent_radius) == pytest.approx(0.2)
    assert envs.make("rendezvous").render_view(None) is None
    wrapped = envs.make("grid-world", obs_last_action=True, height=3, width=5)
    assert wrapped.render_view(wrapped.default_params()) == GridView(3, 5)
    state, _ = wrapped.reset(jax.random.PRNGKey(4))
    agents, goals = wrapped.render_positions(state)
    np.testing.assert_array_equal(agents, np.asarray(state.inner.pos, np.float32))
    np.testing.assert_array_equal(goals, np.asarray(state.inner.goals, np.float32))


class _DrawnRendezvous(envs.Rendezvous):
    """A new environment that can be drawn: only its own hooks, nothing in render.py."""

    def render_view(self, params):
        return PlaneView(0.1)

    def render_positions(self, state):
        return state.pos, jnp.zeros((1, 2))  # the agents; the origin as the one target


def test_a_new_environment_is_drawn_through_its_hooks():
    env = _DrawnRendezvous(num_agents=2, form="multi-step")
    params = env.default_params()
    right = lambda key, timestep, carry: (jnp.asarray([[1.0, 0.0], [0.0, 1.0]]), carry)
    episode = jax.jit(lambda k: render.episode_positions(env, params, right, jnp.zeros(()), k, 4))(
        jax.random.PRNGKey(0))
    agents = np.asarray(episode.agents)
    np.testing.assert_allclose(agents[4] - agents[0], [[0.4, 0.0], [0.0, 0.4]], atol=1e-5)  # dt * speed * 4 steps
    frames = render.draw_frames(env, episode, params)
    extent = render.plane_extent(render.trim(episode))
    x, y = render.plane_to_pixel(*agents[4, 1], extent)
    assert tuple(frames[4][int(y), int(x)]) == render.agent_colour(1)


def test_example_cases_come_from_each_environment():
    cases = envs.example_cases()
    assert [name for name, _ in cases if _ == {}] == ["grid-world", "rendezvous", "particle-spread"]
    assert ("grid-world", {"layout": "lesson"}) in cases and ("rendezvous", {"form": "multi-step"}) in cases
    assert ("particle-spread", {"continuous_actions": True}) in cases
    for name, kwargs in cases:
        assert envs.make(name, **kwargs).spec.name == name
