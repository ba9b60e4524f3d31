"""Networks as `Network(init, apply)` pairs of pure functions (brax style), built on flax.

Agent networks act on one environment's agents at once: inputs `(N, O)`, recurrent
state `(N, H)`. With parameter sharing (the default) one set of weights serves every
agent and a one-hot agent id is appended to the observation; without it each agent has
its own weights, stacked on a leading `N` axis.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

#: The weights of a network: a flax variables pytree (stacked on a leading `N` axis without sharing).
NetworkParams = Any


class Network(NamedTuple):
    """A network as a pair of pure functions: `init(key) -> params`; `apply(params, *inputs) -> outputs`.

    The inputs and outputs of `apply` depend on the network; each `make_*` below documents its own.
    """

    init: Callable[[jax.Array], NetworkParams]  # key -> fresh params
    apply: Callable[..., Any]  # (params: NetworkParams, *inputs) -> outputs; inputs per network


ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh}


class Dense(nn.Module):
    """`nn.Dense` (same parameter names, shapes and initialisers) that flattens the leading axes
    of `x (..., I)` into rows first, so XLA sees one 2-D matmul.

    `nn.Dense` contracts the last axis of an N-D input directly; XLA's CPU backend then lays
    out the weight gradient of a `(B, T, N, I)` input badly. On a 2-core CPU the IPPO update of
    `benchmarks/ppo_speed.py` took 0.83 s per 40 updates with `nn.Dense` and 0.47 s with this.
    """

    features: int
    kernel_init: Callable[..., Any] = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        rows = x.reshape((-1, x.shape[-1])) @ kernel + bias
        return rows.reshape(x.shape[:-1] + (self.features,))


class AgentTorso(nn.Module):
    """Dense -> act -> (GRU cell | Dense -> act) -> Dense head of `out_dim`; act is ReLU or tanh.

    `__call__(hidden (..., H), x (..., I)) -> (hidden (..., H), out (..., out_dim))` over any
    leading axes; an MLP passes its hidden state through unchanged.
    """

    hidden_dim: int
    out_dim: int
    recurrent: bool = False
    head_scale: float = 1.0
    activation: str = "relu"  # "relu" or "tanh"

    @nn.compact
    def __call__(self, hidden: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        act = ACTIVATIONS[self.activation]
        x = act(Dense(self.hidden_dim, name="Dense_0")(x))
        if self.recurrent:
            hidden, x = nn.GRUCell(self.hidden_dim)(hidden, x)
        else:
            x = act(Dense(self.hidden_dim, name="Dense_1")(x))
        head = Dense(self.out_dim, name=f"Dense_{1 if self.recurrent else 2}",
                     kernel_init=nn.initializers.variance_scaling(self.head_scale, "fan_avg", "uniform"))
        return hidden, head(x)


def make_agent_network(num_agents: int, obs_dim: int, out_dim: int, hidden_dim: int,
                       recurrent: bool, share_params: bool, head_scale: float = 1.0,
                       activation: str = "relu") -> Network:
    """Per-agent network over one environment's agents.

    Returns:
        `Network` with `init(key) -> params` and
        `apply(params, hidden (..., N, H), obs (..., N, O), first (...)) -> (hidden (..., N, H), out (..., N, out_dim))`,
        where `first` resets the recurrent state to zeros before the step (episode start). The
        leading axes `...` (none for one environment's step, `(B, T)` for a batch of sequences)
        pass through the dense layers as one batch of rows (see `Dense`), not under a `vmap`.
    """
    module = AgentTorso(hidden_dim, out_dim, recurrent, head_scale, activation)
    in_dim = obs_dim + (num_agents if share_params else 0)
    ids = jnp.eye(num_agents, dtype=jnp.float32)

    def init(key: jax.Array) -> NetworkParams:
        dummy_h, dummy_x = jnp.zeros((hidden_dim,)), jnp.zeros((in_dim,))
        if share_params:
            return module.init(key, dummy_h, dummy_x)
        return jax.vmap(lambda k: module.init(k, dummy_h, dummy_x))(jax.random.split(key, num_agents))

    def apply(params: NetworkParams, hidden: jax.Array, obs: jax.Array,
              first: jax.Array) -> tuple[jax.Array, jax.Array]:
        first = jnp.asarray(first)
        hidden = jnp.where(first.reshape(first.shape + (1, 1)), jnp.zeros_like(hidden), hidden)
        if share_params:
            x = jnp.concatenate([obs, jnp.broadcast_to(ids, obs.shape[:-1] + (num_agents,))], axis=-1)
            return module.apply(params, hidden, x)
        return jax.vmap(module.apply, in_axes=(0, -2, -2), out_axes=-2)(params, hidden, obs)

    return Network(init, apply)


def make_mlp(in_dim: int, out_dim: int, hidden_dim: int, num_layers: int = 2) -> Network:
    """A plain ReLU MLP `(in_dim,) -> (out_dim,)`."""

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            for _ in range(num_layers):
                x = nn.relu(nn.Dense(hidden_dim)(x))
            return nn.Dense(out_dim)(x)

    module = MLP()
    return Network(lambda key: module.init(key, jnp.zeros((in_dim,))), module.apply)


class QMIXMixer(nn.Module):
    """The QMIX monotonic mixing network (Rashid et al. 2018, arXiv 1803.11485).

    Hypernetworks conditioned on the global state produce the mixing weights, made
    non-negative with an absolute value, so dQ_tot/dQ_i >= 0:

        hidden = ELU(q @ |W1(s)| + b1(s))            W1(s): (N, E), b1(s): (E,)
        Q_tot  = hidden @ |W2(s)| + V(s)              W2(s): (E,),   V(s): Dense-ReLU-Dense

    `W1` and `W2` come from two-layer hypernetworks of width `hypernet_dim`.
    `__call__(q (N,), state (S,)) -> Q_tot ()`.
    """

    num_agents: int
    embed_dim: int = 32
    hypernet_dim: int = 64

    @nn.compact
    def __call__(self, q: jax.Array, state: jax.Array) -> jax.Array:
        n, e = self.num_agents, self.embed_dim

        def hyper(out: int, name: str) -> jax.Array:
            h = nn.relu(nn.Dense(self.hypernet_dim, name=f"{name}_0")(state))
            return nn.Dense(out, name=f"{name}_1")(h)

        w1 = jnp.abs(hyper(n * e, "hyper_w1")).reshape(n, e)
        b1 = nn.Dense(e, name="hyper_b1")(state)
        hidden = nn.elu(q @ w1 + b1)
        w2 = jnp.abs(hyper(e, "hyper_w2"))
        v = nn.Dense(1, name="value_1")(nn.relu(nn.Dense(e, name="value_0")(state)))[0]
        return hidden @ w2 + v


def make_qmix_mixer(num_agents: int, state_dim: int, embed_dim: int = 32, hypernet_dim: int = 64) -> Network:
    """`QMIXMixer` as a `Network`: `apply(params, q (N,), state (S,)) -> ()`."""
    module = QMIXMixer(num_agents, embed_dim, hypernet_dim)
    return Network(lambda key: module.init(key, jnp.zeros((num_agents,)), jnp.zeros((state_dim,))),
                   module.apply)
