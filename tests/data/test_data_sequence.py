"""Tests for fnn.data.sequence: windows of a 1-D series."""

import numpy as np
import pytest

from fnn.data import make_windows, split_series


def test_windows_pair_inputs_with_next_value():
    series = np.arange(10, dtype=np.float64)
    x, y = make_windows(series, 3)
    assert x.shape == (7, 3, 1) and y.shape == (7,)
    assert x.dtype == y.dtype == np.float32
    np.testing.assert_array_equal(x[0, :, 0], [0, 1, 2])
    np.testing.assert_array_equal(y, np.arange(3, 10))
    np.testing.assert_array_equal(x[:, -1, 0] + 1, y)


@pytest.mark.parametrize("window,horizon,stride", [(1, 1, 1), (4, 2, 1), (3, 1, 2), (5, 3, 4)])
def test_windows_horizon_and_stride(window, horizon, stride):
    series = np.arange(23, dtype=np.float32) * 2
    x, y = make_windows(series, window, horizon=horizon, stride=stride)
    n = (23 - window - horizon) // stride + 1
    assert x.shape == (n, window, 1) and y.shape == (n,)
    for i in range(n):
        s = i * stride
        np.testing.assert_array_equal(x[i, :, 0], series[s : s + window])
        assert y[i] == series[s + window + horizon - 1]


def test_windows_errors():
    with pytest.raises(ValueError, match=r"series: expected a 1-D array \[T\]"):
        make_windows(np.zeros((4, 2)), 2)
    with pytest.raises(ValueError, match="window: expected an integer >= 1, got 0"):
        make_windows(np.zeros(4), 0)
    with pytest.raises(ValueError, match="series: expected window [+] horizon = 5 values or more"):
        make_windows(np.zeros(4), 4)
    with pytest.raises(TypeError, match="stride: expected an integer >= 1, got 1.0"):
        make_windows(np.zeros(4), 2, stride=1.0)


def test_split_series_in_time():
    train, test = split_series(np.arange(10), test_fraction=0.3)
    np.testing.assert_array_equal(train, np.arange(7))
    np.testing.assert_array_equal(test, [7, 8, 9])
    with pytest.raises(ValueError, match=r"test_fraction: expected a number in \(0, 1\), got 0.0"):
        split_series(np.arange(10), test_fraction=0.0)
