"""Callbacks: plain Python objects called by ``fit`` at epoch edges, never inside XLA programs.

A callback sees a :class:`Run` (the current state, the history, the epoch count) and may set
``run.stop_reason`` to end training after the current epoch, or replace ``run.state``.

Order: ``fit`` calls ``on_epoch_end`` of the callbacks in the order given, except that the
ones that save the run (:class:`Checkpoint`) come last, so that what they save includes what
the others did with the epoch (EarlyStopping's count, a lowered learning rate).

State: a callback whose decisions depend on earlier epochs implements ``state_dict()`` (a
JSON-able dict) and ``load_state_dict(d)``. :class:`Checkpoint` saves the state of every
callback of the run with each checkpoint, and ``fit(..., resume_from=...)`` hands it back
(after ``on_train_begin``), so that a resumed run decides as an uninterrupted one would.
Callbacks are matched by class and position among those of their class
(:func:`callbacks_state`).

Loggers (``CSVLogger``, ``TensorBoard``) and ``ProfilerTrace`` are in ``fnn.train.loggers``.
"""

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from fnn import _checks
from fnn.train import learning_rate as lr_lib
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
      config: what defines the run (model, optimizer structure, data shapes, batch size,
        seed, epochs planned: ``fnn.train.checkpoint.run_config``), saved with checkpoints
        so that a resume can refuse a different run.
      callbacks: the run's callbacks (what :class:`Checkpoint` saves the state of).
    """

    state: TrainState
    history: History
    epoch: int
    epochs: int
    seed: int
    stop_reason: str | None = None
    data_state: Any = None
    fields: tuple[str, ...] = ()
    config: dict[str, Any] | None = None
    callbacks: Sequence["Callback"] = ()


class Callback:
    """Base class: override any of the hooks (and ``state_dict`` / ``load_state_dict`` for a
    callback that must continue across a resume, see the module docstring)."""

    saves_run = False  # True: called after the other callbacks at each epoch end (Checkpoint)

    def on_train_begin(self, run: Run) -> None:
        """Called once before the first epoch (after a resume has been restored)."""

    def on_epoch_end(self, run: Run) -> None:
        """Called after every completed epoch, its record already in ``run.history``."""

    def on_train_end(self, run: Run) -> None:
        """Called once when training ends normally (all epochs, or a callback stopped it)."""

    def on_interrupt(self, run: Run) -> None:
        """Called on Ctrl-C (KeyboardInterrupt), with the last completed epoch, before re-raise
        (every callback has seen that epoch: the ``on_epoch_end`` calls it was in are
        completed first)."""

    def state_dict(self) -> dict[str, Any] | None:
        """What this callback needs to go on after a resume as if uninterrupted: a JSON-able
        dict, saved with every checkpoint; None (the default): nothing."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Takes back what :meth:`state_dict` returned, when ``fit`` resumes from a checkpoint
        (called after ``on_train_begin``)."""
        del state


def _state_keys(callbacks: Sequence[Callback]) -> list[str]:
    """``"EarlyStopping_0"``: each callback's class name and its position among those of its
    class, so that adding a callback of another class keeps the others' keys."""
    seen: dict[str, int] = {}
    keys = []
    for cb in callbacks:
        name = type(cb).__name__
        keys.append(f"{name}_{seen.get(name, 0)}")
        seen[name] = seen.get(name, 0) + 1
    return keys


def callbacks_state(callbacks: Sequence[Callback]) -> dict[str, Any] | None:
    """``{key: cb.state_dict()}`` for the callbacks that have a state (None if none does)."""
    saved = {}
    for key, cb in zip(_state_keys(callbacks), callbacks, strict=True):
        state = cb.state_dict()
        if state is not None:
            saved[key] = state
    return saved or None


def load_callbacks_state(callbacks: Sequence[Callback], saved: dict[str, Any] | None) -> None:
    """Hands each callback its part of ``saved`` (from :func:`callbacks_state`), if any."""
    if not saved:
        return
    for key, cb in zip(_state_keys(callbacks), callbacks, strict=True):
        if key in saved:
            cb.load_state_dict(saved[key])


