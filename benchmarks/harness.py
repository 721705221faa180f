"""Timing: interleaved throughput repeats, time to a target accuracy, fixed-budget loss.

Throughput (:func:`measure_throughput`) is measured in three phases for a group of runners that
share a workload and batch size:

1. **setup**: each runner builds its model and trains one epoch; that first epoch includes
   compilation (``first_epoch_s``).
2. **calibration**: one more epoch each (``warm_epoch_s``); ``compile_s = first - warm``. A
   repeat is then ``k`` epochs with ``k = ceil(min_repeat_s / warm_epoch_s)``, so very short
   epochs are timed in groups long enough for the clock and for per-call overheads to be
   amortised the way a user's multi-epoch ``fit`` amortises them.
3. **interleaved repeats**: rounds of a Williams design (:func:`interleaved_order`), so that
   slow drift of the machine (other processes, clock boosts, thermal state) hits every
   implementation alike, and each follows each of the others equally often.
   Each repeat gives one samples/s value; the record keeps the median and the spread.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.hardware import current_rss_bytes
from benchmarks.runners.base import Runner

__all__ = [
    "Throughput",
    "interleaved_order",
    "measure_throughput",
    "spread",
    "time_to_target",
]

Clock = Callable[[], float]
Tick = Callable[[str], None]


def _noop(_: str) -> None:
    pass


def _williams_rows(k: int) -> list[list[int]]:
    """The rounds of a Williams design for ``k`` treatments, in the order they are run.

    Row ``r`` is ``(0, 1, k-1, 2, k-2, ...) + r mod k``. For even ``k`` the ``k`` rows are
    balanced; for odd ``k`` the rows and their mirror images are, so the cycle is ``2k`` long,
    run as ``row 0, mirror 1, row 2, ...`` and then the complement, so that no round starts with
    the name that ended the one before.
    """
    first = [0]
    for j in range(1, k):
        first.append((j + 1) // 2 if j % 2 else k - j // 2)
    rows = [[(f + r) % k for f in first] for r in range(k)]
    if k % 2 == 0:
        return rows
    cycle = []
    for flip in (1, 0):  # row 0, mirror 1, row 2, ...; then mirror 0, row 1, mirror 2, ...
        cycle += [row[::-1] if r % 2 == flip else row for r, row in enumerate(rows)]
    return cycle


def interleaved_order(names: Sequence[str], repeats: int) -> list[str]:
    """The measurement order: every name once per round, ``repeats`` rounds, the rounds taken
    from a Williams design (E. J. Williams, "Experimental designs balanced for the estimation of
    residual effects of treatments", Australian Journal of Scientific Research, 1949).

    Interleaving makes slow drift of the machine hit every implementation alike. The design
    also balances what runs just before each repeat: over one cycle (``k`` rounds for ``k``
    names when ``k`` is even, ``2k`` when it is odd) each name takes each place in the round
    equally often and directly follows each other name equally often. What ran before matters
    on a small machine: on 2 cores, the implementation measured right after PyTorch once ran
    146k instead of 186-199k samples/s (MLP, full batch). A rotation by one (``A B C``,
    ``B C A``, ...) would put the same name before each one in every round.

    Example:
      >>> interleaved_order(["a", "b", "c"], 4)
      ['a', 'b', 'c', 'a', 'c', 'b', 'c', 'a', 'b', 'c', 'b', 'a']
    """
    k = len(names)
    if k == 0:
        return []
    rows = _williams_rows(k)
    return [names[i] for r in range(repeats) for i in rows[r % len(rows)]]


def spread(values: Sequence[float]) -> dict[str, float] | None:
    """Median and spread of repeated measurements.

    Returns:
      ``{"median", "min", "max", "p25", "p75", "rel_iqr"}`` (``rel_iqr = (p75 - p25) / median``),
      or None for no values.
    """
    if len(values) == 0:
        return None
    v = np.asarray(values, np.float64)
    median = float(np.median(v))
    p25, p75 = (float(q) for q in np.percentile(v, [25, 75]))
    return {
        "median": median,
        "min": float(v.min()),
        "max": float(v.max()),
        "p25": p25,
        "p75": p75,
        "rel_iqr": (p75 - p25) / median if median > 0 else math.nan,
    }


@dataclasses.dataclass
class Throughput:
    """Throughput measurements of one runner.

    Attributes:
      implementation: runner name.
      status: ``"ok"``, ``"skipped"`` (not installed / not available) or ``"error"``.
      reason: why it was skipped or failed.
      first_epoch_s: wall time of the first epoch, compilation included.
      warm_epoch_s: wall time of the second epoch.
      compile_s: ``max(0, first_epoch_s - warm_epoch_s)``.
      epochs_per_repeat: epochs in one timed repeat.
      samples_per_repeat: examples trained in one timed repeat.
      repeat_s: wall time of each repeat, in measurement order.
      memory_delta_bytes: growth of the process's resident memory over setup + first epoch.
    """

    implementation: str
    status: str = "ok"
    reason: str | None = None
    first_epoch_s: float | None = None
    warm_epoch_s: float | None = None
    compile_s: float | None = None
    epochs_per_repeat: int = 0
    samples_per_repeat: int = 0
    repeat_s: list[float] = dataclasses.field(default_factory=list)
    memory_delta_bytes: int | None = None

    @property
    def samples_per_s(self) -> list[float]:
        return [self.samples_per_repeat / max(t, 1e-12) for t in self.repeat_s]

    @property
    def stats(self) -> dict[str, float] | None:
        return spread(self.samples_per_s)


def _fail(result: Throughput, error: BaseException) -> None:
    result.status = "error"
    last = traceback.format_exception_only(type(error), error)[-1].strip()
    result.reason = last[:500]


def measure_throughput(
    runners: dict[str, Runner],
    *,
    repeats: int,
    min_repeat_s: float,
    clock: Clock = time.perf_counter,
    tick: Tick = _noop,
    max_epochs_per_repeat: int = 100_000,
) -> dict[str, Throughput]:
    """Steady-state samples/s of several runners, repeats interleaved.

    Args:
      runners: name -> runner, all for the same workload and batch size, not yet set up.
      repeats: timed repeats per runner (>= 1).
      min_repeat_s: a repeat runs whole epochs for at least about this long.
      clock: time source (seconds).
      tick: called with the runner's name after each timed unit (progress reporting).
      max_epochs_per_repeat: cap on epochs per repeat.

    Returns:
      name -> :class:`Throughput`, in the order of ``runners``. A runner that raises is
      recorded with ``status="error"`` and dropped from the remaining rounds.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    results = {name: Throughput(name) for name in runners}
    live: list[str] = []
    for name, runner in runners.items():  # setup + first (compiling) epoch
        res = results[name]
        rss0 = current_rss_bytes()
        try:
            runner.setup()
            start = clock()
            runner.run_epochs(1)
            res.first_epoch_s = clock() - start
        except Exception as e:  # report, keep measuring the others
            _fail(res, e)
            tick(name)
            continue
        rss1 = current_rss_bytes()
        res.memory_delta_bytes = None if rss0 is None or rss1 is None else max(0, rss1 - rss0)
        live.append(name)
        tick(name)
    for name in list(live):  # calibration epoch
        res, runner = results[name], runners[name]
        try:
            start = clock()
            runner.run_epochs(1)
            res.warm_epoch_s = max(clock() - start, 1e-9)
        except Exception as e:
            _fail(res, e)
            live.remove(name)
            continue
        res.compile_s = max(0.0, res.first_epoch_s - res.warm_epoch_s)
        k = math.ceil(min_repeat_s / res.warm_epoch_s) if min_repeat_s > 0 else 1
        res.epochs_per_repeat = int(min(max(1, k), max_epochs_per_repeat))
        res.samples_per_repeat = res.epochs_per_repeat * runner.samples_per_epoch
    for name in interleaved_order(list(live), repeats):
        if name not in live:
            continue
        res, runner = results[name], runners[name]
        try:
            start = clock()
            runner.run_epochs(res.epochs_per_repeat)
            res.repeat_s.append(clock() - start)
        except Exception as e:
            _fail(res, e)
            live.remove(name)
        tick(name)
    return results


def time_to_target(
    runner: Runner,
    *,
    target_accuracy: float,
    max_train_s: float,
    budget_epochs: int,
    max_epochs: int,
    clock: Clock = time.perf_counter,
) -> dict[str, Any]:
    """Trains until a target test accuracy (and a fixed example budget) or a time limit.

    The test set is evaluated after every epoch (one ``run_epochs(1)`` call each, so the
    shuffling and hence the result do not depend on timings); evaluation time is not counted.
    The first epoch includes compilation: it is counted at the second epoch's duration, and
    the difference is reported as ``compile_s``. Training stops when the target is reached
    *and* ``budget_epochs`` are done, or after ``max_train_s`` seconds of training, or
    ``max_epochs``.

    Args:
      runner: a runner, not yet set up.
      target_accuracy: test accuracy to reach.
      max_train_s: training-time limit (seconds, compile excluded).
      budget_epochs: the fixed budget; the training-set loss is recorded when exactly
        ``budget_epochs * n`` examples have been seen.
      max_epochs: epoch limit (>= 2).
      clock: time source.

    Returns:
      A dict with ``curve`` (list of ``{"time_s", "epochs", "examples", "test_accuracy",
      "test_loss"}``, starting at the untrained model), ``time_to_target_s``,
      ``epochs_to_target`` (None when not reached), ``final_loss_at_budget`` and
      ``final_accuracy_at_budget`` (training set; None when the time ran out first),
      ``budget_examples``, ``compile_s``, ``first_epoch_s``, ``train_s``, ``epochs``,
      ``samples_per_s`` and ``final_test_accuracy``.
    """
    data = runner.data
    n = runner.samples_per_epoch
    runner.setup()
    curve: list[dict[str, float]] = []
    train_s = 0.0
    epochs = 0
    hit: dict[str, float] | None = None
    at_budget: dict[str, float] | None = None

    def record() -> None:
        nonlocal hit, at_budget
        m = runner.evaluate(data.x_test, data.y_test)
        point = {
            "time_s": train_s,
            "epochs": epochs,
            "examples": epochs * n,
            "test_accuracy": m["accuracy"],
            "test_loss": m["loss"],
        }
        curve.append(point)
        if hit is None and m["accuracy"] >= target_accuracy:
            hit = point
        if epochs == budget_epochs:
            at_budget = runner.evaluate(data.x_train, data.y_train)

    def epoch() -> float:
        start = clock()
        runner.run_epochs(1)
        return clock() - start

    record()
    first = epoch()
    epochs = 1
    record()  # its time_s is set once the steady-state epoch time is known
    second = epoch()
    compile_s = max(0.0, first - second)
    curve[-1]["time_s"] = second  # (``hit`` may be this same dict)
    epochs, train_s = 2, 2 * second
    record()
    while epochs < max_epochs and train_s < max_train_s:
        if hit is not None and epochs >= budget_epochs:
            break
        train_s += epoch()
        epochs += 1
        record()
    return {
        "curve": curve,
        "time_to_target_s": None if hit is None else hit["time_s"],
        "epochs_to_target": None if hit is None else hit["epochs"],
        "final_loss_at_budget": None if at_budget is None else at_budget["loss"],
        "final_accuracy_at_budget": None if at_budget is None else at_budget["accuracy"],
        "budget_examples": budget_epochs * n,
        "compile_s": compile_s,
        "first_epoch_s": first,
        "train_s": train_s,
        "epochs": epochs,
        "samples_per_s": epochs * n / max(train_s, 1e-12),
        "final_test_accuracy": curve[-1]["test_accuracy"],
    }
