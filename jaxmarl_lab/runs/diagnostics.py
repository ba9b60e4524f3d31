"""Warnings that catch a run that fails silently: each check returns messages, `[]` when all is well.

    schedule_warnings(hparams, total_env_steps)       # before compiling: schedules longer than the budget
    value_warnings(spec, gamma, metrics)               # after a chunk: value estimates beyond any return
    greedy_warnings(greedy, random)                    # at the end: greedy no better than random

`runs.training.train_run` runs all three and prints each message as a `warning: ...` line to
stderr (`jaxmarl-lab train`), or, without progress output, issues it as a Python warning of
class `TrainingWarning`; `TrainResult.warnings` holds them either way. Library users who call
`runner.make_train` themselves can call the checks directly on its metrics.

Every return and value here is per agent (each agent's rewards summed over an episode,
averaged over agents; `EnvSpec`), the scale of the learners' `value_max` / `value_min` metrics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jaxmarl_lab.types import EnvSpec

#: (decay field, start field, end field, what it anneals) of the schedules the learners read from env steps.
_SCHEDULES = (("eps_decay_steps", "eps_start", "eps_end", "exploration epsilon"),
              ("sigma_decay_steps", "sigma_start", "sigma_end", "exploration noise sigma"),
              ("lr_anneal_steps", "lr", None, "learning rate"))


class TrainingWarning(UserWarning):
    """A run that trains without error but is likely not to learn, or not to have learned."""


def schedule_warnings(hparams: Any, total_env_steps: int) -> list[str]:
    """Exploration or learning-rate schedules that do not finish within `total_env_steps`.

    Args:
        hparams: a learner's HParams of concrete scalars (fields it lacks are skipped).
        total_env_steps: the env steps the run trains, per seed.
    """
    out = []
    for decay, start, end, what in _SCHEDULES:
        if not hasattr(hparams, decay):
            continue
        steps = float(np.asarray(getattr(hparams, decay)))
        if steps <= total_env_steps:
            continue
        first = float(np.asarray(getattr(hparams, start)))
        last = 0.0 if end is None else float(np.asarray(getattr(hparams, end)))
        at_end = first + (last - first) * total_env_steps / steps
        out.append(f"hparams.{decay} = {steps:,.0f} is longer than the training budget of {total_env_steps:,} env "
                   f"steps: the {what} ends at {at_end:.3g}, not {last:.3g}; shorten hparams.{decay} or train "
                   f"longer (--steps)")
    return out


def value_bounds(spec: EnvSpec, gamma: float) -> tuple[float, float, float]:
    """`(low, high, margin)`: the per-agent value range of `spec` at `gamma` (`EnvSpec.value_range`) and the
    margin past it that counts as clearly beyond: ten times the range's largest finite magnitude, at least 10.

    The margin is wide on purpose: an untrained QMIX mixer already outputs values of a few units (4.4 per
    agent on the lesson grid, whose returns are at most 0.99), while values that diverge run to hundreds.
    """
    low, high = spec.value_range(gamma)
    finite = [abs(x) for x in (low, high) if math.isfinite(x)]
    return low, high, 10.0 * max([1.0] + finite)


def value_warnings(spec: EnvSpec, gamma: float, metrics: dict, first_iteration: int = 1) -> list[str]:
    """Value estimates beyond the largest (or below the smallest) possible per-agent return.

    Args:
        spec: the environment's spec, with the reward bounds of the run's params.
        gamma: the learner's discount.
        metrics: per-iteration metrics `(I, ...)` holding `value_max` and `value_min` (others are ignored;
            without them there is nothing to check).
        first_iteration: the number of the first iteration in `metrics`, for the message.
    """
    low, high, margin = value_bounds(spec, gamma)
    out = []
    for name, bound, beyond in (("value_max", high, lambda v: v > high + margin),
                                ("value_min", low, lambda v: v < low - margin)):
        if name not in metrics or not math.isfinite(bound):
            continue
        values = np.asarray(metrics[name], np.float64)
        rows = np.flatnonzero(np.any(beyond(np.where(np.isfinite(values), values, bound)).reshape(len(values), -1),
                                     axis=1))
        if rows.size:
            worst = float(np.nanmax(values) if name == "value_max" else np.nanmin(values))
            side = "largest" if name == "value_max" else "smallest"
            out.append(f"value estimates reach {worst:.4g} per agent at iteration {first_iteration + int(rows[0])}, "
                       f"beyond the {side} possible return {bound:.4g} (gamma {gamma:g}) of {spec.name}: the "
                       f"values diverge; lower hparams.lr or the discount, or raise the target smoothing")
    return out


def greedy_warnings(greedy: float, random: float, optimum: float | None = None) -> list[str]:
    """A greedy per-agent return no better than uniformly random actions' on the same episodes.

    "No better" is within 5% of the distance from random to the optimum when one is known, else
    of the random return's magnitude.
    """
    scale = abs(optimum - random) if optimum is not None and optimum != random else abs(random)
    if greedy - random > 0.05 * scale:
        return []
    best = "" if optimum is None else f", optimum {optimum:.3f}"
    return [f"the greedy policy at the end returns {greedy:.3f} per agent, no better than random actions "
            f"({random:.3f}{best}): the run did not learn; see the settings in `jaxmarl-lab list learners`"]
