"""Pure NumPy preprocessing: standardization, scaling, one-hot labels, seeded splits.

Every function here is pure: it returns new arrays and never changes its inputs. Statistics
(mean, standard deviation, minimum, maximum) are always computed from the *training* array only
and then applied unchanged to validation and test arrays, so no information leaks from held-out
data into the features.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from fnn._checks import check_bool, check_float, check_int

__all__ = [
    "Standardizer",
    "min_max_scale",
    "one_hot",
    "scale_images",
    "split_indices",
    "standardize",
    "train_val_split",
]


def _check_train(x_train: np.ndarray) -> np.ndarray:
    """`x_train` as an array of shape [n, *features] with n >= 1, else ValueError."""
    x_train = np.asarray(x_train)
    if x_train.ndim < 1 or x_train.shape[0] == 0:
        raise ValueError(
            f"x_train: expected shape [n, *features] with n >= 1, got shape {x_train.shape}"
        )
    return x_train


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """Per-feature affine map `z = (x - mean) / std`, fitted on training data.

    Attributes:
        mean: <float32>[*features] per-feature mean of the training array.
        std: <float32>[*features] per-feature standard deviation of the training array;
            features whose deviation is below `eps` get 1, so constant features map to 0.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x_train: np.ndarray, *, eps: float = 1e-8) -> Standardizer:
        """Computes the statistics over the example axis (axis 0) of `x_train`.

        Args:
            x_train: <float>[n, *features] training inputs, n >= 1.
            eps: standard deviations below this count as zero.

        Returns:
            The fitted `Standardizer`.

        Raises:
            TypeError: if `eps` is not a number.
            ValueError: if `x_train` has no example axis or no examples, or `eps < 0`.
        """
        eps = check_float("eps", eps, low=0)
        x64 = _check_train(x_train).astype(np.float64)
        mean = x64.mean(axis=0)
        std = x64.std(axis=0)
        std = np.where(std < eps, 1.0, std)
        return cls(mean=mean.astype(np.float32), std=std.astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Standardizes `x`: <float>[n, *features] -> <float32>[n, *features]."""
        x = np.asarray(x)
        if x.shape[1:] != self.mean.shape:
            raise ValueError(
                f"x: expected shape [n, *{self.mean.shape}] to match the fitted statistics, "
                f"got shape {x.shape}"
            )
        return ((x - self.mean) / self.std).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Maps standardized values back: <float>[n, *features] -> <float32>[n, *features]."""
        return (np.asarray(z) * self.std + self.mean).astype(np.float32)


def standardize(
    x_train: np.ndarray, *x_others: np.ndarray, eps: float = 1e-8
) -> tuple[np.ndarray, ...]:
    """Standardizes arrays with mean and standard deviation taken from `x_train` only.

    Args:
        x_train: <float>[n, *features] training inputs; the statistics come from here.
        *x_others: <float>[m, *features] validation / test inputs, transformed with the
            training statistics (so their mean is in general *not* 0).
        eps: standard deviations below this count as zero (constant features map to 0).

    Returns:
        `(z_train, *z_others)`: <float32> arrays of the input shapes, always a tuple.

    Example:
        >>> import numpy as np
        >>> z_train, z_test = standardize(np.array([[0.0], [2.0]]), np.array([[4.0]]))
        >>> z_train.ravel().tolist(), z_test.ravel().tolist()
        ([-1.0, 1.0], [3.0])
    """
    scaler = Standardizer.fit(x_train, eps=eps)
    return tuple(scaler(x) for x in (x_train, *x_others))


def min_max_scale(
    x_train: np.ndarray,
    *x_others: np.ndarray,
    feature_range: tuple[float, float] = (0.0, 1.0),
) -> tuple[np.ndarray, ...]:
    """Scales each feature linearly so that the *training* minimum / maximum map to the range.

    Held-out arrays use the training minimum and maximum, so their values may fall outside
    `feature_range`; that is intended (no clipping, no leakage).

    Args:
        x_train: <float>[n, *features] training inputs, n >= 1.
        *x_others: <float>[m, *features] arrays scaled with the training statistics.
        feature_range: `(low, high)` with `low < high`.

    Returns:
        `(s_train, *s_others)`: <float32> arrays of the input shapes, always a tuple.

    Raises:
        ValueError: if `feature_range` is not increasing or `x_train` is empty.
    """
    low, high = feature_range
    if not low < high:
        raise ValueError(
            f"feature_range: expected (low, high) with low < high, got {feature_range}"
        )
    x_train = _check_train(x_train)
    lo = x_train.min(axis=0).astype(np.float64)
    span = x_train.max(axis=0).astype(np.float64) - lo
    span = np.where(span == 0, 1.0, span)

    def scale(x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x) - lo) / span * (high - low) + low).astype(np.float32)

    return tuple(scale(x) for x in (x_train, *x_others))


def scale_images(images: np.ndarray, *, max_value: float = 255.0) -> np.ndarray:
    """Maps integer pixel values in `[0, max_value]` to float32 in `[0, 1]`.

    Args:
        images: <uint8 or float>[n, H, W, C] (any shape) raw pixel values.
        max_value: the value that maps to 1 (255 for 8-bit images, 16 for sklearn digits).

    Returns:
        <float32> array of the same shape with values in `[0, 1]`.

    Raises:
        TypeError: if `max_value` is not a number.
        ValueError: if `max_value` is not positive.
    """
    max_value = check_float("max_value", max_value, low=0, open_low=True)
    return np.multiply(images, np.float32(1.0 / max_value), dtype=np.float32)


