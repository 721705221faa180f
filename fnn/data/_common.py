"""Types and argument checks shared by the data modules."""

from __future__ import annotations

import numbers

import numpy as np

# `(x_train, y_train), (x_test, y_test)` as NumPy arrays.
Splits = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def check_int(name: str, value: object, *, minimum: int) -> int:
    """Returns `value` as int, or raises ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_float(
    name: str, value: object, *, low: float, high: float | None = None, open_low: bool = False
) -> float:
    """Returns `value` as float in `[low, high)` (or `(low, high)`), else raises ValueError."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = (value > low if open_low else value >= low) and (high is None or value < high)
    if not ok:
        left = "(" if open_low else "["
        right = f"{high})" if high is not None else "inf)"
        raise ValueError(f"{name} must be a number in {left}{low}, {right}, got {value!r}")
    return value
