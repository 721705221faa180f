"""Datasets as NumPy arrays: bundled offline data, synthetic tasks, TFDS without TensorFlow.

Every dataset loads as `(x_train, y_train), (x_test, y_test)`:

    >>> import fnn.data
    >>> (x_train, y_train), (x_test, y_test) = fnn.data.load("digits", flatten=True)
    >>> x_train.shape, x_train.dtype.name, y_train.dtype.name, fnn.data.info("digits").num_classes
    ((1438, 64), 'float32', 'int32', 10)

Bundled (`iris`, `digits`, `breast_cancer`, `wine`, `diabetes`) and synthetic datasets never
touch the network. TFDS datasets (`mnist`, `fashion_mnist`, `cifar10`, `imdb_reviews`) are read
from prepared array_record files with `tfds.data_source`, without TensorFlow; if they are not
prepared and the network is unreachable, `DataUnavailableError` is raised within about a
second (prepare them elsewhere with `python -m fnn.data prepare NAME --data-dir DIR`).

For data that should not (or cannot) sit in memory, `grain_loader(name, batch_size=...)` gives
shuffled NumPy batches through a Grain pipeline (worker processes, checkpointable iterators),
reading TFDS records one at a time; `grain_source(name, split)` is its random-access source.
"""

from fnn.data.catalog import DatasetInfo, info, is_available, list_datasets, load
from fnn.data.grain import grain_loader, grain_source
from fnn.data.preprocess import (
    Standardizer,
    min_max_scale,
    one_hot,
    scale_images,
    split_indices,
    standardize,
    train_val_split,
)
from fnn.data.sequence import make_windows, split_series
from fnn.data.synthetic import linear_weights, make_series
from fnn.data.text import PAD_ID, UNK_ID, Vocabulary, padding_mask, tokenize
from fnn.data.tfds import DataUnavailableError, prepare

__all__ = [
    "PAD_ID",
    "UNK_ID",
    "DataUnavailableError",
    "DatasetInfo",
    "Standardizer",
    "Vocabulary",
    "grain_loader",
    "grain_source",
    "info",
    "is_available",
    "linear_weights",
    "list_datasets",
    "load",
    "make_series",
    "make_windows",
    "min_max_scale",
    "one_hot",
    "padding_mask",
    "prepare",
    "scale_images",
    "split_indices",
    "split_series",
    "standardize",
    "tokenize",
    "train_val_split",
]
