"""Real datasets that ship with scikit-learn: they load offline, with no download.

Each is split into train and test by `split_indices` with a fixed seed (stratified by class
for classification, a plain seeded shuffle for the regression targets of `diabetes`): the
same `seed` and `test_size` always give the same split, another seed another split.

| name          | x                                    | y                            |
|---------------|--------------------------------------|------------------------------|
| iris          | float32 [150, 4] (cm)                | int32, 3 classes (50 each)   |
| digits        | float32 [1797, 8, 8, 1] in [0, 1]    | int32, 10 classes            |
|               | or [1797, 64] with `flatten=True`    |                              |
| breast_cancer | float32 [569, 30]                    | int32, 2 classes (212 / 357) |
| wine          | float32 [178, 13]                    | int32, 3 classes (59/71/48)  |
| diabetes      | float32 [442, 10] (raw, unscaled)    | float32 [n] disease progress |

Features are the raw measurements (digits: pixel intensities 0..16 divided by 16); use
`fnn.data.standardize(x_train, x_test)` to standardize with training statistics.
"""

from __future__ import annotations

import numpy as np

from fnn._checks import check_bool, check_float
from fnn.data._common import Splits
from fnn.data.preprocess import scale_images, split_indices

__all__ = ["breast_cancer", "diabetes", "digits", "iris", "wine"]


def _split(x: np.ndarray, y: np.ndarray, *, test_size: float, seed: int) -> Splits:
    test_size = check_float("test_size", test_size, low=0, high=1, open_low=True)
    train, test = split_indices(y, fraction=test_size, seed=seed)
    return (x[train], y[train]), (x[test], y[test])


def _classification(loader_name: str, *, test_size: float, seed: int) -> Splits:
    from sklearn import datasets  # lazy: importing sklearn takes about a second

    x, y = getattr(datasets, loader_name)(return_X_y=True)
    return _split(x.astype(np.float32), y.astype(np.int32), test_size=test_size, seed=seed)


def iris(*, test_size: float = 0.2, seed: int = 0) -> Splits:
    """Fisher's iris: 150 flowers, 4 measurements in cm, 3 species.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: <float32>[n, 4], <int32>[n] in [0, 3).
    """
    return _classification("load_iris", test_size=test_size, seed=seed)


def breast_cancer(*, test_size: float = 0.2, seed: int = 0) -> Splits:
    """Wisconsin diagnostic breast cancer: 569 tumours, 30 features, malignant (0) / benign (1).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: <float32>[n, 30], <int32>[n] in {0, 1}.
    """
    return _classification("load_breast_cancer", test_size=test_size, seed=seed)


def wine(*, test_size: float = 0.2, seed: int = 0) -> Splits:
    """UCI wine recognition: 178 wines, 13 chemical measurements, 3 cultivars.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: <float32>[n, 13], <int32>[n] in [0, 3).
    """
    return _classification("load_wine", test_size=test_size, seed=seed)


def digits(*, test_size: float = 0.2, seed: int = 0, flatten: bool = False) -> Splits:
    """UCI handwritten digits: 1797 images of 8x8 pixels, 10 classes.

    Args:
        test_size: share of the examples in the test split, in `(0, 1)`.
        seed: seed of the stratified split.
        flatten: return 64-vectors instead of 8x8x1 images.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: <float32>[n, 8, 8, 1] (or <float32>[n, 64])
        with values in [0, 1], and <int32>[n] in [0, 10).
    """
    flatten = check_bool("flatten", flatten)
    from sklearn import datasets

    x, y = datasets.load_digits(return_X_y=True)  # x: 0..16 integers as float64 [n, 64]
    x = scale_images(x, max_value=16.0)
    x = x if flatten else x.reshape(-1, 8, 8, 1)
    return _split(x, y.astype(np.int32), test_size=test_size, seed=seed)


def diabetes(*, test_size: float = 0.2, seed: int = 0) -> Splits:
    """Diabetes regression: 442 patients, 10 baseline variables, disease progression a year on.

    The features are the raw values (age, sex, BMI, blood pressure, six serum measurements),
    not scikit-learn's default pre-scaled copy. The split is a seeded shuffle (no classes).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: <float32>[n, 10], <float32>[n] targets
        (25 to 346).
    """
    from sklearn import datasets

    x, y = datasets.load_diabetes(return_X_y=True, scaled=False)
    return _split(x.astype(np.float32), y.astype(np.float32), test_size=test_size, seed=seed)
