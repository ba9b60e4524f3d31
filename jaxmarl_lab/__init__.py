"""jaxmarl-lab: JAX-vectorized multi-agent reinforcement learning."""

from jaxmarl_lab.types import EnvSpec, TimeStep

__version__ = "0.1.0"
__all__ = ["EnvSpec", "TimeStep", "__version__"]
