"""Centralized vs independent baselines: the textbook policy-gradient variance experiment.

N agents play one-step rendezvous (`jaxmarl_lab.envs.rendezvous.team_reward`, target 0.7,
coupling c) with Gaussian policies `a_i ~ N(mu_i, sigma^2)`, sigma fixed at 0.25. REINFORCE
ascends the team reward R on the means, batch B = 32 joint actions a step, 400 steps, with
the per-sample term of agent i

    g_i = (R - b) * (a_i - mu_i) / sigma^2,     mu_i <- mu_i + lr * mean_B(g_i).

Two runs per seed differ only in the baseline b (Lowe et al. 2017, arXiv 1706.02275;
Lyu et al. 2021, arXiv 2102.04402):

* **centralized**: the batch mean of R, the value of the current joint policy;
* **independent**: a per-agent running average b_i (starts at 0, moves with rate 0.02
  towards the batch-mean return *after* the step that used it), blind to the joint action.

Both runs of a seed use the same draws (initial means and every action noise), so each
comparison is paired. By default every cell of a sweep also uses the same draws for seed s
(common random numbers across cells, `shared_cell_noise=True`): agent i's noise depends on
(seed, step, i) only, which also means the random numbers are generated once for the grid.

Measured per seed and critic: the variance across the batch (ddof 0) of the per-sample terms
g_i, averaged over the real agents and the steps; and the final team reward, taken as the
closed-form expected reward E[R] of the final means (no sampling noise):

    E[R] = -(sum_i ((mu_i - t)^2 + s^2) + c * sum_{i<j} ((mu_i - mu_j)^2 + 2 s^2)).

A seed is diverged under a critic when any of its numbers is non-finite at the end, or a
final mean is beyond `divergence_bound` (1e6; such a run has left the target 0.7 by six
orders of magnitude and is at most a few steps from float32 overflow; set it to inf for the
non-finite test alone); such a seed is counted, and removed from a cell's ratios if it
diverged under either critic.

`curvature_scaled_lr` divides lr by the curvature 2(1 + cN) of -E[R] (normalized so the cell
N=4, c=1 keeps lr 0.02). This removes the deterministic instability (lr * 2(1 + cN) > 2,
which makes even the centralized runs diverge at N=16, c=4), but not the stochastic one of
the independent critic: its gradient noise grows with N (|R - b_i| is large while b_i lags
the return), and at 10,000 seeds most N=16 independent runs still diverge with it.
Ratios of cells with many diverged seeds are conditional on survival; read them with the
divergence fractions.

Agents are padded to N_max with a mask, so every (N, c) cell, both critics and all seeds
are one `jit`-compiled program. `studies.critic_variance.variance_report` turns the raw
numbers into the table, confidence intervals and plot.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from studies.critic_variance import variance_report

CENTRALIZED, INDEPENDENT = 0, 1
CRITICS = ("centralized", "independent")


@dataclasses.dataclass(frozen=True)
class VarianceConfig:
    """What sets the shapes and the hyperparameters of the sweep (validated, hashable)."""

    num_agents: tuple[int, ...] = (2, 4, 8, 16)
    couplings: tuple[float, ...] = (0.25, 1.0, 4.0)
    seeds: int = 10_000
    steps: int = 400
    batch: int = 32
    sigma: float = 0.25
    target: float = 0.7
    lr: float = 0.02
    baseline_rate: float = 0.02
    init_std: float = 0.5
    curvature_scaled_lr: bool = False
    reference_cell: tuple[int, float] = (4, 1.0)  # the cell whose lr is unchanged by scaling
    shared_cell_noise: bool = True
    divergence_bound: float = 1e6  # |mu_i| beyond this also counts as diverged (float32 is near overflow)
    seed_chunk: int = 250  # seeds per block of the sequential map; keeps each step in cache

    def __post_init__(self):
        if not self.num_agents or min(self.num_agents) < 1:
            raise ValueError(f"num_agents must be a non-empty tuple of ints >= 1, got {self.num_agents}")
        if not self.couplings or min(self.couplings) < 0:
            raise ValueError(f"couplings must be a non-empty tuple of floats >= 0, got {self.couplings}")
        for name in ("seeds", "steps", "batch", "seed_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("sigma", "lr", "init_std"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.baseline_rate <= 1:
            raise ValueError(f"baseline_rate must be in [0, 1], got {self.baseline_rate}")

    @property
    def max_agents(self) -> int:
        return max(self.num_agents)

    @property
    def cells(self) -> list[tuple[int, float]]:
        """The (N, c) cells, N-major."""
        return [(n, float(c)) for n in self.num_agents for c in self.couplings]


class CellParams(NamedTuple):
    """The traced numbers of one cell; a stack of them is `vmap`ped without recompiling."""

    mask: jax.Array  # (N,) float32, 1 for a real agent, 0 for padding
    coupling: jax.Array  # () float32
    lr: jax.Array  # () float32


class SeedState(NamedTuple):
    """The carry of one seed's run, both critics stacked on a leading axis of 2."""

    means: jax.Array  # (2, N) float32, policy means per critic
    running_baseline: jax.Array  # (N,) float32, the independent critic's b_i
    grad_var_sum: jax.Array  # (2,) float32, sum over steps of the agent-averaged batch variance


