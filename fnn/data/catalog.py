"""One entry point for every dataset: `load`, `info`, `list_datasets`, `is_available`."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from typing import Any, Literal

from fnn._checks import check_choice
from fnn.data import bundled, synthetic
from fnn.data import tfds as tfds_source
from fnn.data._common import Splits

__all__ = ["DatasetInfo", "info", "is_available", "list_datasets", "load"]

Source = Literal["bundled", "synthetic", "tfds"]
Task = Literal["classification", "regression", "forecasting"]
SOURCES: tuple[str, ...] = ("bundled", "synthetic", "tfds")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, without loading it (numbers are for the default options).

    Attributes:
        name: the name passed to `load`.
        source: `"bundled"` (ships with scikit-learn, offline), `"synthetic"` (generated from
            a seed, offline) or `"tfds"` (TensorFlow Datasets, needs prepared files).
        task: `"classification"` (int32 labels), `"regression"` or `"forecasting"` (float32
            targets of shape [n]).
        input_shape: shape of one input; `()` for text (each input is one `str`).
        input_dtype: `"float32"`, or `"str"` for text (object arrays of `str`).
        num_classes: number of classes, `None` for regression / forecasting.
        num_train: training examples with the default options.
        num_test: test examples with the default options.
        options: the keyword options `load(name, ...)` accepts besides `seed` / `data_dir`.
        stand_in: for TFDS datasets, the offline dataset to use when they are not prepared.
        description: one line.
    """

    name: str
    source: Source
    task: Task
    input_shape: tuple[int, ...]
    input_dtype: str
    num_classes: int | None
    num_train: int
    num_test: int
    options: tuple[str, ...]
    stand_in: str | None
    description: str


@dataclasses.dataclass(frozen=True)
class _Entry:
    loader: Callable[..., Splits]
    source: Source
    task: Task
    input_shape: tuple[int, ...]
    num_classes: int | None
    num_train: int
    num_test: int
    input_dtype: str = "float32"


_ENTRIES: dict[str, _Entry] = {
    # Bundled real data (scikit-learn), default test_size=0.2.
    "iris": _Entry(bundled.iris, "bundled", "classification", (4,), 3, 120, 30),
    "digits": _Entry(bundled.digits, "bundled", "classification", (8, 8, 1), 10, 1438, 359),
    "breast_cancer": _Entry(bundled.breast_cancer, "bundled", "classification", (30,), 2, 455, 114),
    "wine": _Entry(bundled.wine, "bundled", "classification", (13,), 3, 142, 36),
    "diabetes": _Entry(bundled.diabetes, "bundled", "regression", (10,), None, 354, 88),
    # Synthetic.
    "linear_regression": _Entry(
        synthetic.linear_regression, "synthetic", "regression", (8,), None, 800, 200
    ),
    "blobs": _Entry(synthetic.blobs, "synthetic", "classification", (2,), 2, 800, 200),
    "xor": _Entry(synthetic.xor, "synthetic", "classification", (2,), 2, 800, 200),
    "sine": _Entry(synthetic.sine, "synthetic", "forecasting", (32, 1), None, 1568, 368),
    "sum_of_sines": _Entry(
        synthetic.sum_of_sines, "synthetic", "forecasting", (32, 1), None, 1568, 368
    ),
    "ar2": _Entry(synthetic.ar2, "synthetic", "forecasting", (32, 1), None, 1568, 368),
    "synthetic_mnist": _Entry(
        synthetic.synthetic_mnist, "synthetic", "classification", (28, 28, 1), 10, 60_000, 10_000
    ),
    "synthetic_reviews": _Entry(
        synthetic.synthetic_reviews, "synthetic", "classification", (), 2, 25_000, 25_000, "str"
    ),
}
for _name, _spec in tfds_source.TFDS_DATASETS.items():
    _ENTRIES[_name] = _Entry(
        tfds_source.load_tfds,
        "tfds",
        "classification",
        _spec.input_shape,
        _spec.num_classes,
        _spec.num_train,
        _spec.num_test,
        "str" if _spec.kind == "text" else "float32",
    )

_COMMON = ("seed", "data_dir")


def _entry(name: str) -> _Entry:
    return _ENTRIES[check_choice("name", name, sorted(_ENTRIES))]


