"""Adapters between jaxmarl-lab and other multi-agent APIs.

* `from_jaxmarl(jaxmarl_env)`: a JaxMARL `MultiAgentEnv` (dicts keyed by agent) as a
  jaxmarl-lab environment, so our runner and learners train on it.
* `to_pettingzoo(env, params, seed)`: a jaxmarl-lab environment as a PettingZoo
  `ParallelEnv` with NumPy inputs and outputs.

Neither module imports jaxmarl or pettingzoo until it is used.
"""

from jaxmarl_lab.interop.jaxmarl_env import JaxMARLEnv, JaxMARLParams, JaxMARLState, from_jaxmarl
from jaxmarl_lab.interop.pettingzoo_env import to_pettingzoo

__all__ = ["JaxMARLEnv", "JaxMARLParams", "JaxMARLState", "from_jaxmarl", "to_pettingzoo"]
