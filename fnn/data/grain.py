"""Grain pipelines over fnn datasets: random-access sources, shuffled batches, worker processes.

`grain_source(name, split)` is a random-access Grain data source (`len(source)`,
`source[i] -> (x, y)`) for any dataset `fnn.data.load` knows:

- bundled and synthetic datasets are served from the in-memory arrays `fnn.data.load` returns;
- TFDS datasets (`mnist`, `fashion_mnist`, `cifar10`, `imdb_reviews`) are read record by record
  from their prepared array_record files through `tfds.data_source` (no TensorFlow) and
  decoded per example, so a split never has to fit in memory. Each example gets the
  preprocessing `fnn.data.load` applies (pixels scaled to float32 in [0, 1], `flatten`, int32
  labels, text as `str`).

`grain_loader(name, batch_size=...)` builds the Grain pipeline on top of it,

    grain.MapDataset.source(source).shuffle(seed).batch(batch_size).repeat(num_epochs)
        .to_iter_dataset(read_options).mp_prefetch(num_workers=worker_count)

an iterable of `(x: [B, ...], y: [B])` NumPy batches whose iterators are checkpointable with
`get_state()` / `set_state()`:

    >>> import fnn.data
    >>> loader = fnn.data.grain_loader("digits", batch_size=32, seed=0)
    >>> x, y = next(iter(loader))
    >>> x.shape, x.dtype.name, y.shape, y.dtype.name
    ((32, 8, 8, 1), 'float32', (32,), 'int32')

Grain is imported on first use (it takes about a second), not with `fnn.data`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fnn._checks import check_batch_size, check_bool, check_choice, check_int, check_type
from fnn.data import catalog
from fnn.data import tfds as tfds_source
from fnn.data.preprocess import scale_images

if TYPE_CHECKING:
    import grain

__all__ = ["grain_loader", "grain_source"]

_SPLITS = ("train", "test")
_TFDS_OPTIONS = ("data_dir", "download", "flatten", "seed")
_MAX_SEED = 2**32 - 1  # Grain's shuffle takes 32-bit seeds
# Default reading threads per process: one for arrays already in memory (no GIL contention),
# up to 8 for TFDS records (PNG decoding releases the GIL).
_TFDS_THREADS = 8


Example = tuple[Any, Any]


class _Source:
    """Base of the random-access sources: batched reads on top of `__getitem__`."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Example:
        raise NotImplementedError

    def _getitems(self, indices: Sequence[int]) -> list[Example]:
        """Batched read (Grain's `SupportsBatchedReadRandomAccessDataSource`)."""
        return [self[i] for i in indices]

    __getitems__ = _getitems  # the name PyTorch and TFDS use


class ArraySource(_Source):
    """A Grain data source over in-memory arrays `x: [n, ...]`, `y: [n]`.

    `source[i]` is `(x[i], y[i])`: a view into `x` (no copy) and a NumPy scalar.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, *, name: str = "arrays"):
        if len(x) != len(y):
            raise ValueError(f"y: expected {len(x)} labels (one per row of x), got {len(y)}")
        self._x, self._y, self._name = x, y, name

    def __len__(self) -> int:
        return len(self._y)

    def __getitem__(self, index: int) -> Example:
        return self._x[index], self._y[index]

    def _getitems(self, indices: Sequence[int]) -> list[Example]:
        xs, ys = self.read_batch(indices)
        return list(zip(xs, ys, strict=True))

    __getitems__ = _getitems

    def read_batch(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(x[indices], y[indices])``: one batch, read with one fancy index per array."""
        indices = np.asarray(indices)
        return self._x[indices], self._y[indices]

    def __repr__(self) -> str:
        return f"ArraySource({self._name}, n={len(self)}, x={self._x.dtype}{list(self._x.shape)})"


class TfdsSource(_Source):
    """A Grain data source over one split of a prepared TFDS dataset (array_record files).

    Records are read and decoded one at a time (`source[i]`) or in batches (`_getitems`)
    through `tfds.data_source`; nothing is read ahead, so the split never sits in memory.
    Pickling (for Grain worker processes) carries the TFDS data source, which reopens its
    files in the worker.
    """

    def __init__(self, records: Any, *, name: str, kind: str, flatten: bool):
        self._records, self._name, self._kind, self._flatten = records, name, kind, flatten

    def __len__(self) -> int:
        return len(self._records)

    def _example(self, record: dict[str, Any]) -> Example:
        """One decoded TFDS record -> `(x, y)`, as `fnn.data.tfds.load_tfds` converts a split."""
        if self._kind == "image":
            x = scale_images(record["image"])
            x = x.reshape(-1) if self._flatten else x
        else:
            x = tfds_source._to_str(record["text"])
        return x, np.int32(record["label"])

    def __getitem__(self, index: int) -> Example:
        return self._example(self._records[index])

    def _getitems(self, indices: Sequence[int]) -> list[Example]:
        return [self._example(r) for r in self._records.__getitems__(list(indices))]

    __getitems__ = _getitems

    def __repr__(self) -> str:
        split = getattr(self._records, "split", None)
        return f"TfdsSource({self._name}, split={str(split)!r}, n={len(self)})"


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


