"""Helpers shared by the learners: hyperparameter type and range checks, the lr anneal and gradient norms."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


def annealed_lr(hparams: NamedTuple, env_steps: jax.Array) -> jax.Array:
    """`lr * (1 - env_steps / lr_anneal_steps)`, floored at 0; `lr` itself when `lr_anneal_steps` is 0.

    For any hyperparameter tuple with the fields `lr` and `lr_anneal_steps` (PPO, the value-based learners).
    """
    anneal = jnp.asarray(hparams.lr_anneal_steps, jnp.float32)
    frac = 1.0 - jnp.asarray(env_steps, jnp.float32) / jnp.maximum(anneal, 1.0)
    return hparams.lr * jnp.where(anneal > 0, jnp.clip(frac, 0.0, 1.0), 1.0)


def clipped_adam(lr: jax.Array, max_grad_norm: jax.Array, eps: float = 1e-8) -> optax.GradientTransformation:
    """Global-norm gradient clipping, then Adam at rate `lr` (the optimizer of every learner).

    Adam's state does not depend on the rate, so one `init` serves an annealed `lr` too.
    """
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(lr, eps=eps))


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


def is_real_scalar(value: Any) -> bool:
    """Whether `value` is one real number: a Python int or float, or a NumPy/JAX integer or float scalar or
    0-d array. Bools, strings, complex numbers, containers, None and arrays with ndim > 0 are not."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float)):  # np.float64 is a float
        return True
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        return np.ndim(value) == 0 and any(jnp.issubdtype(value.dtype, kind) for kind in (jnp.integer, jnp.floating))
    return False


def check_real_scalar(owner: str, name: str, value: Any) -> None:
    """Refuses a `value` of field `owner.name` that is not one real number (see `is_real_scalar`).

    Raises:
        ValueError: naming the field and the value.
    """
    if not is_real_scalar(value):
        raise ValueError(f"{owner}.{name} must be a real number, got {value!r}")
    if isinstance(value, int):  # a Python int may be too large for any float
        try:
            float(value)
        except OverflowError:
            raise ValueError(f"{owner}.{name} must be a real number within float range, got {value!r}") from None


def create_hparams(cls: type, ranges: dict[str, tuple[float | None, float | None]], values: dict) -> Any:
    """`cls(**values)` (a hyperparameter NamedTuple) from user input: unknown fields refused, each given
    value a real scalar number, ranges checked, all before anything is traced.

    Only `create` insists on scalars: `check_hparams` also sees traced values and stacks `(P,)` that a
    sweep builds with the constructor.

    Raises:
        ValueError: naming an unknown field; a field and a value that is not a real scalar number; or a
            field, its value and the allowed range.
    """
    unknown = set(values) - set(cls._fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; valid: {list(cls._fields)}")
    for name, value in values.items():
        check_real_scalar(cls.__name__, name, value)
    hparams = cls(**values)
    check_hparams(hparams, ranges)
    return hparams


def global_norm(tree: Any) -> jax.Array:
    """L2 norm of all leaves of `tree` together, `()`."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))
