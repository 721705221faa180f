"""Workloads: a model, its input layout, its optimizer settings and its data.

Every workload is defined once here and built identically by every implementation (the Flax
module below is the reference; the Keras and PyTorch runners build the same layer shapes).

| name   | model                                     | MNIST-shaped input       | digits input   |
|--------|-------------------------------------------|--------------------------|----------------|
| logreg | logistic regression                       | [n, 784]                 | [n, 64]        |
| mlp    | MLP 64-256-256-10 (ReLU)                  | [n, 64] (8x8 area-pooled)| [n, 64]        |
| cnn    | 2 x (conv3x3 + ReLU + maxpool2) + 128 + 10| [n, 28, 28, 1]           | [n, 8, 8, 1]   |
| lstm   | LSTM(128) over image rows + dense 10      | [n, 28, 28] (28 steps)   | [n, 8, 8]      |

The ``mlp`` workload pools MNIST-shaped images to digits' 8x8 resolution so that its model is
the 64-256-256-10 MLP of the project's target table on either data set.

All implementations train with SGD, momentum 0.9 (PyTorch's convention ``v <- m v + g``, the
same update in Optax and Keras), cross-entropy on logits, and a learning rate that depends on
the batch size through :meth:`Workload.learning_rate`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Literal

import flax.linen as nn
import numpy as np

from fnn import models

__all__ = ["WORKLOADS", "Dataset", "Workload", "digits_data", "get_workload", "mnist_like_data"]

InputKind = Literal["flat", "flat8", "image", "sequence"]
MOMENTUM = 0.9


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark model.

    Attributes:
      name: short name used on the command line and in results.json.
      description: one line for the report.
      build: ``(num_classes, dtype=None) -> flax module`` (the reference model, used by the fnn
        runners and the hand-written Flax loops); ``dtype`` is its compute dtype (e.g.
        ``jnp.bfloat16``; None: from the inputs and the float32 parameters).
      input_kind: how images ``[n, H, W, 1]`` become model inputs: ``"flat"`` ``[n, H*W]``,
        ``"flat8"`` ``[n, 64]`` (pooled to 8x8 first), ``"image"`` unchanged, ``"sequence"``
        ``[n, H, W]`` (rows are time steps).
      base_learning_rate: the SGD learning rate at batch size 1.
      max_learning_rate: the cap of the square-root scaling rule.
      target_accuracy: test accuracy that defines "time to target" on digits.
      hidden: hidden widths, for the peers' builders.
    """

    name: str
    description: str
    build: Callable[..., nn.Module]
    input_kind: InputKind
    base_learning_rate: float
    max_learning_rate: float
    target_accuracy: float
    hidden: tuple[int, ...] = ()

    def learning_rate(self, batch_size: int) -> float:
        """SGD learning rate for ``batch_size``: ``base * sqrt(batch_size)``, capped.

        Square-root scaling keeps the gradient-noise temperature roughly constant for small
        batches; the cap keeps large batches stable. The same value is given to every
        implementation.
        """
        return min(self.max_learning_rate, self.base_learning_rate * math.sqrt(batch_size))


WORKLOADS: dict[str, Workload] = {
    "logreg": Workload(
        name="logreg",
        description="logistic regression",
        build=lambda classes, dtype=None: models.LogisticRegression(classes, dtype=dtype),
        input_kind="flat",
        base_learning_rate=0.01,
        max_learning_rate=0.5,
        target_accuracy=0.94,
    ),
    "mlp": Workload(
        name="mlp",
        description="MLP 64-256-256-10 (ReLU)",
        build=lambda classes, dtype=None: models.MLP(
            hidden=(256, 256), outputs=classes, dtype=dtype
        ),
        input_kind="flat8",
        base_learning_rate=0.005,
        max_learning_rate=0.2,
        target_accuracy=0.96,
        hidden=(256, 256),
    ),
    "cnn": Workload(
        name="cnn",
        description="CNN conv16-pool-conv32-pool-128-10 (3x3, ReLU)",
        build=lambda classes, dtype=None: models.CNN(
            classes, channels=(16, 32), dense=(128,), dtype=dtype
        ),
        input_kind="image",
        base_learning_rate=0.005,
        max_learning_rate=0.2,
        target_accuracy=0.96,
        hidden=(16, 32, 128),
    ),
    "lstm": Workload(
        name="lstm",
        description="LSTM(128) over image rows + dense 10",
        build=lambda classes, dtype=None: models.LSTM(hidden=128, outputs=classes, dtype=dtype),
        input_kind="sequence",
        base_learning_rate=0.01,
        max_learning_rate=0.5,
        target_accuracy=0.90,
        hidden=(128,),
    ),
}


