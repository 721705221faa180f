"""Callbacks that write the run down: a CSV file, TensorBoard event files, a profiler trace.

All of them write on process 0 only when several processes train together (the profiler trace
excepted: each process traces its own devices, into files named after its host), flush after
every epoch (a killed run leaves every completed epoch on disk), and close their files when
training ends or is interrupted.
"""

import csv
import numbers
import os
import warnings
from typing import Any

import jax

from fnn import _checks
from fnn.parallel import is_main_process
from fnn.train.callbacks import Callback, Run

__all__ = ["CSVLogger", "ProfilerTrace", "TensorBoard"]


def _check_path(name: str, value: Any, what: str) -> str:
    _checks.check_type(name, value, str | os.PathLike, what)
    return os.path.abspath(os.fspath(value))


def _check_writable_dir(name: str, path: str) -> None:
    """ValueError unless ``path`` is a directory, or can be made one, that can be written."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{name}: {path} is a file; expected a directory")
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot write under {parent} (not writable)")


class CSVLogger(Callback):
    """Writes one row per epoch to a CSV file, flushed after every epoch.

    The header is the run's fields (``Run.fields``: ``epoch``, ``loss``, the metrics,
    timings, ``val_*``, ``learning_rate`` when the optimizer keeps one), in that order, known
    before the first epoch. Numbers are written exactly (``repr``), so reading them back gives
    the floats in ``history.records``; a list-valued metric (a confusion matrix) is written as
    its Python text.

    Args:
      path: the CSV file.
      append: add rows to an existing file (its header must be this run's, and is not written
        again) instead of rewriting it. With ``append=False`` the file is rewritten with every
        record already in the history, so after a resume it holds the restored epochs too.
        For a resumed run either way gives the whole run, once.
      separator: the one-character field separator.
    """

    def __init__(self, path: str | os.PathLike, *, append: bool = False, separator: str = ","):
        self.path = _check_path("path", path, "a file path")
        self.append = _checks.check_bool("append", append)
        _checks.check_type("separator", separator, str, "a one-character string")
        if len(separator) != 1 or separator in '\r\n"':
            raise ValueError(
                f"separator: expected one character other than a quote or a line break, got "
                f"{separator!r}"
            )
        self.separator = separator
        self._file = None
        self._writer = None

    def on_train_begin(self, run: Run) -> None:
        if os.path.isdir(self.path):
            raise ValueError(f"path: {self.path} is a directory; expected a CSV file path")
        _check_writable_dir("path", os.path.dirname(self.path))
        self._close()
        fields = list(run.fields) or None
        if fields is None and run.history.records:
            fields = list(run.history.records[-1])
        existing = None
        if self.append and os.path.isfile(self.path) and os.path.getsize(self.path) > 0:
            with open(self.path, newline="") as f:
                existing = next(csv.reader(f, delimiter=self.separator), None)
            if fields is not None and existing != fields:
                raise ValueError(
                    f"append: {self.path} has the columns {existing}, this run records "
                    f"{fields}; append to a file of the same run, or pass append=False"
                )
        self._fields = fields or existing
        if not is_main_process():
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._file = open(self.path, "a" if self.append else "w", newline="")
        if self._fields is not None:
            self._start(write_header=existing is None)
        if not self.append:
            for record in run.history.records:  # the restored epochs of a resumed run
                self._write(record)

    def _start(self, *, write_header: bool) -> None:
        self._writer = csv.DictWriter(self._file, fieldnames=self._fields, restval="",
                                      extrasaction="ignore", delimiter=self.separator)  # fmt: skip
        if write_header:
            self._writer.writeheader()

    def _write(self, record: dict[str, Any]) -> None:
        if self._writer is None:  # a Run without fields: the first record's
            self._fields = list(record)
            self._start(write_header=True)
        self._writer.writerow(record)

    def on_epoch_end(self, run: Run) -> None:
        if self._file is None:
            return
        self._write(run.history.records[-1])
        self._file.flush()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._writer = None

    def on_train_end(self, run: Run) -> None:
        self._close()

    def on_interrupt(self, run: Run) -> None:
        self._close()


def _summary_writer():
    try:
        from tensorboardX import SummaryWriter
    except ImportError as err:
        raise ImportError(
            "TensorBoard needs the tensorboardX package (event files without TensorFlow): "
            "pip install 'fnn[log]' (or pip install tensorboardX)"
        ) from err
    return SummaryWriter


class TensorBoard(Callback):
    """Writes every numeric history field as a TensorBoard scalar, once per epoch.

    The tag is the field's name (``loss``, ``accuracy``, ``val_loss``, ``learning_rate``,
    ``epoch_time``, ...) and the step is the epoch number. The event files are written by
    tensorboardX (``pip install 'fnn[log]'``), which needs neither TensorFlow nor PyTorch;
    view them with ``tensorboard --logdir log_dir``.

    Args:
      log_dir: the directory of the event files (created if needed).

    Raises:
      ImportError: when tensorboardX is not installed (naming the extra to install).
    """

    def __init__(self, log_dir: str | os.PathLike):
        self.log_dir = _check_path("log_dir", log_dir, "a directory path")
        self._writer_class = _summary_writer()
        self._writer = None

    def on_train_begin(self, run: Run) -> None:
        _check_writable_dir("log_dir", self.log_dir)
        self._close()
        if is_main_process():
            self._writer = self._writer_class(self.log_dir)

    def on_epoch_end(self, run: Run) -> None:
        if self._writer is None:
            return
        for tag, value in run.history.records[-1].items():
            if tag == "epoch" or isinstance(value, bool) or not isinstance(value, numbers.Real):
                continue
            self._writer.add_scalar(tag, float(value), global_step=run.epoch)
        self._writer.flush()

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = None

    def on_train_end(self, run: Run) -> None:
        self._close()

    def on_interrupt(self, run: Run) -> None:
        self._close()


class ProfilerTrace(Callback):
    """Records a ``jax.profiler`` trace of a window of epochs, by default one epoch after the
    first (so compilation is left out).

    The trace covers epochs ``start_epoch`` to ``start_epoch + epochs - 1`` (1-based, counted
    as ``History`` counts them, so a resumed or continued run goes on from its epoch count; a
    window the run never reaches is warned about): it starts before the first is dispatched
    and stops once the last has finished. ``start_epoch=1`` includes the first epoch's
    compilation. View it with TensorBoard's profile plugin or Perfetto (the ``.xplane.pb`` /
    ``.trace.json.gz`` files under ``log_dir/plugins/profile/<run>/``). An epoch is one XLA
    program when fused, so the trace shows its steps inside it.

    Args:
      log_dir: the directory the trace is written under.
      start_epoch: the first traced epoch (>= 1).
      epochs: how many epochs to trace (>= 1).
    """

    _active: "ProfilerTrace | None" = None  # the trace running in this process, if any

    def __init__(self, log_dir: str | os.PathLike, *, start_epoch: int = 2, epochs: int = 1):
        self.log_dir = _check_path("log_dir", log_dir, "a directory path")
        self.start_epoch = _checks.check_int("start_epoch", start_epoch, minimum=1)
        self.epochs = _checks.check_int("epochs", epochs, minimum=1)
        self.traced: list[int] = []  # the epochs traced

    @property
    def last_epoch(self) -> int:
        return self.start_epoch + self.epochs - 1

    def _start(self) -> None:
        if ProfilerTrace._active is not None:  # left running by a run that failed
            ProfilerTrace._active._stop()
        os.makedirs(self.log_dir, exist_ok=True)
        jax.profiler.start_trace(self.log_dir)
        ProfilerTrace._active = self

    def _stop(self) -> None:
        if ProfilerTrace._active is self:
            ProfilerTrace._active = None
            jax.profiler.stop_trace()

    def on_train_begin(self, run: Run) -> None:
        _check_writable_dir("log_dir", self.log_dir)
        self.traced = []
        if not run.epoch < self.start_epoch <= run.epochs:
            warnings.warn(
                f"ProfilerTrace: this run trains epochs {run.epoch + 1} to {run.epochs}, so "
                f"start_epoch={self.start_epoch} is never reached and nothing is traced "
                f"(epochs are numbered as in History, continuing a resumed or continued run)",
                stacklevel=2,
            )
        if run.epoch + 1 == self.start_epoch:
            self._start()

    def on_epoch_end(self, run: Run) -> None:
        if ProfilerTrace._active is self and self.start_epoch <= run.epoch <= self.last_epoch:
            self.traced.append(run.epoch)
        if run.epoch >= self.last_epoch:
            self._stop()
        elif run.epoch + 1 == self.start_epoch and run.epoch < run.epochs and not run.stop_reason:
            self._start()

    def on_train_end(self, run: Run) -> None:
        self._stop()

    def on_interrupt(self, run: Run) -> None:
        self._stop()
