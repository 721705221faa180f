"""Bundled real datasets load offline with the right shapes, dtypes, classes and stable splits."""

import numpy as np
import pytest

import fnn.data

# name: (total examples, input shape, class counts or None for regression)
BUNDLED = {
    "iris": (150, (4,), [50, 50, 50]),
    "digits": (1797, (8, 8, 1), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]),
    "breast_cancer": (569, (30,), [212, 357]),
    "wine": (178, (13,), [59, 71, 48]),
    "diabetes": (442, (10,), None),
}


def test_bundled_names():
    assert set(fnn.data.list_datasets("bundled")) == set(BUNDLED)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_loads_offline(name):
    total, shape, class_counts = BUNDLED[name]
    (x_train, y_train), (x_test, y_test) = fnn.data.load(name)
    info = fnn.data.info(name)
    assert x_train.shape == (info.num_train, *shape) and x_test.shape == (info.num_test, *shape)
    assert info.num_train + info.num_test == total
    assert x_test.shape[0] == round(0.2 * total)
    assert x_train.dtype == x_test.dtype == np.float32
    assert np.isfinite(x_train).all() and np.isfinite(x_test).all()
    assert info.source == "bundled" and info.input_shape == shape
    if class_counts is None:
        assert info.task == "regression" and info.num_classes is None
        assert y_train.dtype == y_test.dtype == np.float32
        assert y_train.shape == (info.num_train,)
        return
    assert info.task == "classification" and info.num_classes == len(class_counts)
    assert y_train.dtype == y_test.dtype == np.int32
    all_counts = np.bincount(np.concatenate([y_train, y_test]), minlength=len(class_counts))
    np.testing.assert_array_equal(all_counts, class_counts)
    # Stratified: each class puts ~20% of its examples in the test split.
    test_counts = np.bincount(y_test, minlength=len(class_counts))
    assert np.all(np.abs(test_counts - 0.2 * np.array(class_counts)) <= 1)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_split_is_stable_per_seed(name):
    (a_train, ay_train), (a_test, _) = fnn.data.load(name, seed=0)
    (b_train, by_train), (b_test, _) = fnn.data.load(name, seed=0)
    (c_train, _), (c_test, _) = fnn.data.load(name, seed=1)
    np.testing.assert_array_equal(a_train, b_train)
    np.testing.assert_array_equal(ay_train, by_train)
    np.testing.assert_array_equal(a_test, b_test)
    assert not np.array_equal(a_test, c_test)
    # A different split of the same examples: the union is unchanged.
    flat = lambda x: np.sort(x.reshape(x.shape[0], -1), axis=0)
    np.testing.assert_array_equal(
        flat(np.concatenate([a_train, a_test])), flat(np.concatenate([c_train, c_test]))
    )


def test_train_and_test_are_disjoint():
    (x_train, _), (x_test, _) = fnn.data.load("wine")  # wine rows are all distinct
    rows = {tuple(r) for r in x_train}
    assert not any(tuple(r) in rows for r in x_test)


def test_digits_images_and_vectors():
    (images, y), _ = fnn.data.load("digits")
    (vectors, y_flat), _ = fnn.data.load("digits", flatten=True)
    assert images.shape[1:] == (8, 8, 1) and vectors.shape[1:] == (64,)
    np.testing.assert_array_equal(images.reshape(-1, 64), vectors)
    np.testing.assert_array_equal(y, y_flat)
    assert images.min() == 0.0 and images.max() == 1.0


def test_test_size_option():
    (x_train, _), (x_test, _) = fnn.data.load("iris", test_size=0.5)
    assert x_train.shape[0] == x_test.shape[0] == 75
    with pytest.raises(ValueError, match=r"test_size: expected a number in \(0, 1\), got 1.0"):
        fnn.data.load("iris", test_size=1.0)
