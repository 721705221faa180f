"""Synthetic datasets with a documented generative process, deterministic from a seed.

Every generator draws train and test examples from the same process with one
`numpy.random.default_rng`, test examples after the training ones, so the two splits are
independent samples; the same arguments give the same arrays, bit for bit.

| name                    | inputs x                    | targets y       | process            |
|-------------------------|-----------------------------|-----------------|--------------------|
| linear_regression       | float32 [n, n_features]     | float32 [n]     | y = x w + b + e    |
| blobs                   | float32 [n, n_features]     | int32 [n], 2    | two Gaussian blobs |
| xor                     | float32 [n, 2]              | int32 [n], 2    | sign(x0) != sign(x1) |
| sine, sum_of_sines, ar2 | float32 [n, window, 1]      | float32 [n]     | next series value  |
| synthetic_mnist         | float32 [n, 28, 28, 1]      | int32 [n], 10   | shifted prototypes |
| synthetic_reviews       | object [n] of str           | int32 [n], 2    | sentiment words    |
"""

from __future__ import annotations

import numpy as np

from fnn._checks import check_bool, check_choice, check_float, check_int
from fnn.data._common import Splits
from fnn.data.sequence import make_windows, split_series

__all__ = [
    "SERIES_KINDS",
    "ar2",
    "blobs",
    "linear_regression",
    "linear_weights",
    "make_series",
    "sine",
    "sum_of_sines",
    "synthetic_mnist",
    "synthetic_reviews",
    "xor",
]


def _split(x: np.ndarray, y: np.ndarray, n_train: int) -> Splits:
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def _sizes(n_train: int, n_test: int) -> tuple[int, int]:
    return check_int("n_train", n_train, minimum=1), check_int("n_test", n_test, minimum=1)


# --------------------------------------------------------------------------------------------
# Regression and classification in feature space
# --------------------------------------------------------------------------------------------


def linear_weights(n_features: int, seed: int = 0) -> tuple[np.ndarray, np.float32]:
    """The true weights of `linear_regression(n_features=..., seed=...)`.

    `w ~ N(0, I)` and `b ~ N(0, 1)`, drawn from `default_rng((seed, 0))`.

    Args:
        n_features: number of input features.
        seed: the dataset's seed.

    Returns:
        `(w, b)`: <float32>[n_features] and a float32 scalar.
    """
    n_features = check_int("n_features", n_features, minimum=1)
    rng = np.random.default_rng((seed, 0))
    w = rng.standard_normal(n_features).astype(np.float32)
    return w, np.float32(rng.standard_normal())


def linear_regression(
    *,
    n_train: int = 800,
    n_test: int = 200,
    n_features: int = 8,
    noise: float = 0.1,
    seed: int = 0,
) -> Splits:
    """Linear regression with known weights: `y = x @ w + b + noise * e`.

    `x ~ N(0, I)` and `e ~ N(0, 1)` come from `default_rng((seed, 1))`; `(w, b)` is
    `linear_weights(n_features, seed)`. The best possible mean squared error is `noise**2`.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: <float32>[n, n_features], <float32>[n].
    """
    n_train, n_test = _sizes(n_train, n_test)
    noise = check_float("noise", noise, low=0)
    w, b = linear_weights(n_features, seed)
    rng = np.random.default_rng((seed, 1))
    n = n_train + n_test
    x = rng.standard_normal((n, w.shape[0]), dtype=np.float32)
    y = x @ w + b + np.float32(noise) * rng.standard_normal(n, dtype=np.float32)
    return _split(x, y.astype(np.float32), n_train)


def blobs(
    *,
    n_train: int = 800,
    n_test: int = 200,
    n_features: int = 2,
    separation: float = 3.0,
    std: float = 1.0,
    seed: int = 0,
) -> Splits:
    """Two Gaussian blobs for logistic regression.

    `y ~ Bernoulli(1/2)`, `x = (2y - 1) * separation / 2 * u + std * e` with
    `u = (1, ..., 1) / sqrt(n_features)` and `e ~ N(0, I)`, from `default_rng(seed)`. The
    classes are linearly separable up to noise: the Bayes accuracy is
    `Phi(separation / (2 * std))` (0.933 for the defaults).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: <float32>[n, n_features], <int32>[n] in {0, 1}.
    """
    n_train, n_test = _sizes(n_train, n_test)
    n_features = check_int("n_features", n_features, minimum=1)
    separation = check_float("separation", separation, low=0)
    std = check_float("std", std, low=0, open_low=True)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = rng.integers(0, 2, n).astype(np.int32)
    center = np.float32(separation / 2 / np.sqrt(n_features))
    x = np.broadcast_to((2 * y[:, None] - 1).astype(np.float32) * center, (n, n_features))
    x = x + np.float32(std) * rng.standard_normal((n, n_features), dtype=np.float32)
    return _split(x, y, n_train)


