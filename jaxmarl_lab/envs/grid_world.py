"""grid-world: N agents walk to their own goal cells on a small grid, as one team.

Each step every agent picks one of five discrete actions (0 stay, 1 up, 2 down,
3 left, 4 right); a move off the grid leaves the agent in place, and an action outside
0..4 is "stay" (0), the rule of every environment here (`envs.core`). Moves are
simultaneous and two agents never share a cell: an agent's move is cancelled when
its target cell is also another agent's target, or when it would swap cells with
another agent. Following an agent that moves away in the same step is allowed.
Cancellations can cascade, so the rule is applied N times (enough to reach its
fixed point, since each round that changes anything stops at least one agent).

The reward is shared: `-step_cost` every step, plus `goal_reward` on the step at
which every agent stands on its own goal, which terminates the episode. An optional
potential-based shaping term (`params.shaping`, default 0) adds `shaping` times the
decrease of the agents' summed Manhattan distance to their goals.

The module also ships an exact solver, `optimal_plan` / `optimal_steps`, a
breadth-first search over joint positions that uses an independent pure-Python
copy of the joint move, `_python_joint_move`; `optimal_return` turns it into the
best achievable per-agent return of a fixed layout.
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmarl_lab.types import EnvSpec, RewardBounds
from jaxmarl_lab.validation import check_number, check_positive_int

from .core import Environment, GridView, noop_if_out_of_range, others_index

NUM_ACTIONS = 5
STAY = 0  # the no-op action; out-of-range actions act as it
#: (row, col) offset of each action: stay, up, down, left, right.
MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
LAYOUTS = ("random", "lesson")
OBSERVATIONS = ("coords", "egocentric")
#: The lesson layout (4 x 4, 2 agents). Agent 1 starts on agent 0's goal and must
#: leave it; both walk 3 cells without crossing, so the optimum is exactly 3 steps.
LESSON_STARTS = ((0, 0), (0, 3))  # (N, 2) (row, col)
LESSON_GOALS = ((0, 3), (3, 3))  # (N, 2) (row, col)
#: Largest joint-position space (cells ** N) that `GridWorld.optimal_returns` searches per random layout
#: (the breadth-first search is pure Python); beyond it no optimum is reported.
LARGEST_BFS = 50_000


@struct.dataclass
class GridWorldParams:
    """Numeric, vmappable parameters of grid-world (build them with `default_params`)."""

    goal_reward: jax.Array  # () float32, paid to every agent when all reach their goals
    step_cost: jax.Array  # () float32, charged to every agent every step
    max_steps: jax.Array  # () int32, episode length before truncation
    random_layout: jax.Array  # () bool, sample starts and goals at reset (else use below)
    starts: jax.Array  # (N, 2) int32, (row, col) starts of a fixed layout
    goals: jax.Array  # (N, 2) int32, (row, col) goals of a fixed layout
    shaping: jax.Array  # () float32, weight of potential-based shaping (0: none, the default)


@struct.dataclass
class GridWorldState:
    """State of one grid-world episode."""

    pos: jax.Array  # (N, 2) int32, (row, col) of each agent
    goals: jax.Array  # (N, 2) int32, (row, col) of each agent's goal
    step: jax.Array  # () int32, steps taken in this episode


class GridWorld(Environment[GridWorldState, GridWorldParams]):
    """Cooperative navigation on a `height` x `width` grid with blocking collisions.

    Actions: 0 stay, 1 up, 2 down, 3 left, 4 right; any other integer is "stay"
    (`noop_action`), applied inside the jittable step (`move_agents`).

    Args:
        num_agents: N >= 1, at most `height * width`.
        height: rows of the grid, >= 2.
        width: columns of the grid, >= 2.
        layout: "random" (starts and goals sampled at each reset) or "lesson" (the
            fixed 4 x 4, 2-agent layout `LESSON_STARTS` -> `LESSON_GOALS`, optimum 3 steps).
        observation: "coords" (the default: own cell, own goal, the others' cells, as
            grid coordinates scaled to [0, 1]) or "egocentric" (everything relative to
            the agent, every agent's goal, and a local window; see `observe`).
        view_radius: half-width r of the egocentric local window ((2r + 1)^2 cells), >= 1;
            used only with `observation="egocentric"`.

    Raises:
        ValueError: naming the argument, the value received and what is allowed.
    """

    noop_action = STAY
    example_kwargs = ({}, {"layout": "lesson"})

    def __init__(self, num_agents: int = 2, height: int = 4, width: int = 4,
                 layout: str = "random", observation: str = "coords", view_radius: int = 2):
        self.num_agents = check_positive_int("num_agents", num_agents)
        try:
            self.height = check_positive_int("height", height, minimum=2)
            self.width = check_positive_int("width", width, minimum=2)
        except ValueError as err:
            raise ValueError(f"{err} (a grid smaller than 2 x 2 is not allowed)") from None
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.layout = layout
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        self.observation = observation
        self.view_radius = check_positive_int("view_radius", view_radius)
        cells = self.height * self.width
        if self.num_agents > cells:
            raise ValueError(f"num_agents={self.num_agents} exceeds the {cells} cells of a "
                             f"{self.height} x {self.width} grid; use at most {cells}")
        if layout == "lesson" and (self.num_agents, self.height, self.width) != (2, 4, 4):
            raise ValueError(f"layout='lesson' needs num_agents=2, height=4, width=4, got "
                             f"num_agents={self.num_agents}, height={self.height}, width={self.width}")

    @property
    def spec(self) -> EnvSpec:
        """`EnvSpec` with S = 4N, 5 discrete actions and O = 4 + 2(N - 1) ("coords") or
        O = 2 + 4(N - 1) + 2(2r + 1)^2 ("egocentric")."""
        n = self.num_agents
        if self.observation == "coords":
            obs_dim = 4 + 2 * (n - 1)
        else:
            obs_dim = 2 + 4 * (n - 1) + 2 * (2 * self.view_radius + 1) ** 2
        return EnvSpec(name="grid-world", num_agents=n, obs_dim=obs_dim,
                       state_dim=4 * n, action_kind="discrete", action_size=NUM_ACTIONS,
                       task=self.layout, **self.default_bounds())

    def reward_bounds(self, params: GridWorldParams) -> RewardBounds:
        """A step pays `-step_cost`, `goal_reward` once, and `shaping` times a progress of at most
        N cells either way; shaping over a whole episode (discounted or not) adds at most `shaping`
        times the largest summed distance, N (H - 1 + W - 1), so no return exceeds
        `max(goal_reward - step_cost, 0)` plus that."""
        cost, goal, shaping = (float(np.asarray(x)) for x in (params.step_cost, params.goal_reward, params.shaping))
        n = self.num_agents
        return RewardBounds(reward_low=-cost + min(goal, 0.0) - shaping * n,
                            reward_high=-cost + max(goal, 0.0) + shaping * n,
                            max_return=max(goal - cost, 0.0) + shaping * n * (self.height + self.width - 2),
                            max_steps=int(np.asarray(params.max_steps)))

    # ----- params ------------------------------------------------------------------
    def default_params(self, **overrides: Any) -> GridWorldParams:
        """Default params with `overrides` applied; concrete values are validated.

        Defaults: `goal_reward=1.0`, `step_cost=0.01`, `max_steps=50`; layout "lesson"
        uses `random_layout=False` and the lesson cells, layout "random" uses
        `random_layout=True` and arbitrary distinct fixed cells (used only if
        `random_layout=False` is passed).

        Raises:
            ValueError: for an unknown name or a value out of range.
        """
        unknown = set(overrides) - set(GridWorldParams.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown grid-world params {sorted(unknown)}; valid: "
                             f"{sorted(GridWorldParams.__dataclass_fields__)}")
        values = {"goal_reward": 1.0, "step_cost": 0.01, "max_steps": 50, "shaping": 0.0}
        values.update(self._default_layout())
        values.update(overrides)
        check_number("goal_reward", values["goal_reward"])
        check_number("step_cost", values["step_cost"], minimum=0)
        check_number("shaping", values["shaping"], minimum=0)
        max_steps = check_number("max_steps", values["max_steps"], minimum=1)
        if not isinstance(max_steps, jax.core.Tracer) and np.any(np.asarray(max_steps) % 1):
            raise ValueError(f"max_steps must be a whole number of steps, got {max_steps!r}")
        for name in ("starts", "goals"):
            self._check_cells(name, values[name])
        self._check_not_solved(values)
        return GridWorldParams(
            goal_reward=jnp.asarray(values["goal_reward"], jnp.float32),
            step_cost=jnp.asarray(values["step_cost"], jnp.float32),
            max_steps=jnp.asarray(values["max_steps"], jnp.int32),
            random_layout=jnp.asarray(values["random_layout"], bool),
            starts=jnp.asarray(values["starts"], jnp.int32),
            goals=jnp.asarray(values["goals"], jnp.int32),
            shaping=jnp.asarray(values["shaping"], jnp.float32))

    def _default_layout(self) -> dict[str, Any]:
        if self.layout == "lesson":
            return {"random_layout": False, "starts": LESSON_STARTS, "goals": LESSON_GOALS}
        cells = np.arange(self.height * self.width)
        first, last = cells[:self.num_agents], cells[::-1][:self.num_agents]
        return {"random_layout": True,
                "starts": np.stack(np.divmod(first, self.width), axis=-1),
                "goals": np.stack(np.divmod(last, self.width), axis=-1)}

    def _check_cells(self, name: str, cells: Any) -> None:
        """Checks a concrete `(N, 2)` array of distinct in-grid integer cells."""
        if isinstance(cells, jax.core.Tracer):
            return
        arr = np.asarray(cells)
        if arr.shape != (self.num_agents, 2) or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must be integers of shape ({self.num_agents}, 2), got "
                             f"dtype {arr.dtype} shape {arr.shape}")
        if np.any(arr < 0) or np.any(arr >= np.array([self.height, self.width])):
            raise ValueError(f"{name} must lie on the {self.height} x {self.width} grid "
                             f"(0 <= row < {self.height}, 0 <= col < {self.width}), got {arr.tolist()}")
        if len({tuple(c) for c in arr.tolist()}) != self.num_agents:
            raise ValueError(f"{name} must be distinct cells, got {arr.tolist()}")

    @staticmethod
    def _check_not_solved(values: dict[str, Any]) -> None:
        """A concrete fixed layout must leave at least one agent off its goal."""
        layout = (values["random_layout"], values["starts"], values["goals"])
        if any(isinstance(v, jax.core.Tracer) for v in layout) or bool(np.asarray(layout[0])):
            return
        if np.array_equal(np.asarray(layout[1]), np.asarray(layout[2])):
            raise ValueError(f"a fixed layout must not start every agent on its goal, got "
                             f"starts = goals = {np.asarray(layout[1]).tolist()}")

    # ----- dynamics ----------------------------------------------------------------
    def reset_state(self, key: jax.Array, params: GridWorldParams) -> GridWorldState:
        """Random layout: distinct starts and distinct goals, not all agents on goal."""
        rand_pos, rand_goals = self._sample_layout(key)
        pos = jnp.where(params.random_layout, rand_pos, params.starts.astype(jnp.int32))
        goals = jnp.where(params.random_layout, rand_goals, params.goals.astype(jnp.int32))
        return GridWorldState(pos=pos, goals=goals, step=jnp.zeros((), jnp.int32))

    def _sample_layout(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Starts and goals `(N, 2)`: each N distinct uniform cells, drawn independently."""
        cells, n = self.height * self.width, self.num_agents
        key_starts, key_goals = jax.random.split(key)
        starts = distinct_cells(key_starts, n, cells)

        def draw_goals(carry):
            key, _ = carry
            key, sub = jax.random.split(key)
            return key, distinct_cells(sub, n, cells)

        def all_on_goal(carry):
            return jnp.all(carry[1] == starts)

        _, goals = jax.lax.while_loop(all_on_goal, draw_goals, draw_goals((key_goals, starts)))
        to_cell = lambda idx: jnp.stack(jnp.divmod(idx, self.width), axis=-1).astype(jnp.int32)
        return to_cell(starts), to_cell(goals)

    def transition(self, key: jax.Array, state: GridWorldState, actions: jax.Array,
                   params: GridWorldParams) -> tuple[GridWorldState, jax.Array, jax.Array]:
        """Moves all agents at once (see `move_agents`) and pays the team reward."""
        del key  # the dynamics are deterministic
        pos = move_agents(state.pos, actions, self.height, self.width)
        solved = jnp.all(pos == state.goals)
        # Potential-based shaping (Ng et al. 1999) with phi = -(summed Manhattan distance to
        # the goals): it telescopes over an episode, so it leaves the undiscounted optimum unchanged.
        progress = _distance_to_goals(state.pos, state.goals) - _distance_to_goals(pos, state.goals)
        team = -params.step_cost + jnp.where(solved, params.goal_reward, 0.0) + params.shaping * progress
        reward = jnp.full((self.num_agents,), team, jnp.float32)
        return state.replace(pos=pos, step=state.step + 1), reward, solved

    # ----- what agents see ---------------------------------------------------------
    def _scaled(self, cells: jax.Array) -> jax.Array:
        return cells.astype(jnp.float32) / jnp.array([self.height - 1, self.width - 1], jnp.float32)

    def observe(self, state: GridWorldState, params: GridWorldParams) -> jax.Array:
        """Per-agent observations `(N, O)` float32.

        "coords": own position, own goal, then the others' positions in agent order, in [0, 1].

        "egocentric", for agent i (offsets are (row, col) divided by (H - 1, W - 1)):
          - own goal minus own cell (2);
          - for each other agent j in agent order: j's cell minus i's cell, then j's goal
            minus j's cell (4 per other agent);
          - the (2r + 1) x (2r + 1) window centred on i, row-major: 1 where another agent
            stands, then 1 where the cell is off the grid (2 (2r + 1)^2).
        The agent sees every goal, so the observation determines the joint state.
        """
        if self.observation == "egocentric":
            return self._observe_egocentric(state)
        n = self.num_agents
        pos = self._scaled(state.pos)
        others = pos[others_index(n)].reshape(n, 2 * (n - 1))
        return jnp.concatenate([pos, self._scaled(state.goals), others], axis=-1)

    def _observe_egocentric(self, state: GridWorldState) -> jax.Array:
        n, r = self.num_agents, self.view_radius
        pos, goals = state.pos, state.goals  # (N, 2) int32
        others = others_index(n)
        goal_offset = self._scaled(goals - pos)  # (N, 2), scaling is linear so offsets scale too
        rel_pos = self._scaled(pos[others] - pos[:, None])  # (N, N-1, 2)
        offsets = jnp.asarray([(dr, dc) for dr in range(-r, r + 1) for dc in range(-r, r + 1)], jnp.int32)
        cells = pos[:, None] + offsets[None]  # (N, K, 2) window cells of each agent
        limit = jnp.array([self.height, self.width], jnp.int32)
        off_grid = jnp.any((cells < 0) | (cells >= limit), axis=-1)  # (N, K)
        hits = jnp.all(cells[:, :, None] == pos[None, None], axis=-1)  # (N, K, N): window cell == agent j
        occupied = jnp.any(hits & ~jnp.eye(n, dtype=bool)[:, None, :], axis=-1)  # (N, K), others only
        return jnp.concatenate([
            goal_offset,
            jnp.concatenate([rel_pos, goal_offset[others]], axis=-1).reshape(n, 4 * (n - 1)),
            occupied.astype(jnp.float32), off_grid.astype(jnp.float32)], axis=-1)

    def global_state(self, state: GridWorldState, params: GridWorldParams) -> jax.Array:
        """All positions then all goals, flattened and scaled to [0, 1]: `(4N,)`."""
        return jnp.concatenate([self._scaled(state.pos).ravel(), self._scaled(state.goals).ravel()])

    # ----- hooks: the exact optimum, drawing ---------------------------------------
    def optimal_returns(self, params: GridWorldParams, starts: GridWorldState) -> tuple[np.ndarray | None, str]:
        """`optimal_return` by breadth-first search: once for a fixed layout, else per episode layout
        (each distinct one once); None when the joint positions, cells ** N, exceed `LARGEST_BFS`."""
        num_episodes = len(np.asarray(starts.step))
        if not bool(params.random_layout):
            value = optimal_return(self.height, self.width, params)
            return np.full(num_episodes, value), "breadth-first search, fixed layout"
        if (self.height * self.width) ** self.num_agents > LARGEST_BFS:
            return None, f"BFS over {self.height}x{self.width} with {self.num_agents} agents is too large"
        cache: dict = {}
        out = np.empty(num_episodes)
        for i, (pos, goals) in enumerate(zip(np.asarray(starts.pos), np.asarray(starts.goals))):
            layout = (pos.tobytes(), goals.tobytes())
            if layout not in cache:
                fixed = params.replace(random_layout=np.asarray(False), starts=pos, goals=goals)
                cache[layout] = optimal_return(self.height, self.width, fixed)
            out[i] = cache[layout]
        return out, "breadth-first search per episode layout"

    def describe_optimum(self, params: GridWorldParams) -> str | None:
        """The steps and return of a fixed layout's optimum; None for random layouts (one optimum each)."""
        if bool(params.random_layout):
            return None
        steps = optimal_steps(self.height, self.width, np.asarray(params.starts), np.asarray(params.goals))
        return (f"exact optimum (breadth-first search): {steps} steps, "
                f"return {optimal_return(self.height, self.width, params):.3f}")

    def render_view(self, params: GridWorldParams) -> GridView:
        """The grid; the targets are the agents' goals."""
        del params
        return GridView(self.height, self.width)

    def render_positions(self, state: GridWorldState) -> tuple[jax.Array, jax.Array]:
        """`(pos (N, 2), goals (N, 2))` as float32 `(row, col)` cells."""
        return state.pos.astype(jnp.float32), state.goals.astype(jnp.float32)


def _distance_to_goals(pos: jax.Array, goals: jax.Array) -> jax.Array:
    """Summed Manhattan distance of the agents to their goals, `()` float32."""
    return jnp.abs(pos - goals).sum().astype(jnp.float32)


def distinct_cells(key: jax.Array, n: int, num_cells: int) -> jax.Array:
    """`n` distinct cell indices in `[0, num_cells)`, uniform over ordered draws: `(n,)` int32.

    Draws without replacement by rank: the i-th pick is the r_i-th still-free cell with
    r_i uniform in `[0, num_cells - i)`. Only `n` random numbers and no sort, which keeps
    the per-step auto-reset of a large batch cheap (a permutation of all cells was ~10x
    slower in benchmarks/env_throughput.py).
    """
    ranks = jax.random.randint(key, (n,), 0, num_cells - jnp.arange(n))
    free = jnp.ones((num_cells,), bool)
    picks = []
    for i in range(n):
        cell = jnp.argmax(free & (jnp.cumsum(free) - 1 == ranks[i])).astype(jnp.int32)
        picks.append(cell)
        free = free.at[cell].set(False)
    return jnp.stack(picks)


def move_agents(pos: jax.Array, actions: jax.Array, height: int | jax.Array,
                width: int | jax.Array) -> jax.Array:
    """The joint move: off-grid moves stay put, then `resolve_collisions`.

    Args:
        pos: current cells, `(N, 2)` int32, distinct.
        actions: `(N,)` int32 in 0..4; anything else counts as 0 (stay), the action rule
            of `envs.core`.
        height, width: grid size (Python ints, or traced scalars).

    Returns:
        The next cells, `(N, 2)` int32, distinct.
    """
    actions = noop_if_out_of_range(actions, NUM_ACTIONS, STAY)
    target = pos + jnp.asarray(MOVES, jnp.int32)[actions]
    limit = jnp.stack([jnp.asarray(height, jnp.int32), jnp.asarray(width, jnp.int32)]) - 1
    on_grid = jnp.all((target >= 0) & (target <= limit), axis=-1, keepdims=True)
    return resolve_collisions(pos, jnp.where(on_grid, target, pos))


def resolve_collisions(pos: jax.Array, target: jax.Array) -> jax.Array:
    """Cancels conflicting moves, N rounds of simultaneous cancellation.

    Args:
        pos: current cells, `(N, 2)` int32, distinct.
        target: proposed on-grid cells, `(N, 2)` int32.

    Returns:
        The next cells, `(N, 2)` int32, distinct.
    """
    n = pos.shape[0]
    others = ~jnp.eye(n, dtype=bool)
    for _ in range(n):
        same_target = jnp.all(target[:, None] == target[None, :], axis=-1)
        enters_j = jnp.all(target[:, None] == pos[None, :], axis=-1)  # [i, j]: i -> pos_j
        swap = enters_j & enters_j.T
        blocked = jnp.any((same_target | swap) & others, axis=1)
        target = jnp.where(blocked[:, None], pos, target)
    return target


# ----- exact solver (pure Python) ---------------------------------------------------
Cells = tuple[tuple[int, int], ...]


def _python_targets(height: int, width: int, cell: tuple[int, int], action: int) -> tuple[int, int]:
    """The cell one agent aims at: its move, or its own cell if off the grid or invalid."""
    dr, dc = MOVES[action if 0 <= action < NUM_ACTIONS else STAY]
    r, c = cell[0] + dr, cell[1] + dc
    return (r, c) if 0 <= r < height and 0 <= c < width else cell


def _python_resolve(pos: Cells, target: list[tuple[int, int]]) -> Cells:
    """Cancels conflicting moves in rounds until none remain (see `resolve_collisions`)."""
    n = len(pos)
    while True:
        blocked = [i for i in range(n) if target[i] != pos[i] and any(
            target[i] == target[j] or (target[i] == pos[j] and target[j] == pos[i])
            for j in range(n) if j != i)]
        if not blocked:
            return tuple(target)
        for i in blocked:
            target[i] = pos[i]


def _python_joint_move(height: int, width: int, positions: Sequence[Sequence[int]],
                       actions: Sequence[int]) -> Cells:
    """The joint move of grid-world in plain Python, independent of the JAX version."""
    pos = tuple((int(r), int(c)) for r, c in positions)
    target = [_python_targets(height, width, cell, int(a)) for cell, a in zip(pos, actions)]
    return _python_resolve(pos, target)


def _successors(height: int, width: int, node: Cells):
    """Yields `(joint action, next cells)`, one joint action per distinct joint target."""
    options = []
    for cell in node:
        seen: dict[tuple[int, int], int] = {}
        for action in range(NUM_ACTIONS):
            seen.setdefault(_python_targets(height, width, cell, action), action)
        options.append([(a, t) for t, a in seen.items()])
    for combo in itertools.product(*options):
        yield tuple(a for a, _ in combo), _python_resolve(node, [t for _, t in combo])


def optimal_plan(height: int, width: int, starts: Sequence[Sequence[int]],
                 goals: Sequence[Sequence[int]], max_depth: int = 100) -> list[tuple[int, ...]] | None:
    """A shortest joint-action sequence that puts every agent on its goal.

    Breadth-first search over joint positions with the collision rule of grid-world.

    Args:
        height, width: grid size.
        starts, goals: `(N, 2)` (row, col) cells.
        max_depth: give up beyond this many steps.

    Returns:
        A list of joint actions (tuples of N ints), empty if already solved, or None
        if no plan of at most `max_depth` steps exists.
    """
    start = tuple((int(r), int(c)) for r, c in starts)
    goal = tuple((int(r), int(c)) for r, c in goals)
    parents: dict[Cells, tuple[Cells, tuple[int, ...]] | None] = {start: None}
    frontier, depth = [start], 0
    while frontier and goal not in parents and depth < max_depth:
        depth, next_frontier = depth + 1, []
        for node in frontier:
            for joint, child in _successors(height, width, node):
                if child not in parents:
                    parents[child] = (node, joint)
                    next_frontier.append(child)
        frontier = next_frontier
    if goal not in parents:
        return None
    plan, node = [], goal
    while parents[node] is not None:
        node, joint = parents[node]
        plan.append(joint)
    return plan[::-1]


def optimal_steps(height: int, width: int, starts: Sequence[Sequence[int]],
                  goals: Sequence[Sequence[int]], max_depth: int = 100) -> int:
    """Fewest steps until every agent is on its goal.

    Returns:
        0 if already there, -1 if unreachable within `max_depth` steps (`optimal_plan`).
    """
    plan = optimal_plan(height, width, starts, goals, max_depth)
    return -1 if plan is None else len(plan)


def optimal_return(height: int, width: int, params: GridWorldParams) -> float:
    """Best undiscounted per-agent episode return of a fixed layout.

    `goal_reward - steps * step_cost` when the goals can be reached within
    `max_steps`, else (or if that is worse) `-max_steps * step_cost`.

    Raises:
        ValueError: if `params.random_layout` is set.
    """
    if bool(params.random_layout):
        raise ValueError("optimal_return needs a fixed layout (random_layout=False)")
    max_steps, cost = int(params.max_steps), float(params.step_cost)
    steps = optimal_steps(height, width, np.asarray(params.starts), np.asarray(params.goals),
                          max_depth=max_steps)
    timeout = -max_steps * cost
    return timeout if steps < 0 else max(float(params.goal_reward) - steps * cost, timeout)
