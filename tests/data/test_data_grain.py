"""Grain pipelines: bundled data through grain_loader, resumable iterators, worker processes,
and TFDS records read one at a time from real array_record files (no TensorFlow)."""

import doctest
import itertools

import numpy as np
import pytest

import fnn.data
from fnn.data import catalog
from fnn.data import grain as fnn_grain
from fnn.data import tfds as tfds_source

try:
    import tensorflow_datasets as tfds
except ImportError:  # the `data` extra is not installed: the TFDS tests skip
    tfds = None
needs_tfds = pytest.mark.skipif(tfds is None, reason="needs tensorflow-datasets (fnn[data])")


@pytest.fixture(scope="module")
def digits():
    return fnn.data.load("digits")


def _examples(x, y):
    """The multiset of examples `(x row, label)` as sorted hashable keys."""
    return sorted((row.tobytes(), int(label)) for row, label in zip(x, y, strict=True))


def _epoch(loader):
    batches = list(loader)
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def _labels(batches):
    return np.concatenate([y for _, y in batches])


# --------------------------------------------------------------------------------------------
# Sources and loaders over in-memory data
# --------------------------------------------------------------------------------------------


def test_source_matches_load(digits):
    (x_train, y_train), (x_test, y_test) = digits
    train, test = fnn.data.grain_source("digits"), fnn.data.grain_source("digits", split="test")
    assert (len(train), len(test)) == (len(y_train), len(y_test))
    x, y = train[5]
    np.testing.assert_array_equal(x, x_train[5])
    assert x.shape == (8, 8, 1) and x.dtype == np.float32 and y.dtype == np.int32
    assert y == y_train[5]
    np.testing.assert_array_equal(test._getitems([0, 3])[1][0], x_test[3])
    flat, _ = fnn.data.grain_source("digits", flatten=True, seed=3)[0]
    assert flat.shape == (64,)


def test_one_epoch_is_the_training_set_shuffled(digits):
    (x_train, y_train), _ = digits
    x, y = _epoch(fnn.data.grain_loader("digits", batch_size=100, seed=0))
    assert x.shape == x_train.shape and y.shape == y_train.shape
    assert _examples(x, y) == _examples(x_train, y_train)  # every example exactly once
    assert not np.array_equal(y, y_train)  # in another order
    again = _labels(fnn.data.grain_loader("digits", batch_size=100, seed=0))
    other = _labels(fnn.data.grain_loader("digits", batch_size=100, seed=1))
    np.testing.assert_array_equal(again, y)  # deterministic for a seed
    assert not np.array_equal(other, y)  # another seed, another order
    ordered = _labels(fnn.data.grain_loader("digits", batch_size=100, shuffle=False))
    np.testing.assert_array_equal(ordered, y_train)


def test_batch_shapes_dtypes_and_remainder(digits):
    n = len(digits[0][1])  # 1438 = 14 * 100 + 38
    batches = list(fnn.data.grain_loader("digits", batch_size=100, flatten=True))
    assert [x.shape for x, _ in batches] == [(100, 64)] * 14 + [(38, 64)]
    assert [y.shape for _, y in batches] == [(100,)] * 14 + [(38,)]
    assert all(x.dtype == np.float32 and y.dtype == np.int32 for x, y in batches)
    dropped = list(fnn.data.grain_loader("digits", batch_size=100, drop_remainder=True))
    assert [x.shape[0] for x, _ in dropped] == [100] * 14
    ((full_x, full_y),) = fnn.data.grain_loader("digits", batch_size="full", shuffle=False)
    assert full_x.shape == (n, 8, 8, 1) and full_y.shape == (n,)
    ((x, y),) = fnn.data.grain_loader("diabetes", split="test", batch_size=88)
    assert x.shape == (88, 10) and y.dtype == np.float32  # regression targets