def xor(*, n_train: int = 800, n_test: int = 200, noise: float = 0.0, seed: int = 0) -> Splits:
    """The XOR problem: not linearly separable, learnable with one hidden layer.

    `x ~ U[-1, 1]^2`, `y = 1` when `x0` and `x1` have different signs, else 0; then
    `noise * N(0, I)` is added to `x` (labels keep the clean quadrant). From `default_rng(seed)`.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: <float32>[n, 2], <int32>[n] in {0, 1}.
    """
    n_train, n_test = _sizes(n_train, n_test)
    noise = check_float("noise", noise, low=0)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    x = rng.uniform(-1.0, 1.0, (n, 2)).astype(np.float32)
    y = ((x[:, 0] > 0) != (x[:, 1] > 0)).astype(np.int32)
    x += np.float32(noise) * rng.standard_normal((n, 2), dtype=np.float32)
    return _split(x, y, n_train)


# --------------------------------------------------------------------------------------------
# Series for RNN forecasting
# --------------------------------------------------------------------------------------------

SERIES_KINDS = ("sine", "sum_of_sines", "ar2")

# AR(2) x_t = 1.5 x_{t-1} - 0.75 x_{t-2} + e_t: complex roots (period ~ 12 steps), stationary.
_AR2 = (1.5, -0.75)
_AR2_STD = float(np.sqrt((1 - _AR2[1]) / ((1 + _AR2[1]) * ((1 - _AR2[1]) ** 2 - _AR2[0] ** 2))))


