"""The interface every implementation follows, so the harness can time them all alike."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

from benchmarks.workloads import Dataset, Workload

__all__ = ["DENSE_KINDS", "Runner", "Unavailable", "logits_metrics", "require_dense"]

DENSE_KINDS = ("flat", "flat8")  # the input kinds of the dense workloads (logreg, mlp)


class Unavailable(Exception):
    """Raised by :meth:`Runner.check_available` with the reason an implementation is skipped."""


def require_dense(workload: Workload, what: str) -> None:
    """Raises :class:`Unavailable` ``"<what> for workload 'cnn' (only dense workloads)"`` for a
    workload that is not dense (``logreg``, ``mlp``)."""
    if workload.input_kind not in DENSE_KINDS:
        raise Unavailable(f"{what} for workload {workload.name!r} (only dense workloads)")


class Runner(abc.ABC):
    """Trains one workload with one implementation at one batch size.

    Life cycle: ``check_available()`` and ``check_workload(workload)`` (class methods, cheap),
    ``__init__`` (no work), ``setup()`` (build model, optimizer, move data; no training, no
    compilation required), then ``run_epochs(k)`` any number of times (each call returns only
    when the device is done, so wall-clock timing around it is exact) and ``evaluate(x, y)``
    between calls; ``diagnostics()`` after the throughput repeats.

    Attributes:
      implementation: the name in results.json (e.g. ``"fnn_fused"``).
      family: ``"fnn"``, ``"flax"``, ``"keras"`` or ``"torch"`` (what ``--peers`` selects).
      label: a human-readable name for tables and plots.
      drops_remainder: whether an epoch skips the last partial batch.
    """

    implementation: ClassVar[str] = ""
    family: ClassVar[str] = ""
    label: ClassVar[str] = ""
    drops_remainder: ClassVar[bool] = False

    def __init__(self, workload: Workload, data: Dataset, batch_size: int, *, seed: int = 0):
        if not 1 <= batch_size <= data.num_train:
            raise ValueError(f"batch_size must be in [1, {data.num_train}], got {batch_size}")
        self.workload = workload
        self.data = data
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.learning_rate = workload.learning_rate(self.batch_size)
        self.epochs_done = 0

    @classmethod
    def check_available(cls) -> None:
        """Raises :class:`Unavailable` (with the reason) if this implementation cannot run."""
        return None

    @classmethod
    def check_workload(cls, workload: Workload) -> None:
        """Raises :class:`Unavailable` (with the reason) if it has no version of ``workload``."""
        return None

    @property
    def steps_per_epoch(self) -> int:
        n, b = self.data.num_train, self.batch_size
        return n // b if self.drops_remainder else -(-n // b)

    @property
    def samples_per_epoch(self) -> int:
        n, b = self.data.num_train, self.batch_size
        return (n // b) * b if self.drops_remainder else n

    @abc.abstractmethod
    def setup(self) -> None:
        """Builds the model and optimizer and places the data; does not train."""

    @abc.abstractmethod
    def run_epochs(self, epochs: int) -> None:
        """Trains ``epochs`` epochs (reshuffling each) and blocks until the device is done."""

    @abc.abstractmethod
    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """``{"loss", "accuracy"}`` of the current model on ``(x, y)`` (inference mode)."""

    def diagnostics(self) -> dict[str, Any]:
        """Extra record fields, measured once after the timed repeats (outside them)."""
        return {}

    def close(self) -> None:
        """Releases what the runner holds (models, device buffers)."""
        return None


def logits_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``<float>[n, classes]`` logits, in float64 NumPy."""
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(labels.shape[0]), labels].mean()
    accuracy = (logits.argmax(axis=1) == labels).mean()
    return {"loss": float(loss), "accuracy": float(accuracy)}
