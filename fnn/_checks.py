"""Argument checks shared across fnn. They run on shapes (always static) and, where the value
is concrete (not inside a ``jax.jit`` trace), on values - so errors come before any XLA work."""

import jax
import numpy as np


def is_concrete(x) -> bool:
    """True when ``x``'s values can be read now (it is not a tracer inside a transformation)."""
    return not isinstance(x, jax.core.Tracer)


def describe(x) -> str:
    """``float32[32, 10]`` style description of an array-like."""
    shape = list(np.shape(x))
    dtype = getattr(x, "dtype", None) or np.asarray(x).dtype
    return f"{dtype}{shape}"


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Raises ValueError naming ``name`` unless ``value`` is > 0 (or >= 0)."""
    bad = value < 0 if allow_zero else value <= 0
    if bad or value != value:  # value != value catches NaN
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a number {bound}, got {value!r}")


def check_unit_interval(name: str, value: float) -> None:
    """Raises ValueError naming ``name`` unless ``0 <= value < 1``."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: expected a value in [0, 1), got {value!r}")
