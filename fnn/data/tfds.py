"""TensorFlow Datasets without TensorFlow: prepared array_record files read with `data_source`.

Reading goes through `tfds.builder(...).as_data_source(file_format="array_record")`, which
needs `tensorflow-datasets`, `array-record` and an image decoder (Pillow) but not TensorFlow.
Only when a dataset was prepared in another format (TFRecord, e.g. by an earlier `tfds.load`)
*and* TensorFlow is installed does this module fall back to `builder.as_dataset` (TF).

Offline behaviour: nothing is downloaded behind the caller's back. If a dataset is not
prepared under `data_dir`, the download host is probed with a ~1 s TCP connect first; when it
is unreachable (or `download=False`), `DataUnavailableError` is raised at once, saying where
it looked, how to prepare the data elsewhere and copy it, and which offline dataset stands
in. (A bare offline `tfds.load("mnist")` instead spends minutes in download retries.)

Preparing (`prepare`, or `python -m fnn.data prepare NAME --data-dir DIR`) writes
array_record files. TFDS 4.9 encodes images to PNG with TensorFlow; when TensorFlow is
missing, this module encodes them with Pillow instead, so preparing needs no TensorFlow
either.

Known pitfalls this module guards against (measured with tensorflow-datasets 4.9.10):
- without `h5py` TFDS silently registers only about half of its builders;
- builders defined in a package need `importlib_resources`;
- the `parquet` random-access format lost rows, so only `array_record` is used;
- `tfds.as_numpy` needs TensorFlow, so examples are stacked with NumPy here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np

from fnn._checks import check_bool, check_choice, check_type
from fnn.data._common import Splits
from fnn.data.preprocess import scale_images

__all__ = [
    "TFDS_DATASETS",
    "DataUnavailableError",
    "is_prepared",
    "load_tfds",
    "prepare",
]

# Python module -> pip package: what the `data` extra must install for TF-free reading.
_REQUIRED = {
    "tensorflow_datasets": "tensorflow-datasets",
    "array_record": "array-record",
    "h5py": "h5py",
    "importlib_resources": "importlib_resources",
}
_INSTALL = "pip install 'fnn[data]'"
_PROBE_TIMEOUT_S = 1.0
_READ_CHUNK = 2048


class DataUnavailableError(RuntimeError):
    """A dataset cannot be loaded here: not prepared and no network, or packages missing."""


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
    """How fnn reads one TFDS dataset.

    Attributes:
        tfds_name: the TFDS builder name.
        kind: `"image"` (uint8 images -> float32 [n, H, W, C] in [0, 1]) or `"text"`.
        input_shape: shape of one example as returned by `load` (`()` for text).
        num_classes: number of label classes.
        num_train: examples in the train split.
        num_test: examples in the test split.
        download_url: where TFDS downloads the raw files from (the host is probed).
        stand_in: the offline fnn dataset with the same role.
        stand_in_note: how the stand-in compares.
    """

    tfds_name: str
    kind: Literal["image", "text"]
    input_shape: tuple[int, ...]
    num_classes: int
    num_train: int
    num_test: int
    download_url: str
    stand_in: str
    stand_in_note: str


TFDS_DATASETS: dict[str, TfdsSpec] = {
    "mnist": TfdsSpec(
        "mnist", "image", (28, 28, 1), 10, 60_000, 10_000,
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "synthetic_mnist", "same shapes: 28x28x1 images, 10 classes; or 'digits' for real "
        "handwritten digits at 8x8",
    ),
    "fashion_mnist": TfdsSpec(
        "fashion_mnist", "image", (28, 28, 1), 10, 60_000, 10_000,
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "synthetic_mnist", "same shapes: 28x28x1 images, 10 classes",
    ),
    "cifar10": TfdsSpec(
        "cifar10", "image", (32, 32, 3), 10, 50_000, 10_000,
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        "synthetic_mnist", "10-class images, but 28x28x1 instead of 32x32x3",
    ),
    "imdb_reviews": TfdsSpec(
        "imdb_reviews", "text", (), 2, 25_000, 25_000,
        "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
        "synthetic_reviews", "IMDB-like positive / negative review strings",
    ),
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Environment checks
# --------------------------------------------------------------------------------------------


def _missing_packages() -> list[str]:
    missing = [pkg for mod, pkg in _REQUIRED.items() if importlib.util.find_spec(mod) is None]
    if importlib.util.find_spec("PIL") is None and importlib.util.find_spec("cv2") is None:
        missing.append("pillow")
    return missing


def _tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def _spec(name: str) -> TfdsSpec:
    return TFDS_DATASETS[check_choice("name", name, sorted(TFDS_DATASETS))]


def _stand_in(name: str) -> str:
    spec = TFDS_DATASETS[name]
    return f"Offline stand-in: fnn.data.load({spec.stand_in!r}) ({spec.stand_in_note})."


def _import_tfds(name: str) -> Any:
    """Imports tensorflow_datasets, or raises DataUnavailableError naming what to install."""
    missing = _missing_packages()
    if missing:
        raise DataUnavailableError(
            f"Loading TFDS dataset {name!r} needs the packages {missing}, which are not "
            f"installed. Install them with `{_INSTALL}` (TensorFlow is not needed).\n"
            + _stand_in(name)
        )
    import tensorflow_datasets as tfds

    return tfds


def _builder(tfds: Any, name: str, data_dir: str | os.PathLike | None) -> Any:
    try:
        return tfds.builder(_spec(name).tfds_name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DataUnavailableError(
            f"TFDS did not register the builder {name!r}. This happens when optional packages "
            f"are missing (e.g. h5py); install them with `{_INSTALL}`.\n" + _stand_in(name)
        ) from e


def _probe_address(url: str) -> tuple[str, int]:
    """The (host, port) a download of `url` connects to first: the proxy if one is set."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return proxy_parts.hostname or "", proxy_parts.port or 80
    return host, port