def epoch_end_order(callbacks: Sequence[Callback]) -> list[Callback]:
    """The callbacks in the order of their ``on_epoch_end`` calls: as given, those that save
    the run (``saves_run``) last."""
    return [cb for cb in callbacks if not cb.saves_run] + [cb for cb in callbacks if cb.saves_run]


def host_copy(state: TrainState) -> TrainState:
    """A copy of ``state`` whose arrays live on the host (immune to buffer donation)."""
    return jax.tree_util.tree_map(np.array, state)


def _put_like(host: Any, like: Any) -> Any:
    """``host`` (a tree of NumPy arrays) placed as the arrays of ``like`` are (the same
    shardings; a mesh may span several processes)."""

    def put(h, ref):
        if not isinstance(ref, jax.Array):
            return h
        h = np.asarray(h)
        return jax.make_array_from_callback(h.shape, ref.sharding, lambda index: h[index])

    return jax.tree_util.tree_map(put, host, like)


def _check_monitor(kind: str, monitor: str, run: Run) -> None:
    """Raises ValueError when ``monitor`` is not among the fields the run will record."""
    if run.fields and monitor not in run.fields:
        hint = ""
        if monitor.startswith("val_"):
            hint = " (val_* fields need validation_data)"
        elif monitor == lr_lib.NAME:
            hint = " (learning_rate is recorded for optimizers built with inject_hyperparams)"
        raise ValueError(
            f"monitor: {kind} watches {monitor!r}, which this run's history will not have; "
            f"its fields are {sorted(run.fields)}{hint}"
        )


def _monitored(kind: str, monitor: str, run: Run) -> float:
    record = run.history.records[-1]
    if monitor not in record:
        raise ValueError(
            f"monitor: {kind} watches {monitor!r}, which is not in the history fields "
            f"{sorted(record)}"
        )
    return float(record[monitor])


def _auto_mode(mode: str, monitor: str) -> str:
    if mode != "auto":
        return mode
    maximize = any(k in monitor for k in ("acc", "f1", "precision", "recall", "r2"))
    return "max" if maximize else "min"


