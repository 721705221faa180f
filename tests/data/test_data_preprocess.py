"""Tests for fnn.data.preprocess: statistics from train only, scaling, one-hot, splits."""

import numpy as np
import pytest

from fnn.data import (
    Standardizer,
    min_max_scale,
    one_hot,
    scale_images,
    split_indices,
    standardize,
    train_val_split,
)


def _halves_with_different_means():
    rng = np.random.default_rng(0)
    x_train = rng.normal(5.0, 2.0, (200, 3)).astype(np.float32)
    x_test = rng.normal(-3.0, 0.5, (100, 3)).astype(np.float32)
    return x_train, x_test


def test_standardize_uses_train_statistics_only():
    x_train, x_test = _halves_with_different_means()
    z_train, z_test = standardize(x_train, x_test)
    np.testing.assert_allclose(z_train.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z_train.std(0), 1.0, atol=1e-5)
    mean, std = x_train.astype(np.float64).mean(0), x_train.astype(np.float64).std(0)
    np.testing.assert_allclose(z_test, (x_test - mean) / std, rtol=1e-5, atol=1e-5)
    # The test half keeps its own offset: its mean is about (-3 - 5) / 2, not 0.
    assert np.all(z_test.mean(0) < -3.0)
    assert z_train.dtype == z_test.dtype == np.float32


def test_standardize_does_not_change_inputs_and_handles_constant_features():
    x = np.array([[1.0, 7.0], [3.0, 7.0]], np.float32)
    before = x.copy()
    (z,) = standardize(x)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(z, [[-1.0, 0.0], [1.0, 0.0]])
    assert np.isfinite(z).all()


def test_standardizer_inverse_and_shape_check():
    x_train, x_test = _halves_with_different_means()
    scaler = Standardizer.fit(x_train)
    np.testing.assert_allclose(scaler.inverse(scaler(x_test)), x_test, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"x: expected shape \[n, \*\(3,\)\]"):
        scaler(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"x_train: expected shape \[n, \*features\]"):
        Standardizer.fit(np.zeros((0, 3)))


def test_min_max_scale_uses_train_range():
    x_train = np.array([[0.0, 10.0], [4.0, 20.0]])
    x_test = np.array([[8.0, 15.0]])
    s_train, s_test = min_max_scale(x_train, x_test)
    np.testing.assert_allclose(s_train, [[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(s_test, [[2.0, 0.5]])  # outside [0, 1]: no leakage, no clipping
    (s,) = min_max_scale(x_train, feature_range=(-1.0, 1.0))
    np.testing.assert_allclose(s, [[-1.0, -1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="feature_range: expected .*low < high"):
        min_max_scale(x_train, feature_range=(1.0, 0.0))


def test_scale_images():
    images = np.array([[[[0], [51]], [[204], [255]]]], np.uint8)  # [1, 2, 2, 1]
    scaled = scale_images(images)
    assert scaled.dtype == np.float32 and scaled.shape == images.shape
    np.testing.assert_allclose(scaled.ravel(), [0.0, 0.2, 0.8, 1.0], rtol=1e-6)
    np.testing.assert_allclose(scale_images(np.array([16.0]), max_value=16), [1.0])
    with pytest.raises(ValueError, match="max_value: expected a number > 0, got 0"):
        scale_images(images, max_value=0)


def test_one_hot():
    encoded = one_hot(np.array([2, 0, 1], np.int32), 4)
    np.testing.assert_array_equal(encoded, np.eye(4, dtype=np.float32)[[2, 0, 1]])
    assert encoded.dtype == np.float32
    assert one_hot(np.array([1, 2])).shape == (2, 3)
    with pytest.raises(ValueError, match=r"labels: expected class ids in \[0, num_classes=2\)"):
        one_hot(np.array([0, 2]), 2)
    with pytest.raises(TypeError, match="labels: expected integer class ids, got dtype float64"):
        one_hot(np.array([0.5]))


def test_split_indices_stratified_partition():
    labels = np.repeat(np.arange(3), [50, 30, 20]).astype(np.int32)
    keep, held = split_indices(labels, fraction=0.2, seed=0)
    assert len(held) == 20 and len(keep) == 80
    assert np.array_equal(np.sort(np.concatenate([keep, held])), np.arange(100))
    np.testing.assert_array_equal(np.bincount(labels[held], minlength=3), [10, 6, 4])
    # Shuffled, not sorted by class.
    assert not np.all(np.diff(labels[keep]) >= 0)


def test_split_indices_rounding_keeps_total():
    labels = np.array([0] * 7 + [1] * 7 + [2] * 7)
    keep, held = split_indices(labels, fraction=0.25, seed=3)
    assert len(held) == 5  # round(0.25 * 21)
    counts = np.bincount(labels[held], minlength=3)
    assert counts.sum() == 5 and counts.max() - counts.min() <= 1


def test_split_indices_seeded():
    labels = np.arange(200) % 4
    a = split_indices(labels, fraction=0.3, seed=7)
    b = split_indices(labels, fraction=0.3, seed=7)
    c = split_indices(labels, fraction=0.3, seed=8)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(np.sort(a[1]), np.sort(c[1]))


def test_split_indices_regression_and_errors():
    keep, held = split_indices(10, fraction=0.3, seed=0)
    assert len(held) == 3 and len(set(keep) | set(held)) == 10
    keep, held = split_indices(np.linspace(0, 1, 10), fraction=0.5)  # floats: not stratified
    assert len(held) == 5
    with pytest.raises(ValueError, match="stratify: expected integer class labels"):
        split_indices(np.linspace(0, 1, 10), fraction=0.5, stratify=True)
    with pytest.raises(ValueError, match=r"fraction: expected a number in \(0, 1\), got 1.5"):
        split_indices(10, fraction=1.5)
    with pytest.raises(ValueError, match="n_or_labels: expected at least 2 examples"):
        split_indices(1, fraction=0.5)
    with pytest.raises(TypeError, match="fraction: expected a number in"):
        split_indices(10, fraction="0.5")
    with pytest.raises(TypeError, match="n_or_labels: expected an integer, got True"):
        split_indices(True, fraction=0.5)
    with pytest.raises(TypeError, match="stratify: expected True or False, got 'yes'"):
        split_indices(np.arange(10), fraction=0.5, stratify="yes")


def test_train_val_split():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = (np.arange(20) % 2).astype(np.int32)
    (x_tr, y_tr), (x_val, y_val) = train_val_split(x, y, val_fraction=0.2, seed=1)
    assert x_tr.shape == (16, 2) and x_val.shape == (4, 2)
    np.testing.assert_array_equal(np.bincount(y_val), [2, 2])
    np.testing.assert_array_equal(x_tr[:, 0] // 2 % 2, y_tr)  # rows stay paired with labels
    with pytest.raises(ValueError, match=r"y: expected 20 examples \(as many as x\), got 5"):
        train_val_split(x, y[:5])
    with pytest.raises(ValueError, match=r"val_fraction: expected a number in \(0, 1\), got 0"):
        train_val_split(x, y, val_fraction=0)