class SeedResult(NamedTuple):
    """What one seed reports, per critic (centralized first)."""

    grad_var: jax.Array  # (2,) float32, batch variance of g_i averaged over agents and steps
    final_reward: jax.Array  # (2,) float32, E[R] of the final means
    final_means: jax.Array  # (2, N) float32
    diverged: jax.Array  # (2,) bool, any non-finite number at the end


def curvature(num_agents, coupling):
    """Largest eigenvalue of the Hessian of -E[R] in the means: 2 (1 + c N)."""
    return 2.0 * (1.0 + coupling * num_agents)


def cell_lr(config: VarianceConfig, num_agents: int, coupling: float) -> float:
    """The learning rate of a cell.

    Plain: `config.lr`. Curvature-scaled: `lr * lambda(N_ref, c_ref) / lambda(N, c)`, i.e.
    `lr * 2 / lambda_max * K` with `K = lambda(N_ref, c_ref) / 2` (K = 5 for the reference
    cell N=4, c=1), so the reference cell keeps lr and `lr * lambda_max` is the same
    (0.2 with the defaults) in every cell, far below the deterministic limit 2.
    """
    if not config.curvature_scaled_lr:
        return config.lr
    return config.lr * curvature(*config.reference_cell) / curvature(num_agents, coupling)


def make_cells(config: VarianceConfig) -> CellParams:
    """The stacked `CellParams` of `config.cells`, leading axis = cell."""
    n_max = config.max_agents
    masks, couplings, lrs = [], [], []
    for n, c in config.cells:
        masks.append(np.arange(n_max) < n)
        couplings.append(c)
        lrs.append(cell_lr(config, n, c))
    return CellParams(mask=jnp.asarray(np.stack(masks), jnp.float32),
                      coupling=jnp.asarray(couplings, jnp.float32), lr=jnp.asarray(lrs, jnp.float32))


def masked_team_reward(actions: jax.Array, mask: jax.Array, target, coupling) -> jax.Array:
    """`team_reward` of one-dimensional actions over the real agents only.

    Args:
        actions: `(..., N)` joint actions; padded entries may hold anything finite.
        mask: `(N,)` 1 for real agents.

    Returns:
        `(...)`, `-(sum_i m_i (a_i - t)^2 + c * n * sum_i m_i (a_i - abar)^2)` with `n = sum m`
        and `abar` the mean over real agents; equals `team_reward(a[:, None], t, c)` when the
        mask is all ones (the identity `sum_{i<j} (a_i - a_j)^2 = n sum_i (a_i - abar)^2`).
    """
    n = jnp.sum(mask)
    to_target = jnp.sum(mask * jnp.square(actions - target), axis=-1)
    mean = jnp.sum(mask * actions, axis=-1, keepdims=True) / n
    spread = n * jnp.sum(mask * jnp.square(actions - mean), axis=-1)
    return -(to_target + coupling * spread)


def expected_team_reward(means: jax.Array, mask: jax.Array, target, coupling, sigma) -> jax.Array:
    """Closed-form E[R] for independent `a_i ~ N(mu_i, sigma^2)` over the real agents; `(...)`."""
    n = jnp.sum(mask)
    var = sigma * sigma
    noise = n * var + coupling * n * (n - 1) * var  # n s^2 + c * (n choose 2) * 2 s^2
    return masked_team_reward(means, mask, target, coupling) - noise


def agent_noise(key: jax.Array, num_agents: int, shape: tuple[int, ...]) -> jax.Array:
    """Standard normal draws `shape + (N,)` whose first n columns do not depend on N.

    Drawn as one `(N,) + shape` array: with JAX's partitionable threefry (the default since
    JAX 0.5, `jax_threefry_partitionable`) element `(i, ...)` depends only on the key and its
    flat index, so agent i's draws are the same however many agents are padded in.
    """
    return jnp.moveaxis(jax.random.normal(key, (num_agents,) + shape), 0, -1)


