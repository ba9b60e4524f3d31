"""MADDPG: deterministic actors with centralized critics (Lowe et al. 2017, arXiv 1706.02275).

    learner = make_maddpg(env.spec, MADDPGConfig())  # make_maddpg(env.spec): its preset (`learners.defaults`)
    state = learner.init(key, MADDPGHParams())       # init(key): the preset's hparams
    actions, carry = learner.act(key, state, timestep, carry, explore=True)
    state, metrics = learner.update(key, state, batch)     # batch: Transition (B, T, ...)

Each agent i has an actor mu_i(o_i) on its own observation and a centralized critic
Q_i(s, a_1, ..., a_N) on the global state and every agent's action (one-hot for
discrete actions), plus target copies of both updated by Polyak averaging (`tau`).
Off-policy: `update` flattens the replayed sequences `(B, T)` into one batch of
transitions and takes one critic step, then one actor step on the updated critic:

    y_i     = r_i + gamma * (1 - terminated) * Q'_i(s', mu'_1(o'_1), ..., mu'_N(o'_N))
    L_Q     = mean_i (Q_i(s, a_1, ..., a_N) - y_i)^2
    L_mu    = -mean_i Q_i(s, a_1, ..., mu_i(o_i), ..., a_N) + policy_reg * mean(out^2)

with the other agents' actions a_j taken from the batch, as in the paper. Truncated
steps bootstrap from `next_obs` (the observation before any auto-reset); terminated
ones do not. `policy_reg` penalises the actors' raw outputs (pre-tanh or logits), as
in the authors' code.

Actions:

* continuous: the actor's output is linear where the action box is unbounded and
  `tanh` scaled to the box `[action_low, action_high]` otherwise; exploration adds
  Gaussian noise of scale `sigma` (linearly annealed from `sigma_start` to `sigma_end`
  over `sigma_decay_steps` env steps) and clips to the box.
* discrete: the actor outputs logits over the available actions. Acting samples
  `argmax(logits + Gumbel noise)` (a Gumbel-softmax sample made hard, i.e. a sample of
  the softmax policy) when exploring and takes the argmax when greedy, returning
  `(N,)` int32. The actor loss feeds the critic a Gumbel-softmax sample at
  `temperature` (Jang et al. 2017, arXiv 1611.01144): straight-through (one-hot
  forward, soft gradient) by default, or the soft sample. Target actions are hard
  Gumbel samples of the target actors, one-hot like the actions stored in replay.

Networks are MLPs (`networks.make_agent_network`), shared across agents with a one-hot
agent id appended (default) or one set per agent stacked on a leading N axis;
`initial_carry` returns zeros `(N, H)` for API uniformity. Metrics `value_max` / `value_min`
are the largest and smallest `Q_i` of the batch (per agent, like every return here).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmarl_lab import ops
from jaxmarl_lab.learners.common import check_hparams, clipped_adam, create_hparams, global_norm
from jaxmarl_lab.learners.defaults import preset
from jaxmarl_lab.networks import make_agent_network
from jaxmarl_lab.types import EnvSpec, Learner, TimeStep, Transition
from jaxmarl_lab.validation import check_positive_int

_MASKED = -1e9  # logit of an unavailable action (finite, so softmax gradients stay finite)


@dataclasses.dataclass(frozen=True)
class MADDPGConfig:
    """What sets shapes and control flow; validated on construction."""

    hidden_dim: int = 64  # H, actor and critic width
    share_params: bool = True  # one actor and one critic for all agents, with one-hot agent ids
    straight_through: bool = True  # discrete actor loss: hard one-hot forward, soft gradient

    def __post_init__(self):
        check_positive_int("MADDPGConfig.hidden_dim", self.hidden_dim)
        for name in ("share_params", "straight_through"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"MADDPGConfig.{name} must be True or False, got {getattr(self, name)!r}")


class MADDPGHParams(NamedTuple):
    """Scalars stored in the learner state; `MADDPGHParams.create` range-checks them."""

    lr_actor: Any = 1e-3  # () actor Adam learning rate, >= 0
    lr_critic: Any = 1e-3  # () critic Adam learning rate, >= 0
    gamma: Any = 0.95  # () discount, in [0, 1]
    tau: Any = 0.01  # () Polyak rate of the target update, in (0, 1]; 1 = hard copy
    sigma_start: Any = 0.3  # () initial Gaussian exploration std in action units (continuous), >= 0
    sigma_end: Any = 0.05  # () final Gaussian exploration std in action units (continuous), >= 0
    sigma_decay_steps: Any = 50_000.0  # () env steps of the linear anneal, >= 0
    temperature: Any = 1.0  # () Gumbel-softmax temperature of the actor loss (discrete), > 0
    policy_reg: Any = 1e-3  # () weight of the mean squared raw actor output, >= 0
    max_grad_norm: Any = 0.5  # () global gradient-norm clip of each optimizer, > 0

    @classmethod
    def create(cls, **values: Any) -> "MADDPGHParams":
        """Hyperparameters with defaults for the fields not given, range-checked.

        Raises:
            ValueError: naming an unknown field, or a field, its value and the allowed range.
        """
        return create_hparams(cls, MADDPG_HPARAM_RANGES, values)


MADDPG_HPARAM_RANGES = {"lr_actor": (0.0, None), "lr_critic": (0.0, None), "gamma": (0.0, 1.0),
                        "tau": (1e-12, 1.0), "sigma_start": (0.0, None), "sigma_end": (0.0, None),
                        "sigma_decay_steps": (0.0, None), "temperature": (1e-12, None),
                        "policy_reg": (0.0, None), "max_grad_norm": (1e-12, None)}


class MADDPGState(NamedTuple):
    actor_params: Any  # actor network params (leading N axis without sharing)
    critic_params: Any  # critic network params
    target_actor_params: Any
    target_critic_params: Any
    actor_opt_state: Any
    critic_opt_state: Any
    hparams: MADDPGHParams  # traced scalars
    updates: jax.Array  # () int32, update calls so far
    env_steps: jax.Array  # () int32, environment steps acted (advanced by the runner)


def critic_target(r: jax.Array, terminated: jax.Array, next_q: jax.Array, gamma: jax.Array) -> jax.Array:
    """One-step critic target of one transition, `y_i = r_i + gamma * (1 - terminated) * Q'_i`.

    Lowe et al. 2017, eq. 6. A truncated step bootstraps from `next_q` (the target
    critic at the observation reached before any auto-reset); a terminated one does not.

    Args:
        r: `(N,)` rewards.
        terminated: `()` bool, the step reached a terminal state.
        next_q: `(N,)` target-critic values at the next state and target actions.
        gamma: discount, scalar.

    Returns:
        `(N,)` targets.
    """
    return r + gamma * (1.0 - terminated.astype(r.dtype)) * next_q


def make_maddpg(spec: EnvSpec, config: MADDPGConfig | None = None) -> Learner:
    """MADDPG for discrete (Gumbel-softmax) or continuous (deterministic) actions.

    `config` None: the preset of MADDPG on `spec` (`learners.defaults`); so are the hparams of
    `init(key)` without them.

    Raises:
        ValueError: for an action box with `action_low >= action_high`.
    """
    config = MADDPGConfig(**preset("maddpg", spec).config) if config is None else config
    n, h, a_dim = spec.num_agents, config.hidden_dim, spec.action_size
    discrete = spec.is_discrete
    low, high = float(spec.action_low), float(spec.action_high)
    if not discrete and not low < high:
        raise ValueError(f"MADDPG needs action_low < action_high, got [{low}, {high}] for {spec.name}")
    bounded = not discrete and math.isfinite(low) and math.isfinite(high)
    actor = make_agent_network(n, spec.obs_dim, a_dim, h, False, config.share_params, head_scale=0.01)
    critic = make_agent_network(n, spec.state_dim + n * a_dim, 1, h, False, config.share_params)
    zeros_h, not_first = jnp.zeros((n, h)), jnp.zeros((), bool)

    def actor_out(params: Any, obs: jax.Array) -> jax.Array:
        """Raw actor outputs `(N, A)`: pre-tanh actions or logits."""
        return actor.apply(params, zeros_h, obs, not_first)[1]

    def to_box(out: jax.Array) -> jax.Array:
        """Deterministic continuous actions `(N, D)` from raw outputs."""
        return low + (high - low) * 0.5 * (jnp.tanh(out) + 1.0) if bounded else out

    def encode(action: jax.Array) -> jax.Array:
        """Stored actions as critic inputs `(N, A)`: one-hot for discrete ones."""
        return jax.nn.one_hot(action, a_dim, dtype=jnp.float32) if discrete else action.astype(jnp.float32)

    def q_values(params: Any, global_state: jax.Array, joint: jax.Array) -> jax.Array:
        """`Q_i(s, joint_i)` for every agent, `(N,)`; `joint (N, N * A)` is agent i's joint action on row i."""
        x = jnp.concatenate([jnp.broadcast_to(global_state, (n, spec.state_dim)), joint], axis=-1)
        return critic.apply(params, zeros_h, x, not_first)[1][:, 0]

    def noise_scale(hp: MADDPGHParams, env_steps: jax.Array) -> jax.Array:
        return ops.epsilon_schedule(env_steps, hp.sigma_start, hp.sigma_end, hp.sigma_decay_steps)

    def init(key: jax.Array, hparams: MADDPGHParams | None = None) -> MADDPGState:
        hparams = MADDPGHParams.create(**preset("maddpg", spec).hparams) if hparams is None else hparams
        check_hparams(hparams, MADDPG_HPARAM_RANGES)
        hparams = MADDPGHParams(*(jnp.asarray(x, jnp.float32) for x in hparams))
        key_actor, key_critic = jax.random.split(key)
        actor_params, critic_params = actor.init(key_actor), critic.init(key_critic)
        actor_opt = clipped_adam(hparams.lr_actor, hparams.max_grad_norm).init(actor_params)
        critic_opt = clipped_adam(hparams.lr_critic, hparams.max_grad_norm).init(critic_params)
        zero = jnp.zeros((), jnp.int32)
        return MADDPGState(actor_params, critic_params, actor_params, critic_params, actor_opt, critic_opt,
                           hparams, zero, zero)

    def initial_carry() -> jax.Array:
        return jnp.zeros((n, h))

    def act(key: jax.Array, state: MADDPGState, timestep: TimeStep, carry: jax.Array, explore: bool):
        out = actor_out(state.actor_params, timestep.obs)
        if discrete:
            logits = jnp.where(timestep.avail_actions, out, _MASKED)
            if explore:  # a hard Gumbel-softmax sample: a sample of softmax(logits)
                logits = logits + jax.random.gumbel(key, logits.shape)
            return ops.masked_argmax(logits, timestep.avail_actions), carry
        action = to_box(out)
        if explore:
            action = action + noise_scale(state.hparams, state.env_steps) * jax.random.normal(key, action.shape)
        return jnp.clip(action, low, high).astype(jnp.float32), carry

    def target_actions(key: jax.Array, params: Any, tr: Transition) -> jax.Array:
        """Target actors' actions at `next_obs` as critic inputs `(N, A)` (one transition)."""
        out = actor_out(params, tr.next_obs)
        if not discrete:
            return to_box(out)
        logits = jnp.where(tr.next_avail_actions, out, _MASKED) + jax.random.gumbel(key, out.shape)
        return jax.nn.one_hot(ops.masked_argmax(logits, tr.next_avail_actions), a_dim, dtype=jnp.float32)

    def critic_loss(critic_params: Any, target_params: tuple, hp: MADDPGHParams, batch: Transition, keys):
        """Mean squared TD error over transitions `(M, ...)` and agents; aux (q_mean, target_mean, q_max, q_min)."""
        target_actor, target_critic = target_params

        def one(tr: Transition, key: jax.Array):
            next_joint = target_actions(key, target_actor, tr).reshape(-1)
            next_q = q_values(target_critic, tr.next_global_state, jnp.broadcast_to(next_joint, (n, n * a_dim)))
            y = jax.lax.stop_gradient(critic_target(tr.reward, tr.terminated, next_q, hp.gamma))
            joint = jnp.broadcast_to(encode(tr.action).reshape(-1), (n, n * a_dim))
            return q_values(critic_params, tr.global_state, joint), y

        q, y = jax.vmap(one)(batch, keys)  # (M, N) each
        return jnp.mean((q - y) ** 2), (q.mean(), y.mean(), q.max(), q.min())

    def policy_actions(key: jax.Array, out: jax.Array, avail: jax.Array, temperature: jax.Array) -> jax.Array:
        """Differentiable actions `(N, A)` of the online actors for the actor loss."""
        if not discrete:
            return to_box(out)
        logits = jnp.where(avail, out, _MASKED)
        soft = jax.nn.softmax((logits + jax.random.gumbel(key, out.shape)) / temperature)
        if not config.straight_through:
            return soft
        hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), a_dim, dtype=soft.dtype)
        return hard + soft - jax.lax.stop_gradient(soft)

    def actor_loss(actor_params: Any, critic_params: Any, hp: MADDPGHParams, batch: Transition, keys):
        """`-mean_i Q_i(s, a_1, ..., mu_i(o_i), ..., a_N) + policy_reg * mean(out^2)` over `(M, ...)`."""
        own = jnp.eye(n, dtype=bool)[:, :, None]  # (N, N, 1): row i replaces agent i's action

        def one(tr: Transition, key: jax.Array):
            out = actor_out(actor_params, tr.obs)
            mine = policy_actions(key, out, tr.avail_actions, hp.temperature)
            joint = jnp.where(own, mine[None], encode(tr.action)[None]).reshape(n, n * a_dim)
            q = q_values(critic_params, tr.global_state, joint)
            reg = jnp.mean(jnp.where(tr.avail_actions, out, 0.0) ** 2) if discrete else jnp.mean(out ** 2)
            return -q.mean(), reg

        pg, reg = jax.vmap(one)(batch, keys)
        return pg.mean() + hp.policy_reg * reg.mean(), pg.mean()

    def update(key: jax.Array, state: MADDPGState, batch: Transition):
        hp = state.hparams
        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)  # (B, T, ...) -> (M, ...)
        m = flat.reward.shape[0]
        key_target, key_actor = jax.random.split(key)

        (c_loss, (q_mean, target_mean, q_max, q_min)), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
            state.critic_params, (state.target_actor_params, state.target_critic_params), hp, flat,
            jax.random.split(key_target, m))
        c_tx = clipped_adam(hp.lr_critic, hp.max_grad_norm)
        deltas, critic_opt = c_tx.update(c_grads, state.critic_opt_state, state.critic_params)
        critic_params = optax.apply_updates(state.critic_params, deltas)

        (a_loss, pg_loss), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(
            state.actor_params, critic_params, hp, flat, jax.random.split(key_actor, m))
        a_tx = clipped_adam(hp.lr_actor, hp.max_grad_norm)
        deltas, actor_opt = a_tx.update(a_grads, state.actor_opt_state, state.actor_params)
        actor_params = optax.apply_updates(state.actor_params, deltas)

        metrics = {"critic_loss": c_loss, "actor_loss": a_loss, "pg_loss": pg_loss, "q_mean": q_mean,
                   "target_mean": target_mean, "critic_grad_norm": global_norm(c_grads),
                   "actor_grad_norm": global_norm(a_grads), "value_max": q_max, "value_min": q_min}
        if discrete:
            metrics["temperature"] = hp.temperature
        else:
            metrics["noise_scale"] = noise_scale(hp, state.env_steps)
        new_state = state._replace(
            actor_params=actor_params, critic_params=critic_params,
            target_actor_params=ops.polyak_update(state.target_actor_params, actor_params, hp.tau),
            target_critic_params=ops.polyak_update(state.target_critic_params, critic_params, hp.tau),
            actor_opt_state=actor_opt, critic_opt_state=critic_opt, updates=state.updates + 1)
        return new_state, metrics

    return Learner(init, initial_carry, act, update, spec=spec)
