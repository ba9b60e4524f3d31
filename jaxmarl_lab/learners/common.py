"""Helpers shared by the learners: hyperparameter range checks, the lr anneal and gradient norms."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def annealed_lr(hparams: NamedTuple, env_steps: jax.Array) -> jax.Array:
    """`lr * (1 - env_steps / lr_anneal_steps)`, floored at 0; `lr` itself when `lr_anneal_steps` is 0.

    For any hyperparameter tuple with the fields `lr` and `lr_anneal_steps` (PPO, the value-based learners).
    """
    anneal = jnp.asarray(hparams.lr_anneal_steps, jnp.float32)
    frac = 1.0 - jnp.asarray(env_steps, jnp.float32) / jnp.maximum(anneal, 1.0)
    return hparams.lr * jnp.where(anneal > 0, jnp.clip(frac, 0.0, 1.0), 1.0)


def check_hparams(hparams: NamedTuple, ranges: dict[str, tuple[float | None, float | None]]) -> None:
    """Checks each concrete hyperparameter against its range; traced or non-numeric values pass.

    Raises:
        ValueError: naming the field, its value and the allowed range.
    """
    for name, (low, high) in ranges.items():
        value = getattr(hparams, name)
        if isinstance(value, jax.core.Tracer):
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue  # a placeholder leaf during a pytree operation
        bad = ~np.isfinite(arr) | ((arr < low) if low is not None else False) | \
            ((arr > high) if high is not None else False)
        if np.any(bad):
            allowed = f"[{low}, {high if high is not None else 'inf'}]"
            raise ValueError(f"{type(hparams).__name__}.{name} must be in {allowed}, got {value!r}")


def create_hparams(cls: type, ranges: dict[str, tuple[float | None, float | None]], values: dict) -> Any:
    """`cls(**values)` (a hyperparameter NamedTuple) with unknown fields refused and ranges checked.

    Raises:
        ValueError: naming an unknown field, or a field, its value and the allowed range.
    """
    unknown = set(values) - set(cls._fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; valid: {list(cls._fields)}")
    hparams = cls(**values)
    check_hparams(hparams, ranges)
    return hparams


def global_norm(tree: Any) -> jax.Array:
    """L2 norm of all leaves of `tree` together, `()`."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))