def seed_draws(key: jax.Array, num_agents: int, config: VarianceConfig):
    """Every random number one seed uses: `(initial means (N,), noise (T, B, N))`.

    `run_seed` draws exactly these, one step at a time; exposed for reference checks.
    """
    key_init, key_steps = jax.random.split(key)
    means = config.init_std * agent_noise(key_init, num_agents, ())
    step_keys = jax.random.split(key_steps, config.steps)
    noise = jax.vmap(lambda k: agent_noise(k, num_agents, (config.batch,)))(step_keys)
    return means, noise


def reinforce_step(state: SeedState, noise: jax.Array, cell: CellParams, config: VarianceConfig):
    """One REINFORCE step of both critics on the same noise `(B, N)`; returns the new state.

    Written with batch moments so that the work is a few small matrix products (the
    `vmap` over cells folds the cell axis into their free dimension, as the noise is shared).
    With `x = a - t`, `S1 = sum_i m_i x_i`, `S2 = sum_i m_i x_i^2` per sample,
    `R = -(S2 + c (n S2 - S1^2))`. With `u = R - mean_B R` and `d_i = mean_B R - b_i`
    (0 for the centralized critic), the term is `g_i = (u + d_i) e_i / sigma`, so
    `mean_B g_i = (mean(u e_i) + d_i mean(e_i)) / sigma` and
    `mean_B g_i^2 = (mean(u^2 e_i^2) + 2 d_i mean(u e_i^2) + d_i^2 mean(e_i^2)) / sigma^2`.
    """
    sigma, mask, batch = config.sigma, cell.mask, noise.shape[0]
    n = jnp.sum(mask)
    x = mask * (state.means - config.target)  # (2, N)
    noise_sq = jnp.square(noise)  # (B, N)
    s1 = jnp.sum(x, axis=-1) + sigma * (noise @ mask)[:, None]  # (B, 2)
    s2 = (jnp.sum(x * x, axis=-1) + 2 * sigma * (noise @ x.T)
          + sigma * sigma * (noise_sq @ mask)[:, None])  # (B, 2)
    returns = -(s2 + cell.coupling * (n * s2 - jnp.square(s1)))  # (B, 2)
    batch_mean = jnp.mean(returns, axis=0)  # (2,)
    u = returns - batch_mean  # (B, 2)
    offset = jnp.stack([jnp.zeros_like(state.running_baseline),
                        batch_mean[INDEPENDENT] - state.running_baseline])  # (2, N), d_i
    e_u, e2_u = (noise.T @ u).T / batch, (noise_sq.T @ u).T / batch  # (2, N)
    e2_u2 = (noise_sq.T @ jnp.square(u)).T / batch  # (2, N)
    e1, e2 = jnp.mean(noise, axis=0), jnp.mean(noise_sq, axis=0)  # (N,)
    grad = (e_u + offset * e1) / sigma  # (2, N)
    second = (e2_u2 + 2 * offset * e2_u + jnp.square(offset) * e2) / (sigma * sigma)  # (2, N)
    batch_var = second - jnp.square(grad)  # (2, N), ddof 0
    agent_var = jnp.sum(mask * batch_var, axis=-1) / n  # (2,)
    running = state.running_baseline + config.baseline_rate * (batch_mean[INDEPENDENT] - state.running_baseline)
    return SeedState(means=state.means + cell.lr * mask * grad,
                     running_baseline=running * mask,
                     grad_var_sum=state.grad_var_sum + agent_var)


def run_seed(key: jax.Array, cell: CellParams, config: VarianceConfig) -> SeedResult:
    """Both critics' full run for one seed and one cell (unbatched; `vmap` it)."""
    n_pad = cell.mask.shape[-1]
    key_init, key_steps = jax.random.split(key)
    means = cell.mask * config.init_std * agent_noise(key_init, n_pad, ())
    state = SeedState(means=jnp.stack([means, means]), running_baseline=jnp.zeros(n_pad),
                      grad_var_sum=jnp.zeros(2))

    def step(state, step_key):
        noise = agent_noise(step_key, n_pad, (config.batch,))
        return reinforce_step(state, noise, cell, config), None

    state, _ = jax.lax.scan(step, state, jax.random.split(key_steps, config.steps))
    final = expected_team_reward(state.means, cell.mask, config.target, cell.coupling, config.sigma)
    grad_var = state.grad_var_sum / config.steps
    finite = (jnp.isfinite(grad_var) & jnp.isfinite(final)
              & jnp.all(jnp.abs(state.means) <= config.divergence_bound, axis=-1))  # False for NaN
    return SeedResult(grad_var=grad_var, final_reward=final, final_means=state.means, diverged=~finite)