def _tfds_builder(name: str, data_dir: Any, download: bool | None) -> Any:
    """The TFDS builder of `name`, prepared as `fnn.data.load` would (or a clear error)."""
    tfds = tfds_source._import_tfds(name)
    builder = tfds_source._builder(tfds, name, data_dir)
    if tfds_source._is_prepared(builder):
        return builder
    if download is False:
        raise tfds_source.DataUnavailableError(
            tfds_source._not_prepared_message(name, builder, data_dir, "download=False")
        )
    if download is None:
        tfds_source.prepare(name, data_dir=data_dir)  # probes the host; clear error offline
    else:
        tfds_source._prepare_builder(builder)
    return tfds_source._builder(tfds, name, data_dir)


def _tfds_split_source(builder: Any, name: str, split: str, flatten: bool) -> TfdsSource:
    """A `TfdsSource` over `split` of a prepared builder (array_record files only)."""
    try:
        records = builder.as_data_source(split=split, file_format="array_record")
    except (NotImplementedError, ValueError) as e:
        if "format" not in str(e).lower():  # e.g. an unknown split: TFDS's message is clear
            raise
        raise tfds_source.DataUnavailableError(
            f"TFDS dataset {name!r} is prepared in {builder.data_dir} but not as array_record "
            f"files, which Grain reads ({e.__class__.__name__}: {str(e).splitlines()[0]}). "
            f"Prepare it again with `python -m fnn.data prepare {name} --data-dir NEW_DIR` "
            "and pass data_dir=NEW_DIR."
        ) from e
    kind = tfds_source.TFDS_DATASETS[name].kind
    return TfdsSource(records, name=name, kind=kind, flatten=flatten)


def _tfds_source(name: str, split: str, options: dict[str, Any]) -> TfdsSource:
    unknown = sorted(set(options) - set(_TFDS_OPTIONS))
    if unknown:
        raise ValueError(
            f"load_options: expected options of grain_source({name!r}) among "
            f"{list(_TFDS_OPTIONS)}, got unknown {unknown}"
        )
    check_type("split", split, str, "a TFDS split name like 'train' or 'train[:10%]'")
    download = check_choice("download", options.get("download"), (None, True, False))
    flatten = check_bool("flatten", options.get("flatten", False))
    kind = tfds_source.TFDS_DATASETS[name].kind
    if flatten and kind != "image":
        raise ValueError(
            f"flatten: expected False for the {kind} dataset {name!r} (True needs images), got True"
        )
    builder = _tfds_builder(name, options.get("data_dir"), download)
    return _tfds_split_source(builder, name, split, flatten)


def grain_source(name: str, split: str = "train", **load_options: Any) -> ArraySource | TfdsSource:
    """A random-access Grain data source over one split of a dataset.

    Args:
        name: one of `fnn.data.list_datasets()`.
        split: `"train"` or `"test"`; for TFDS datasets any TFDS split name or slice, e.g.
            `"train[:10%]"` or `"test[:1000]"`.
        **load_options: the options `fnn.data.load(name, ...)` takes: `seed` (of the
            train/test split or the generator), `test_size`, `flatten`, `n_train`, ...; for
            TFDS datasets `data_dir`, `download` and `flatten`.

    Returns:
        A source with `len(source)` examples; `source[i]` is one example `(x, y)` as NumPy:
        `x` <float32>[...] of shape `fnn.data.info(name).input_shape` (flattened with
        `flatten=True`; a `str` for text) and `y` an <int32>[] class label (<float32>[] for
        regression targets). Bundled and synthetic datasets are served from the arrays
        `fnn.data.load` returns (an `ArraySource`); TFDS datasets read and decode each record
        from the prepared array_record files on access (a `TfdsSource`), without loading the
        split.

    Raises:
        TypeError: for a name, split or option value of the wrong type.
        ValueError: for an unknown name or split, an option the dataset does not take, or a
            bad option value.
        DataUnavailableError: when a TFDS dataset is not prepared and cannot be downloaded, or
            is prepared in a format other than array_record.

    Example:
        >>> source = grain_source("iris", split="test")
        >>> len(source), source[0][0].shape, source[0][1].dtype.name
        (30, (4,), 'int32')
    """
    if catalog.info(name).source == "tfds":
        return _tfds_source(name, split, load_options)
    split = check_choice("split", split, _SPLITS)
    train, test = catalog.load(name, **load_options)
    x, y = train if split == "train" else test
    return ArraySource(x, y, name=f"{name}, split={split!r}")


