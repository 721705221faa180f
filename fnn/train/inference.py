"""evaluate and predict: the model in inference mode over batches, one compiled program each."""

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from fnn import _checks
from fnn import metrics as metrics_lib
from fnn.losses import LossFn, get_loss
from fnn.parallel import Placement, check_same_everywhere, placement, to_host
from fnn.train import data_tree, programs, validate
from fnn.train.plan import padded_batches
from fnn.train.sources import IterableBatches, is_batch_iterable, prefetch
from fnn.train.state import TrainState
from fnn.train.step import summarize

DEFAULT_EVAL_BATCH = 1024


class Evaluator:
    """A labelled set on the device, in ``[steps, batch]`` batches, evaluated as often as asked
    (``fit`` evaluates its validation data after every epoch)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch: int, loss_fn, metrics,
                 place: Placement):  # fmt: skip
        (xs, ys), mask = padded_batches((x, y), batch)
        self.args = place.put_batches((xs, ys, mask), axis=1, batch=batch)
        self.place = place
        self.static = dict(loss_fn=loss_fn, metrics=metrics)

    def __call__(self, state: TrainState) -> tuple[Any, float]:
        """``(sums, seconds spent compiling)`` of the loss and metrics of ``state``'s model."""
        before = programs.compile_seconds()
        state = self.place.put_replicated(state)
        sums = programs.run(programs.eval_batches, (state, *self.args), self.static)
        return sums, programs.compile_seconds() - before


ITERABLE_CHUNK = 16  # batches of an iterable evaluated per compiled call


def _iterable(x: Any, batch_size: Any) -> IterableBatches:
    """The source of an iterable ``x`` given to predict (one pass)."""
    if batch_size is not None:
        raise ValueError(
            f"batch_size: an iterable x sets its own batch size; expected batch_size=None, got "
            f"{batch_size!r}"
        )
    return IterableBatches(x, steps_per_epoch=None)


def _chunks(source: IterableBatches, place: Placement):
    """The source's batches on the device, ``ITERABLE_CHUNK`` at a time, the next copied while
    the device works."""
    put = lambda chunk: place.put_batches(chunk, axis=1, batch=source.batch)
    return prefetch(source.chunks(1, size=ITERABLE_CHUNK), put)


class IterableEvaluator:
    """Validation batches from an iterable that can be iterated again (a list, a loader),
    evaluated after every epoch: one pass each time."""

    def __init__(self, data: Any, loss_fn, metrics, place: Placement):
        self.data, self.place = data, place
        self.static = dict(loss_fn=loss_fn, metrics=metrics)

    def __call__(self, state: TrainState) -> tuple[Any, float]:
        before = programs.compile_seconds()
        sums = _eval_source(state, IterableBatches(self.data, steps_per_epoch=None,
                                                   name="validation_data"),
                            self.static, self.place)  # fmt: skip
        return sums, programs.compile_seconds() - before


def _eval_source(state: TrainState, source: IterableBatches, static: dict, place: Placement):
    """Loss and metric sums over one pass of ``source``."""
    state = place.put_replicated(state)
    sums = None
    for chunk in _chunks(source, place):
        part = programs.run(programs.eval_batches, (state, *chunk), static)
        sums = part if sums is None else metrics_lib.merge(sums, part)
    return sums


def eval_batch_size(batch_size: Any, n: int) -> int:
    if batch_size is None:
        return min(n, DEFAULT_EVAL_BATCH)
    return _checks.check_batch_size("batch_size", batch_size, n)


