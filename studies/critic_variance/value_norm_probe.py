"""Probe: IPPO's instability on particle-spread with value normalisation.

Trains 4 seeds (one vmapped program) of PPO on particle-spread with N agents, 16 envs x 25
steps, 40k env steps per seed, the part-2 hyperparameters (lr 3e-3, entropy 0.01, 4 epochs x
4 minibatches), and prints the training return, advantage std and value loss every few
iterations, for one variant:

    python -m studies.critic_variance.value_norm_probe 6 ippo      # IPPO, value normalisation on (default)
    python -m studies.critic_variance.value_norm_probe 6 mappo     # MAPPO, same settings
    python -m studies.critic_variance.value_norm_probe 6 nonorm    # IPPO without value normalisation
    python -m studies.critic_variance.value_norm_probe 6 lowlr     # IPPO with lr 5e-4
    python -m studies.critic_variance.value_norm_probe 6 clipped   # IPPO with the clipped value loss
    python -m studies.critic_variance.value_norm_probe 6 gamma95   # IPPO with gamma 0.95 (part 2's default)

It also prints the mean (denormalised) value estimate: under the instability it runs away
(-700 and beyond at N = 6) from MAPPO's ~-140, while gamma 0.95 keeps both near -29.
"""

import dataclasses
import sys

import jax
import numpy as np

from jaxmarl_lab import envs
from jaxmarl_lab.learners import PPOConfig, PPOHParams, make_ippo, make_mappo
from jaxmarl_lab.runner import RunnerConfig, make_train

VARIANTS = ("ippo", "mappo", "nonorm", "lowlr", "clipped", "gamma95")


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in VARIANTS:
        sys.exit(f"usage: python -m studies.critic_variance.value_norm_probe N {{{','.join(VARIANTS)}}}")
    n, variant = int(argv[0]), argv[1]
    env = envs.make("particle-spread", num_agents=n)
    config = PPOConfig(hidden_dim=64, num_epochs=4, num_minibatches=4, grad_var_samples=0)
    hparams = PPOHParams(lr=3e-3, ent_coef=0.01)
    if variant == "nonorm":
        config = dataclasses.replace(config, value_norm=False)
    if variant == "lowlr":
        hparams = hparams._replace(lr=5e-4)
    if variant == "gamma95":
        hparams = hparams._replace(gamma=0.95)
    if variant == "clipped":
        config = dataclasses.replace(config, value_loss="clipped")
    make = make_mappo if variant == "mappo" else make_ippo
    runner = RunnerConfig(num_envs=16, rollout_len=25, total_env_steps=40_000)
    train = jax.jit(jax.vmap(make_train(env, make(env.spec, config), runner), in_axes=(0, None)))
    _, metrics = train(jax.random.split(jax.random.PRNGKey(0), 4), hparams)
    ret = np.nanmean(np.asarray(metrics["episode_return"]), axis=0)
    print(f"{variant} N={n} return every 10 iterations: {np.round(ret[::10], 1).tolist()}")
    print(f"  value estimate every 20: {np.round(np.asarray(metrics['value_mean']).mean(0)[::20], 1).tolist()}")
    print(f"  advantage std every 20: {np.round(np.asarray(metrics['advantage_std']).mean(0)[::20], 1).tolist()}")
    print(f"  value loss every 20:    {np.round(np.asarray(metrics['value_loss']).mean(0)[::20], 3).tolist()}")


if __name__ == "__main__":
    main(sys.argv[1:])
