"""Render an episode of an environment as an animated GIF and a PNG strip.

    policy, carry = as_policy(random_policy(env.spec))  # baselines; or learner_policy(learner, state)
    rollout = jax.jit(lambda key: episode_positions(env, params, policy, carry, key, steps))
    episode = rollout(jax.random.PRNGKey(0))            # positions per step, in jit
    frames = draw_frames(env, episode, params)          # (H, W, 3) uint8 images, Pillow
    paths = write_episode(frames, "runs/render")        # episode.gif, episode_strip.png

The rollout is pure and runs in one `lax.scan`; it steps the env without auto-reset
(`env.transition` plus the time limit) and freezes the state once the episode ends,
so frame t shows the state after t steps of the first episode (frame 0: the reset).
Drawing happens on the host with Pillow (pulled in by matplotlib; imported lazily).

What to draw comes from the environment's hooks (`envs.core.Environment`):
`render_view(params)` says how, `render_positions(state)` gives the positions; an
environment whose `render_view` is None (rendezvous) cannot be drawn. Two views:

- `GridView` (grid-world): agent i is a disc of colour `AGENT_COLOURS[i]` in its cell;
  target i (its goal) is that cell filled with the lighter `goal_colour(i)`.
- `PlaneView` (particle-spread): agents are discs of radius `agent_radius`, targets
  (landmarks) small dark discs, in a square view of the plane centred on the origin
  that contains every position of the episode.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmarl_lab import envs
from jaxmarl_lab.envs.core import Environment, GridView, PlaneView, RenderView
from jaxmarl_lab.runs.files import atomic_write
from jaxmarl_lab.types import Learner, LearnerState, Policy, TimeStep
from jaxmarl_lab.validation import check_positive_int

AGENT_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                 (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
LANDMARK_COLOUR = (64, 64, 64)
LANDMARK_RADIUS = 0.05  # mpe2's landmark size in simple_spread
BACKGROUND = (255, 255, 255)
GRID_LINE = (200, 200, 200)
TEXT = (0, 0, 0)
CELL_PX = 40  # cell size of a GridView
PLANE_PX = 320  # side of a PlaneView
HEADER_PX = 16  # text band above the arena

class Episode(NamedTuple):
    """Positions of one rendered episode; frame 0 is the reset state."""

    agents: jax.Array  # (T+1, N, 2) float32, GridView (row, col), PlaneView (x, y)
    targets: jax.Array  # (T+1, L, 2) float32, goals (grid-world, L = N) or landmarks (particle-spread)
    reward: jax.Array  # (T+1, N) float32, reward of the step into the frame (0 at frame 0 and after the end)
    ended: jax.Array  # (T+1,) bool, the episode ended at or before this frame
    terminated: jax.Array  # (T+1,) bool, it ended at this frame by reaching a terminal state


def agent_colour(i: int) -> tuple[int, int, int]:
    return AGENT_COLOURS[i % len(AGENT_COLOURS)]


def goal_colour(i: int) -> tuple[int, int, int]:
    """Agent i's colour mixed halfway with white."""
    return tuple((c + 255) // 2 for c in agent_colour(i))


def renderable_names() -> list[str]:
    """The registered environments that can be drawn: those whose class implements `render_view`."""
    return [name for name in envs.registered_names()
            if type(envs.make(name)).render_view is not Environment.render_view]


def check_renderable(env: Any, params: Any = None) -> RenderView:
    """`env.render_view(params)` (default params: the env's), or a ValueError if `env` cannot be drawn."""
    hook = getattr(env, "render_view", None)
    view = None if hook is None else hook(env.default_params() if params is None else params)
    if view is None:
        name = getattr(getattr(env, "spec", None), "name", type(env).__name__)
        raise ValueError(f"cannot render {name!r}: rendering supports {', '.join(renderable_names())}")
    return view


def learner_policy(learner: Learner, learner_state: LearnerState) -> tuple[Policy, jax.Array]:
    """A learner's greedy policy: `(policy(key, timestep, carry), initial carry)`."""
    def policy(key, timestep, carry):
        return learner.act(key, learner_state, timestep, carry, False)

    return policy, learner.initial_carry()


def episode_positions(env: Any, env_params: Any, policy: Policy, carry: Any, key: jax.Array,
                      steps: int) -> Episode:
    """Runs the first episode for at most `steps` steps and records positions per frame.

    Pure (jit it with `env`, `policy` and `steps` closed over).

    Args:
        env: an environment that can be drawn (`check_renderable`).
        env_params: its params.
        policy: `policy(key, timestep, carry) -> (actions, carry)` for one environment.
        carry: the policy's initial recurrent state.
        key: randomness of the reset, the policy and the env.
        steps: frames after the reset (`Episode` holds `steps + 1`).
    """
    check_renderable(env, env_params)
    key_reset, key = jax.random.split(key)
    state, timestep = env.reset(key_reset, env_params)

    def body(loop, key):
        state, timestep, carry, ended = loop
        key_act, key_env = jax.random.split(key)
        actions, carry = policy(key_act, timestep, carry)
        next_state, reward, terminated = env.transition(key_env, state, actions, env_params)
        truncated = (next_state.step >= env.time_limit(env_params)) & ~terminated
        obs, gstate = env.observe(next_state, env_params), env.global_state(next_state, env_params)
        next_ts = TimeStep(obs, gstate, reward.astype(jnp.float32), terminated, truncated,
                           env.avail_actions(next_state, env_params), obs, gstate)
        keep = lambda old, new: jax.tree.map(lambda a, b: jnp.where(ended, a, b), old, new)
        state, timestep = keep(state, next_state), keep(timestep, next_ts)
        reward = jnp.where(ended, 0.0, next_ts.reward)
        terminal = terminated & ~ended
        ended = ended | terminated | truncated
        agents, targets = env.render_positions(state)
        return (state, timestep, carry, ended), (agents, targets, reward, ended, terminal)

    first = env.render_positions(state)
    loop = (state, timestep, carry, jnp.zeros((), bool))
    _, (agents, targets, reward, ended, terminal) = jax.lax.scan(body, loop, jax.random.split(key, steps))
    n = env.spec.num_agents
    stack = lambda x0, xs: jnp.concatenate([x0[None], xs])
    false = jnp.zeros((), bool)
    return Episode(stack(first[0], agents), stack(first[1], targets), stack(jnp.zeros((n,), jnp.float32), reward),
                   stack(false, ended), stack(false, terminal))


def episode_length(episode: Episode) -> int:
    """Steps of the first episode (the frame at which it ended), or all steps if it did not end."""
    ended = np.asarray(episode.ended)
    return int(np.argmax(ended)) if ended.any() else len(ended) - 1


def trim(episode: Episode) -> Episode:
    """Drops the frozen frames after the episode's end (host-side NumPy)."""
    length = episode_length(episode)
    return Episode(*(np.asarray(x)[:length + 1] for x in episode))


# ----- drawing (host side, Pillow) -------------------------------------------------------
def grid_cell_centre(row: float, col: float) -> tuple[int, int]:
    """Pixel `(x, y)` of the centre of grid cell `(row, col)` in a `GridView` frame."""
    return int(col * CELL_PX + CELL_PX // 2), int(HEADER_PX + row * CELL_PX + CELL_PX // 2)


def plane_extent(episode: Episode) -> float:
    """Half-width of a `PlaneView`: all positions of the episode, plus a margin."""
    reach = max(float(np.abs(np.asarray(episode.agents)).max()), float(np.abs(np.asarray(episode.targets)).max()))
    return max(1.0, reach) + 0.25


def plane_to_pixel(x: float, y: float, extent: float) -> tuple[float, float]:
    """Pixel `(px, py)` of plane point `(x, y)` in a `PlaneView` frame (y points up)."""
    scale = PLANE_PX / (2.0 * extent)
    return (x + extent) * scale, HEADER_PX + (extent - y) * scale


def _draw_grid(draw: Any, height: int, width: int, agents: np.ndarray, goals: np.ndarray) -> None:
    for r in range(height + 1):
        draw.line([(0, HEADER_PX + r * CELL_PX), (width * CELL_PX, HEADER_PX + r * CELL_PX)], fill=GRID_LINE)
    for c in range(width + 1):
        draw.line([(c * CELL_PX, HEADER_PX), (c * CELL_PX, HEADER_PX + height * CELL_PX)], fill=GRID_LINE)
    for i, (row, col) in enumerate(goals):
        x0, y0 = col * CELL_PX + 2, HEADER_PX + row * CELL_PX + 2
        draw.rectangle([x0, y0, x0 + CELL_PX - 4, y0 + CELL_PX - 4], fill=goal_colour(i))
    radius = 0.35 * CELL_PX
    for i, (row, col) in enumerate(agents):
        x, y = grid_cell_centre(row, col)
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=agent_colour(i))


def _draw_plane(draw: Any, agents: np.ndarray, landmarks: np.ndarray, agent_size: float, extent: float) -> None:
    scale = PLANE_PX / (2.0 * extent)
    lm_radius = max(LANDMARK_RADIUS * scale, 3.0)
    for x, y in landmarks:
        px, py = plane_to_pixel(x, y, extent)
        draw.ellipse([px - lm_radius, py - lm_radius, px + lm_radius, py + lm_radius], fill=LANDMARK_COLOUR)
    radius = agent_size * scale
    for i, (x, y) in enumerate(agents):
        px, py = plane_to_pixel(x, y, extent)
        draw.ellipse([px - radius, py - radius, px + radius, py + radius], fill=agent_colour(i))


def _frame(view: RenderView, agents: np.ndarray, targets: np.ndarray, title: str, extent: float) -> np.ndarray:
    from PIL import Image, ImageDraw

    if isinstance(view, GridView):
        size = (view.width * CELL_PX + 1, HEADER_PX + view.height * CELL_PX + 1)
    elif isinstance(view, PlaneView):
        size = (PLANE_PX, HEADER_PX + PLANE_PX)
    else:
        raise ValueError(f"render_view must return a GridView or a PlaneView, got {type(view).__name__}")
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    if isinstance(view, GridView):
        _draw_grid(draw, view.height, view.width, agents.astype(int), targets.astype(int))
    else:
        _draw_plane(draw, agents, targets, float(view.agent_radius), extent)
    draw.rectangle([0, 0, size[0], HEADER_PX - 1], fill=BACKGROUND)
    draw.text((2, 2), title, fill=TEXT)
    return np.asarray(image)


def draw_frames(env: Any, episode: Episode, env_params: Any) -> list[np.ndarray]:
    """One `(H, W, 3)` uint8 image per frame of `episode` (trimmed at its end).

    Each frame's header reads `step t/T  return R`, R the per-agent mean reward summed
    so far (this also keeps consecutive GIF frames distinct).
    """
    view = check_renderable(env, env_params)
    episode = trim(episode)
    returns = np.cumsum(np.asarray(episode.reward).mean(axis=-1))
    extent = plane_extent(episode)
    last = len(returns) - 1
    return [_frame(view, np.asarray(episode.agents[t]), np.asarray(episode.targets[t]),
                   f"step {t}/{last}  return {returns[t]:.2f}", extent) for t in range(last + 1)]


def render_state(env: Any, state: Any, env_params: Any) -> np.ndarray:
    """One `(H, W, 3)` uint8 image of a single environment's state (e.g. for PettingZoo)."""
    view = check_renderable(env, env_params)
    agents, targets = (np.asarray(x) for x in env.render_positions(state))
    no = np.zeros((1,), bool)
    episode = Episode(agents[None], targets[None], np.zeros((1, env.spec.num_agents)), no, no)
    return _frame(view, agents, targets, f"step {int(state.step)}", plane_extent(episode))


def strip_indices(num_frames: int, max_frames: int) -> list[int]:
    """All frames if at most `max_frames`, else `max_frames` evenly spaced ones incl. first and last."""
    if num_frames <= max_frames:
        return list(range(num_frames))
    if max_frames == 1:
        return [num_frames - 1]
    return sorted({int(round(i)) for i in np.linspace(0, num_frames - 1, max_frames)})


def write_episode(frames: list[np.ndarray], out_dir: str, fps: int = 4, strip_frames: int = 10) -> dict:
    """Writes `episode.gif` (every frame, looping) and `episode_strip.png` (frames side by side).

    Returns:
        `{"gif": path, "strip": path, "strip_indices": [...]}`.
    """
    from PIL import Image

    if not frames:
        raise ValueError("frames must hold at least one image")
    os.makedirs(out_dir, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    gif = os.path.join(out_dir, "episode.gif")
    atomic_write(gif, lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:],
                                                duration=max(1, 1000 // fps), loop=0))
    chosen = strip_indices(len(images), strip_frames)
    gap = 4
    width = sum(images[i].width for i in chosen) + gap * (len(chosen) - 1)
    strip = Image.new("RGB", (width, max(images[i].height for i in chosen)), (160, 160, 160))
    x = 0
    for i in chosen:
        strip.paste(images[i], (x, 0))
        x += images[i].width + gap
    strip_path = os.path.join(out_dir, "episode_strip.png")
    atomic_write(strip_path, lambda f: strip.save(f, format="PNG"))
    return {"gif": gif, "strip": strip_path, "strip_indices": chosen}


def render_episode(env: Any, env_params: Any, policy: Policy, carry: Any, key: jax.Array, steps: int,
                   out_dir: str, fps: int = 4, strip_frames: int = 10) -> dict:
    """Rolls out one episode in jit, draws it and writes the GIF and the strip.

    Returns:
        `write_episode`'s dict plus `length` (steps shown), `ended` (the episode ended
        within `steps`), `terminated` (it ended in a terminal state, not by the time
        limit), `return` (per-agent mean reward summed) and `frames`.

    Raises:
        ValueError: for an env that cannot be rendered or `steps`/`fps`/`strip_frames` < 1.
    """
    check_renderable(env, env_params)
    steps = check_positive_int("steps", steps)
    fps = check_positive_int("fps", fps)
    strip_frames = check_positive_int("strip_frames", strip_frames)
    rollout = jax.jit(lambda k: episode_positions(env, env_params, policy, carry, k, steps))
    episode = jax.device_get(rollout(key))
    frames = draw_frames(env, episode, env_params)
    result = write_episode(frames, out_dir, fps, strip_frames)
    trimmed = trim(episode)
    result.update(length=len(frames) - 1, ended=bool(np.asarray(episode.ended).any()),
                  terminated=bool(np.asarray(episode.terminated).any()),
                  frames=len(frames), **{"return": float(np.asarray(trimmed.reward).mean(axis=-1).sum())})
    return result