def _reachable(url: str, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the download host (or proxy) opens within `timeout` s.

    The probe runs in a daemon thread so that a slow DNS lookup cannot block the caller for
    longer than `timeout`.
    """
    address = _probe_address(url)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(address, timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, name="fnn-data-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result) and result[0]


def _is_prepared(builder: Any) -> bool:
    """`builder.is_prepared()`, skipping TFDS's warning log when the folder does not exist."""
    return (builder.data_path / "dataset_info.json").exists() and bool(builder.is_prepared())


def _not_prepared_message(name: str, builder: Any, data_dir: Any, reason: str) -> str:
    root = (
        f"data_dir={os.fspath(data_dir)!r}"
        if data_dir is not None
        else "the default data_dir (TFDS_DATA_DIR or ~/tensorflow_datasets)"
    )
    tfds_name = TFDS_DATASETS[name].tfds_name
    return (
        f"TFDS dataset {name!r} is not prepared in {root}: looked for {builder.data_dir}, "
        f"and {reason}.\n"
        "To use it on a machine without internet, prepare it on one with internet and copy it:\n"
        f"    {_INSTALL}\n"
        f"    python -m fnn.data prepare {name} --data-dir DIR\n"
        f"    # copy DIR/{tfds_name}/ to DIR on this machine, then\n"
        f"    fnn.data.load({name!r}, data_dir=DIR)   # or set TFDS_DATA_DIR=DIR\n"
        + _stand_in(name)
    )


# --------------------------------------------------------------------------------------------
# Preparing
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _png_encoding_without_tensorflow() -> Iterator[None]:
    """Encodes uint8 images to PNG with Pillow while TFDS prepares, if TF is not installed.

    TFDS 4.9 encodes images with `tf.image.encode_png`. The PNG bytes Pillow writes decode
    to the same pixels, so the prepared files are equivalent.
    """
    if _tensorflow_installed():
        yield
        return
    from PIL import Image
    from tensorflow_datasets.core.features import image_feature

    encoder_cls = image_feature._ImageEncoder
    original = encoder_cls._encode_image

    def encode(self: Any, np_image: np.ndarray) -> bytes:
        if self.encoding_format != "png" or np_image.dtype != np.uint8:
            return original(self, np_image)
        image_feature._validate_np_array(np_image, shape=self.shape, dtype=self.np_dtype)
        pixels = np_image[..., 0] if np_image.shape[-1] == 1 else np_image
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        return buffer.getvalue()

    encoder_cls._encode_image = encode
    try:
        yield
    finally:
        encoder_cls._encode_image = original


def _prepare_builder(builder: Any) -> None:
    """Downloads and prepares `builder` as array_record files (no TensorFlow needed)."""
    with _png_encoding_without_tensorflow():
        builder.download_and_prepare(file_format="array_record")


def prepare(name: str, *, data_dir: str | os.PathLike | None = None) -> str:
    """Downloads and prepares a TFDS dataset as array_record files, to copy to offline machines.

    Args:
        name: one of `TFDS_DATASETS`.
        data_dir: TFDS data directory; `None` uses TFDS's default.

    Returns:
        The prepared folder (`data_dir/name/version`, or with the config for `imdb_reviews`).

    Raises:
        ValueError: for an unknown name.
        DataUnavailableError: if packages are missing or the download host is unreachable.
    """
    spec = _spec(name)
    tfds = _import_tfds(name)
    builder = _builder(tfds, name, data_dir)
    if not _is_prepared(builder):
        if not _reachable(spec.download_url):
            host, port = _probe_address(spec.download_url)
            raise DataUnavailableError(
                _not_prepared_message(
                    name, builder, data_dir, f"the download host {host}:{port} is unreachable"
                )
            )
        _prepare_builder(builder)
    return os.fspath(builder.data_dir)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def is_prepared(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether `name` is prepared under `data_dir` and the TFDS packages are installed."""
    _spec(name)
    if _missing_packages():
        return False
    tfds = _import_tfds(name)
    try:
        return _is_prepared(_builder(tfds, name, data_dir))
    except DataUnavailableError:
        return False


def _to_str(text: Any) -> str:
    return text.decode("utf-8") if isinstance(text, bytes) else str(text)


def _read_source(source: Sequence[Any], kind: str, shape: tuple[int, ...]) -> tuple[Any, Any]:
    """Reads a whole data source into NumPy, in chunks (batched random-access reads)."""
    n = len(source)
    labels = np.empty(n, dtype=np.int32)
    inputs: Any = np.empty((n, *shape), np.uint8) if kind == "image" else np.empty(n, object)
    for start in range(0, n, _READ_CHUNK):
        stop = min(n, start + _READ_CHUNK)
        examples = source.__getitems__(list(range(start, stop)))
        labels[start:stop] = [int(ex["label"]) for ex in examples]
        if kind == "image":
            inputs[start:stop] = np.stack([ex["image"] for ex in examples])
        else:
            inputs[start:stop] = [_to_str(ex["text"]) for ex in examples]
    return inputs, labels


def _read_with_tensorflow(tfds: Any, builder: Any, split: str, kind: str) -> tuple[Any, Any]:
    """Fallback for datasets prepared as TFRecord: needs TensorFlow (checked by the caller)."""
    batch = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    labels = np.asarray(batch["label"], dtype=np.int32)
    if kind == "image":
        return np.asarray(batch["image"], np.uint8), labels
    texts = np.empty(labels.shape[0], object)
    texts[:] = [_to_str(t) for t in batch["text"]]
    return texts, labels


def _load_builder(
    tfds: Any, builder: Any, name: str, kind: str, split: tuple[str, str], flatten: bool
) -> Splits:
    shape = tuple(builder.info.features["image"].shape) if kind == "image" else ()
    try:
        sources = builder.as_data_source(split=list(split), file_format="array_record")
    except (NotImplementedError, ValueError) as e:
        if "format" not in str(e).lower():  # not about the file format: a real error
            raise
        if not _tensorflow_installed():
            raise DataUnavailableError(
                f"TFDS dataset {name!r} is prepared in {builder.data_dir} but not as array_record "
                f"files ({e.__class__.__name__}: {str(e).splitlines()[0]}). Reading other "
                "formats needs TensorFlow. Prepare it again with "
                f"`python -m fnn.data prepare {name} --data-dir NEW_DIR` (array_record) "
                "and pass data_dir=NEW_DIR, or install tensorflow.\n" + _stand_in(name)
            ) from e
        parts = [_read_with_tensorflow(tfds, builder, s, kind) for s in split]
    else:
        parts = [_read_source(source, kind, shape) for source in sources]
    out = []
    for x, y in parts:
        if kind == "image":
            x = scale_images(x)
            if flatten:
                x = x.reshape(x.shape[0], -1)
        out.append((x, y))
    return out[0], out[1]


def load_tfds(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    split: tuple[str, str] = ("train", "test"),
    flatten: bool = False,
) -> Splits:
    """Loads a TFDS dataset into NumPy arrays without TensorFlow.

    Args:
        name: one of `TFDS_DATASETS` (`mnist`, `fashion_mnist`, `cifar10`, `imdb_reviews`).
        data_dir: TFDS data directory (with `name/version/` inside); `None` uses TFDS's
            default (`TFDS_DATA_DIR` or `~/tensorflow_datasets`).
        download: `None` downloads and prepares when the data is missing and the download host
            answers a 1 s probe; `False` never downloads; `True` downloads without probing.
        split: the TFDS splits returned as "train" and "test"; slices work, e.g.
            `("train[:10%]", "test[:1000]")`.
        flatten: images as <float32>[n, H * W * C] vectors.

    Returns:
        `(x_train, y_train), (x_test, y_test)`. Images: <float32>[n, H, W, C] in [0, 1];
        text: <object>[n] arrays of `str`; labels: <int32>[n].

    Raises:
        TypeError: for a `split`, `download` or `flatten` of the wrong type.
        ValueError: for an unknown name, a `split` that is not a pair, or `flatten=True` for
            a text dataset.
        DataUnavailableError: when the data is not prepared and cannot be downloaded (raised
            within about a second), or the TFDS packages are missing.
    """
    spec = _spec(name)
    pair = "a pair of TFDS split names like ('train', 'test')"
    check_type("split", split, tuple | list, pair)
    if len(split) != 2:
        raise ValueError(f"split: expected {pair}, got {split!r}")
    for i, part in enumerate(split):
        check_type(f"split[{i}]", part, str, "a TFDS split name")
    check_choice("download", download, (None, True, False))
    if check_bool("flatten", flatten) and spec.kind != "image":
        raise ValueError(
            f"flatten: expected False for the {spec.kind} dataset {name!r} (True needs images), "
            "got True"
        )
    tfds = _import_tfds(name)
    builder = _builder(tfds, name, data_dir)
    if not _is_prepared(builder):
        if download is False:
            reason = "download=False"
        elif download is None and not _reachable(spec.download_url):
            host, port = _probe_address(spec.download_url)
            reason = (
                f"the download host {host}:{port} is unreachable (probed with a "
                f"{_PROBE_TIMEOUT_S:g} s timeout; offline?)"
            )
        else:
            reason = ""
        if reason:
            raise DataUnavailableError(_not_prepared_message(name, builder, data_dir, reason))
        _prepare_builder(builder)
    return _load_builder(tfds, builder, name, spec.kind, tuple(split), flatten)