def make_series(kind: str, length: int, *, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """A 1-D series of a named kind, plus `noise * N(0, 1)` observation noise.

    Kinds (t = 0, 1, ...; phases `p_i ~ U[0, 2 pi)` from `default_rng(seed)`):
      - `"sine"`: `sin(2 pi t / 25 + p_1)`.
      - `"sum_of_sines"`: `sin(2 pi t / 25 + p_1) + 0.5 sin(2 pi t / 9.3 + p_2)
        + 0.25 sin(2 pi t / 51 + p_3)`.
      - `"ar2"`: `x_t = 1.5 x_{t-1} - 0.75 x_{t-2} + e_t`, `e_t ~ N(0, 1)`, after a burn-in of
        200 steps, divided by its stationary standard deviation (unit variance). The best
        one-step forecast has error variance `1 / 8.6` plus the observation noise.

    Args:
        kind: one of `SERIES_KINDS`.
        length: number of values T, >= 1.
        noise: standard deviation of the observation noise, >= 0.
        seed: random seed.

    Returns:
        <float32>[length].

    Raises:
        TypeError: for an argument of the wrong type (a float length, an int kind).
        ValueError: for an unknown kind or a bad length / noise.
    """
    kind = check_choice("kind", kind, SERIES_KINDS)
    length = check_int("length", length, minimum=1)
    noise = check_float("noise", noise, low=0)
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    if kind == "sine":
        x = np.sin(2 * np.pi * t / 25 + rng.uniform(0, 2 * np.pi))
    elif kind == "sum_of_sines":
        p = rng.uniform(0, 2 * np.pi, 3)
        x = (
            np.sin(2 * np.pi * t / 25 + p[0])
            + 0.5 * np.sin(2 * np.pi * t / 9.3 + p[1])
            + 0.25 * np.sin(2 * np.pi * t / 51 + p[2])
        )
    else:
        burn_in = 200
        e = rng.standard_normal(length + burn_in)
        x = np.zeros(length + burn_in)
        for i in range(2, length + burn_in):  # a few thousand scalar steps: ~1 ms
            x[i] = _AR2[0] * x[i - 1] + _AR2[1] * x[i - 2] + e[i]
        x = x[burn_in:] / _AR2_STD
    x = x + noise * rng.standard_normal(length)
    return x.astype(np.float32)


def _forecasting(
    kind: str,
    *,
    length: int,
    window: int,
    horizon: int,
    test_fraction: float,
    noise: float,
    seed: int,
) -> Splits:
    window = check_int("window", window, minimum=1)
    horizon = check_int("horizon", horizon, minimum=1)
    series = make_series(kind, length, noise=noise, seed=seed)
    train, test = split_series(series, test_fraction=test_fraction)
    for part, n in (("train", train.shape[0]), ("test", test.shape[0])):
        if n < window + horizon:
            raise ValueError(
                f"length: expected enough values for window + horizon = {window + horizon} in "
                f"both parts, got {length} (test_fraction={test_fraction} leaves {n} {part} "
                "values)"
            )
    return (
        make_windows(train, window, horizon=horizon),
        make_windows(test, window, horizon=horizon),
    )


def _forecasting_doc(kind: str) -> str:
    return f"""Windows of the `"{kind}"` series (see `make_series`) for one-step forecasting.

    The series of `length` values is cut in time: the first `1 - test_fraction` for training,
    the rest for testing, then each part is windowed by `make_windows` (no shared values).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: <float32>[n, window, 1] inputs and <float32>[n]
        targets, the value `horizon` steps after each window.
    """


def _forecaster(kind: str):
    """The public loader of one forecasting series: the keyword arguments of `_forecasting`."""

    def load(
        *,
        length: int = 2000,
        window: int = 32,
        horizon: int = 1,
        test_fraction: float = 0.2,
        noise: float = 0.05,
        seed: int = 0,
    ) -> Splits:
        return _forecasting(
            kind,
            length=length,
            window=window,
            horizon=horizon,
            test_fraction=test_fraction,
            noise=noise,
            seed=seed,
        )

    load.__name__ = load.__qualname__ = kind
    load.__doc__ = _forecasting_doc(kind)
    return load


sine = _forecaster("sine")
sum_of_sines = _forecaster("sum_of_sines")
ar2 = _forecaster("ar2")


# --------------------------------------------------------------------------------------------
# MNIST-shaped images
# --------------------------------------------------------------------------------------------


def _prototypes(rng: np.random.Generator, num_classes: int = 10) -> np.ndarray:
    """<float32>[num_classes, 28, 28] soft binary 5x5-cell patterns in the central 20x20."""
    while True:
        cells = rng.random((num_classes, 5, 5)) < 0.45
        flat = cells.reshape(num_classes, -1)
        differ = (flat[:, None, :] != flat[None, :, :]).sum(-1) + 25 * np.eye(num_classes)
        if flat.sum(1).min() >= 5 and differ.min() >= 6:  # non-empty, pairwise distinct
            break
    big = np.kron(cells.astype(np.float32), np.ones((4, 4), np.float32))  # [C, 20, 20]
    img = np.pad(big, ((0, 0), (4, 4), (4, 4)))  # [C, 28, 28]
    # 3x3 box blur for soft, stroke-like edges (zero border, so rolling is a shift).
    blurred = sum(np.roll(img, (dy, dx), axis=(1, 2)) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    return (blurred / 9).astype(np.float32)


def synthetic_mnist(
    *,
    n_train: int = 60_000,
    n_test: int = 10_000,
    noise: float = 0.5,
    max_shift: int = 3,
    seed: int = 0,
    flatten: bool = False,
) -> Splits:
    """An MNIST-shaped, learnable 10-class image task for when MNIST is not prepared.

    From `default_rng(seed)`: 10 class prototypes (random 5x5 grids of 4x4-pixel blocks, each
    cell on with probability 0.45, 3x3-blurred, centred in a 28x28 frame with a 4-pixel
    border). Example i: label `y_i ~ U{0..9}`, prototype `y_i` shifted by
    `dy, dx ~ U{-max_shift..max_shift}` pixels, times a contrast `c ~ U[0.7, 1]`, plus uniform
    per-pixel noise of standard deviation `noise` (256 levels), clipped to `[0, 1]`. With the
    defaults a logistic regression on 5,000 examples reaches about 94% test accuracy (as on
    real MNIST), a small MLP or CNN close to 100%. Vectorised: 70k examples take about half a
    second.

    Args:
        n_train: training examples (MNIST has 60,000).
        n_test: test examples (MNIST has 10,000).
        noise: standard deviation of the pixel noise, >= 0.
        max_shift: largest translation in pixels, in [0, 3] (inside the border).
        seed: random seed.
        flatten: return <float32>[n, 784] instead of images.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: <float32>[n, 28, 28, 1] in [0, 1] (or
        <float32>[n, 784]) and <int32>[n] in [0, 10).
    """
    n_train, n_test = _sizes(n_train, n_test)
    noise = check_float("noise", noise, low=0)
    max_shift = check_int("max_shift", max_shift, minimum=0, maximum=3)  # inside the border
    flatten = check_bool("flatten", flatten)
    rng = np.random.default_rng(seed)
    protos = _prototypes(rng)
    shifts = range(-max_shift, max_shift + 1)
    bank = np.stack(
        [np.stack([np.roll(protos, (dy, dx), axis=(1, 2)) for dx in shifts], 1) for dy in shifts],
        1,
    )  # [10, S, S, 28, 28]
    n = n_train + n_test
    y = rng.integers(0, 10, n).astype(np.int32)
    dy = rng.integers(0, len(shifts), n)
    dx = rng.integers(0, len(shifts), n)
    contrast = rng.uniform(0.7, 1.0, n).astype(np.float32)
    # Uniform noise from random bytes (several times faster than Gaussian draws):
    # (u - 127.5) / 127.5 is uniform on [-1, 1] with standard deviation 1 / sqrt(3).
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8).astype(np.float32)
    x -= np.float32(127.5)
    x *= np.float32(noise * np.sqrt(3.0) / 127.5)
    x += bank[y, dy, dx] * contrast[:, None, None]
    np.clip(x, 0.0, 1.0, out=x)
    x = x.reshape(n, 784) if flatten else x[..., None]
    return _split(x, y, n_train)


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------

_POSITIVE = (
    "great excellent wonderful superb brilliant amazing enjoyable delightful moving beautiful "
    "masterpiece charming fantastic memorable perfect touching hilarious gripping stunning "
    "outstanding"
).split()
_NEGATIVE = (
    "awful terrible boring dull poor waste worst horrible stupid mess bland tedious predictable "
    "lame pointless disappointing weak annoying ridiculous forgettable"
).split()
_FILLER = (
    "the a an and of to in is it that this was for on with as but his her they film movie "
    "story plot actor actress director scene scenes character characters time end it's i "
    "we you he she there about from at by be have has had what when who which one two more "
    "some all out up just so than then only also very really quite much even still never "
    "ever again first last new old long short part parts whole year years life world man "
    "woman family friend friends people audience camera music script screen ending dialogue "
    "cast role roles set seen watch watched see saw make made get got go went think thought "
    "feel felt know look looked come came take took give gave show shows series episode "
    "version book original sequel budget effects action drama comedy horror romance thriller "
    "minutes hour night day house city town car war school love death moment moments way "
    "thing things nothing something everything though although while because if or not no "
    "didn't doesn't isn't wasn't can't won't film, movie. story, plot. end. time,"
).split() + ["<br /><br />"]


def synthetic_reviews(
    *,
    n_train: int = 25_000,
    n_test: int = 25_000,
    min_words: int = 20,
    max_words: int = 200,
    sentiment_rate: float = 0.1,
    flip_rate: float = 0.25,
    seed: int = 0,
) -> Splits:
    """IMDB-like sentiment reviews (an offline stand-in for `imdb_reviews`).

    From `default_rng(seed)`: label `y ~ Bernoulli(1/2)` (1 = positive), length
    `L ~ U{min_words..max_words}`. Each word is, with probability `sentiment_rate`, a sentiment
    word (from the label's list with probability `1 - flip_rate`, else from the other list),
    otherwise a filler word (some with punctuation, some `<br /><br />` line breaks, as in
    IMDB). Bag-of-words models learn it; the few sentiment words make it non-trivial.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: <object>[n] arrays of `str`, <int32>[n].
    """
    n_train, n_test = _sizes(n_train, n_test)
    min_words = check_int("min_words", min_words, minimum=1)
    max_words = check_int("max_words", max_words, minimum=min_words)
    sentiment_rate = check_float("sentiment_rate", sentiment_rate, low=0, high=1)
    flip_rate = check_float("flip_rate", flip_rate, low=0, high=0.5)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = rng.integers(0, 2, n).astype(np.int32)
    lengths = rng.integers(min_words, max_words + 1, n)
    owner = np.repeat(np.arange(n), lengths)  # review of each word
    total = owner.shape[0]
    words = np.asarray(_FILLER + _POSITIVE + _NEGATIVE, dtype=object)
    n_fill, n_pos, n_neg = len(_FILLER), len(_POSITIVE), len(_NEGATIVE)
    ids = rng.integers(0, n_fill, total)
    is_sentiment = rng.random(total) < sentiment_rate
    positive = (y[owner] == 1) != (rng.random(total) < flip_rate)
    pos_ids = n_fill + rng.integers(0, n_pos, total)
    neg_ids = n_fill + n_pos + rng.integers(0, n_neg, total)
    ids = np.where(is_sentiment, np.where(positive, pos_ids, neg_ids), ids)
    pieces = np.split(words[ids], np.cumsum(lengths)[:-1])
    x = np.empty(n, dtype=object)
    x[:] = [" ".join(p) for p in pieces]
    return _split(x, y, n_train)
