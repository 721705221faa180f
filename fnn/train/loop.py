"""fit: the driver that trains by full-batch, stochastic or mini-batch gradient descent.

``fit`` reads top to bottom: check every input (``validate.fit_inputs``), plan the epoch
(``plan``), choose how epochs run (``executors.choose_strategy``), restore a checkpoint, run the
epochs through one :class:`~fnn.train.executors.EpochRunner`, record each in the ``History``,
and call the callbacks. Everything it calls before ``History`` is pure and compiled; the side
effects (progress bar, callbacks, checkpoints) happen here, between epochs.

Dispatch: with no callback and no validation data, epoch ``e + 1`` is handed to the device
before ``fit`` waits for epoch ``e`` (after epochs shorter than ``RUN_AHEAD_MAX_EPOCH_S``), so
the device does not sit idle while the host records an epoch. The results are bit-identical
either way.

Non-finite losses: every step records whether its loss was NaN or Inf. When an epoch reports
one, ``fit`` replays that epoch from its start up to the first bad step, so it holds the last good
state, and raises :class:`NonFiniteLossError` naming the epoch and step, with that state
attached. Checkpoints are never written for such an epoch.
"""

import contextlib
import functools
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from fnn import metrics as metrics_lib
from fnn.losses import LossFn
from fnn.parallel import Placement, is_main_process, placement
from fnn.train import data_tree, programs, validate
from fnn.train import learning_rate as lr_lib
from fnn.train.callbacks import Callback, Run, epoch_end_order, load_callbacks_state
from fnn.train.checkpoint import CheckpointStore, Restored, run_config
from fnn.train.executors import EpochResult, EpochRunner, Strategy, choose_strategy, make_runner
from fnn.train.history import History
from fnn.train.inference import DEFAULT_EVAL_BATCH, Evaluator, IterableEvaluator
from fnn.train.plan import Plan
from fnn.train.sources import BatchError
from fnn.train.state import TrainState
from fnn.train.step import summarize

