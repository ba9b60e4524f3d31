"""Reference policies that need no training, random actions, and a jitted scorer for any policy.

    act = scripted_spread_policy(env)          # discrete particle-spread
    returns = jax.jit(make_evaluate_policy(env, act, num_episodes=256))(key)
    returns.mean()                             # about -8.8 for N = 3 (random: about -26.5)
    policy, carry = as_policy(random_policy(env.spec))   # a `types.Policy`, e.g. for `render`

A policy here is an `ObsPolicy`: a pure function `act(key, obs (N, O)) -> actions` of
ONE environment's observations (stateless; vmap over environments), actions `(N,)`
int32 or `(N, D)` float32. `as_policy` turns it into the `(key, timestep, carry)` form
of `jaxmarl_lab.types.Policy` that the runner and the renderer take. The scripted
policy ignores its key. `random_actions` samples joint actions of an `EnvSpec`,
uniform over the available ones.

The scripted particle-spread policy reads every agent's observation independently:

1. From agent i's observation it rebuilds all agent and landmark positions relative to
   agent i and picks the landmark assignment with the least total distance by brute
   force over the permutations (a static table from `itertools.permutations`). Every
   agent computes the same assignment from its own view, so no communication is needed.
2. It steers toward its landmark with the discrete action whose "coast-to-stop" point
   is closest to the target: with mass 1, an action pushes the velocity to
   `v' = (1 - damping) v + sensitivity * u * dt`, and coasting afterwards travels
   `v' dt / damping` further, so the agent would come to rest at
   `p + v dt + v' dt / damping`. Choosing no-op when that is best gives a dead zone
   and avoids overshoot.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxmarl_lab.envs.core import others_index
from jaxmarl_lab.runner import run_episodes
from jaxmarl_lab.types import EnvProtocol, EnvSpec, Policy, TimeStep
from jaxmarl_lab.validation import check_positive_int

#: A stateless policy of one environment's observations: `act(key, obs (N, O)) -> actions (N,) or (N, D)`.
ObsPolicy = Callable[[jax.Array, jax.Array], jax.Array]

#: Unit force of each discrete particle-spread action: no-op, left, right, down, up.
_SPREAD_MOVES = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]], np.float32)
_MAX_PERMUTATIONS = 720  # N <= 6 when N = L


def random_actions(key: jax.Array, spec: EnvSpec, avail: jax.Array | None = None) -> jax.Array:
    """Random joint actions for one environment: `(N,)` int32 or `(N, D)` float32.

    Discrete actions are uniform over the available ones (`avail (N, A)` bool; None: all);
    continuous ones uniform over the action box (standard normal where the box is unbounded).
    """
    if spec.is_discrete:
        avail = jnp.ones(spec.action_shape + (spec.action_size,), bool) if avail is None else avail
        return jax.random.categorical(key, jnp.where(avail, 0.0, -jnp.inf)).astype(jnp.int32)
    if np.isfinite(spec.action_low) and np.isfinite(spec.action_high):
        return jax.random.uniform(key, spec.action_shape, minval=spec.action_low, maxval=spec.action_high)
    return jax.random.normal(key, spec.action_shape)


def random_policy(spec: EnvSpec) -> ObsPolicy:
    """Uniformly random actions: `act(key, obs (N, O)) -> (N,) int32` or `(N, D)` float32.

    Discrete: uniform over all `A` actions (the policy sees no `avail_actions`; every
    registered environment has all of them available). Continuous: `random_actions`,
    uniform over the action box.
    """
    def act(key: jax.Array, obs: jax.Array) -> jax.Array:
        del obs
        if spec.is_discrete:
            return jax.random.randint(key, (spec.num_agents,), 0, spec.action_size, jnp.int32)
        return random_actions(key, spec)

    return act


def as_policy(act: ObsPolicy) -> tuple[Policy, jax.Array]:
    """`(policy, carry)`: `act` as a `types.Policy` acting on `timestep.obs`, and its (empty) carry."""
    def policy(key: jax.Array, timestep: TimeStep, carry: jax.Array) -> tuple[jax.Array, jax.Array]:
        return act(key, timestep.obs), carry

    return policy, jnp.zeros(())


def scripted_spread_policy(env: Any, params: Any = None) -> ObsPolicy:
    """Least-total-distance assignment plus coast-to-stop steering for particle-spread.

    Args:
        env: a discrete `ParticleSpread` (N agents, L >= N landmarks, N!/(L-N)! <= 720).
        params: its `ParticleSpreadParams` (default: `env.default_params()`); the
            steering model uses `dt`, `damping` and `sensitivity` from it.

    Returns:
        `act(key, obs (N, O)) -> actions (N,) int32`; the key is unused.

    Raises:
        ValueError: for continuous actions, fewer landmarks than agents, or too many
            assignments to enumerate.
    """
    if env.spec.name != "particle-spread" or not env.spec.is_discrete:
        raise ValueError(f"scripted_spread_policy needs discrete particle-spread, got {env.spec}")
    n, num_landmarks = env.num_agents, env.num_landmarks
    if num_landmarks < n:
        raise ValueError(f"scripted_spread_policy needs at least as many landmarks as agents, "
                         f"got N={n}, L={num_landmarks}")
    if math.perm(num_landmarks, n) > _MAX_PERMUTATIONS:
        raise ValueError(f"{math.perm(num_landmarks, n)} assignments of N={n} agents to "
                         f"L={num_landmarks} landmarks exceed {_MAX_PERMUTATIONS}")
    params = env.default_params() if params is None else params
    perms = jnp.asarray(list(itertools.permutations(range(num_landmarks), n)), jnp.int32)  # (P, N)
    others = others_index(n)
    moves = jnp.asarray(_SPREAD_MOVES)

    def one_agent(i: jax.Array, others_i: jax.Array, obs_i: jax.Array) -> jax.Array:
        vel = obs_i[0:2]
        landmarks = obs_i[4:4 + 2 * num_landmarks].reshape(num_landmarks, 2)  # relative to agent i
        rel = obs_i[4 + 2 * num_landmarks:4 + 2 * num_landmarks + 2 * (n - 1)].reshape(n - 1, 2)
        agents = jnp.zeros((n, 2)).at[others_i].set(rel)  # agent i at the origin
        dist = jnp.linalg.norm(agents[:, None] - landmarks[None], axis=-1)  # (N, L)
        cost = dist[jnp.arange(n)[None], perms].sum(axis=-1)  # (P,)
        target = landmarks[perms[jnp.argmin(cost), i]]
        new_vel = vel * (1.0 - params.damping) + moves * params.sensitivity * params.dt  # (5, 2)
        rest = vel * params.dt + new_vel * params.dt / params.damping
        return jnp.argmin(jnp.linalg.norm(target - rest, axis=-1)).astype(jnp.int32)

    def act(key: jax.Array, obs: jax.Array) -> jax.Array:
        del key
        return jax.vmap(one_agent)(jnp.arange(n), jnp.asarray(others), obs)

    return act


def make_evaluate_policy(env: EnvProtocol, policy: ObsPolicy, num_episodes: int, max_steps: int | None = None,
                         params: Any = None) -> Callable[[jax.Array], jax.Array]:
    """`evaluate(key) -> returns (K,)`: per-agent returns of `policy`, jit-friendly.

    Runs `num_episodes` (K) environments with `env.step_batch` for `max_steps` steps
    (default: the concrete `params.max_steps`, read here, before tracing) and scores
    each one's first episode: the agents' rewards summed over the episode, averaged
    over agents. `runner.run_episodes` for policies that need no learner state.
    """
    num_episodes = check_positive_int("num_episodes", num_episodes)
    params = env.default_params() if params is None else params
    if max_steps is None:
        max_steps = int(np.asarray(params.max_steps))
    max_steps = check_positive_int("max_steps", max_steps)
    stateless, carry = as_policy(policy)

    def evaluate(key: jax.Array) -> jax.Array:
        return run_episodes(env, stateless, carry, key, num_episodes, max_steps, params)["returns"]

    return evaluate
