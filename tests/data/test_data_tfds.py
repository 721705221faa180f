"""TFDS without TensorFlow: mocked examples through real TFDS code, real array_record round
trips, and a fast, clear error offline."""

import time
from unittest import mock

import numpy as np
import pytest

import fnn.data
from fnn.data import tfds as tfds_source

tfds = pytest.importorskip("tensorflow_datasets")


def _never_tensorflow(*args, **kwargs):
    raise AssertionError("the TensorFlow fallback must not be used for array_record data")


@pytest.fixture(autouse=True)
def _no_tensorflow_fallback(monkeypatch):
    monkeypatch.setattr(tfds_source, "_read_with_tensorflow", _never_tensorflow)


# --------------------------------------------------------------------------------------------
# tfds.testing.mock_data: real TFDS builders and data sources, generated examples
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,shape", [("mnist", (28, 28, 1)), ("fashion_mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))]
)
def test_image_datasets_through_data_source(mock_tfds, name, shape):
    with mock_tfds(num_examples=12):
        (x_train, y_train), (x_test, y_test) = fnn.data.load(name, data_dir="/nonexistent")
        (flat, _), _ = fnn.data.load(name, flatten=True)
    assert x_train.shape == (12, *shape) and x_test.shape == (12, *shape)
    assert x_train.dtype == np.float32 and 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert x_train.max() > 0.5  # pixels were scaled from 0..255, not zeroed
    assert y_train.dtype == y_test.dtype == np.int32 and y_train.shape == (12,)
    assert 0 <= y_train.min() and y_train.max() < 10
    np.testing.assert_array_equal(flat, x_train.reshape(12, -1))


def test_imdb_reviews_through_data_source(mock_tfds):
    with mock_tfds(num_examples=9):
        (x_train, y_train), (x_test, y_test) = fnn.data.load("imdb_reviews")
    assert x_train.shape == (9,) and x_train.dtype == object
    assert all(isinstance(t, str) and t for t in x_train)
    assert y_train.dtype == np.int32 and set(np.unique(y_train)) <= {0, 1}
    vocab = fnn.data.Vocabulary.build(x_train, max_tokens=50)
    ids, lengths = vocab.encode(x_test, max_length=16)
    assert ids.shape == (9, 16) and np.all(lengths >= 1)


def test_not_prepared_and_online_downloads_array_record(mock_tfds, monkeypatch):
    monkeypatch.setattr(tfds_source, "_is_prepared", lambda builder: False)
    monkeypatch.setattr(tfds_source, "_reachable", lambda url, timeout=1.0: True)
    with mock_tfds(num_examples=4):
        with mock.patch.object(
            tfds.core.DatasetBuilder, "download_and_prepare", autospec=True
        ) as download:
            (x_train, _), _ = fnn.data.load("mnist")
    assert x_train.shape == (4, 28, 28, 1)
    download.assert_called_once()
    assert download.call_args.kwargs == {"file_format": "array_record"}


# --------------------------------------------------------------------------------------------
# Offline: fail fast and clearly
# --------------------------------------------------------------------------------------------


def _assert_clear_offline_error(error, data_dir):
    message = str(error)
    assert "'mnist' is not prepared" in message
    assert str(data_dir) in message  # where it looked
    assert "python -m fnn.data prepare mnist --data-dir DIR" in message  # how to prepare
    assert "data_dir=DIR" in message and "TFDS_DATA_DIR" in message  # how to point at a copy
    assert "fnn.data.load('synthetic_mnist')" in message  # offline stand-in


@pytest.mark.usefixtures("no_network")
def test_mnist_offline_fails_fast_and_clearly(tmp_path):
    start = time.perf_counter()
    with pytest.raises(fnn.data.DataUnavailableError) as error:
        fnn.data.load("mnist", data_dir=tmp_path)
    assert time.perf_counter() - start < 5.0
    _assert_clear_offline_error(error.value, tmp_path)
    assert "storage.googleapis.com:443 is unreachable" in str(error.value)
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.usefixtures("hanging_network")
def test_mnist_with_hanging_network_fails_within_probe_timeout(tmp_path):
    start = time.perf_counter()
    with pytest.raises(fnn.data.DataUnavailableError) as error:
        fnn.data.load("mnist", data_dir=tmp_path)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"{elapsed:.1f} s"
    _assert_clear_offline_error(error.value, tmp_path)


def test_mnist_unpatched_offline_machine(tmp_path):
    """The real environment, nothing patched; skipped where MNIST's host is reachable."""
    if tfds_source._reachable(tfds_source.TFDS_DATASETS["mnist"].download_url):
        pytest.skip("the network is reachable here; this test would download MNIST")
    start = time.perf_counter()
    with pytest.raises(fnn.data.DataUnavailableError) as error:
        fnn.data.load("mnist", data_dir=tmp_path)
    assert time.perf_counter() - start < 5.0
    _assert_clear_offline_error(error.value, tmp_path)


