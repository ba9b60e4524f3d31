"""jaxmarl-lab environments: pure JAX functions with agents as an array axis.

Import as `jaxmarl_lab.envs` (this folder is mapped there by pyproject.toml).

    from jaxmarl_lab import envs
    env = envs.make("particle-spread", num_agents=3)
    state, ts = env.reset(key, env.default_params())
    env = envs.make("grid-world", layout="random", obs_last_action=True)  # + previous action
"""

from __future__ import annotations

from typing import Any, Callable

from .core import Environment, GridView, PlaneView, RenderView
from .grid_world import GridWorld, GridWorldParams, GridWorldState
from .particle_spread import ParticleSpread, ParticleSpreadParams, ParticleSpreadState
from .rendezvous import Rendezvous, RendezvousParams, RendezvousState
from .wrappers import LastActionObs, LastActionState

_REGISTRY: dict[str, Callable[..., Environment]] = {
    "grid-world": GridWorld,
    "rendezvous": Rendezvous,
    "particle-spread": ParticleSpread,
}


def registered_names() -> list[str]:
    """Names accepted by `make`, sorted."""
    return sorted(_REGISTRY)


def example_cases() -> list[tuple[str, dict[str, Any]]]:
    """`(name, static kwargs)` of the variants each registered environment suggests showing
    (its `example_kwargs`), in registration order; `jaxmarl-lab demo` and `bench` run them."""
    return [(name, dict(kwargs)) for name in _REGISTRY for kwargs in make(name).example_kwargs]


def make(name: str, obs_last_action: bool = False, **static_kwargs: Any) -> Environment:
    """Builds a registered environment from its static (shape-setting) options.

    `obs_last_action=True` wraps it in `LastActionObs`: each agent's previous action is
    appended to its observation (EPyMARL's option of that name).

    Raises:
        ValueError: for an unknown name, listing the valid ones, or a non-bool `obs_last_action`.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown environment {name!r}; valid names: {', '.join(registered_names())}")
    if not isinstance(obs_last_action, bool):
        raise ValueError(f"obs_last_action must be True or False, got {obs_last_action!r}")
    env = _REGISTRY[name](**static_kwargs)
    return LastActionObs(env) if obs_last_action else env


__all__ = [
    "Environment", "make", "registered_names", "example_cases", "GridView", "PlaneView", "RenderView",
    "GridWorld", "GridWorldParams", "GridWorldState",
    "ParticleSpread", "ParticleSpreadParams", "ParticleSpreadState",
    "Rendezvous", "RendezvousParams", "RendezvousState",
    "LastActionObs", "LastActionState",
]