RUN_AHEAD_MAX_EPOCH_S = 1.0  # see the module docstring: epochs shorter than this run ahead
# Progress within an epoch: once a fused or stepwise epoch has run longer than SPLIT_EPOCH_S
# (compile left out), later epochs report parts of about SEGMENT_S each (at most MAX_SEGMENTS;
# fused epochs run as that many programs), so that the bar advances within the epoch; only
# when the bar is shown.
SPLIT_EPOCH_S = 1.0
SEGMENT_S = 0.25
MAX_SEGMENTS = 20


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or Inf loss.

    Attributes:
      epoch: 1-based epoch in which it happened.
      step: 0-based step within that epoch.
      global_step: the optimizer step count at the bad step.
      state: the last good state (after ``global_step`` updates).
      history: the records of the epochs completed before.
    """

    def __init__(self, message, *, epoch, step, global_step, state, history):
        super().__init__(message)
        self.epoch, self.step, self.global_step = epoch, step, global_step
        self.state, self.history = state, history


def fit(
    state: TrainState,
    x: Any,
    y: Any = None,
    *,
    loss: str | LossFn,
    batch_size: int | str | None = None,
    epochs: int,
    validation_data: tuple[Any, Any] | None = None,
    metrics: Sequence[str | metrics_lib.Metric] = (),
    shuffle: bool = True,
    seed: int = 0,
    drop_remainder: bool = False,
    strategy: str | Strategy | None = None,
    fused: bool = True,
    callbacks: Sequence[Callback] = (),
    verbose: int = 1,
    resume_from: str | None = None,
    resume_overrides: Sequence[str] = (),
    resume_missing_ok: bool = False,
    max_device_bytes: int | None = None,
    steps_per_chunk: int | None = None,
    unroll: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    steps_per_epoch: int | None = None,
    process_local: bool = False,
) -> tuple[TrainState, History]:
    """Trains ``state`` on ``(x, y)`` by full-batch, stochastic or mini-batch gradient descent.

    Args:
      state: from :meth:`TrainState.create`; left as it is (the returned state is new).
      x: inputs ``[n, ...]`` (NumPy or JAX array), or a pytree of them (``{"image": ...,
        "lengths": ...}``); or an iterable of batches (a generator, a list of batches, a
        ``grain.DataLoader``) yielding ``(x, y)`` or ``(x, y, mask)`` with arrays or pytrees
        ``[B, ...]`` (see ``fnn.train.sources.IterableBatches``: the first batch fixes the
        shapes, a smaller last batch is masked, and fit does not shuffle it).
      y: targets ``[n, ...]``: ``<int>[n]`` class labels for cross-entropy, ``[n]`` / ``[n, k]``
        for regression or binary labels, or a pytree; None when ``x`` is an iterable.
      loss: per-example loss from ``fnn.losses`` or its name (``"cross_entropy"``, ``"mse"``,
        ``"binary_cross_entropy"``).
      batch_size: ``1`` (stochastic GD), ``n`` or ``"full"`` (full-batch GD), or any size in
        between (mini-batch GD); None for an iterable (its batches have their size).
      epochs: the number of epochs to train ``state`` for. They continue its epoch count
        (``state.epoch``): a state from an earlier ``fit`` goes on with the next epoch's
        number and permutation, so ``fit(..., epochs=1)`` five times trains exactly as
        ``epochs=5`` once. With ``resume_from`` the run ends at that same epoch, the epochs
        already in the checkpoint included.
      validation_data: ``(x_val, y_val)`` evaluated after every epoch (``val_*`` fields).
      metrics: names or ``fnn.metrics.Metric`` values, accumulated over each epoch.
      shuffle: draw a new permutation each epoch (else the data order is kept).
      seed: seed of the epoch permutations (the dropout stream is the state's own key).
      drop_remainder: skip the last partial batch of each epoch instead of masking it (see
        ``fnn.train.plan``).
      strategy: how epochs run: ``"fused"`` (one XLA program per epoch), ``"stepwise"`` (one
        program per step, data on the device), ``"streamed"`` / ``"streamed_stepwise"`` (data
        copied from the host in chunks), ``"unfused"`` (a Python loop of jitted steps, the
        reference); None chooses (``fnn.train.executors.choose_strategy``). What ran and why is
        in ``history.strategy`` and ``history.strategy_reason``.
      fused: ``False`` is ``strategy="unfused"``.
      callbacks: a list, e.g. ``[EarlyStopping(), Checkpoint(dir)]`` (see
        ``fnn.train.callbacks`` and ``fnn.train.loggers``).
      verbose: 0 silent, 1 a progress bar over epochs (and chunks when streaming), showing
        compilation as its own phase; once a fused or stepwise epoch has taken more than a
        second, the bar advances within later epochs (fused ones run as a few programs of
        consecutive steps, bit for bit the same epoch). 2: one line per epoch (``Epoch 3/10 -
        0.12s - loss: ...``).
      resume_from: a checkpoint directory (``fnn.Checkpoint``): training continues after its
        newest intact epoch with its state, seed, history and data position, ending
        bit-identical to an uninterrupted run. The checkpoint must be of this run: a different
        model, optimizer, data shape, batch size, loss, metrics, seed or number of epochs is
        refused with a list of what differs (``RunMismatchError``), and a damaged newest epoch
        is skipped with a warning (see ``fnn.train.checkpoint``). A missing or empty directory
        is an error unless ``resume_missing_ok``.
      resume_overrides: fields of the saved run that this run changes on purpose, e.g.
        ``("epochs",)`` to train a finished run further, or ``("batch_size", "seed")``.
      resume_missing_ok: with ``resume_from``, start a fresh run when the directory does not
        exist or holds no checkpoint yet (the first run of a script that always resumes).
      max_device_bytes: above this size of ``x`` plus ``y`` the data is streamed to the device
        in chunks (default 2 GiB).
      steps_per_chunk: batches per streamed chunk; setting it asks for streaming.
      unroll: ``lax.scan`` unroll factor of the scanned strategies (default: by batch size and
        model, see ``executors.default_unroll``).
      devices: devices to train on, data-parallel (default: all devices). The state is
        replicated and each batch split over the devices when its size divides evenly
        (see ``fnn.parallel``); results match a single device up to float rounding.
      steps_per_epoch: for an iterable ``x``: batches per epoch, taken in turn from it (needed
        for a generator and more than one epoch); None: one pass per epoch.
      process_local: with several processes, ``x`` and ``y`` are this process's own examples
        (the same number on every process); the training set is their concatenation in process
        order, each process's rows kept on its own devices (``fnn.parallel``). False: every
        process passes the whole training set.

    Returns:
      ``(state, history)``.

    Raises:
      ValueError, TypeError: for bad input, before anything is compiled.
      NonFiniteLossError: when a loss becomes NaN/Inf (carries the last good state).
      fnn.train.sources.BatchError: a batch of an iterable that does not match the first one
        (carries the state before it).
    """
    args = validate.fit_inputs(
        state, x, y, loss=loss, batch_size=batch_size, epochs=epochs,
        validation_data=validation_data, metrics=metrics, shuffle=shuffle, seed=seed,
        drop_remainder=drop_remainder, fused=fused, strategy=strategy, callbacks=callbacks,
        verbose=verbose, resume_from=resume_from, resume_overrides=resume_overrides,
        resume_missing_ok=resume_missing_ok, max_device_bytes=max_device_bytes,
        steps_per_chunk=steps_per_chunk, unroll=unroll, devices=devices,
        steps_per_epoch=steps_per_epoch, process_local=process_local,
    )  # fmt: skip
    plan = None  # an iterable's epochs have no plan
    if not args.iterable:
        plan = Plan.make(args.num_examples, args.batch,
                         drop_remainder=args.drop_remainder, shuffle=args.shuffle)  # fmt: skip
    choice = choose_strategy(
        args.facts, plan, args.data_bytes, backend=jax.default_backend(),
        strategy=args.strategy, max_device_bytes=args.max_device_bytes,
        steps_per_chunk=args.steps_per_chunk, unroll=args.unroll, batch=args.batch,
    )  # fmt: skip
    place = placement(args.devices)
    end = _epoch_of(state) + args.epochs  # the epoch this run ends at
    config = _run_config(state, args, end)
    restored = _restore(state, args, config, end)
    state, start_epoch, seed, history, data_state = restored[:5]
    history.strategy, history.strategy_reason = choice.strategy.value, choice.reason
    state = place.put_replicated(state)
    key = _placed_shuffle_key(seed, place)
    verbose = args.verbose if is_main_process() else 0  # progress shown by process 0 only
    show = verbose == 1  # a progress bar (2: a line per epoch)
    runner = make_runner(choice, args.x, args.y, plan, key, args.loss_fn, args.metrics, place,
                         example=args.example, progress=show,
                         process_local=args.process_local)  # fmt: skip
    runner.set_data_state(data_state)
    evaluator = _evaluator(args, place)

    accumulates = state.accumulates_gradients
    fields = _fields(args.metrics, evaluator is not None, accumulates,
                     lr_lib.read(state.opt_state) is not None)  # fmt: skip
    run = Run(state=state, history=history, epoch=start_epoch, epochs=end, seed=seed,
              fields=fields, config=config, callbacks=args.callbacks)  # fmt: skip
    for cb in args.callbacks:
        cb.on_train_begin(run)
    load_callbacks_state(args.callbacks, restored.callbacks_state)  # EarlyStopping's count...
    epochs = _Epochs(runner, args.metrics, evaluator, accumulates)
    # With no callback (which may stop training or replace the state) and no validation, epoch
    # e + 1 is dispatched before waiting for epoch e.
    try:
        with _sigterm_interrupts():
            _train(run, epochs, args.callbacks, verbose=verbose,
                   run_ahead=not args.callbacks and evaluator is None)  # fmt: skip
    except Preempted as err:  # the callbacks have saved the run (Checkpoint.on_interrupt)
        print(f"fnn.fit: {err}; stopped after epoch {run.epoch}", file=sys.stderr, flush=True)
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:  # asynchronous checkpoint writes started by the callbacks reach the disk
        for cb in args.callbacks:
            flush = getattr(cb, "flush", None)
            if callable(flush):
                flush()
    for cb in args.callbacks:
        cb.on_train_end(run)
    return run.state, history


# ------------------------------------------------------------------------------ the pieces


class Preempted(KeyboardInterrupt):
    """SIGTERM arrived during ``fit`` (a preemption): handled as Ctrl-C is (the running epoch
    is kept, callbacks' ``on_interrupt`` save the run), then the process exits with status 143."""


@contextlib.contextmanager
def _sigterm_interrupts():
    """Turns SIGTERM into :class:`Preempted` while training, in the main thread and only when
    no one else handles SIGTERM (a handler of the user's own is left alone)."""
    installed = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    )
    if installed:

        def handler(signum, frame):
            del frame
            raise Preempted(f"received {signal.Signals(signum).name}")

        signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _evaluator(args: validate.FitInputs, place: Placement):
    """What evaluates the validation data after every epoch (None without any)."""
    if args.iterable_validation:
        return IterableEvaluator(args.validation, args.loss_fn, args.metrics, place)
    if args.validation is None:
        return None
    xv, yv = args.validation
    batch = min(data_tree.num_examples(xv), DEFAULT_EVAL_BATCH)
    return Evaluator(xv, yv, batch, args.loss_fn, args.metrics, place)


def _fields(metrics, validated: bool, accumulates: bool, learning_rate: bool = False
            ) -> tuple[str, ...]:  # fmt: skip
    """The fields every history record of the run will have (see ``_finish_epoch``;
    ``learning_rate`` when the optimizer keeps it in its state, ``fnn.train.learning_rate``)."""
    measured = ("loss", *(m.name for m in metrics))
    fields = ["epoch", *measured, "steps", "epoch_time", "compile_time", "samples_per_s"]
    if validated:
        fields += [f"val_{name}" for name in measured] + ["val_time"]
    if accumulates:
        fields.append("optimizer_updates")
    if learning_rate:
        fields.append(lr_lib.NAME)
    return tuple(fields)


def _epoch_of(state: TrainState) -> int:
    """``state.epoch`` as an int (read from this process's copy: the state may be replicated
    over devices of several processes)."""
    epoch = state.epoch
    if isinstance(epoch, jax.Array):
        epoch = epoch.addressable_data(0)
    return int(np.asarray(epoch))


def _run_config(state: TrainState, args: validate.FitInputs, end: int):
    """This run's configuration, recorded with checkpoints (None when nothing checkpoints or
    resumes: it costs a model repr and tree walks, which a bare ``fit`` does not pay)."""
    if args.resume_from is None and not args.callbacks:
        return None
    return run_config(state, x_example=args.example[0], y_example=args.example[1],
                      batch_size=args.batch, seed=args.seed, epochs=end, loss_fn=args.loss_fn,
                      metrics=args.metrics)  # fmt: skip


def _restore(state: TrainState, args: validate.FitInputs, config, end: int) -> Restored:
    """The run saved in ``args.resume_from`` (checked against ``config``), or the given state
    and seed with an empty history when there is nothing to resume."""
    fresh = Restored(state, _epoch_of(state), args.seed, History(), None)
    if args.resume_from is None:
        return fresh
    path = os.path.abspath(os.fspath(args.resume_from))
    if not os.path.isdir(path) or not any(n.isdigit() for n in os.listdir(path)):
        if args.resume_missing_ok:
            return fresh
        what = "does not exist" if not os.path.exists(path) else "holds no checkpoint"
        if os.path.exists(path) and not os.path.isdir(path):
            what = "is a file, not a checkpoint directory"
        raise FileNotFoundError(
            f"resume_from: {path} {what}; expected a directory written by fnn.Checkpoint. "
            f"To start a fresh run when there is nothing to resume yet, pass "
            f"resume_missing_ok=True"
        )
    store = CheckpointStore(path, create=False)
    try:
        restored = store.restore_run(state, config=config, overrides=args.resume_overrides)
    finally:
        store.close()
    if restored.epoch > end:
        raise ValueError(
            f"epochs: the checkpoint in {path} is at epoch {restored.epoch}, past epoch {end} "
            f"at which this run ends (epochs={args.epochs}); expected epochs >= "
            f"{restored.epoch - _epoch_of(state)}"
        )
    if "seed" in args.resume_overrides:
        restored = restored._replace(seed=args.seed)
    return restored


@jax.jit
def _seed_key_data(seed: jax.Array) -> jax.Array:
    return jax.random.key_data(jax.random.key(seed))


def _shuffle_key_data(seed: int) -> jax.Array:
    """``key_data(jax.random.key(seed))``, in one compiled call rather than eager ones (~0.5 ms).

    Raw data, so that it can be placed on a mesh that spans several processes (a typed key
    cannot); ``fit`` wraps it once placed.
    """
    if -(2**31) <= seed < 2**31:  # the same key as from the Python int (tested)
        return _seed_key_data(np.int32(seed))
    return jax.random.key_data(jax.random.key(seed))


@functools.lru_cache(maxsize=64)
def _placed_shuffle_key(seed: int, place: Placement) -> jax.Array:
    """The shuffling key of ``seed`` on every device of ``place`` (immutable, so kept)."""
    return jax.random.wrap_key_data(place.put_replicated(_shuffle_key_data(seed)))


@dataclass(frozen=True)
class _Dispatched:
    """An epoch handed to the device: the state it started from (kept for a replay after a
    non-finite loss), its (future) result, and when it could start running (``ready``: after
    dispatch and compilation, in ``time.perf_counter`` seconds)."""

    epoch: int
    start_state: TrainState
    result: EpochResult
    ready: float


class _Epochs:
    """Dispatches epochs through the runner and turns finished ones into history records."""

    def __init__(self, runner: EpochRunner, metrics, evaluator: Evaluator | None,
                 count_updates: bool):  # fmt: skip
        self.runner, self.metrics, self.evaluator = runner, metrics, evaluator
        self.count_updates = count_updates  # record optimizer_updates (optax.MultiSteps)

    def dispatch(self, epoch: int, state: TrainState) -> _Dispatched:
        started = time.perf_counter()
        result = self.runner.run(state, epoch)
        return _Dispatched(epoch, state, result, started + result.compile_seconds)

    def replay(self, current: _Dispatched, steps: int) -> TrainState:
        """The state after the first ``steps`` steps of ``current``'s epoch."""
        return self.runner.replay(current.start_state, current.epoch, steps)

    def finish(self, current: _Dispatched, previous_done: float | None):
        record, bad = _finish_epoch(current, self.metrics, self.evaluator, previous_done)
        if self.count_updates:
            record["optimizer_updates"] = int(current.result.state.optimizer_updates())
        return record, bad


def _train(run: Run, epochs: _Epochs, callbacks, *, run_ahead: bool, verbose: int) -> None:
    """Runs the epochs after ``run.epoch`` up to ``run.epochs``, recording each in
    ``run.history`` and calling back; a callback may stop it by setting ``run.stop_reason``.

    ``verbose``: 0 nothing, 1 a progress bar (``tqdm.auto``: a widget in notebooks) whose
    first epoch shows ``compiling``, whose ETA leaves compilation out, and which advances
    within epochs longer than ``SPLIT_EPOCH_S`` (:meth:`FusedRunner.split`), 2 one printed
    line per epoch. Every recorded epoch is seen by every callback, also on Ctrl-C (the calls of
    the epoch being recorded are completed before ``on_interrupt``).
    """
    history = run.history
    ordered = epoch_end_order(callbacks)
    record_lr = lr_lib.NAME in run.fields
    bar = (  # not built at all when hidden: even a disabled tqdm costs ~0.1 ms per fit
        tqdm(total=run.epochs, initial=run.epoch, unit="epoch", dynamic_ncols=True)
        if verbose == 1
        else None
    )

    def advance(epoch: int, done: int, steps: int) -> None:
        """A segment of ``epoch`` has run: the bar moves to the fraction of it done."""
        bar.n = epoch - 1 + done / steps
        bar.refresh()

    def maybe_split(record) -> None:
        """After a long epoch, later ones report their progress (fused and stepwise epochs)."""
        split = getattr(epochs.runner, "split", None)
        if split is None or epochs.runner.segments:
            return
        if record["epoch_time"] > SPLIT_EPOCH_S and record["steps"] > 1:
            parts = min(MAX_SEGMENTS, max(2, round(record["epoch_time"] / SEGMENT_S)))
            split(parts, advance)

    current = ahead = None  # epochs dispatched to the device and not yet recorded
    pending: list[Callback] = []  # callbacks still to see the last recorded epoch
    last_done, last_time = None, math.inf

    def finish(dispatched: _Dispatched):
        record, bad = epochs.finish(dispatched, last_done)
        if record_lr and bad < 0:
            rate = lr_lib.read(dispatched.result.state.opt_state)  # never donated: readable
            if rate is not None:
                record[lr_lib.NAME] = rate
        return record, bad

    def call_back():
        while pending:
            pending.pop(0).on_epoch_end(run)

    first = run.epoch + 1
    try:
        for epoch in range(first, run.epochs + 1):
            if bar is not None and epoch == first:
                bar.set_postfix_str("compiling", refresh=True)  # the first epoch compiles
            current = ahead if ahead is not None else epochs.dispatch(epoch, run.state)
            ahead = None
            segmented = bool(getattr(epochs.runner, "segments", None))  # reports as it runs
            if (run_ahead and epoch < run.epochs and last_time < RUN_AHEAD_MAX_EPOCH_S
                    and not segmented):  # fmt: skip
                ahead = epochs.dispatch(epoch + 1, current.result.state)
            record, bad = finish(current)
            last_done, last_time = time.perf_counter(), record["epoch_time"]
            if bad >= 0:
                raise _non_finite(run, epochs, current, bad)
            run.state, current = current.result.state, None
            history.append(record)
            run.epoch, run.data_state = epoch, epochs.runner.data_state()
            pending[:] = ordered
            call_back()
            if bar is not None:
                bar.set_postfix(_format_postfix(record), refresh=False)
                # The ETA extrapolates run time only: tqdm's rate counts from start_t (no
                # smoothing) or from the last refresh (smoothing, the default).
                bar.start_t += record["compile_time"]
                bar.last_print_t += record["compile_time"]
                bar.n = epoch - 1  # segments moved it part way: whole epochs from here
                bar.update(1)
                maybe_split(record)
            elif verbose == 2:
                print(_format_line(record, run.epochs), flush=True)
            if run.stop_reason:
                history.stop_reason = run.stop_reason
                break
    except BatchError as err:  # the runner attached the state before the bad batch
        err.epoch, err.history = (current.epoch if current else run.epoch + 1), history
        history.stop_reason = f"bad batch in epoch {err.epoch}: {err}"
        raise
    except KeyboardInterrupt:
        if current is not None:  # the epoch runs to completion on the device anyway: keep it
            record, bad = finish(current)
            if bad < 0:
                run.state = current.result.state
                history.append(record)
                run.epoch = current.epoch
                pending[:] = ordered
        call_back()  # so that what on_interrupt saves has seen every recorded epoch
        history.stop_reason = f"interrupted after epoch {run.epoch}"
        for cb in callbacks:
            cb.on_interrupt(run)
        raise
    finally:
        if bar is not None:
            bar.close()


def _non_finite(run: Run, epochs: _Epochs, current: _Dispatched, bad: int) -> NonFiniteLossError:
    """The error for a non-finite loss, or state, at optimizer step ``bad`` of ``current``'s
    epoch, with the last finite state attached (replayed).

    The state before step ``bad`` is replayed and checked: an update can overflow the weights
    while its loss is still finite (huge inputs, a huge learning rate), and then the step that
    first made the state non-finite is searched for (by bisection over replays), so the state
    kept is always finite.
    """
    start = int(current.start_state.step)
    good = bad - start  # steps of the epoch before the bad one
    state = epochs.replay(current, good)
    cause = "loss"
    if state is None or not bool(_finite(state)):
        cause = "state"
        if epochs.runner.replays_any_step:
            good, state = _last_finite(epochs, current, good)
        else:  # an iterable cannot be read again: keep the epoch's starting state
            good, state = 0, current.start_state
    run.state = state
    what = (
        "non-finite loss" if cause == "loss"
        else "non-finite parameters (an update overflowed)"
    )  # fmt: skip
    message = (
        f"{what} at epoch {current.epoch}/{run.epochs}, step {good} of "
        f"{current.result.steps} run in that epoch (optimizer step {start + good}); training "
        f"stopped and the state after step {start + good - 1} was kept"
    )
    run.history.stop_reason = message
    return NonFiniteLossError(
        message, epoch=current.epoch, step=good, global_step=start + good, state=run.state,
        history=run.history,
    )  # fmt: skip


def _finite(state: TrainState) -> jax.Array:
    return programs.run(programs.state_is_finite, (state,), {})


def _last_finite(epochs: _Epochs, current: _Dispatched, steps: int) -> tuple[int, TrainState]:
    """``(k, state)``: the most steps ``k <= steps`` of ``current``'s epoch after which the
    state is still finite, and that state (the start state is assumed finite)."""
    low, high = 0, steps  # finite after `low` steps; not finite after `high`
    kept = current.start_state
    while high - low > 1:
        mid = (low + high) // 2
        state = epochs.replay(current, mid)
        if bool(_finite(state)):
            low, kept = mid, state
        else:
            high = mid
    return low, kept


_NOT_SHOWN = ("epoch", "steps", "epoch_time", "val_time", "compile_time", "samples_per_s",
              "optimizer_updates")  # fmt: skip


def _format_value(value: float) -> str:
    """Keras's format: 4 decimals, or 4 significant digits in exponent form for small values."""
    return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e6 else f"{value:.4e}"


def _format_line(record: dict[str, Any], epochs: int) -> str:
    """``Epoch 3/10 - 0.12s - loss: 0.3012 - accuracy: 0.9000 - val_loss: 0.3500``, with the
    compile seconds after the epoch's when it compiled (``verbose=2``)."""
    took = f"{record['epoch_time']:.2f}s"
    if record.get("compile_time"):
        took += f" (+{record['compile_time']:.2f}s compiling)"
    parts = [f"Epoch {record['epoch']}/{epochs}", took]
    for key, value in record.items():
        if key not in _NOT_SHOWN and isinstance(value, float | int) and not isinstance(value, bool):
            parts.append(f"{key}: {_format_value(value)}")
    return " - ".join(parts)


def _format_postfix(record: dict[str, Any]) -> dict[str, str]:
    shown = {}
    for key, value in record.items():
        if key in ("epoch", "steps", "epoch_time", "val_time", "compile_time"):
            continue
        if isinstance(value, float):
            shown[key] = f"{value:.4g}"
    if record.get("compile_time"):
        shown["compile"] = f"{record['compile_time']:.2f}s"
    return shown


def _host(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


def _finish_epoch(current: _Dispatched, metrics, evaluator, previous_done):
    """Blocks on a dispatched epoch and builds its history record; returns ``(record, bad)``.

    The epoch's time runs from when it could start (its dispatch, or the end of the previous
    epoch when it was dispatched ahead of it) to when its results reached the host.
    """
    # np.asarray rather than jax.device_get: on the CPU backend device_get's asynchronous
    # host copies cost ~300 us more main-thread CPU per call (measured), which on a small
    # machine is taken from the next epoch's compute.
    result = current.result
    sums, bad = jax.tree_util.tree_map(np.asarray, (result.sums, result.first_bad_step))
    began = current.ready if previous_done is None else max(current.ready, previous_done)
    elapsed = time.perf_counter() - began
    record: dict[str, Any] = {"epoch": current.epoch}
    record.update({k: _host(v) for k, v in summarize(sums, metrics).items()})
    seen = float(sums["loss"]["count"])
    record.update(
        steps=result.steps,
        epoch_time=elapsed,
        compile_time=result.compile_seconds,
        samples_per_s=seen / elapsed if elapsed > 0 else float("nan"),
    )
    if evaluator is not None and int(bad) < 0:
        started = time.perf_counter()
        val_sums, val_compile = evaluator(result.state)
        record.update({f"val_{k}": _host(v) for k, v in summarize(val_sums, metrics).items()})
        record["val_time"] = time.perf_counter() - started - val_compile
        record["compile_time"] += val_compile
    return record, int(bad)


__all__ = ["NonFiniteLossError", "fit"]