def _options(entry: _Entry) -> tuple[str, ...]:
    params = inspect.signature(entry.loader).parameters
    return tuple(
        p
        for p, v in params.items()
        if v.kind is inspect.Parameter.KEYWORD_ONLY and p not in _COMMON
    )


def list_datasets(source: str | None = None) -> tuple[str, ...]:
    """Names `load` accepts, sorted, optionally only those of one source.

    Args:
        source: `None` for all, else `"bundled"`, `"synthetic"` or `"tfds"`.

    Returns:
        The dataset names.

    Raises:
        TypeError: for a source that is not a string or None.
        ValueError: for an unknown source.
    """
    check_choice("source", source, (None, *SOURCES))
    return tuple(sorted(n for n, e in _ENTRIES.items() if source is None or e.source == source))


def info(name: str) -> DatasetInfo:
    """Describes a dataset without loading it.

    Example:
        >>> info("iris").num_classes
        3
    """
    entry = _entry(name)
    doc = inspect.getdoc(entry.loader) or ""
    stand_in = None
    if entry.source == "tfds":
        spec = tfds_source.TFDS_DATASETS[name]
        stand_in = spec.stand_in
        doc = f"TFDS {name}: {spec.num_classes}-class {spec.kind} classification."
    return DatasetInfo(
        name=name,
        source=entry.source,
        task=entry.task,
        input_shape=entry.input_shape,
        input_dtype=entry.input_dtype,
        num_classes=entry.num_classes,
        num_train=entry.num_train,
        num_test=entry.num_test,
        options=_options(entry),
        stand_in=stand_in,
        description=doc.splitlines()[0] if doc else name,
    )


def is_available(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether `load(name)` works offline right now.

    Bundled and synthetic datasets always are; a TFDS dataset is when its packages are
    installed and it is prepared under `data_dir` (no network access is attempted).

    Raises:
        TypeError: for a name that is not a string.
        ValueError: for an unknown name.
    """
    entry = _entry(name)
    if entry.source != "tfds":
        return True
    return tfds_source.is_prepared(name, data_dir)


def load(
    name: str,
    *,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    **options: Any,
) -> Splits:
    """Loads a dataset as NumPy arrays `(x_train, y_train), (x_test, y_test)`.

    Conventions: images are <float32>[n, H, W, C] in [0, 1] (channels last), or
    <float32>[n, H * W * C] with `flatten=True`; feature vectors <float32>[n, features];
    series windows <float32>[n, window, 1]; text <object>[n] arrays of `str` (encode them with
    `fnn.data.Vocabulary`); class labels <int32>[n]; regression and forecasting targets
    <float32>[n].

    Args:
        name: one of `list_datasets()`:
            - bundled (offline, real): `iris`, `digits`, `breast_cancer`, `wine`, `diabetes`;
              options `test_size` (default 0.2; stratified split), `flatten` for `digits`.
            - synthetic: `linear_regression`, `blobs`, `xor`, `sine`, `sum_of_sines`, `ar2`,
              `synthetic_mnist`, `synthetic_reviews`; options such as `n_train`, `n_test`,
              `noise`, `window` (see `fnn.data.synthetic`).
            - TFDS: `mnist`, `fashion_mnist`, `cifar10`, `imdb_reviews`; options `download`,
              `split`, `flatten` (see `fnn.data.tfds.load_tfds`).
            `info(name).options` lists a dataset's options.
        seed: seed of the train/test split (bundled) or of the generator (synthetic); TFDS
            datasets have fixed official splits and do not use it.
        data_dir: TFDS data directory; other sources do not read files and ignore it.
        **options: dataset-specific keyword options.

    Returns:
        `(x_train, y_train), (x_test, y_test)`.

    Raises:
        TypeError: for a name or option value of the wrong type.
        ValueError: for an unknown name, an option the dataset does not take, or a bad value.
        DataUnavailableError: when a TFDS dataset is not prepared and cannot be downloaded.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load("iris", seed=0)
        >>> x_train.shape, y_train.dtype.name, x_test.shape
        ((120, 4), 'int32', (30, 4))
    """
    entry = _entry(name)
    allowed = _options(entry)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"options: expected options of load({name!r}) among {list(allowed)} (or seed, "
            f"data_dir), got unknown {unknown}"
        )
    if entry.source == "tfds":
        return entry.loader(name, data_dir=data_dir, **options)
    del data_dir  # only TFDS reads files
    return entry.loader(seed=seed, **options)