def test_two_epochs_are_two_shuffled_passes(digits):
    (x_train, y_train), _ = digits
    batches = list(fnn.data.grain_loader("digits", batch_size=500, num_epochs=2, seed=4))
    assert [x.shape[0] for x, _ in batches] == [500, 500, 438] * 2  # each epoch batched alone
    first, second = _epoch(batches[:3]), _epoch(batches[3:])
    assert _examples(*first) == _examples(*second) == _examples(x_train, y_train)
    assert not np.array_equal(first[1], second[1])  # reshuffled for the second epoch
    endless = iter(fnn.data.grain_loader("digits", batch_size=500, num_epochs=None, seed=4))
    assert [x.shape[0] for x, _ in itertools.islice(endless, 7)] == [500, 500, 438] * 2 + [500]


def test_iterator_state_resumes_with_the_same_batches():
    loader = fnn.data.grain_loader("digits", batch_size=64, num_epochs=2, seed=7)
    expected = list(loader)
    iterator = iter(loader)
    for _ in range(30):  # into the second epoch (23 batches each)
        next(iterator)
    state = iterator.get_state()
    assert state == {"next_index": 30}
    rest = list(iterator)
    resumed = iter(loader)
    resumed.set_state(state)
    again = list(resumed)
    assert len(rest) == len(again) == len(expected) - 30
    for (x, y), (x2, y2), (x3, y3) in zip(rest, again, expected[30:], strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
        np.testing.assert_array_equal(x, x3)
        np.testing.assert_array_equal(y, y3)


def test_custom_source():
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10, dtype=np.int32)
    source = fnn_grain.ArraySource(x, y)
    batches = list(fnn.data.grain_loader(source, batch_size=4, shuffle=False))
    np.testing.assert_array_equal(_labels(batches), y)
    assert "n=10" in repr(source)
    with pytest.raises(ValueError, match=r"y: expected 10 labels \(one per row of x\), got 3"):
        fnn_grain.ArraySource(x, y[:3])


def test_text_batches_are_object_arrays_of_str():
    ((x, y),) = fnn.data.grain_loader("synthetic_reviews", batch_size=5, n_train=5, n_test=5)
    assert x.shape == (5,) and x.dtype == object and all(isinstance(t, str) for t in x)
    assert y.dtype == np.int32


def _assert_same_batches(loader, expected):
    iterator = iter(loader)
    try:
        batches = list(iterator)
    finally:
        iterator.close()
    assert len(batches) == len(expected)
    for (x, y), (x2, y2) in zip(batches, expected, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)


def test_one_worker_process_gives_the_same_batches():
    options = dict(batch_size=300, seed=2, num_epochs=2)
    expected = list(fnn.data.grain_loader("digits", **options))
    _assert_same_batches(fnn.data.grain_loader("digits", worker_count=1, **options), expected)


@pytest.mark.slow
def test_two_worker_processes_give_the_same_batches_and_resume():
    options = dict(batch_size=300, seed=2, num_epochs=2)
    expected = list(fnn.data.grain_loader("digits", **options))
    loader = fnn.data.grain_loader("digits", worker_count=2, **options)
    _assert_same_batches(loader, expected)
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    state = iterator.get_state()
    iterator.close()
    assert [s["next_index"] for s in state["iterators_in_use_states"]] == [2, 1]
    resumed = iter(loader)
    resumed.set_state(state)
    try:
        for (x, y), (x2, y2) in zip(resumed, expected[3:], strict=True):
            np.testing.assert_array_equal(x, x2)
            np.testing.assert_array_equal(y, y2)
    finally:
        resumed.close()