def run_seeds_cells(seed_keys: jax.Array, cells: CellParams, config: VarianceConfig) -> SeedResult:
    """Every seed in every cell: `(S, C, ...)` results. Pure; the caller jits.

    Seeds go through a sequential `lax.map` in blocks of `config.seed_chunk`, each block a
    `vmap` over seeds and cells, so one step's arrays stay cache-sized. With
    `shared_cell_noise` the key is not batched over cells, so the draws are made once per
    seed and broadcast to every cell.
    """
    num_cells = cells.coupling.shape[0]

    def one_seed(key):
        if config.shared_cell_noise:
            return jax.vmap(run_seed, in_axes=(None, 0, None))(key, cells, config)
        cell_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(num_cells))
        return jax.vmap(run_seed, in_axes=(0, 0, None))(cell_keys, cells, config)

    num_seeds = seed_keys.shape[0]
    chunk = min(config.seed_chunk, num_seeds)
    blocks = -(-num_seeds // chunk)
    pad = blocks * chunk - num_seeds
    keys = jnp.concatenate([seed_keys, seed_keys[:pad]]) if pad else seed_keys
    keys = keys.reshape((blocks, chunk) + seed_keys.shape[1:])
    out = jax.lax.map(jax.vmap(one_seed), keys)
    return jax.tree.map(lambda x: x.reshape((blocks * chunk,) + x.shape[2:])[:num_seeds], out)


def make_sweep_fn(config: VarianceConfig, devices: Sequence[jax.Device] | None = None):
    """The jitted `(key) -> SeedResult (S, C, ...)` program of a config (one compile).

    Seeds are split evenly over `devices` (default `jax.devices()`) with `shard_map`; on a
    CPU, start Python with `XLA_FLAGS=--xla_force_host_platform_device_count=<cores>` to get
    one device per core (XLA runs this program single-threaded otherwise).
    """
    cells = make_cells(config)
    return jax.jit(lambda key: shard_over_seeds(lambda k: run_seeds_cells(k, cells, config),
                                                jax.random.split(key, config.seeds), devices))


def run_variance_sweep(key: jax.Array | int = 0, config: VarianceConfig | None = None, **overrides):
    """Runs the sweep and summarizes it: `(records, raw)`.

    Args:
        key: a JAX key or an int seed.
        config: a `VarianceConfig`; keyword `overrides` replace its fields (for example
            `seeds=10_000, curvature_scaled_lr=True`).

    Returns:
        `records`: one dict per (N, c) cell (see `variance_report.summarize_cell`), and
        `raw`: the `SeedResult` as NumPy arrays of shape `(S, C, ...)`.
    """
    config = dataclasses.replace(config or VarianceConfig(), **overrides)
    if isinstance(key, int):
        key = jax.random.key(key)
    raw = jax.tree.map(np.asarray, make_sweep_fn(config)(key))
    records = [variance_report.summarize_cell(raw, index, n, c, cell_lr(config, n, c))
               for index, (n, c) in enumerate(config.cells)]
    return records, raw


def shard_over_seeds(run: Callable[[jax.Array], Any], seed_keys: jax.Array, devices: Sequence | None = None) -> Any:
    """`run(seed_keys)` with the seeds split evenly over `devices` (default `jax.devices()`).

    Uses `shard_map` over a one-axis `Mesh`; the seeds are padded (with repeats) to a
    multiple of the device count and the padding is dropped from every output leaf.
    `run` maps keys `(K, ...)` to outputs with a leading `K` axis.
    """
    devices = list(devices or jax.devices())
    num_dev, seeds = len(devices), seed_keys.shape[0]
    if num_dev == 1:
        return run(seed_keys)
    padded = -(-seeds // num_dev) * num_dev
    seed_keys = jnp.concatenate([seed_keys, seed_keys[:padded - seeds]])
    mesh = jax.sharding.Mesh(np.asarray(devices), ("seeds",))
    spec = jax.sharding.PartitionSpec("seeds")
    out = jax.shard_map(run, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)(seed_keys)
    return jax.tree.map(lambda x: x[:seeds], out)