# --------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------


def _collate(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    """Stacks examples `(x, y)` into a batch `(x: [B, ...], y: [B])`; text as <object>[B]."""
    xs, ys = zip(*examples, strict=True)
    if isinstance(xs[0], str):
        x = np.empty(len(xs), dtype=object)
        x[:] = xs
    else:
        x = np.stack(xs)
    return x, np.stack(ys)


_ENDLESS = 2**62  # batches of an endless loader (num_epochs=None)


class _EpochBatches:
    """Batch ``k`` of a loader: batch ``k % per_epoch`` of epoch ``k // per_epoch``, whose
    permutation is ``default_rng([seed, epoch]).permutation(n)`` (or the source order)."""

    def __init__(self, source: Any, batch_size: int, *, seed: int, shuffle: bool,
                 drop_remainder: bool):  # fmt: skip
        self.source, self.batch_size, self.seed, self.shuffle = source, batch_size, seed, shuffle
        self.n = len(source)
        self.per_epoch = self.n // batch_size if drop_remainder else -(-self.n // batch_size)
        self._cached: tuple[int, np.ndarray] | None = None  # (epoch, its permutation)

    def _permutation(self, epoch: int) -> np.ndarray:
        # Batches come mostly in order: the last epoch's permutation is kept. Grain's reading
        # threads may call this at once; one tuple is swapped in whole, so each gets its own
        # epoch's permutation (at worst computed twice).
        cached = self._cached
        if cached is not None and cached[0] == epoch:
            return cached[1]
        order = np.arange(self.n)
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        self._cached = (epoch, order)
        return order

    def __call__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        epoch, j = divmod(int(k), self.per_epoch)
        indices = self._permutation(epoch)[j * self.batch_size : (j + 1) * self.batch_size]
        return _read_batch(self.source, indices)


def _read_batch(source: Any, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The examples ``indices`` of ``source`` as one batch ``(x: [B, ...], y: [B])``."""
    if isinstance(source, ArraySource):
        return source.read_batch(indices)
    getitems = getattr(source, "_getitems", None)
    examples = getitems(list(indices)) if getitems else [source[int(i)] for i in indices]
    return _collate(examples)


def _is_source(value: Any) -> bool:
    has_protocol = hasattr(value, "__len__") and hasattr(value, "__getitem__")
    return has_protocol and not isinstance(value, str)


def _allow_unparsed_absl_flags() -> None:
    """Lets Grain's worker processes start in programs that never parse absl flags.

    Grain 0.2.18 with a jaxlib that has profiler hooks reads the absl flag
    `--grain_enable_multiprocess_worker_profiling` when it starts workers; outside `absl.app`
    (scripts, notebooks, pytest) flags are never parsed and that read raises
    `UnparsedFlagAccessError`. Marking only this flag as given keeps its default (False)
    and leaves every other flag, and a later `app.run`, alone.
    """
    from absl import flags

    name = "grain_enable_multiprocess_worker_profiling"
    if not flags.FLAGS.is_parsed() and name in flags.FLAGS:
        flags.FLAGS[name].present = True


def grain_loader(
    name: str | Any,
    *,
    split: str = "train",
    batch_size: int | str,
    shuffle: bool = True,
    seed: int = 0,
    num_epochs: int | None = 1,
    drop_remainder: bool = False,
    worker_count: int = 0,
    read_options: grain.ReadOptions | None = None,
    **load_options: Any,
) -> grain.IterDataset:
    """Shuffled NumPy batches of a dataset through a Grain pipeline.

    The pipeline is `grain.MapDataset.range(batches)` mapped to the batches: batch `k` is
    batch `k % per_epoch` of epoch `k // per_epoch`, its indices taken from that epoch's
    permutation (`np.random.default_rng([seed, epoch]).permutation(n)`: different but
    deterministic in every epoch; each epoch batched on its own, so its last batch may be
    smaller) and read at once from the source (one fancy index for in-memory arrays); then
    `.to_iter_dataset(read_options)` and, with `worker_count > 0`, `.mp_prefetch(...)` in
    that many worker processes (which give the same batches in the same order).

    Args:
        name: a dataset name (see `grain_source`), or a random-access source such as
            `grain_source(...)`'s (anything with `len` and `[i] -> (x, y)`).
        split: the split of a named dataset, see `grain_source`.
        batch_size: examples per batch, an integer in [1, n] for a split of n examples, or
            `"full"` for one batch of all of them.
        shuffle: shuffle the examples (anew each epoch); `False` keeps the source's order.
        seed: seed of the shuffle, in [0, 2**32 - 1]. The train/test split of bundled and
            synthetic datasets keeps `load`'s default seed; for another split pass
            `grain_source(name, seed=...)` as `name`.
        num_epochs: passes over the data, or `None` to repeat without end.
        drop_remainder: drop the last, smaller batch of each epoch.
        worker_count: worker processes that read and batch in parallel (0: read in this
            process). Workers are spawned when an iterator starts, which takes a few seconds
            (each imports fnn and JAX); the source is pickled to them (in-memory arrays are
            copied, TFDS sources reopen their files). Close an iterator you stop early with
            `iterator.close()` to end its workers at once.
        read_options: `grain.ReadOptions` (reading threads and prefetch buffer, per process);
            the default reads with 1 thread for in-memory data and 8 for TFDS records, and
            prefetches twice as many batches as threads.
        **load_options: options of the named dataset, see `grain_source`.

    Returns:
        A `grain.IterDataset` of batches `(x, y)`: `x` <float32>[B, ...] (<object>[B] of `str`
        for text) and `y` <int32>[B] labels (<float32>[B] targets), with `B = batch_size`
        except for the last batch of each epoch when `drop_remainder=False` (with workers the
        arrays are `np.ndarray` subclasses backed by shared memory). Each `iter(loader)`
        starts from the beginning; its iterator (a `grain.DatasetIterator`) has
        `get_state()`, a small dict such as `{"next_index": 7}` (batches returned so far,
        over all epochs; with workers, one such entry per worker), and `set_state(state)`,
        which continues with the same batches.

    Raises:
        TypeError: for an argument of the wrong type.
        ValueError: for an unknown dataset name or split, `batch_size` outside [1, n], a
            negative `seed` or `worker_count`, `num_epochs < 1`, or bad load options.
        DataUnavailableError: when a TFDS dataset is not prepared and cannot be downloaded.

    Example:
        >>> loader = grain_loader("iris", batch_size=50, shuffle=False)
        >>> [x.shape[0] for x, y in loader]
        [50, 50, 20]
    """
    import grain

    if _is_source(name):
        if load_options:
            raise ValueError(
                "load_options: expected none when name is a data source, got "
                f"{sorted(load_options)}"
            )
        source = name
    elif isinstance(name, str):
        source = grain_source(name, split, **load_options)
    else:
        raise TypeError(
            "name: expected a dataset name or a random-access source (len and [i]), got "
            f"{type(name).__name__}"
        )
    n = len(source)
    batch_size = check_batch_size("batch_size", batch_size, n)
    shuffle = check_bool("shuffle", shuffle)
    seed = check_int("seed", seed, minimum=0, maximum=_MAX_SEED)
    if num_epochs is not None:
        num_epochs = check_int("num_epochs", num_epochs, minimum=1)
    drop_remainder = check_bool("drop_remainder", drop_remainder)
    worker_count = check_int("worker_count", worker_count, minimum=0)
    if read_options is None:
        threads = _TFDS_THREADS if isinstance(source, TfdsSource) else 1
        threads = max(1, min(threads, os.cpu_count() or 1))
        read_options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * threads)
    check_type("read_options", read_options, grain.ReadOptions, "a grain.ReadOptions or None")

    # One element per batch: its indices come from the epoch's permutation, drawn with NumPy
    # once per epoch, and the batch is read at once (one fancy index for in-memory arrays).
    # Shuffling and batching single examples in Grain cost Python work per example: ~85% of
    # an MLP's epoch at batch 256 (measured).
    batches = _EpochBatches(source, batch_size, seed=seed, shuffle=shuffle,
                            drop_remainder=drop_remainder)  # fmt: skip
    total = _ENDLESS if num_epochs is None else batches.per_epoch * num_epochs
    dataset = grain.MapDataset.range(total).map(batches).to_iter_dataset(read_options)
    if worker_count:
        _allow_unparsed_absl_flags()
        dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return dataset