def evaluate(
    state: TrainState,
    x: Any,
    y: Any = None,
    *,
    loss: str | LossFn,
    metrics: Sequence[str | metrics_lib.Metric] = (),
    batch_size: int | str | None = None,
    devices: Sequence[jax.Device] | None = None,
    use_ema: bool = False,
) -> dict[str, Any]:
    """Loss and metrics of ``state``'s model on ``(x, y)``, in inference mode.

    Args:
      state: a trained (or fresh) state.
      x: ``[n, ...]`` inputs (or a pytree of them), or an iterable of ``(x, y)`` /
        ``(x, y, mask)`` batches as ``fit`` takes (read once).
      y: ``[n, ...]`` targets (or a pytree); None for an iterable ``x``.
      loss: a per-example loss or its name.
      metrics: metric names or ``fnn.metrics.Metric`` values.
      batch_size: examples per compiled step (default ``min(n, 1024)``); results do not depend
        on it.
      devices: devices to split batches over (default: all; see ``fnn.parallel``).
      use_ema: evaluate the moving average of the weights (``TrainState.create(...,
        ema_decay=...)``) instead of the weights themselves.

    Returns:
      ``{"loss": float, <metric>: value}``.

    Raises:
      TypeError: inside ``jax.jit`` / ``jax.grad`` (use ``fnn.train.eval_step`` there).
    """
    validate.check_state(state, "evaluate")
    validate.check_not_traced("x", x, "evaluate")
    validate.check_not_traced("y", y, "evaluate")
    if _checks.check_bool("use_ema", use_ema):
        state = state.with_ema_params()
    loss_fn = get_loss(loss)
    metrics = metrics_lib.get_metrics(metrics)
    if is_batch_iterable(x):
        source, _ = validate.iterable_inputs(
            state, x, y, loss_fn, batch_size=batch_size, drop_remainder=False,
            steps_per_epoch=None, epochs=None, metrics=metrics,
        )  # fmt: skip
        place = placement(_checks.check_devices("devices", devices))
        static = dict(loss_fn=loss_fn, metrics=metrics)
        return summarize(_eval_source(state, source, static, place), metrics)
    x, y, _ = validate.labelled(state, x, y, loss_fn, metrics=metrics)
    devices = _checks.check_devices("devices", devices)
    named = data_tree.leaves_with_names("x", x)[0] + data_tree.leaves_with_names("y", y)[0]
    check_same_everywhere(**dict(named))
    batch = eval_batch_size(batch_size, data_tree.num_examples(x))
    sums, _ = Evaluator(x, y, batch, loss_fn, metrics, placement(devices))(state)
    return summarize(sums, metrics)


def predict(
    state: TrainState,
    x: Any,
    *,
    batch_size: int | str | None = None,
    devices: Sequence[jax.Device] | None = None,
    use_ema: bool = False,
) -> np.ndarray:
    """The model's outputs on ``x: [n, ...]`` in inference mode, as a NumPy array ``[n, ...]``.

    ``x`` may also be an iterable of batches, each ``x`` alone or a tuple ``(x, ...)`` whose
    other items are ignored; the outputs of all batches are concatenated. ``batch_size``,
    ``devices`` and ``use_ema`` are as in :func:`evaluate`.

    Raises:
      TypeError: inside ``jax.jit`` / ``jax.grad``: use ``fnn.train.predict_step(state, x)``,
        which is pure, there.
    """
    validate.check_state(state, "predict")
    validate.check_not_traced("x", x, "predict")
    if _checks.check_bool("use_ema", use_ema):
        state = state.with_ema_params()
    if is_batch_iterable(x):
        return _predict_iterable(state, x, batch_size, devices)
    x = data_tree.as_data("x", x)
    validate.facts(state, x)
    devices = _checks.check_devices("devices", devices)
    check_same_everywhere(**dict(data_tree.leaves_with_names("x", x)[0]))
    n = data_tree.num_examples(x)
    batch = eval_batch_size(batch_size, n)
    xs, _ = padded_batches(x, batch)
    place = placement(devices)
    args = (place.put_replicated(state), place.put_batches(xs, axis=1, batch=batch))
    out = programs.run(programs.predict_batches, args, {})
    return jax.tree_util.tree_map(lambda o: to_host(o).reshape(-1, *o.shape[2:])[:n], out)


def _predict_iterable(state, x, batch_size, devices) -> np.ndarray:
    """Outputs over an iterable whose batches are ``x`` alone, or tuples ``(x, ...)`` (the
    rest ignored)."""

    def as_labelled(batches):
        for b in batches:
            xb = data_tree.as_data("x", b[0] if isinstance(b, tuple | list) else b)
            yield xb, np.zeros((data_tree.num_examples(xb),), np.int32)

    source = _iterable(as_labelled(x), batch_size)
    validate.facts(state, source.first[0], "x: batch 0")
    place = placement(_checks.check_devices("devices", devices))
    state = place.put_replicated(state)
    parts = []
    for xs, _, masks in _chunks(source, place):
        out = programs.run(programs.predict_batches, (state, xs), {})
        keep = np.asarray(masks).reshape(-1) > 0
        flat = lambda o, keep=keep: to_host(o).reshape(-1, *o.shape[2:])[keep]
        parts.append(jax.tree_util.tree_map(flat, out))
    return jax.tree_util.tree_map(lambda *o: np.concatenate(o), *parts)


__all__ = ["DEFAULT_EVAL_BATCH", "Evaluator", "IterableEvaluator", "evaluate", "predict"]