def get_workload(name: str) -> Workload:
    """The workload called ``name``.

    Raises:
      ValueError: for an unknown name.
    """
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; expected one of {sorted(WORKLOADS)}")
    return WORKLOADS[name]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Model-ready arrays of one workload.

    Attributes:
      name: e.g. ``"digits"``, ``"synthetic_mnist"``, ``"mnist"``, with ``"@8x8"`` when pooled.
      source: ``"real"`` or ``"synthetic"``.
      x_train: ``<float32>[n, ...]`` in the workload's input layout.
      y_train: ``<int32>[n]``.
      x_test: ``<float32>[m, ...]``.
      y_test: ``<int32>[m]``.
      num_classes: number of classes.
    """

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def num_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])


def pool_to_8x8(images: np.ndarray) -> np.ndarray:
    """Area-pools ``<float32>[n, 28, 28, 1]`` images to ``[n, 8, 8, 1]``.

    The central 24x24 crop (MNIST digits sit in the central 20x20) is averaged over 3x3 blocks.
    """
    n, h, w, c = images.shape
    if (h, w) == (8, 8):
        return images
    if (h, w) != (28, 28):
        raise ValueError(f"pool_to_8x8: expected 28x28 or 8x8 images, got {h}x{w}")
    crop = images[:, 2:26, 2:26, :]
    return crop.reshape(n, 8, 3, 8, 3, c).mean(axis=(2, 4)).astype(np.float32)


def to_inputs(images: np.ndarray, kind: InputKind) -> np.ndarray:
    """Converts ``<float32>[n, H, W, 1]`` images to a workload's input layout."""
    images = np.asarray(images, np.float32)
    n = images.shape[0]
    if kind == "flat":
        return images.reshape(n, -1)
    if kind == "flat8":
        return pool_to_8x8(images).reshape(n, -1)
    if kind == "image":
        return images
    if kind == "sequence":
        return images[..., 0]
    raise ValueError(f"unknown input kind {kind!r}")


def _dataset(name, source, splits, workload: Workload) -> Dataset:
    (x_train, y_train), (x_test, y_test) = splits
    suffix = "@8x8" if workload.input_kind == "flat8" and x_train.shape[1] != 8 else ""
    return Dataset(
        name=name + suffix,
        source=source,
        x_train=np.ascontiguousarray(to_inputs(x_train, workload.input_kind)),
        y_train=np.asarray(y_train, np.int32),
        x_test=np.ascontiguousarray(to_inputs(x_test, workload.input_kind)),
        y_test=np.asarray(y_test, np.int32),
        num_classes=10,
    )


def mnist_source(preference: Literal["auto", "real", "synthetic"] = "auto") -> str:
    """``"real"`` when MNIST is prepared for fnn.data (and allowed), else ``"synthetic"``.

    Raises:
      RuntimeError: when ``preference="real"`` and MNIST is not prepared.
    """
    if preference == "synthetic":
        return "synthetic"
    import fnn.data

    try:
        available = bool(fnn.data.is_available("mnist"))
    except Exception:  # missing optional TFDS dependencies: treat as not prepared
        available = False
    if preference == "real" and not available:
        raise RuntimeError(
            "--mnist real: MNIST is not prepared (python -m fnn.data prepare mnist); "
            "use --mnist auto to fall back to the synthetic MNIST-shaped task"
        )
    return "real" if available else "synthetic"


def mnist_like_data(
    workload: Workload, n_train: int, n_test: int, *, source: str = "synthetic", seed: int = 0
) -> Dataset:
    """MNIST-shaped data for the throughput measurements: real MNIST or the synthetic task.

    Args:
      workload: decides the input layout.
      n_train: training examples (the first ``n_train`` of MNIST's training split).
      n_test: test examples.
      source: ``"real"`` (prepared MNIST through ``fnn.data``) or ``"synthetic"``
        (``fnn.data`` ``synthetic_mnist``: shifted noisy class prototypes, 28x28x1 in [0, 1]).
      seed: generator seed of the synthetic task.
    """
    import fnn.data

    if source == "real":
        (x_tr, y_tr), (x_te, y_te) = fnn.data.load("mnist")
        splits = ((x_tr[:n_train], y_tr[:n_train]), (x_te[:n_test], y_te[:n_test]))
        return _dataset("mnist", "real", splits, workload)
    splits = fnn.data.load("synthetic_mnist", n_train=n_train, n_test=n_test, seed=seed)
    return _dataset("synthetic_mnist", "synthetic", splits, workload)


def digits_data(workload: Workload, *, seed: int = 0, n_train: int | None = None) -> Dataset:
    """The bundled UCI digits (1438 train / 359 test, 8x8x1) for time-to-accuracy.

    Args:
      workload: decides the input layout.
      seed: seed of the stratified split.
      n_train: keep only the first ``n_train`` training examples (tiny presets).
    """
    import fnn.data

    (x_tr, y_tr), test = fnn.data.load("digits", seed=seed)
    if n_train is not None:
        x_tr, y_tr = x_tr[:n_train], y_tr[:n_train]
    return _dataset("digits", "real", ((x_tr, y_tr), test), workload)
