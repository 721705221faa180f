"""Windowing of 1-D series into (inputs, next value) pairs for RNN forecasting."""

from __future__ import annotations

import numpy as np

from fnn._checks import check_float, check_int

__all__ = ["make_windows", "split_series"]


def make_windows(
    series: np.ndarray, window: int, *, horizon: int = 1, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts a 1-D series into overlapping input windows and the value `horizon` steps later.

    Pair `i` is `inputs[i] = series[s : s + window]` and
    `targets[i] = series[s + window + horizon - 1]` with `s = i * stride`, so with the default
    `horizon=1` the target is the value right after the window. No copy of the series is made
    per window (a strided view is gathered once).

    Args:
        series: <float>[T] the series.
        window: number of past values per input, >= 1.
        horizon: how many steps past the window's end the target lies, >= 1.
        stride: step between consecutive window starts, >= 1.

    Returns:
        `(inputs, targets)`: <float32>[n, window, 1] (a feature axis for RNNs) and
        <float32>[n], with `n = (T - window - horizon) // stride + 1`.

    Raises:
        TypeError: if `window`, `horizon` or `stride` is not an integer.
        ValueError: if the series is not 1-D, an argument is < 1, or the series is shorter
            than `window + horizon`.

    Example:
        >>> x, y = make_windows(np.arange(5.0), window=3)
        >>> x[..., 0].tolist(), y.tolist()
        ([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]], [3.0, 4.0])
    """
    series = np.asarray(series)
    if series.ndim != 1:
        raise ValueError(f"series: expected a 1-D array [T], got shape {series.shape}")
    window = check_int("window", window, minimum=1)
    horizon = check_int("horizon", horizon, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    if series.shape[0] < window + horizon:
        raise ValueError(
            f"series: expected window + horizon = {window + horizon} values or more "
            f"(window={window}, horizon={horizon}), got {series.shape[0]}"
        )
    usable = series[: series.shape[0] - horizon]
    views = np.lib.stride_tricks.sliding_window_view(usable, window)[::stride]  # [n, window]
    starts = np.arange(views.shape[0]) * stride
    targets = series[starts + window + horizon - 1]
    return views[..., None].astype(np.float32), targets.astype(np.float32)


def split_series(series: np.ndarray, *, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Splits a series in time: the first part for training, the last `test_fraction` for test.

    Windows made from the two parts separately never share a value, so no test value leaks
    into a training input.

    Args:
        series: <float>[T] the series.
        test_fraction: share of the values, in `(0, 1)`, at the end of the series for testing.

    Returns:
        `(train, test)`: <float>[T - k] and <float>[k] with `k = round(test_fraction * T)`.

    Raises:
        TypeError: if `test_fraction` is not a number.
        ValueError: if `test_fraction` is outside `(0, 1)`.
    """
    test_fraction = check_float("test_fraction", test_fraction, low=0, high=1, open_low=True)
    series = np.asarray(series)
    n_test = int(round(test_fraction * series.shape[0]))
    return series[: series.shape[0] - n_test], series[series.shape[0] - n_test :]
