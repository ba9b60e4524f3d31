"""MAPPO and IPPO: one PPO implementation, two critics (Yu et al. 2022, arXiv 2103.01955).

    learner = make_mappo(env.spec)                  # critic = V(global state, agent id); defaults of env.spec
    learner = make_ippo(env.spec, PPOConfig())      # critic = V(own observation); the class defaults
    state = learner.init(key)                       # the env's preset hparams (`learners.defaults`)
    actions, carry = learner.act(key, state, timestep, carry, explore=True)
    state, metrics = learner.update(key, state, batch)           # batch: Transition (B, T, ...)

On-policy: `update` takes the rollout just collected with the current parameters. It
computes GAE(lambda) per agent (bootstrapping through truncation, not termination),
normalises value targets with running statistics (MAPPO's ValueNorm), then runs
`num_epochs` epochs of `num_minibatches` minibatches of whole sequences with the PPO
clipped objective, a clipped or Huber value loss, an entropy bonus and gradient clipping.

Policies: MLP or GRU with parameter sharing and agent ids; categorical over available
actions for discrete spaces, diagonal Gaussian (state-independent log std) or Beta
(for bounded boxes) for continuous ones, through distrax.

Metrics include `value_max` and `value_min` (the largest and smallest value estimate of the
rollout, on the per-agent return scale) and, only when `PPOConfig.grad_var_samples` > 0 (off
by default), `pg_variance`: the variance across samples of the per-sample policy gradient
`grad log pi(a|o) * A` (per-sample gradients by `vmap(grad)`, on `grad_var_samples` random
agent-steps, with unnormalised advantages), summed over the policy parameters, which the
critic-variance experiment reads.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp
import optax

from jaxmarl_lab import ops
from jaxmarl_lab.learners.common import annealed_lr, check_hparams, clipped_adam, create_hparams, global_norm
from jaxmarl_lab.learners.defaults import preset
from jaxmarl_lab.networks import make_agent_network
from jaxmarl_lab.types import EnvSpec, Learner, TimeStep, Transition
from jaxmarl_lab.validation import check_positive_int


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """What sets shapes and control flow; validated on construction."""

    critic: str = "centralized"  # "centralized": V(global state, id); "independent": V(own obs)
    hidden_dim: int = 64  # H
    recurrent: bool = False  # GRU policy
    share_params: bool = True  # one network for all agents, with one-hot agent ids
    num_epochs: int = 4
    num_minibatches: int = 4  # over the rollout's sequences; must divide num_envs
    value_loss: str = "huber"  # "huber" or "clipped"
    value_norm: bool = True  # running mean/std normalisation of value targets
    continuous_dist: str = "gaussian"  # "gaussian" or "beta" (needs a bounded action box)
    grad_var_samples: int = 0  # agent-steps for the experiment-only pg_variance metric (0: off)
    activation: str = "relu"  # hidden activation of actor and critic: "relu" or "tanh"

    def __post_init__(self):
        choices = {"critic": ("centralized", "independent"), "value_loss": ("huber", "clipped"),
                   "continuous_dist": ("gaussian", "beta"), "activation": ("relu", "tanh")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"PPOConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("hidden_dim", "num_epochs", "num_minibatches"):
            check_positive_int(f"PPOConfig.{name}", getattr(self, name))
        check_positive_int("PPOConfig.grad_var_samples", self.grad_var_samples, minimum=0)
        for name in ("recurrent", "share_params", "value_norm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"PPOConfig.{name} must be True or False, got {getattr(self, name)!r}")


class PPOHParams(NamedTuple):
    """Scalars stored in the learner state; `PPOHParams.create` range-checks them."""

    lr: Any = 3e-3  # () Adam learning rate, >= 0
    gamma: Any = 0.99  # () discount, in [0, 1]
    gae_lambda: Any = 0.95  # () GAE trace decay, in [0, 1]
    clip_eps: Any = 0.2  # () PPO ratio clip (and value clip), > 0
    vf_coef: Any = 1.0  # () value-loss weight, >= 0
    ent_coef: Any = 0.01  # () entropy-bonus weight, >= 0
    max_grad_norm: Any = 10.0  # () global gradient-norm clip, > 0
    huber_delta: Any = 10.0  # () Huber value-loss threshold, > 0
    value_norm_beta: Any = 0.99999  # () EMA rate of the value-target statistics, in [0, 1)
    lr_anneal_steps: Any = 0.0  # () env steps over which lr decays linearly to 0 (PureJaxRL's
    #                              ANNEAL_LR; set it to the run's budget), >= 0; 0 = constant lr

    @classmethod
    def create(cls, **values: Any) -> "PPOHParams":
        """Hyperparameters with defaults for the fields not given, range-checked.

        Raises:
            ValueError: naming an unknown field, or a field, its value and the allowed range.
        """
        return create_hparams(cls, PPO_HPARAM_RANGES, values)


PPO_HPARAM_RANGES = {"lr": (0.0, None), "gamma": (0.0, 1.0), "gae_lambda": (0.0, 1.0),
                     "clip_eps": (1e-12, None), "vf_coef": (0.0, None), "ent_coef": (0.0, None),
                     "max_grad_norm": (1e-12, None), "huber_delta": (1e-12, None),
                     "value_norm_beta": (0.0, 1.0 - 1e-12), "lr_anneal_steps": (0.0, None)}


class ValueNormState(NamedTuple):
    mean: jax.Array  # () float32, EMA of targets
    mean_sq: jax.Array  # () float32, EMA of squared targets
    debias: jax.Array  # () float32, EMA of 1 (corrects the zero start)


class PPOState(NamedTuple):
    actor_params: Any
    critic_params: Any
    opt_state: Any
    value_norm: ValueNormState
    hparams: PPOHParams  # traced scalars
    updates: jax.Array  # () int32
    env_steps: jax.Array  # () int32, advanced by the runner


def _norm_stats(vn: ValueNormState) -> tuple[jax.Array, jax.Array]:
    debias = jnp.maximum(vn.debias, 1e-5)
    mean = vn.mean / debias
    var = jnp.maximum(vn.mean_sq / debias - mean ** 2, 1e-4)
    return mean, jnp.sqrt(var)


def make_ppo(spec: EnvSpec, config: PPOConfig | None = None) -> Learner:
    """MAPPO (`critic="centralized"`) or IPPO (`critic="independent"`).

    `config` None: the preset of MAPPO on `spec` (`learners.defaults`); `init(key)` without
    hparams uses the preset of the learner `config.critic` names.
    """
    config = PPOConfig(**preset("mappo", spec).config) if config is None else config
    name = "mappo" if config.critic == "centralized" else "ippo"
    n, h = spec.num_agents, config.hidden_dim
    discrete = spec.is_discrete
    if config.continuous_dist == "beta" and not discrete and not (
            math.isfinite(spec.action_low) and math.isfinite(spec.action_high)):
        raise ValueError(f"PPOConfig.continuous_dist='beta' needs a bounded action box; {spec.name} has "
                         f"[{spec.action_low}, {spec.action_high}]")
    beta = not discrete and config.continuous_dist == "beta"
    out_dim = spec.action_size * (2 if beta else 1)
    actor = make_agent_network(n, spec.obs_dim, out_dim, h, config.recurrent, config.share_params, head_scale=0.01,
                               activation=config.activation)
    critic_in = spec.state_dim if config.critic == "centralized" else spec.obs_dim
    critic = make_agent_network(n, critic_in, 1, h, False, config.share_params, activation=config.activation)

    def distribution(params: Any, out: jax.Array, avail: jax.Array) -> distrax.Distribution:
        if discrete:
            return distrax.Categorical(logits=jnp.where(avail, out, -1e9))
        if beta:
            conc = jax.nn.softplus(out) + 1.0
            return distrax.Independent(distrax.Beta(conc[..., :spec.action_size], conc[..., spec.action_size:]), 1)
        return distrax.MultivariateNormalDiag(out, jnp.exp(params["log_std"]))

    def to_env(raw: jax.Array) -> jax.Array:
        return spec.action_low + (spec.action_high - spec.action_low) * raw if beta else raw

    def from_env(action: jax.Array) -> jax.Array:
        if not beta:
            return action
        x = (action - spec.action_low) / (spec.action_high - spec.action_low)
        return jnp.clip(x, 1e-6, 1.0 - 1e-6)

    def critic_inputs(global_state: jax.Array, obs: jax.Array) -> jax.Array:
        """`(..., N, I)`: the global state for every agent, or each agent's observation."""
        if config.critic == "centralized":
            return jnp.broadcast_to(global_state[..., None, :], obs.shape[:-1] + global_state.shape[-1:])
        return obs

    def values(params: Any, inputs: jax.Array) -> jax.Array:
        """Normalised values `(..., N)` of critic inputs `(..., N, I)`, all rows in one pass."""
        lead = inputs.shape[:-2]
        zeros = jnp.zeros(inputs.shape[:-1] + (h,))
        return critic.apply(params, zeros, inputs, jnp.zeros(lead, bool))[1][..., 0]

    def init(key: jax.Array, hparams: PPOHParams | None = None) -> PPOState:
        hparams = PPOHParams.create(**preset(name, spec).hparams) if hparams is None else hparams
        check_hparams(hparams, PPO_HPARAM_RANGES)
        hparams = PPOHParams(*(jnp.asarray(x, jnp.float32) for x in hparams))
        key_actor, key_critic = jax.random.split(key)
        actor_params = {"net": actor.init(key_actor)}
        if not discrete and not beta:
            actor_params["log_std"] = jnp.zeros((spec.action_size,))
        critic_params = critic.init(key_critic)
        opt_state = _optimizer(hparams).init((actor_params, critic_params))
        zero_f, zero_i = jnp.zeros(()), jnp.zeros((), jnp.int32)
        return PPOState(actor_params, critic_params, opt_state, ValueNormState(zero_f, zero_f, zero_f),
                        hparams, zero_i, zero_i)

    def initial_carry() -> jax.Array:
        return jnp.zeros((n, h))

    def act(key: jax.Array, state: PPOState, timestep: TimeStep, carry: jax.Array, explore: bool):
        first = timestep.done
        carry, out = actor.apply(state.actor_params["net"], carry, timestep.obs, first)
        dist = distribution(state.actor_params, out, timestep.avail_actions)
        if explore:
            raw = dist.sample(seed=key)
        elif discrete:
            raw = dist.mode()
        else:
            raw = dist.mean()
        action = raw.astype(jnp.int32) if discrete else to_env(raw)
        return action, carry

    def unroll(params: Any, batch: Transition) -> tuple[jax.Array, jax.Array]:
        """Actor outputs `(B, T, N, out)` and the recurrent state before each step `(B, T, N, H)`.

        The whole batch goes through the network as rows: an MLP at all B x T steps at once,
        a GRU in a T-step scan over `(B, N)` rows (the state reset where `first`).
        """
        zeros = jnp.zeros(batch.obs.shape[:-1] + (h,))
        if not config.recurrent:
            return actor.apply(params["net"], zeros, batch.obs, jnp.zeros(batch.obs.shape[:-2], bool))[1], zeros

        def step(hidden, inputs):
            obs, first = inputs  # (B, N, O), (B,)
            hidden_in = jnp.where(first[:, None, None], jnp.zeros_like(hidden), hidden)
            hidden, out = actor.apply(params["net"], hidden, obs, first)
            return hidden, (out, hidden_in)

        time_major = lambda x: jnp.swapaxes(x, 0, 1)
        _, (out_t, hidden_t) = jax.lax.scan(step, zeros[:, 0], (time_major(batch.obs), time_major(batch.first)))
        return time_major(out_t), time_major(hidden_t)

    def log_prob_entropy(params: Any, batch: Transition) -> tuple[jax.Array, jax.Array]:
        out, _ = unroll(params, batch)
        dist = distribution(params, out, batch.avail_actions)
        return dist.log_prob(from_env(batch.action)), dist.entropy()  # (B, T, N)

    def minibatch_loss(trainable, batch, old_logp, adv, target_norm, old_v, hp):
        actor_params, critic_params = trainable
        logp, entropy = log_prob_entropy(actor_params, batch)
        ratio = jnp.exp(logp - old_logp)
        adv_n = (adv - adv.mean()) / (adv.std() + 1e-8)
        clipped = jnp.clip(ratio, 1.0 - hp.clip_eps, 1.0 + hp.clip_eps)
        policy_loss = -jnp.minimum(ratio * adv_n, clipped * adv_n).mean()
        v = values(critic_params, critic_inputs(batch.global_state, batch.obs))
        if config.value_loss == "huber":
            value_loss = optax.huber_loss(v, target_norm, delta=hp.huber_delta).mean()
        else:
            v_clip = old_v + jnp.clip(v - old_v, -hp.clip_eps, hp.clip_eps)
            value_loss = 0.5 * jnp.maximum((v - target_norm) ** 2, (v_clip - target_norm) ** 2).mean()
        ent = entropy.mean()
        total = policy_loss + hp.vf_coef * value_loss - hp.ent_coef * ent
        approx_kl = ((ratio - 1.0) - (logp - old_logp)).mean()
        clip_frac = (jnp.abs(ratio - 1.0) > hp.clip_eps).mean()
        return total, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": ent,
                       "approx_kl": approx_kl, "clip_frac": clip_frac}

    def pg_variance(key, actor_params, batch: Transition, adv: jax.Array) -> jax.Array:
        """Summed-over-parameters variance of per-sample `grad log pi(a|o) * A`."""
        _, hidden = unroll(actor_params, batch)  # (B, T, N, H)
        b, t = adv.shape[:2]
        idx = jax.random.randint(key, (config.grad_var_samples,), 0, b * t * n)
        bi, ti, ai = idx // (t * n), (idx // n) % t, idx % n

        def sample_term(params, b_, t_, a_):
            _, out = actor.apply(params["net"], jax.lax.stop_gradient(hidden[b_, t_]), batch.obs[b_, t_],
                                 jnp.zeros((), bool))
            dist = distribution(params, out, batch.avail_actions[b_, t_])
            logp = dist.log_prob(from_env(batch.action[b_, t_]))
            return logp[a_] * adv[b_, t_, a_]

        return ops.gradient_variance(sample_term, actor_params, bi, ti, ai)

    def update(key: jax.Array, state: PPOState, batch: Transition):
        hp = state.hparams
        key_var, key_epochs = jax.random.split(key)
        old_logp, _ = log_prob_entropy(state.actor_params, batch)
        old_v = values(state.critic_params, critic_inputs(batch.global_state, batch.obs))
        next_v = values(state.critic_params, critic_inputs(batch.next_global_state, batch.next_obs))
        mean, std = _norm_stats(state.value_norm) if config.value_norm else (0.0, 1.0)
        done = batch.done
        gae = jax.vmap(jax.vmap(ops.gae_advantages, in_axes=(1, None, None, 1, 1, None, None), out_axes=1),
                       in_axes=(0, 0, 0, 0, 0, None, None))
        adv = gae(batch.reward, batch.terminated, done, old_v * std + mean, next_v * std + mean,
                  hp.gamma, hp.gae_lambda)  # (B, T, N)
        targets = adv + old_v * std + mean
        vn = state.value_norm
        if config.value_norm:
            beta = hp.value_norm_beta
            vn = ValueNormState(beta * vn.mean + (1 - beta) * targets.mean(),
                                beta * vn.mean_sq + (1 - beta) * (targets ** 2).mean(),
                                beta * vn.debias + (1 - beta))
            new_mean, new_std = _norm_stats(vn)
            target_norm, old_v_norm = (targets - new_mean) / new_std, (old_v * std + mean - new_mean) / new_std
        else:
            target_norm, old_v_norm = targets, old_v
        num_seq = batch.reward.shape[0]
        mb = num_seq // config.num_minibatches
        tx = _optimizer(hp, state.env_steps)

        def minibatch_step(carry, idx):
            trainable, opt_state = carry
            pick = lambda x: x[idx]
            (_, info), grads = jax.value_and_grad(minibatch_loss, has_aux=True)(
                trainable, jax.tree.map(pick, batch), pick(old_logp), pick(adv), pick(target_norm),
                pick(old_v_norm), hp)
            deltas, opt_state = tx.update(grads, opt_state, trainable)
            info["grad_norm"] = global_norm(grads)
            return (optax.apply_updates(trainable, deltas), opt_state), info

        def epoch(carry, key):
            perm = jax.random.permutation(key, num_seq)[: mb * config.num_minibatches]
            return jax.lax.scan(minibatch_step, carry, perm.reshape(config.num_minibatches, mb))

        carry = ((state.actor_params, state.critic_params), state.opt_state)
        (trainable, opt_state), info = jax.lax.scan(epoch, carry, jax.random.split(key_epochs, config.num_epochs))
        metrics = {k: v.mean() for k, v in info.items()}
        value = old_v * std + mean  # (B, T, N) per-agent value estimates
        metrics.update(value_mean=value.mean(), value_max=value.max(), value_min=value.min())
        metrics["lr"] = annealed_lr(hp, state.env_steps)
        metrics["advantage_std"] = adv.std()
        if config.grad_var_samples:
            metrics["pg_variance"] = pg_variance(key_var, state.actor_params, batch, adv)
        new_state = state._replace(actor_params=trainable[0], critic_params=trainable[1], opt_state=opt_state,
                                   value_norm=vn, updates=state.updates + 1)
        return new_state, metrics

    return Learner(init, initial_carry, act, update, on_policy=True, spec=spec)


def _optimizer(hparams: PPOHParams, env_steps: jax.Array = 0) -> optax.GradientTransformation:
    """Clipped Adam (eps 1e-5, as MAPPO's reference code) at the annealed learning rate of `env_steps`."""
    return clipped_adam(annealed_lr(hparams, env_steps), hparams.max_grad_norm, eps=1e-5)


def make_mappo(spec: EnvSpec, config: PPOConfig | None = None) -> Learner:
    """MAPPO: PPO with a centralized critic V(global state, agent id); `config` None: its preset on `spec`."""
    config = PPOConfig(**preset("mappo", spec).config) if config is None else config
    return make_ppo(spec, dataclasses.replace(config, critic="centralized"))


def make_ippo(spec: EnvSpec, config: PPOConfig | None = None) -> Learner:
    """IPPO: PPO with an independent critic V(own observation); `config` None: its preset on `spec`."""
    config = PPOConfig(**preset("ippo", spec).config) if config is None else config
    return make_ppo(spec, dataclasses.replace(config, critic="independent"))
