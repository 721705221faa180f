"""The argument checks of fnn, in one module and one message style.

Every check names the argument first: ``"name: expected <what>, got <value>"``. The rule is the
same everywhere: a value of the wrong type raises ``TypeError``, a value of the right type
that is out of range (or not among the choices) raises ``ValueError``. Checks on arrays run on
shapes (always static) and, where the values are concrete (not inside a ``jax.jit`` trace), on
values - so errors come before any XLA work.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

__all__ = [
    "check_batch_size",
    "check_bool",
    "check_choice",
    "check_devices",
    "check_float",
    "check_int",
    "check_positive",
    "check_type",
    "check_unit_interval",
    "describe",
    "is_concrete",
]


def is_concrete(x) -> bool:
    """True when ``x``'s values can be read now (it is not a tracer inside a transformation)."""
    return not isinstance(x, jax.core.Tracer)


def describe(x) -> str:
    """``float32[32, 10]`` style description of an array-like."""
    shape = list(np.shape(x))
    dtype = getattr(x, "dtype", None) or np.asarray(x).dtype
    return f"{dtype}{shape}"


def _is_bool(value) -> bool:
    return isinstance(value, bool | np.bool_)


def _bound(x: float) -> str:
    """A bound as written in a message: ``0`` for ``0.0``, ``0.5``, ``1e-08``, ``inf``."""
    if isinstance(x, numbers.Integral):
        return str(int(x))
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def _interval(what: str, low, high, open_low: bool, open_high: bool) -> str:
    """``"a number in [0, 1)"``, ``"an integer >= 1"``, or ``what`` alone without bounds."""
    if low is not None and high is not None:
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        return f"{what} in {left}{_bound(low)}, {_bound(high)}{right}"
    if low is not None:
        return f"{what} {'>' if open_low else '>='} {_bound(low)}"
    if high is not None:
        return f"{what} {'<' if open_high else '<='} {_bound(high)}"
    return what


def _outside(x: float, low, high, open_low: bool, open_high: bool) -> bool:
    """Whether ``x`` lies outside the interval that :func:`_interval` describes."""
    below = low is not None and (x <= low if open_low else x < low)
    above = high is not None and (x >= high if open_high else x > high)
    return below or above


def check_type(name: str, value: Any, types, what: str) -> Any:
    """Returns ``value`` if it is an instance of ``types``, else raises TypeError.

    ``what`` describes the accepted values for the message:
    ``"{name}: expected {what}, got {type(value).__name__}"``.
    """
    if not isinstance(value, types):
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Returns ``value`` as a bool; TypeError for anything but ``True`` / ``False``.

    ``np.bool_`` is accepted; ``0``, ``1``, ``"False"`` and ``None`` are not.
    """
    if not _is_bool(value):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Returns ``value`` as an int in ``[minimum, maximum]`` (either bound may be None).

    Python and NumPy integers are accepted; bools and floats (even ``2.0``) are not.

    Raises:
      TypeError: if ``value`` is not an integer.
      ValueError: if it is outside the bounds.
    """
    what = _interval("an integer", minimum, maximum, False, False)
    message = f"{name}: expected {what}, got {value!r}"
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(message)
    value = int(value)
    if _outside(value, minimum, maximum, False, False):
        raise ValueError(message)
    return value


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    open_high: bool = True,
) -> float:
    """Returns ``value`` as a float in the interval from ``low`` to ``high``.

    A bound of None is no bound; ``open_low`` / ``open_high`` exclude the bound itself. The
    default with both bounds is ``[low, high)``. Python and NumPy integers and floats are
    accepted; bools are not. NaN is always refused; infinity only by a bound.

    Raises:
      TypeError: if ``value`` is not a real number.
      ValueError: if it is NaN or outside the interval.
    """
    what = _interval("a number", low, high, open_low, open_high)
    message = f"{name}: expected {what}, got {value!r}"
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(message)
    number = float(value)
    if math.isnan(number) or _outside(number, low, high, open_low, open_high):
        raise ValueError(message)
    return number


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Returns ``value`` as a float > 0 (>= 0 with ``allow_zero``); see :func:`check_float`."""
    return check_float(name, value, low=0, open_low=not allow_zero)


def check_unit_interval(name: str, value: Any) -> float:
    """Returns ``value`` as a float in ``[0, 1)``; see :func:`check_float`."""
    return check_float(name, value, low=0, high=1)


def _same_kind(value: Any, choice: Any) -> bool:
    """Whether ``value`` has the type of ``choice``: bools only match bools, numbers numbers."""
    if _is_bool(value) or _is_bool(choice):
        return _is_bool(value) and _is_bool(choice)
    if isinstance(value, numbers.Number) and isinstance(choice, numbers.Number):
        return True
    return isinstance(value, type(choice)) or isinstance(choice, type(value))


def check_choice(name: str, value: Any, choices: Sequence) -> Any:
    """Returns the choice equal to ``value`` (``"a"`` for ``np.str_("a")``), if there is one.

    Raises:
      TypeError: if ``value`` is unhashable or of a type no choice has (an int for string
        choices, a string for ``(None, True, False)``).
      ValueError: if it has the type of a choice but is none of them.
    """
    choices = tuple(choices)
    message = f"{name}: expected one of {list(choices)!r}, got {value!r}"
    try:
        hash(value)
    except TypeError:
        raise TypeError(message) from None
    same_kind = [c for c in choices if _same_kind(value, c)]
    if not same_kind:
        raise TypeError(message)
    for choice in same_kind:
        if value == choice:
            return choice
    raise ValueError(message)


def check_batch_size(name: str, value: Any, n: int) -> int:
    """Returns the batch size: ``"full"`` is ``n``; otherwise an integer in ``[1, n]``.

    Raises:
      TypeError: if ``value`` is neither an integer nor ``"full"``.
      ValueError: if it is an integer outside ``[1, n]``.
    """
    if isinstance(value, str) and value == "full":
        return n
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer or 'full', got {value!r}")
    if not 1 <= value <= n:
        raise ValueError(f"{name}: expected an integer in [1, {n}] or 'full', got {value}")
    return int(value)


def check_devices(name: str, value: Any) -> tuple[jax.Device, ...] | None:
    """Returns ``None`` (all devices) or ``value`` as a non-empty tuple of ``jax.Device``.

    Raises:
      TypeError: for anything but None or a sequence of devices (a single device, a platform
        name such as ``"cpu"``).
      ValueError: for an empty sequence.
    """
    if value is None:
        return None
    if isinstance(value, jax.Device | str) or not isinstance(value, Sequence):
        raise TypeError(
            f"{name}: expected a sequence of jax.Device (e.g. jax.devices()[:2]) or None, "
            f"got {value!r}"
        )
    devices = tuple(value)
    for device in devices:
        if not isinstance(device, jax.Device):
            raise TypeError(f"{name}: expected jax.Device values, got {device!r}")
    if not devices:
        raise ValueError(f"{name}: expected at least one device, got an empty sequence")
    return devices
