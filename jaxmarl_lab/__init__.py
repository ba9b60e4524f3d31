"""jaxmarl-lab: JAX-vectorized multi-agent reinforcement learning."""

from jaxmarl_lab.xla_flags import CPU_SCHEDULER_FLAG, add_xla_flag

add_xla_flag(CPU_SCHEDULER_FLAG)  # before JAX's backend starts: avoids an XLA CPU hang (see xla_flags)

from jaxmarl_lab.types import EnvSpec, TimeStep  # noqa: E402  (after the XLA flag above)

__version__ = "0.1.0"
__all__ = ["EnvSpec", "TimeStep", "__version__"]