def _improves(value: float, best: float, mode: str, min_delta: float) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (NaN never does)."""
    if mode == "min":
        return value < best - min_delta
    return value > best + min_delta


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


class EarlyStopping(Callback):
    """Stops when ``monitor`` has not improved for ``patience`` epochs (Keras's meaning).

    An epoch improves when its value beats the best so far by more than ``min_delta``
    (``value < best - min_delta`` when minimising). Each epoch that does not improve adds one to
    ``wait``; training stops after the epoch at which ``wait`` reaches ``patience``: with
    ``patience=2`` and the best at epoch 4, epochs 5 and 6 do not improve and training stops
    after epoch 6. Its state (best value and epoch, ``wait``) is saved with checkpoints
    (``state_dict``), so a resumed run stops where an uninterrupted one does.

    Args:
      monitor: a history field, e.g. ``"val_loss"`` or ``"val_accuracy"``; checked against
        what the run records before the first epoch.
      patience: epochs without improvement after which to stop (>= 0; 0 stops at the first).
      mode: ``"min"``, ``"max"``, or ``"auto"`` (max for accuracy-like names, else min).
      min_delta: the smallest change that counts as an improvement (>= 0).
      baseline: a value to beat: epochs count as not improving until one beats it (None: the
        first monitored epoch is an improvement).
      start_from_epoch: epochs ignored at the start (warm-up): the first monitored epoch is
        ``start_from_epoch + 1`` (>= 0).
      restore_best: at the end, put back the state of the best epoch (if any epoch improved
        and it is not the last). After a resume whose best epoch came before it, that state is
        read from the run's :class:`Checkpoint` directory; when it is no longer there
        (``max_to_keep`` removed it) a warning says so, and the best state seen since the
        resume is restored instead (or the last one, if none was seen).

    Attributes:
      best, best_epoch, wait: the best value, its epoch (None before any improvement) and the
        epochs since it.
      stopped_epoch: the epoch after which it stopped training, or None.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        patience: int = 5,
        mode: str = "auto",
        min_delta: float = 0.0,
        baseline: float | None = None,
        start_from_epoch: int = 0,
        restore_best: bool = True,
    ):
        _checks.check_type("monitor", monitor, str, "a history field name such as 'val_loss'")
        self.monitor = monitor
        self.patience = _checks.check_int("patience", patience, minimum=0)
        self.min_delta = _checks.check_float("min_delta", min_delta, low=0)
        self.mode = _auto_mode(_checks.check_choice("mode", mode, ("min", "max", "auto")), monitor)
        self.baseline = None if baseline is None else _checks.check_float("baseline", baseline)
        self.start_from_epoch = _checks.check_int("start_from_epoch", start_from_epoch, minimum=0)
        self.restore_best = _checks.check_bool("restore_best", restore_best)
        self._reset()

    def _initial_best(self) -> float:
        if self.baseline is not None:
            return self.baseline
        return math.inf if self.mode == "min" else -math.inf

    def _reset(self) -> None:
        self.best = self._initial_best()
        self.best_epoch: int | None = None
        self.best_state: TrainState | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self._missing_best = False  # resumed: the best epoch's state is still to be read
        self._since_resume: tuple[float, int, TrainState] | None = None  # fallback

    def on_train_begin(self, run: Run) -> None:
        _check_monitor("EarlyStopping", self.monitor, run)
        self._reset()

    def state_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "mode": self.mode,
            "best": _finite_or_none(self.best),
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state.get("monitor"), state.get("mode")) != (self.monitor, self.mode):
            warnings.warn(
                f"EarlyStopping: the checkpoint's early stopping watched {state.get('monitor')!r} "
                f"({state.get('mode')}), this one watches {self.monitor!r} ({self.mode}); its "
                f"count starts afresh",
                stacklevel=2,
            )
            return
        best = state.get("best")
        self.best = self._initial_best() if best is None else float(best)
        self.best_epoch, self.wait = state.get("best_epoch"), int(state.get("wait", 0))
        self.stopped_epoch = state.get("stopped_epoch")
        self._missing_best = self.restore_best and self.best_epoch is not None

    def _read_best_state(self, run: Run) -> None:
        """After a resume: the best epoch's state, from a checkpoint of the run, read before
        any new checkpoint can push it out (``max_to_keep``)."""
        self._missing_best = False
        for cb in run.callbacks:
            if isinstance(cb, Checkpoint) and self.best_epoch in cb.store.all_epochs():
                try:
                    state = cb.store.restore(run.state, self.best_epoch)[0]
                except Exception:  # noqa: BLE001 - damaged: try the next, then fall back
                    continue
                self.best_state = host_copy(state)
                return
        warnings.warn(
            f"EarlyStopping(restore_best=True): the state of epoch {self.best_epoch}, the best "
            f"so far ({self.monitor} {self.best:.6g}), is in no checkpoint of this run any "
            f"more (keep more with Checkpoint(max_to_keep=...)); unless a later epoch beats it, "
            f"the best state seen since the resume is restored at the end",
            stacklevel=2,
        )
        self._since_resume = None

    def on_epoch_end(self, run: Run) -> None:
        if self._missing_best:
            self._read_best_state(run)
        if run.epoch <= self.start_from_epoch:
            return
        value = _monitored("EarlyStopping", self.monitor, run)
        if _improves(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, run.epoch, 0
            if self.restore_best:
                self.best_state = host_copy(run.state)
            return
        self.wait += 1
        if self.restore_best and self.best_state is None and self.best_epoch is not None:
            seen = self._since_resume  # the fallback: the best epoch's state was not found
            if seen is None or _improves(value, seen[0], self.mode, 0.0):
                self._since_resume = (value, run.epoch, host_copy(run.state))
        if self.wait >= self.patience:
            self.stopped_epoch = run.epoch
            run.stop_reason = (
                f"early stopping: {self.monitor} did not improve for {self.wait} epochs "
                f"(best {self.best:.6g} at epoch {self.best_epoch})"
            )

    def on_train_end(self, run: Run) -> None:
        if self._missing_best:
            self._read_best_state(run)
        if not self.restore_best or self.best_epoch is None or self.best_epoch == run.epoch:
            return
        best = self.best_state
        if best is None and self._since_resume is not None:
            best = self._since_resume[2]
        if best is not None:
            run.state = _put_like(best, run.state)


class ReduceLROnPlateau(Callback):
    """Lowers the learning rate when ``monitor`` has stopped improving (Keras's rule).

    After ``patience`` epochs without an improvement greater than ``min_delta``, the learning
    rate becomes ``max(lr * factor, min_lr)``; then ``cooldown`` epochs pass before epochs
    count again. The learning rate is changed in the optimizer's state
    (``inject_hyperparams``'s ``hyperparams["learning_rate"]``, same dtype and sharding, so
    nothing is recompiled), which is saved with checkpoints, as is this callback's count.

    The optimizer must keep a constant learning rate in its state: every ``fnn.optim``
    optimizer with a float ``learning_rate``, or ``optax.inject_hyperparams(optax.adam)(
    learning_rate=1e-3)``. A schedule, which sets the rate at every step, is refused.

    Args:
      monitor: a history field, checked against what the run records before the first epoch.
      factor: the multiplier, in (0, 1).
      patience: epochs without improvement before lowering the rate (>= 0).
      mode: ``"min"``, ``"max"``, or ``"auto"`` (as in :class:`EarlyStopping`).
      min_delta: the smallest change that counts as an improvement (>= 0).
      cooldown: epochs after a reduction during which epochs do not count (>= 0).
      min_lr: the rate is never lowered below this (>= 0).

    Attributes:
      reductions: ``(epoch, new learning rate)`` of each reduction made by this callback.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        factor: float = 0.1,
        patience: int = 10,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ):
        _checks.check_type("monitor", monitor, str, "a history field name such as 'val_loss'")
        self.monitor = monitor
        self.factor = _checks.check_float("factor", factor, low=0, high=1, open_low=True)
        self.patience = _checks.check_int("patience", patience, minimum=0)
        self.mode = _auto_mode(_checks.check_choice("mode", mode, ("min", "max", "auto")), monitor)
        self.min_delta = _checks.check_float("min_delta", min_delta, low=0)
        self.cooldown = _checks.check_int("cooldown", cooldown, minimum=0)
        self.min_lr = _checks.check_float("min_lr", min_lr, low=0, high=math.inf)
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0
        self.reductions: list[tuple[int, float]] = []

    def on_train_begin(self, run: Run) -> None:
        _check_monitor("ReduceLROnPlateau", self.monitor, run)
        found = lr_lib.find(run.state.opt_state)
        if not found:
            raise ValueError(
                "ReduceLROnPlateau: the optimizer keeps no learning rate in its state to lower; "
                "build it with optax.inject_hyperparams, e.g. optax.inject_hyperparams("
                "optax.adam)(learning_rate=1e-3), or use fnn.optim.sgd / fnn.optim.adam with a "
                "float learning_rate"
            )
        if any(lr_lib.is_scheduled(node) for node in found):
            raise ValueError(
                "ReduceLROnPlateau: the optimizer's learning rate is a schedule, which sets it "
                "at every step; pass a float learning_rate to use ReduceLROnPlateau"
            )
        self._reset()

    def state_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "best": _finite_or_none(self.best),
            "wait": self.wait,
            "cooldown_counter": self.cooldown_counter,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("monitor") != self.monitor:
            return  # another quantity: its count means nothing here
        best = state.get("best")
        self.best = (math.inf if self.mode == "min" else -math.inf) if best is None else best
        self.wait = int(state.get("wait", 0))
        self.cooldown_counter = int(state.get("cooldown_counter", 0))

    def on_epoch_end(self, run: Run) -> None:
        value = _monitored("ReduceLROnPlateau", self.monitor, run)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if _improves(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = value, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                self._reduce(run)

    def _reduce(self, run: Run) -> None:
        floor = np.float32(self.min_lr)
        lowered = []

        def lower(rate: float) -> float:
            if np.float32(rate) <= floor:
                return rate
            lowered.append(max(rate * self.factor, self.min_lr))
            return lowered[-1]

        opt_state = lr_lib.update(run.state.opt_state, lower)
        if lowered:
            run.state = run.state.replace(opt_state=opt_state)
            self.reductions.append((run.epoch, lowered[0]))
            self.cooldown_counter, self.wait = self.cooldown, 0


class LambdaCallback(Callback):
    """A callback made of functions, each called with the :class:`Run`, e.g.
    ``LambdaCallback(on_epoch_end=lambda run: print(run.epoch, run.history.records[-1]))``.

    Args:
      on_train_begin, on_epoch_end, on_train_end, on_interrupt: functions ``run -> None``
        (None: nothing at that point). Each may read the run, set ``run.stop_reason`` or
        replace ``run.state``, as a callback's method may.
    """

    def __init__(
        self,
        *,
        on_train_begin: Callable[[Run], Any] | None = None,
        on_epoch_end: Callable[[Run], Any] | None = None,
        on_train_end: Callable[[Run], Any] | None = None,
        on_interrupt: Callable[[Run], Any] | None = None,
    ):
        hooks = dict(on_train_begin=on_train_begin, on_epoch_end=on_epoch_end,
                     on_train_end=on_train_end, on_interrupt=on_interrupt)  # fmt: skip
        for name, fn in hooks.items():
            if fn is not None and not callable(fn):
                raise TypeError(
                    f"{name}: expected a function taking the Run, or None, got {type(fn).__name__}"
                )
        self._hooks = hooks

    def on_train_begin(self, run: Run) -> None:
        if self._hooks["on_train_begin"] is not None:
            self._hooks["on_train_begin"](run)

    def on_epoch_end(self, run: Run) -> None:
        if self._hooks["on_epoch_end"] is not None:
            self._hooks["on_epoch_end"](run)

    def on_train_end(self, run: Run) -> None:
        if self._hooks["on_train_end"] is not None:
            self._hooks["on_train_end"](run)

    def on_interrupt(self, run: Run) -> None:
        if self._hooks["on_interrupt"] is not None:
            self._hooks["on_interrupt"](run)


class Checkpoint(Callback):
    """Saves the run with Orbax every ``every`` epochs, after the last epoch (including one at
    which a callback stopped training), and on Ctrl-C.

    Each checkpoint also holds the state of the run's callbacks (``state_dict``), saved after
    they have seen the epoch. A checkpoint is written atomically (Orbax writes to a temporary
    directory, then renames); ``max_to_keep`` bounds how many are kept. Epochs that produced
    a non-finite loss are never saved, so a good checkpoint is never replaced by a bad one.
    Resume with ``fit(..., resume_from=directory)``.

    By default the save is asynchronous: the state is copied to the host and checksummed
    before training goes on (so what is written is exactly the epoch's state), and Orbax
    writes it to disk in a background thread while the next epochs train. ``fit`` waits for
    the write before it returns or raises (a non-finite loss, a bad batch, Ctrl-C, SIGTERM),
    so no checkpoint it started is lost; resuming and ``restore_best`` wait for it too.

    Args:
      directory: where checkpoints go (one sub-directory per saved epoch).
      every: save after every ``every``-th epoch (>= 1).
      max_to_keep: how many checkpoints to keep (None: all).
      async_save: write in the background (True) or block until written (False).
    """

    saves_run = True  # after the other callbacks: their state of this epoch is saved with it

    def __init__(self, directory: str | os.PathLike, *, every: int = 1, max_to_keep: int = 3,
                 async_save: bool = True):  # fmt: skip
        _checks.check_type("directory", directory, str | os.PathLike, "a directory path")
        self.async_save = _checks.check_bool("async_save", async_save)
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
            self._store = CheckpointStore(self.directory, max_to_keep=self.max_to_keep,
                                          async_save=self.async_save)  # fmt: skip
        return self._store

    def flush(self) -> None:
        """Waits until every checkpoint this callback started is on disk (``fit`` calls it
        on every way out)."""
        if self._store is not None:
            self._store.wait()

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
                            data_state=run.data_state, config=run.config,
                            callbacks_state=callbacks_state(run.callbacks))  # fmt: skip

    def on_epoch_end(self, run: Run) -> None:
        if run.epoch % self.every == 0 or run.epoch == run.epochs or run.stop_reason:
            self._save(run)

    def on_train_end(self, run: Run) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def on_interrupt(self, run: Run) -> None:
        self._save(run)
        self.store.close()
        self._store = None