def test_docstring_examples():
    result = doctest.testmod(fnn_grain, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------------------------
# Bad arguments
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(name="nope"), ValueError, r"name: expected one of \[.*'digits'.*\], got 'nope'"),
        (dict(name=3), TypeError, r"name: expected a dataset name or a random-access source"),
        (dict(batch_size=0), ValueError, r"batch_size: expected an integer in \[1, 1438\]"),
        (dict(batch_size=2000), ValueError, r"batch_size: expected an integer in \[1, 1438\]"),
        (dict(batch_size=1.5), TypeError, r"batch_size: expected an integer or 'full', got 1.5"),
        (dict(split="validation"), ValueError, r"split: expected one of \['train', 'test'\]"),
        (dict(shuffle="yes"), TypeError, r"shuffle: expected True or False, got 'yes'"),
        (dict(seed=-1), ValueError, r"seed: expected an integer in \[0, 4294967295\], got -1"),
        (dict(seed=2**32), ValueError, r"seed: expected an integer in \[0, 4294967295\]"),
        (dict(seed="0"), TypeError, r"seed: expected an integer in \[0, 4294967295\]"),
        (dict(num_epochs=0), ValueError, r"num_epochs: expected an integer >= 1, got 0"),
        (dict(drop_remainder=1), TypeError, r"drop_remainder: expected True or False, got 1"),
        (dict(worker_count=-1), ValueError, r"worker_count: expected an integer >= 0, got -1"),
        (dict(read_options=4), TypeError, r"read_options: expected a grain.ReadOptions or None"),
        (dict(noise=0.1), ValueError, r"options: expected options of load\('digits'\)"),
    ],
)
def test_bad_loader_arguments(kwargs, error, match):
    kwargs = {"name": "digits", "batch_size": 10, **kwargs}
    with pytest.raises(error, match=match):
        fnn.data.grain_loader(kwargs.pop("name"), **kwargs)


@needs_tfds
def test_bad_source_arguments():
    with pytest.raises(TypeError, match=r"name: expected one of \[.*\], got 3"):
        fnn.data.grain_source(3)
    with pytest.raises(ValueError, match=r"load_options: expected none when name is a data"):
        fnn.data.grain_loader(fnn.data.grain_source("iris"), batch_size=4, flatten=True)
    with pytest.raises(TypeError, match=r"split: expected a TFDS split name .*, got tuple"):
        fnn.data.grain_source("mnist", split=("train", "test"))  # one split here, not a pair
    with pytest.raises(ValueError, match=r"got unknown \['test_size'\]"):
        fnn.data.grain_source("mnist", test_size=0.5)
    with pytest.raises(TypeError, match=r"split: expected a TFDS split name like 'train'"):
        fnn.data.grain_source("mnist", split=1)
    with pytest.raises(TypeError, match=r"download: expected one of \[None, True, False\]"):
        fnn.data.grain_source("mnist", download="yes")
    with pytest.raises(ValueError, match=r"flatten: expected False for the text dataset"):
        fnn.data.grain_source("imdb_reviews", flatten=True)


# --------------------------------------------------------------------------------------------
# TFDS: real array_record files read record by record, never the whole split
# --------------------------------------------------------------------------------------------


def _tiny_builder_class():
    """test_data_tfds.py's tiny TFDS builder: 20 train / 6 test RGB 4x4 images, image i is
    constant i with label i % 10 (a fresh class per call, as there)."""
    from test_data_tfds import _tiny_builder_class  # the sibling test module (tests/data)

    return _tiny_builder_class()


def _never(*args, **kwargs):
    raise AssertionError("a Grain source must not load the whole split")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    tfds_source._prepare_builder(_tiny_builder_class()(data_dir=data_dir))
    return data_dir


@pytest.fixture
def tiny_mnist(tiny_dir, monkeypatch):
    """`mnist` served by the prepared tiny builder; every whole-split reader fails."""
    builder_class = _tiny_builder_class()
    monkeypatch.setattr(tfds_source, "_builder", lambda tfds, name, d: builder_class(data_dir=d))
    for reader in ("_read_source", "_read_with_tensorflow", "_load_builder", "load_tfds"):
        monkeypatch.setattr(tfds_source, reader, _never)
    monkeypatch.setattr(catalog, "load", _never)
    return tiny_dir


def _count_record_reads(monkeypatch):
    from tensorflow_datasets.core.data_sources import base

    reads = []
    getitem, getitems = base.BaseDataSource.__getitem__, base.BaseDataSource.__getitems__

    def counted_getitem(self, key):
        reads.append(1)
        return getitem(self, key)

    def counted_getitems(self, keys):
        reads.append(len(keys))
        return getitems(self, keys)

    monkeypatch.setattr(base.BaseDataSource, "__getitem__", counted_getitem)
    monkeypatch.setattr(base.BaseDataSource, "__getitems__", counted_getitems)
    return reads