def test_download_false_never_probes(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_source, "_reachable", _never_tensorflow)
    with pytest.raises(fnn.data.DataUnavailableError, match="download=False"):
        fnn.data.load("cifar10", data_dir=tmp_path, download=False)


def test_imdb_offline_names_text_stand_in(tmp_path, no_network):
    with pytest.raises(fnn.data.DataUnavailableError) as error:
        fnn.data.load("imdb_reviews", data_dir=tmp_path)
    assert "ai.stanford.edu:80" in str(error.value)
    assert "fnn.data.load('synthetic_reviews')" in str(error.value)


def test_missing_packages_are_named(monkeypatch, tmp_path):
    monkeypatch.setattr(tfds_source, "_missing_packages", lambda: ["h5py"])
    with pytest.raises(fnn.data.DataUnavailableError, match=r"needs the packages \['h5py'\]"):
        fnn.data.load("mnist", data_dir=tmp_path)
    assert not fnn.data.is_available("mnist", data_dir=tmp_path)


def test_is_available(tmp_path):
    assert not fnn.data.is_available("mnist", data_dir=tmp_path)
    assert fnn.data.is_available("synthetic_mnist") and fnn.data.is_available("iris")


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"split: expected a pair of TFDS split names"):
        fnn.data.load("mnist", split="train")
    with pytest.raises(ValueError, match=r"split: expected a pair of TFDS split names"):
        fnn.data.load("mnist", split=("train", "test", "validation"))
    with pytest.raises(
        TypeError, match=r"download: expected one of \[None, True, False\], got 'yes'"
    ):
        fnn.data.load("mnist", download="yes")
    with pytest.raises(ValueError, match="flatten: expected False for the text dataset"):
        fnn.data.load("imdb_reviews", flatten=True)


# --------------------------------------------------------------------------------------------
# Real array_record files, prepared and read without TensorFlow (no mocks)
# --------------------------------------------------------------------------------------------


def _tiny_builder_class():
    class TinyImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """20 train / 6 test RGB 4x4 images; image i is constant i, label i % 10."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(4, 4, 3)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            )
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager):
            del dl_manager
            return {
                "train": self._generate_examples(0, 20),
                "test": self._generate_examples(100, 6),
            }

        def _generate_examples(self, start, n):
            for i in range(start, start + n):
                yield i, {"image": np.full((4, 4, 3), i, np.uint8), "label": i % 10}

    return TinyImages


def test_array_record_round_trip_without_tensorflow(tmp_path):
    builder = _tiny_builder_class()(data_dir=tmp_path)
    tfds_source._prepare_builder(builder)
    assert tfds_source._is_prepared(builder)
    assert sorted(p.name for p in builder.data_path.iterdir() if "array_record" in p.name)
    reopened = _tiny_builder_class()(data_dir=tmp_path)
    (x_train, y_train), (x_test, y_test) = tfds_source._load_builder(
        tfds, reopened, "mnist", "image", ("train", "test"), False
    )
    assert x_train.shape == (20, 4, 4, 3) and x_test.shape == (6, 4, 4, 3)
    values = np.rint(x_train[:, 0, 0, 0] * 255).astype(int)
    assert sorted(values) == list(range(20))  # every example once (TFDS shuffles the order)
    np.testing.assert_allclose(x_train, (values / 255.0)[:, None, None, None] * np.ones((4, 4, 3)))
    np.testing.assert_array_equal(y_train, values % 10)
    np.testing.assert_array_equal(np.sort(np.rint(x_test[:, 0, 0, 0] * 255)), range(100, 106))
    (head, _), _ = tfds_source._load_builder(
        tfds, reopened, "mnist", "image", ("train[:5]", "test"), True
    )
    assert head.shape == (5, 48)


def test_pillow_encoder_is_restored(tmp_path):
    from tensorflow_datasets.core.features import image_feature

    before = image_feature._ImageEncoder._encode_image
    with tfds_source._png_encoding_without_tensorflow():
        pass
    assert image_feature._ImageEncoder._encode_image is before


def test_other_prepared_format_explains(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_source, "_tensorflow_installed", lambda: False)
    builder = _tiny_builder_class()(data_dir=tmp_path)
    with tfds_source._png_encoding_without_tensorflow():
        builder.download_and_prepare(file_format="parquet")
    with pytest.raises(fnn.data.DataUnavailableError, match="not as array_record files") as error:
        tfds_source._load_builder(tfds, builder, "mnist", "image", ("train", "test"), False)
    assert "python -m fnn.data prepare mnist --data-dir NEW_DIR" in str(error.value)