def one_hot(
    labels: np.ndarray, num_classes: int | None = None, *, dtype: np.dtype | type = np.float32
) -> np.ndarray:
    """One-hot encodes integer class labels.

    Args:
        labels: <int>[n] class ids in `[0, num_classes)` (any shape works; a class axis is
            appended).
        num_classes: number of classes; defaults to `labels.max() + 1`.
        dtype: dtype of the result.

    Returns:
        <dtype>[n, num_classes] with a single 1 per row.

    Raises:
        TypeError: if labels are not integers, or `num_classes` is not an integer.
        ValueError: if labels fall outside `[0, num_classes)`.
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels: expected integer class ids, got dtype {labels.dtype}")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    else:
        num_classes = check_int("num_classes", num_classes, minimum=0)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels: expected class ids in [0, num_classes={num_classes}), "
            f"got values in [{labels.min()}, {labels.max()}]"
        )
    return (labels[..., None] == np.arange(num_classes)).astype(dtype)


def split_indices(
    n_or_labels: int | np.ndarray,
    *,
    fraction: float,
    seed: int = 0,
    stratify: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (optionally stratified) split of `range(n)` into two disjoint index sets.

    The held-out set has exactly `round(fraction * n)` examples (at least 1, at most n - 1).
    With stratification each class contributes `fraction` of its examples, rounded so that
    the totals still add up (largest remainders first). Both index arrays come back shuffled,
    so consecutive examples are not sorted by class. Same seed, same split.

    Args:
        n_or_labels: the number of examples, or <int>[n] labels (needed to stratify).
        fraction: share of examples in the second (held-out) set, in `(0, 1)`.
        seed: seed of the `numpy.random.default_rng` that draws the split.
        stratify: keep class proportions; `None` stratifies when integer labels are given.

    Returns:
        `(keep, held_out)`: <int64>[n - k] and <int64>[k] indices.

    Raises:
        TypeError: for a fraction that is not a number, a count that is not an integer, or a
            `stratify` that is not a bool or None.
        ValueError: for a fraction outside `(0, 1)`, fewer than 2 examples, or
            `stratify=True` without integer labels.
    """
    fraction = check_float("fraction", fraction, low=0, high=1, open_low=True)
    if isinstance(n_or_labels, bool | np.bool_ | numbers.Integral):
        n, labels = check_int("n_or_labels", n_or_labels), None
    else:
        labels = np.asarray(n_or_labels)
        if labels.ndim < 1:
            raise ValueError(
                f"n_or_labels: expected a count or labels of shape [n], got shape {labels.shape}"
            )
        n = labels.shape[0]
    if n < 2:
        raise ValueError(f"n_or_labels: expected at least 2 examples to split, got {n}")
    is_int = labels is not None and np.issubdtype(labels.dtype, np.integer)
    if stratify is None:
        stratify = is_int
    stratify = check_bool("stratify", stratify)
    if stratify and not is_int:
        got = "no labels" if labels is None else f"labels of dtype {labels.dtype}"
        raise ValueError(f"stratify: expected integer class labels for True, got {got}")

    rng = np.random.default_rng(seed)
    n_held = min(max(int(round(fraction * n)), 1), n - 1)
    perm = rng.permutation(n)
    if not stratify:
        return perm[n_held:], perm[:n_held]

    shuffled = labels[perm]
    classes, counts = np.unique(shuffled, return_counts=True)
    exact = counts * (n_held / n)
    quota = np.floor(exact).astype(np.int64)
    # Largest remainders get the leftover slots; ties go to the lower class id (stable sort).
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n_held - quota.sum()]] += 1
    held = np.concatenate([perm[shuffled == c][:q] for c, q in zip(classes, quota, strict=True)])
    keep_mask = np.ones(n, dtype=bool)
    keep_mask[held] = False
    keep = perm[keep_mask[perm]]
    return keep, rng.permutation(held)


def train_val_split(
    x: np.ndarray,
    y: np.ndarray,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    stratify: bool | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Splits `(x, y)` into seeded train and validation parts.

    Args:
        x: <any>[n, ...] inputs.
        y: <int32>[n] labels or <float32>[n] targets.
        val_fraction: share of examples in the validation part, in `(0, 1)`.
        seed: seed of the split; same seed, same split.
        stratify: keep class proportions; `None` stratifies when `y` holds integers.

    Returns:
        `(x_train, y_train), (x_val, y_val)`.

    Raises:
        TypeError: for a fraction that is not a number (see `split_indices`).
        ValueError: if `x` and `y` disagree on n, or for a bad fraction (see `split_indices`).
    """
    val_fraction = check_float("val_fraction", val_fraction, low=0, high=1, open_low=True)
    x, y = np.asarray(x), np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"y: expected {x.shape[0]} examples (as many as x), got {y.shape[0]}")
    keep, held = split_indices(y, fraction=val_fraction, seed=seed, stratify=stratify)
    return (x[keep], y[keep]), (x[held], y[held])
