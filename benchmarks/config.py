"""Presets: ``--tiny`` (tests, seconds), ``--quick`` (default, < 3 min on 2 CPU cores), ``--full``.

Batch sizes are integers or ``"full"`` (the whole training set: full-batch gradient descent).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

__all__ = [
    "PRESETS",
    "BatchSpec",
    "Config",
    "WorkloadSettings",
    "parse_batch_sizes",
    "resolve_batch",
]

BatchSpec = int | Literal["full"]

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class WorkloadSettings:
    """Throughput settings of one workload where they differ from the run's (None: the run's).

    Attributes:
      implementations: implementations measured on this workload.
      batch_sizes: its throughput batch sizes.
      n_train: training examples of its throughput data.
      max_steps_per_epoch: cap on the steps of one of its throughput epochs.
      repeats: interleaved timed repeats.
      min_repeat_s: a repeat is whole epochs lasting at least about this long.
    """

    implementations: tuple[str, ...] | None = None
    batch_sizes: tuple[BatchSpec, ...] | None = None
    n_train: int | None = None
    max_steps_per_epoch: int | None = None
    repeats: int | None = None
    min_repeat_s: float | None = None


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one run measures.

    Attributes:
      preset: ``"tiny"``, ``"quick"`` or ``"full"``.
      workloads: throughput workloads (MNIST-shaped data).
      batch_sizes: throughput batch sizes.
      implementations: implementations measured (fnn first, then peers).
      n_train: training examples of the throughput data.
      n_test: test examples of the throughput data.
      max_steps_per_epoch: cap on the steps of a throughput epoch: at small batch sizes an
        epoch is the first ``batch_size * max_steps_per_epoch`` examples (None: no cap).
        Steady-state samples/s does not depend on it; the run time does.
      repeats: interleaved timed repeats per implementation (>= 5 for real runs).
      min_repeat_s: a repeat is whole epochs lasting at least about this long.
      tta_workloads: time-to-accuracy workloads (on digits).
      tta_batch_sizes: time-to-accuracy batch sizes.
      tta_implementations: implementations trained to the target accuracy.
      tta_max_train_s: training-time limit of one time-to-accuracy run.
      tta_budget_epochs: the fixed example budget, in epochs of digits.
      tta_max_epochs: epoch limit of one time-to-accuracy run.
      tta_n_train: use only this many digits training examples (None: all 1438).
      noise_scale: estimate the gradient noise scale.
      noise_draws: batch pairs per noise-scale estimate.
      noise_batch_sizes: ``(B_small, B_big)``.
      noise_epochs: epochs of training (batch 32) at which the noise scale is measured.
      mnist: ``"auto"`` (real MNIST when prepared), ``"real"`` or ``"synthetic"``.
      plots: write PNG plots.
      peak_n: matrix side of the matmul-peak measurement (None: by device).
      out: output directory.
      seed: seed of data, initialisation and shuffling.
      per_workload: :class:`WorkloadSettings` by workload name, for the workloads whose
        throughput is measured with other settings than the run's (smaller data, fewer
        implementations).
      max_throughput_s: stop starting new throughput groups after this many seconds (None: no
        limit); the groups left are recorded as skipped, with the reason.
    """

    preset: str
    workloads: tuple[str, ...]
    batch_sizes: tuple[BatchSpec, ...]
    implementations: tuple[str, ...]
    n_train: int
    n_test: int
    max_steps_per_epoch: int | None
    repeats: int
    min_repeat_s: float
    tta_workloads: tuple[str, ...]
    tta_batch_sizes: tuple[BatchSpec, ...]
    tta_implementations: tuple[str, ...]
    tta_max_train_s: float
    tta_budget_epochs: int
    tta_max_epochs: int
    tta_n_train: int | None = None
    noise_scale: bool = True
    noise_draws: int = 40
    noise_batch_sizes: tuple[int, int] = (16, 512)
    noise_epochs: tuple[int, ...] = (0, 1, 4, 16)
    mnist: str = "auto"
    plots: bool = True
    peak_n: int | None = None
    out: Path = DEFAULT_OUT
    seed: int = 0
    per_workload: dict[str, WorkloadSettings] = dataclasses.field(default_factory=dict)
    max_throughput_s: float | None = None

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes)

    def for_workload(self, name: str) -> Config:
        """This config with workload ``name``'s :class:`WorkloadSettings` applied."""
        settings = self.per_workload.get(name)
        if settings is None:
            return self
        changes = {
            f.name: getattr(settings, f.name)
            for f in dataclasses.fields(settings)
            if getattr(settings, f.name) is not None
        }
        return self.replace(**changes)


ALL_IMPLEMENTATIONS = (
    "fnn_fused",
    "fnn_unfused",
    "fnn_fused_nnx",
    "fnn_fused_bf16",
    "fnn_iterable",
    "flax_loop",
    "flax_scan",
    "nnx_loop",
    "keras_spe1",
    "keras_spe64",
    "torch_eager",
)

