"""Callbacks: plain Python objects called by ``fit`` at epoch edges, never inside XLA programs.

A callback sees a :class:`Run` (the current state, the history, the epoch count) and may set
``run.stop_reason`` to end training after the current epoch, or replace ``run.state``.
"""

import math
import os
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from fnn import _checks
from fnn.train.checkpoint import CheckpointStore
from fnn.train.history import History
from fnn.train.state import TrainState


@dataclass
class Run:
    """The mutable view of a ``fit`` call that callbacks read and write.

    Attributes:
      state: the state after ``epoch`` completed epochs.
      history: records of the completed epochs.
      epoch: number of completed epochs (the 1-based number of the last one).
      epochs: the number of epochs asked for.
      seed: the shuffling seed.
      stop_reason: set to a message to stop after this epoch.
      data_state: the input pipeline's position after ``epoch`` (a Grain iterator's state),
        or None when the data has none to save (in-memory arrays: the permutation follows from
        the seed and the epoch).
      fields: the numeric fields every history record of this run will have (``loss``, the
        metrics, ``val_*`` with validation data, timings), known before the first epoch.
    """

    state: TrainState
    history: History
    epoch: int
    epochs: int
    seed: int
    stop_reason: str | None = None
    data_state: Any = None
    fields: tuple[str, ...] = ()


class Callback:
    """Base class: override any of the hooks."""

    def on_train_begin(self, run: Run) -> None:
        """Called once before the first epoch (after a resume has been restored)."""

    def on_epoch_end(self, run: Run) -> None:
        """Called after every completed epoch, its record already in ``run.history``."""

    def on_train_end(self, run: Run) -> None:
        """Called once when training ends normally (all epochs, or a callback stopped it)."""

    def on_interrupt(self, run: Run) -> None:
        """Called on Ctrl-C (KeyboardInterrupt), with the last completed epoch, before re-raise."""


def host_copy(state: TrainState) -> TrainState:
    """A copy of ``state`` whose arrays live on the host (immune to buffer donation)."""
    return jax.tree_util.tree_map(np.array, state)


class EarlyStopping(Callback):
    """Stops when ``monitor`` has not improved for ``patience`` epochs.

    Args:
      monitor: a history field, e.g. ``"val_loss"`` or ``"val_accuracy"``.
      patience: epochs without improvement to tolerate (>= 0).
      mode: ``"min"``, ``"max"``, or ``"auto"`` (max for accuracy-like names, else min).
      min_delta: the smallest change that counts as an improvement (>= 0).
      restore_best: at the end, put back the state of the best epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        patience: int = 5,
        mode: str = "auto",
        min_delta: float = 0.0,
        restore_best: bool = True,
    ):
        _checks.check_type("monitor", monitor, str, "a history field name such as 'val_loss'")
        patience = _checks.check_int("patience", patience, minimum=0)
        min_delta = _checks.check_float("min_delta", min_delta, low=0)
        mode = _checks.check_choice("mode", mode, ("min", "max", "auto"))
        restore_best = _checks.check_bool("restore_best", restore_best)
        if mode == "auto":
            maximize = any(k in monitor for k in ("acc", "f1", "precision", "recall", "r2"))
            mode = "max" if maximize else "min"
        self.monitor, self.patience, self.mode = monitor, patience, mode
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_state: TrainState | None = None
        self.wait = 0

    def on_train_begin(self, run: Run) -> None:
        if run.fields and self.monitor not in run.fields:
            raise ValueError(
                f"monitor: EarlyStopping watches {self.monitor!r}, which this run's history will "
                f"not have; its fields are {sorted(run.fields)}"
                + (" (val_* fields need validation_data)" if self.monitor.startswith("val_")
                   else "")
            )  # fmt: skip

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, run: Run) -> None:
        record = run.history.records[-1]
        if self.monitor not in record:
            raise ValueError(
                f"monitor: EarlyStopping watches {self.monitor!r}, which is not in the history "
                f"fields {sorted(record)}"
            )
        value = float(record[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, run.epoch, 0
            if self.restore_best:
                self.best_state = host_copy(run.state)
            return
        self.wait += 1
        if self.wait > self.patience:
            run.stop_reason = (
                f"early stopping: {self.monitor} did not improve for {self.wait} epochs "
                f"(best {self.best:.6g} at epoch {self.best_epoch})"
            )

    def on_train_end(self, run: Run) -> None:
        if self.restore_best and self.best_state is not None and self.best_epoch != run.epoch:
            run.state = jax.device_put(self.best_state)


class Checkpoint(Callback):
    """Saves the run with Orbax every ``every`` epochs, after the last epoch, and on Ctrl-C.

    A checkpoint is written atomically (Orbax writes to a temporary directory, then renames);
    ``max_to_keep`` bounds how many are kept. Epochs that produced a non-finite loss are never
    saved, so a good checkpoint is never replaced by a bad one. Resume with
    ``fit(..., resume_from=directory)``.

    Args:
      directory: where checkpoints go (one sub-directory per saved epoch).
      every: save after every ``every``-th epoch (>= 1).
      max_to_keep: how many checkpoints to keep (None: all).
    """

    def __init__(self, directory: str | os.PathLike, *, every: int = 1, max_to_keep: int = 3):
        _checks.check_type("directory", directory, str | os.PathLike, "a directory path")
        self.directory = directory
        self.every = _checks.check_int("every", every, minimum=1)
        self.max_to_keep = (
            None
            if max_to_keep is None
            else _checks.check_int("max_to_keep", max_to_keep, minimum=1)
        )
        self._store: CheckpointStore | None = None

    @property
    def store(self) -> CheckpointStore:
        if self._store is None:
            self._store = CheckpointStore(self.directory, max_to_keep=self.max_to_keep)
        return self._store

    def on_train_begin(self, run: Run) -> None:
        path = os.path.abspath(os.fspath(self.directory))
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"directory: {path} is a file; expected a directory for checkpoints")
        parent = path if os.path.isdir(path) else os.path.dirname(path)
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"directory: cannot write checkpoints under {parent} (not writable)")

    def _save(self, run: Run) -> None:
        if run.epoch > 0 and run.epoch not in self.store.all_epochs():
            self.store.save(run.epoch, run.state, seed=run.seed, history=run.history,
                            data_state=run.data_state)  # fmt: skip

    def on_epoch_end(self, run: Run) -> None:
        if run.epoch % self.every == 0 or run.epoch == run.epochs:
            self._save(run)

    def on_train_end(self, run: Run) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def on_interrupt(self, run: Run) -> None:
        self._save(run)
        self.store.close()
        self._store = None