@needs_tfds
def test_tfds_source_reads_one_record_at_a_time(tiny_mnist, monkeypatch):
    reads = _count_record_reads(monkeypatch)
    source = fnn.data.grain_source("mnist", data_dir=tiny_mnist)
    assert isinstance(source, fnn_grain.TfdsSource) and len(source) == 20
    assert sum(reads) == 0  # opening reads no record
    x, y = source[3]
    assert sum(reads) == 1
    assert x.shape == (4, 4, 3) and x.dtype == np.float32 and y.dtype == np.int32
    value = int(np.rint(x[0, 0, 0] * 255))
    np.testing.assert_allclose(x, np.full((4, 4, 3), value / 255.0), rtol=1e-6)
    assert y == value % 10
    assert len(source._getitems([0, 1])) == 2 and sum(reads) == 3
    test = fnn.data.grain_source("mnist", split="test[:4]", data_dir=tiny_mnist, flatten=True)
    assert len(test) == 4 and test[0][0].shape == (48,)
    assert "split='test[:4]'" in repr(test)


@needs_tfds
def test_tfds_loader_covers_the_split(tiny_mnist):
    loader = fnn.data.grain_loader("mnist", data_dir=tiny_mnist, batch_size=8, seed=1)
    batches = list(loader)
    assert [x.shape for x, _ in batches] == [(8, 4, 4, 3), (8, 4, 4, 3), (4, 4, 4, 3)]
    x, y = _epoch(batches)
    values = np.rint(x[:, 0, 0, 0] * 255).astype(int)
    assert sorted(values) == list(range(20))  # every record once
    np.testing.assert_array_equal(y, values % 10)
    iterator = iter(loader)
    next(iterator)
    resumed = iter(loader)
    resumed.set_state(iterator.get_state())
    np.testing.assert_array_equal(next(resumed)[1], batches[1][1])


@needs_tfds
def test_tfds_unknown_split_is_tfds_error(tiny_mnist):
    with pytest.raises(ValueError, match="Unknown split 'validation'"):
        fnn.data.grain_source("mnist", split="validation", data_dir=tiny_mnist)


@needs_tfds
def test_tfds_other_format_explains(tmp_path, monkeypatch):
    builder_class = _tiny_builder_class()
    with tfds_source._png_encoding_without_tensorflow():
        builder_class(data_dir=tmp_path).download_and_prepare(file_format="parquet")
    monkeypatch.setattr(tfds_source, "_builder", lambda tfds, name, d: builder_class(data_dir=d))
    with pytest.raises(fnn.data.DataUnavailableError, match="not as array_record files") as e:
        fnn.data.grain_source("mnist", data_dir=tmp_path)
    assert "python -m fnn.data prepare mnist --data-dir NEW_DIR" in str(e.value)


@needs_tfds
def test_tfds_text_through_mock_data(mock_tfds):
    with mock_tfds(num_examples=6):
        ((x, y),) = fnn.data.grain_loader("imdb_reviews", batch_size=6)
        image, label = fnn.data.grain_source("cifar10", split="test")[0]
    assert x.shape == (6,) and x.dtype == object and all(isinstance(t, str) and t for t in x)
    assert y.dtype == np.int32 and set(np.unique(y)) <= {0, 1}
    assert image.shape == (32, 32, 3) and image.dtype == np.float32 and label.dtype == np.int32


@needs_tfds
def test_tfds_not_prepared_offline_fails_fast(tmp_path, no_network):
    with pytest.raises(fnn.data.DataUnavailableError, match="download=False"):
        fnn.data.grain_source("mnist", data_dir=tmp_path, download=False)
    with pytest.raises(fnn.data.DataUnavailableError, match="is unreachable") as error:
        fnn.data.grain_loader("mnist", data_dir=tmp_path, batch_size=32)
    assert "python -m fnn.data prepare mnist --data-dir DIR" in str(error.value)
    assert list(tmp_path.iterdir()) == []  # nothing written
