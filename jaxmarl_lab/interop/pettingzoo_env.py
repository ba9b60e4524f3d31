"""jaxmarl-lab -> PettingZoo: any of our environments as a `pettingzoo.ParallelEnv`.

    from jaxmarl_lab import envs
    from jaxmarl_lab.interop import to_pettingzoo
    pz = to_pettingzoo(envs.make("particle-spread"), seed=0)
    obs, infos = pz.reset(seed=1)
    obs, rewards, terminations, truncations, infos = pz.step({a: 0 for a in pz.agents})

Agents are named `agent_0` ... `agent_{N-1}`; observations are float32 NumPy arrays in
`Box(-inf, inf, (O,))`; actions come from `Discrete(A)` or `Box(low, high, (D,))` as
the `EnvSpec` says. `infos[agent]["action_mask"]` holds the agent's available actions
(discrete envs). Our episodes end for the whole team at once, so on the step that ends
one every agent is removed and that step returns the last observation (the env's
`final_obs`, before its auto-reset); call `reset()` to start the next episode.
`state()` is the env's global state (on the ending step, the final one). With
`render_mode="rgb_array"`, `render()` returns an image of grid-world or particle-spread
(see `jaxmarl_lab.render`) of the current state; after an episode's end that is already
the next episode's start (our `step` auto-resets).

The env's `reset` and `step` are each jit-compiled once per exported env. Randomness:
one key stream, `key, sub = split(key)` before every `reset` and `step` (which get `sub`);
`reset(seed=s)` restarts it at `PRNGKey(s)`, so its reset key is `split(PRNGKey(s))[1]`;
`reset()` without a seed continues the stream (which starts at `PRNGKey(seed)`).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

from jaxmarl_lab import render
from jaxmarl_lab.types import EnvProtocol


def to_pettingzoo(env: EnvProtocol, params: Any = None, seed: int = 0, render_mode: str | None = None):
    """Exports `env` as a PettingZoo `ParallelEnv` (needs `pettingzoo` and `gymnasium`).

    Args:
        env: a jaxmarl-lab environment (`EnvProtocol`; this uses `spec`, `default_params`, `reset`, `step`).
        params: env params (default `env.default_params()`).
        seed: seed of the key stream used until `reset(seed=...)` is called.
        render_mode: None or "rgb_array" (environments that can be drawn, `render.check_renderable`:
            grid-world and particle-spread).

    Raises:
        ValueError: for an unsupported `render_mode`, or an env that cannot be rendered.
        ImportError: if pettingzoo is not installed.
    """
    return _parallel_env_class()(env, params, seed, render_mode)


@functools.lru_cache(maxsize=None)
def _parallel_env_class() -> type:
    """Defines the ParallelEnv subclass on first use, so pettingzoo stays optional."""
    from gymnasium import spaces
    from pettingzoo import ParallelEnv

    class JaxParallelEnv(ParallelEnv):
        """A jaxmarl-lab environment behind PettingZoo's parallel API (see module docstring)."""

        metadata = {"render_modes": ["rgb_array"], "is_parallelizable": True}

        def __init__(self, env: EnvProtocol, params: Any, seed: int, render_mode: str | None):
            if render_mode not in (None, "rgb_array"):
                raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
            if render_mode is not None:
                render.check_renderable(env, params)
            self.env = env
            self.params = env.default_params() if params is None else params
            self.render_mode = render_mode
            spec = env.spec
            self.spec = spec
            self.metadata = {**self.metadata, "name": f"{spec.name}_jaxmarl_lab"}
            self.possible_agents = [f"agent_{i}" for i in range(spec.num_agents)]
            self.agents: list[str] = []
            self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
            obs_space = spaces.Box(-np.inf, np.inf, (spec.obs_dim,), np.float32)
            self.observation_spaces = {a: obs_space for a in self.possible_agents}
            if spec.is_discrete:
                self.action_spaces = {a: spaces.Discrete(spec.action_size) for a in self.possible_agents}
            else:
                self.action_spaces = {a: spaces.Box(spec.action_low, spec.action_high, (spec.action_size,),
                                                    np.float32) for a in self.possible_agents}
            self._reset = jax.jit(env.reset)
            self._step = jax.jit(env.step)
            self._key = jax.random.PRNGKey(seed)
            self._state = None
            self._timestep = None

        def observation_space(self, agent: str):
            return self.observation_spaces[agent]

        def action_space(self, agent: str):
            return self.action_spaces[agent]

        def _next_key(self) -> jax.Array:
            self._key, key = jax.random.split(self._key)
            return key

        def _infos(self, avail: np.ndarray) -> dict:
            if not self.spec.is_discrete:
                return {a: {} for a in self.possible_agents}
            return {a: {"action_mask": avail[i].astype(np.int8)} for a, i in self._index.items()}

        def reset(self, seed: int | None = None, options: dict | None = None):
            """Starts an episode: `(observations, infos)` for every agent."""
            del options  # no reset options
            if seed is not None:
                self._key = jax.random.PRNGKey(seed)
            self._state, self._timestep = self._reset(self._next_key(), self.params)
            self.agents = list(self.possible_agents)
            obs = np.asarray(self._timestep.obs, np.float32)
            return {a: obs[i] for a, i in self._index.items()}, self._infos(np.asarray(self._timestep.avail_actions))

        def _joint_action(self, actions: dict) -> np.ndarray:
            missing = [a for a in self.agents if a not in actions]
            if missing:
                raise ValueError(f"actions must hold one action for every live agent; missing {missing}")
            unknown = [a for a in actions if a not in self._index]
            if unknown:
                raise ValueError(f"actions has unknown agents {unknown}; agents are {self.possible_agents}")
            joint = []
            for agent in self.possible_agents:
                action = np.asarray(actions[agent])
                if not self.action_spaces[agent].contains(action.astype(self.action_spaces[agent].dtype)):
                    raise ValueError(f"action {action.tolist()} of {agent} is outside its action space "
                                     f"{self.action_spaces[agent]}")
                joint.append(action)
            dtype = np.int32 if self.spec.is_discrete else np.float32
            return np.stack(joint).astype(dtype)

        def step(self, actions: dict):
            """One joint step: `(observations, rewards, terminations, truncations, infos)`."""
            if not self.agents:
                raise ValueError("the episode has ended (no live agents); call reset() before step()")
            self._state, ts = self._step(self._next_key(), self._state, self._joint_action(actions), self.params)
            self._timestep = ts
            ended = bool(ts.terminated) or bool(ts.truncated)
            obs = np.asarray(ts.final_obs, np.float32)  # equals ts.obs unless the episode ended
            reward = np.asarray(ts.reward, np.float32)
            names = self.agents
            result = ({a: obs[self._index[a]] for a in names},
                      {a: float(reward[self._index[a]]) for a in names},
                      {a: bool(ts.terminated) for a in names},
                      {a: bool(ts.truncated) for a in names},
                      {a: info for a, info in self._infos(np.asarray(ts.avail_actions)).items() if a in names})
            if ended:
                self.agents = []
            return result

        def state(self) -> np.ndarray:
            """The global state of the current step, `(S,)` float32."""
            if self._timestep is None:
                raise ValueError("call reset() before state()")
            return np.asarray(self._timestep.final_global_state, np.float32)

        def render(self):
            """An RGB image `(H, W, 3)` uint8 of the current state, or None without a render mode."""
            if self.render_mode is None or self._state is None:
                return None
            return render.render_state(self.env, self._state, self.params)

        def close(self):
            pass

    return JaxParallelEnv
