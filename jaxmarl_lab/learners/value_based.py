"""IQL, VDN and QMIX: one value-based core, three mixers.

    learner = make_qmix(env.spec, ValueConfig(recurrent=True))   # make_qmix(env.spec): its preset
    state = learner.init(key, ValueHParams(lr=5e-4))             # init(key): the preset's hparams
    actions, carry = learner.act(key, state, timestep, carry, explore=True)
    state, metrics = learner.update(key, state, batch)     # batch: Transition (B, T, ...)

* IQL (Tan 1993): each agent learns its own Q_i from its own reward.
* VDN (Sunehag et al. 2018, arXiv 1706.05296): Q_tot = sum_i Q_i, trained on the team
  reward (sum of the agents' rewards).
* QMIX (Rashid et al. 2018, arXiv 1803.11485): Q_tot = monotonic hypernetwork mixture
  of the Q_i conditioned on the global state (`networks.QMIXMixer`).

Shared machinery: MLP or GRU agent networks with parameter sharing and agent ids, a
target network updated every `target_update_period` updates by Polyak `target_tau`
(1 = hard copy), double-Q, TD(lambda) targets (lambda = 0: one-step), gradient
clipping, epsilon-greedy with a linear anneal, and `avail_actions` masking in acting
and in targets. Truncated steps bootstrap from `next_obs`; terminated ones do not.

Metrics `value_max` / `value_min` are the largest and smallest Q-value of the actions taken
in the batch on the per-agent return scale: Q_i for IQL, Q_tot / N for VDN and QMIX (which
learn the team reward, the sum of the agents' rewards).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmarl_lab import ops
from jaxmarl_lab.learners.common import annealed_lr, check_hparams, clipped_adam, create_hparams, global_norm
from jaxmarl_lab.learners.defaults import preset
from jaxmarl_lab.networks import make_agent_network, make_qmix_mixer
from jaxmarl_lab.types import EnvSpec, Learner, TimeStep, Transition
from jaxmarl_lab.validation import check_positive_int

MIXERS = ("none", "vdn", "qmix")


@dataclasses.dataclass(frozen=True)
class ValueConfig:
    """What sets shapes and control flow; validated on construction."""

    hidden_dim: int = 64  # H, agent network width (and GRU state size)
    recurrent: bool = False  # GRU agent network trained on sequences
    share_params: bool = True  # one network for all agents, with one-hot agent ids
    double_q: bool = True  # bootstrap with the target value of the online argmax
    target_update_period: int = 1  # updates between target updates (with HParams.target_tau)
    mixer_embed_dim: int = 32  # QMIX mixing width E
    hypernet_dim: int = 64  # QMIX hypernetwork width

    def __post_init__(self):
        for name in ("hidden_dim", "target_update_period", "mixer_embed_dim", "hypernet_dim"):
            check_positive_int(f"ValueConfig.{name}", getattr(self, name))
        for name in ("recurrent", "share_params", "double_q"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ValueConfig.{name} must be True or False, got {getattr(self, name)!r}")


class _ValueHParamsFields(NamedTuple):
    lr: Any = 5e-4  # () Adam learning rate, >= 0
    gamma: Any = 0.99  # () discount, in [0, 1]
    td_lambda: Any = 0.0  # () TD(lambda) trace decay, in [0, 1]; 0 = one-step targets
    eps_start: Any = 1.0  # () initial exploration rate, in [0, 1]
    eps_end: Any = 0.05  # () final exploration rate, in [0, 1]
    eps_decay_steps: Any = 50_000.0  # () env steps of the linear anneal, >= 0
    target_tau: Any = 1.0  # () Polyak rate of each target update, in (0, 1]
    max_grad_norm: Any = 10.0  # () global gradient-norm clip, > 0
    lr_anneal_steps: Any = 0.0  # () env steps over which lr decays linearly to 0, >= 0; 0 = constant lr


_HPARAM_RANGES = {"lr": (0.0, None), "gamma": (0.0, 1.0), "td_lambda": (0.0, 1.0),
                  "eps_start": (0.0, 1.0), "eps_end": (0.0, 1.0), "eps_decay_steps": (0.0, None),
                  "target_tau": (1e-12, 1.0), "max_grad_norm": (1e-12, None),
                  "lr_anneal_steps": (0.0, None)}


class ValueHParams(_ValueHParamsFields):
    """Scalars stored in the learner state: a stack of them vmaps without recompiling.

    `ValueHParams.create(**values)` range-checks concrete values before anything is
    traced; `init` checks them again when they are concrete.
    """

    __slots__ = ()

    @classmethod
    def create(cls, **values: Any) -> "ValueHParams":
        """Hyperparameters with defaults for the fields not given, range-checked.

        Raises:
            ValueError: naming an unknown field, or a field, its value and the allowed range.
        """
        return create_hparams(cls, _HPARAM_RANGES, values)


class ValueState(NamedTuple):
    params: Any  # agent network params
    mixer_params: Any  # mixer params ({} for IQL and VDN)
    target_params: Any
    target_mixer_params: Any
    opt_state: Any
    hparams: ValueHParams  # traced scalars
    updates: jax.Array  # () int32, update calls so far
    env_steps: jax.Array  # () int32, environment steps acted (advanced by the runner)


def _unroll(network, params, batch: Transition, hidden_dim: int, num_agents: int, recurrent: bool,
            need_q: bool = True):
    """Q-values of one sequence: at `obs_t` `(T, N, A)` and at `next_obs_t` `(T, N, A)`.

    The recurrent state is reset where `first_t`; the value at `next_obs_t` continues
    from the state after `obs_t`, which is right both inside an episode and at its end.
    An MLP has no state to carry, so it runs on all T steps at once instead of a T-step
    scan (on CPU this halves the update's time), and skips `obs_t` when `need_q` is False
    (the target network only bootstraps; its Q at `obs_t` is then None).
    """
    hidden0 = jnp.zeros((num_agents, hidden_dim))
    if not recurrent:
        q_of = jax.vmap(lambda obs: network.apply(params, hidden0, obs, jnp.zeros((), bool))[1])
        return (q_of(batch.obs) if need_q else None), q_of(batch.next_obs)

    def step(hidden, inputs):
        obs, first, next_obs = inputs
        hidden, q = network.apply(params, hidden, obs, first)
        _, q_next = network.apply(params, hidden, next_obs, jnp.zeros((), bool))
        return hidden, (q, q_next)

    _, (q_t, q_next_t) = jax.lax.scan(step, hidden0, (batch.obs, batch.first, batch.next_obs))
    return q_t, q_next_t


def make_value_learner(spec: EnvSpec, config: ValueConfig | None, mixer: str) -> Learner:
    """The shared core; `make_iql`, `make_vdn` and `make_qmix` choose the mixer.

    `config` None: the learner's preset on `spec` (`learners.defaults`); so are the hparams of
    `init(key)` without them.
    """
    if mixer not in MIXERS:
        raise ValueError(f"mixer must be one of {MIXERS}, got {mixer!r}")
    name = {"none": "iql", "vdn": "vdn", "qmix": "qmix"}[mixer]
    config = ValueConfig(**preset(name, spec).config) if config is None else config
    if not spec.is_discrete:
        name = {"none": "IQL", "vdn": "VDN", "qmix": "QMIX"}[mixer]
        raise ValueError(f"{name} needs discrete actions, but {spec.name} has continuous actions "
                         f"(use MADDPG or MAPPO there)")
    n, h = spec.num_agents, config.hidden_dim
    network = make_agent_network(n, spec.obs_dim, spec.action_size, h, config.recurrent, config.share_params)
    qmix = make_qmix_mixer(n, spec.state_dim, config.mixer_embed_dim, config.hypernet_dim) if mixer == "qmix" else None

    def init(key: jax.Array, hparams: ValueHParams | None = None) -> ValueState:
        hparams = ValueHParams.create(**preset(name, spec).hparams) if hparams is None else hparams
        check_hparams(hparams, _HPARAM_RANGES)
        hparams = ValueHParams(*(jnp.asarray(x, jnp.float32) for x in hparams))
        key_net, key_mix = jax.random.split(key)
        params = network.init(key_net)
        mixer_params = qmix.init(key_mix) if qmix else {}
        opt_state = clipped_adam(hparams.lr, hparams.max_grad_norm).init((params, mixer_params))
        zero = jnp.zeros((), jnp.int32)
        return ValueState(params, mixer_params, params, mixer_params, opt_state, hparams, zero, zero)

    def initial_carry() -> jax.Array:
        return jnp.zeros((n, h))

    def act(key: jax.Array, state: ValueState, timestep: TimeStep, carry: jax.Array, explore: bool):
        first = timestep.done
        carry, q = network.apply(state.params, carry, timestep.obs, first)
        greedy = ops.masked_argmax(q, timestep.avail_actions)
        if not explore:
            return greedy, carry
        hp = state.hparams
        eps = ops.epsilon_schedule(state.env_steps, hp.eps_start, hp.eps_end, hp.eps_decay_steps)
        key_explore, key_random = jax.random.split(key)
        random = jax.random.categorical(key_random, jnp.where(timestep.avail_actions, 0.0, -jnp.inf))
        explore_mask = jax.random.uniform(key_explore, (n,)) < eps
        return jnp.where(explore_mask, random, greedy).astype(jnp.int32), carry

    def sequence_loss(online, target, hp: ValueHParams, seq: Transition):
        """TD(lambda) loss of one sequence `(T, ...)`; returns (loss, (q_mean, target_mean, per-agent Q (T,...)))."""
        params, mixer_params = online
        target_params, target_mixer_params = target
        q_t, q_next_online_t = _unroll(network, params, seq, h, n, config.recurrent)
        _, q_next_target_t = _unroll(network, target_params, seq, h, n, config.recurrent, need_q=False)
        chosen_t = jnp.take_along_axis(q_t, seq.action[..., None], axis=-1)[..., 0]  # (T, N)
        if config.double_q:
            next_v_t = ops.double_q_value(jax.lax.stop_gradient(q_next_online_t), q_next_target_t,
                                          seq.next_avail_actions)
        else:
            next_v_t = ops.max_q_value(q_next_target_t, seq.next_avail_actions)  # (T, N)
        done_t = seq.done
        targets = jax.vmap(ops.td_lambda_targets, in_axes=(1, None, None, 1, None, None), out_axes=1)
        if mixer == "none":  # IQL: per agent, own reward
            pred_t = chosen_t
            target_t = targets(seq.reward, seq.terminated, done_t, next_v_t, hp.gamma, hp.td_lambda)
        else:
            team_r_t = seq.reward.sum(axis=-1)
            if mixer == "vdn":
                pred_t, next_tot_t = chosen_t.sum(-1), next_v_t.sum(-1)
            else:
                pred_t = jax.vmap(qmix.apply, in_axes=(None, 0, 0))(mixer_params, chosen_t, seq.global_state)
                next_tot_t = jax.vmap(qmix.apply, in_axes=(None, 0, 0))(
                    target_mixer_params, next_v_t, seq.next_global_state)
            target_t = ops.td_lambda_targets(team_r_t, seq.terminated, done_t, next_tot_t, hp.gamma, hp.td_lambda)
        target_t = jax.lax.stop_gradient(target_t)
        per_agent_t = pred_t if mixer == "none" else pred_t / n
        return jnp.mean((pred_t - target_t) ** 2), (pred_t.mean(), target_t.mean(), per_agent_t)

    def update(key: jax.Array, state: ValueState, batch: Transition):
        del key  # the update is deterministic given the batch
        hp = state.hparams
        online = (state.params, state.mixer_params)
        target = (state.target_params, state.target_mixer_params)

        def loss_fn(online):
            losses, (q_mean, target_mean, per_agent) = jax.vmap(sequence_loss, in_axes=(None, None, None, 0))(
                online, target, hp, batch)
            return losses.mean(), (q_mean.mean(), target_mean.mean(), jax.lax.stop_gradient(per_agent))

        (loss, (q_mean, target_mean, per_agent)), grads = jax.value_and_grad(loss_fn, has_aux=True)(online)
        lr = annealed_lr(hp, state.env_steps)
        tx = clipped_adam(lr, hp.max_grad_norm)
        deltas, opt_state = tx.update(grads, state.opt_state, online)
        online = optax.apply_updates(online, deltas)
        updates = state.updates + 1
        due = (updates % config.target_update_period) == 0
        tau = jnp.where(due, hp.target_tau, 0.0)
        target = ops.polyak_update(target, online, tau)
        metrics = {"loss": loss, "q_mean": q_mean, "target_mean": target_mean,
                   "grad_norm": global_norm(grads), "lr": lr,
                   "value_max": per_agent.max(), "value_min": per_agent.min(),
                   "epsilon": ops.epsilon_schedule(state.env_steps, hp.eps_start, hp.eps_end, hp.eps_decay_steps)}
        new_state = state._replace(params=online[0], mixer_params=online[1], target_params=target[0],
                                   target_mixer_params=target[1], opt_state=opt_state, updates=updates)
        return new_state, metrics

    return Learner(init, initial_carry, act, update, spec=spec)


def make_iql(spec: EnvSpec, config: ValueConfig | None = None) -> Learner:
    """Independent Q-learning: no mixer, each agent on its own reward."""
    return make_value_learner(spec, config, "none")


def make_vdn(spec: EnvSpec, config: ValueConfig | None = None) -> Learner:
    """Value decomposition networks: Q_tot = sum of agent Qs, on the team reward."""
    return make_value_learner(spec, config, "vdn")


def make_qmix(spec: EnvSpec, config: ValueConfig | None = None) -> Learner:
    """QMIX: monotonic state-conditioned mixing of agent Qs, on the team reward."""
    return make_value_learner(spec, config, "qmix")