# The implementations the quick preset measures on the workloads other than the MLP: fnn fused
# and the peers that can be the fastest one.
QUICK_PEERS = ("fnn_fused", "flax_loop", "flax_scan", "keras_spe64", "torch_eager")
# Their batch sizes: SGD, a mini-batch and the full batch (512 examples for the CNN and the
# LSTM, near the MLP's 256); compiling each implementation at each size is most of the run.
QUICK_BATCHES: tuple[BatchSpec, ...] = (1, 32, "full")

PRESETS: dict[str, Config] = {
    "tiny": Config(
        preset="tiny",
        workloads=("mlp",),
        batch_sizes=(32, "full"),
        implementations=(
            "fnn_fused",
            "fnn_fused_nnx",
            "fnn_fused_bf16",
            "fnn_iterable",
            "flax_loop",
            "nnx_loop",
        ),
        n_train=256,
        n_test=64,
        max_steps_per_epoch=None,
        repeats=2,
        min_repeat_s=0.0,
        tta_workloads=("mlp",),
        tta_batch_sizes=(32,),
        tta_implementations=("fnn_fused",),
        tta_max_train_s=0.5,
        tta_budget_epochs=2,
        tta_max_epochs=3,
        tta_n_train=256,
        noise_draws=3,
        noise_batch_sizes=(4, 64),
        noise_epochs=(0,),
        mnist="synthetic",
        peak_n=256,
    ),
    "quick": Config(
        preset="quick",
        workloads=("mlp", "logreg", "cnn", "lstm"),
        batch_sizes=(1, 32, 256, "full"),
        # fnn's unfused reference loop is measured by --full only (the quick run stays
        # under 3 minutes; it is never the fastest).
        implementations=tuple(i for i in ALL_IMPLEMENTATIONS if i != "fnn_unfused"),
        n_train=4096,
        n_test=512,
        max_steps_per_epoch=512,
        repeats=5,
        min_repeat_s=0.05,
        tta_workloads=("mlp",),
        tta_batch_sizes=(1, 32, "full"),
        tta_implementations=("fnn_fused", "fnn_fused_bf16"),
        tta_max_train_s=1.5,
        tta_budget_epochs=10,
        tta_max_epochs=2000,
        noise_draws=20,
        noise_epochs=(0, 1, 4, 10),
        mnist="synthetic",
        # The other workloads at small sizes, against the peers that can be the best one (the
        # hand-written loop and scan, Keras with steps_per_execution=64, PyTorch): the MLP
        # above is where every variant and peer is measured.
        per_workload={
            "logreg": WorkloadSettings(
                implementations=QUICK_PEERS,
                batch_sizes=QUICK_BATCHES,
                max_steps_per_epoch=256,
            ),
            # No hand lax.scan on the CNN: XLA:CPU runs its convolutions ~10x slower inside a
            # loop (152 samples/s against 2.7k/s for the hand loop at full batch, measured in
            # the quick run), so it cannot be the best peer there and took a fifth of the run.
            "cnn": WorkloadSettings(
                implementations=tuple(i for i in QUICK_PEERS if i != "flax_scan"),
                batch_sizes=QUICK_BATCHES,
                n_train=512,
                max_steps_per_epoch=64,
            ),
            "lstm": WorkloadSettings(
                implementations=QUICK_PEERS,
                batch_sizes=QUICK_BATCHES,
                n_train=512,
                max_steps_per_epoch=64,
            ),
        },
    ),
    "full": Config(
        preset="full",
        workloads=("logreg", "mlp", "cnn", "lstm"),
        batch_sizes=(1, 8, 32, 128, 512, "full"),
        implementations=ALL_IMPLEMENTATIONS,
        n_train=4096,
        n_test=1024,
        max_steps_per_epoch=2048,
        repeats=7,
        min_repeat_s=0.3,
        tta_workloads=("logreg", "mlp", "cnn", "lstm"),
        tta_batch_sizes=(1, 8, 32, 128, 512, "full"),
        tta_implementations=("fnn_fused", "fnn_unfused", "flax_loop", "keras_spe64", "torch_eager"),
        tta_max_train_s=20.0,
        tta_budget_epochs=20,
        tta_max_epochs=5000,
        noise_draws=100,
        noise_epochs=(0, 1, 2, 5, 10, 20),
        mnist="auto",
    ),
}


def parse_batch_sizes(text: str) -> tuple[BatchSpec, ...]:
    """Parses ``"1,32,256,full"``.

    Raises:
      ValueError: for an entry that is neither a positive integer nor ``full``.
    """
    out: list[BatchSpec] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part == "full":
            out.append("full")
            continue
        try:
            value = int(part)
        except ValueError:
            msg = f"batch size {part!r}: expected a positive integer or 'full'"
            raise ValueError(msg) from None
        if value < 1:
            raise ValueError(f"batch size {value}: expected >= 1")
        out.append(value)
    if not out:
        raise ValueError("no batch sizes given")
    return tuple(out)


def resolve_batch(spec: BatchSpec, n: int) -> int:
    """The batch size ``spec`` means on a training set of ``n`` examples (capped at ``n``)."""
    return n if spec == "full" else min(int(spec), n)


def mode_of(batch_size: int, n: int) -> str:
    """``"sgd"`` (batch 1), ``"full"`` (batch = n) or ``"minibatch"``."""
    if batch_size >= n:
        return "full"
    return "sgd" if batch_size == 1 else "minibatch"
