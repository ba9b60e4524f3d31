"""Checks of user input, before anything is traced: each error names the parameter, its value and what is allowed.

Every layer uses these (environments, learners, the runner, the commands), so they live in
the kernel rather than in any one part.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Returns `value` as an int, or raises a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(name: str, value: Any, minimum: float | None = None, maximum: float | None = None,
                 allow_traced: bool = True) -> Any:
    """Checks a concrete scalar param against its range; traced values pass through.

    Params may be traced (under `vmap` over params), so this only validates values
    that are known in Python, which is where user input arrives.
    """
    if isinstance(value, jax.core.Tracer):
        if allow_traced:
            return value
        raise ValueError(f"{name} must be a concrete number here, got a traced value")
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and np.any(arr < minimum):
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and np.any(arr > maximum):
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return value


__all__ = ["check_positive_int", "check_number"]
