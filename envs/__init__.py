"""jaxmarl-lab environments: pure JAX functions with agents as an array axis.

Import as `jaxmarl_lab.envs` (this folder is mapped there by pyproject.toml).

    from jaxmarl_lab import envs
    env = envs.make("particle-spread", num_agents=3)
    state, ts = env.reset(key, env.default_params())
"""

from __future__ import annotations

from typing import Any, Callable

from .core import Environment
from .grid_world import GridWorld, GridWorldParams, GridWorldState
from .particle_spread import ParticleSpread, ParticleSpreadParams, ParticleSpreadState
from .rendezvous import Rendezvous, RendezvousParams, RendezvousState

_REGISTRY: dict[str, Callable[..., Environment]] = {
    "grid-world": GridWorld,
    "rendezvous": Rendezvous,
    "particle-spread": ParticleSpread,
}


def registered_names() -> list[str]:
    """Names accepted by `make`, sorted."""
    return sorted(_REGISTRY)


def make(name: str, **static_kwargs: Any) -> Environment:
    """Builds a registered environment from its static (shape-setting) options.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown environment {name!r}; valid names: {', '.join(registered_names())}")
    return _REGISTRY[name](**static_kwargs)


__all__ = [
    "Environment", "make", "registered_names",
    "GridWorld", "GridWorldParams", "GridWorldState",
    "ParticleSpread", "ParticleSpreadParams", "ParticleSpreadState",
    "Rendezvous", "RendezvousParams", "RendezvousState",
]
