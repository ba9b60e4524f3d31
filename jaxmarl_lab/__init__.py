"""jaxmarl-lab: JAX-vectorized multi-agent reinforcement learning.

`import jaxmarl_lab` loads no JAX (the command line installs its signal handling first);
`jaxmarl_lab.EnvSpec` and `jaxmarl_lab.TimeStep` load `jaxmarl_lab.types` on first use.
"""

from jaxmarl_lab.xla_flags import CPU_SCHEDULER_FLAG, add_xla_flag

add_xla_flag(CPU_SCHEDULER_FLAG)  # before JAX's backend starts: avoids an XLA CPU hang (see xla_flags)

__version__ = "0.1.0"
__all__ = ["EnvSpec", "TimeStep", "__version__"]


def __getattr__(name: str):
    if name in ("EnvSpec", "TimeStep"):
        from jaxmarl_lab import types

        return getattr(types, name)
    raise AttributeError(f"module 'jaxmarl_lab' has no attribute {name!r}")
