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


def eval_batch_size(batch_size: Any, n: int) -> int:
    if batch_size is None:
        return min(n, DEFAULT_EVAL_BATCH)
    return _checks.check_batch_size("batch_size", batch_size, n)


def evaluate(
    state: TrainState,
    x: Any,
    y: Any,
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
      x: ``[n, ...]`` inputs.
      y: ``[n, ...]`` targets.
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
    x, y, _ = validate.labelled(state, x, y, loss_fn)
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

    ``batch_size``, ``devices`` and ``use_ema`` are as in :func:`evaluate`.

    Raises:
      TypeError: inside ``jax.jit`` / ``jax.grad``: use ``fnn.train.predict_step(state, x)``,
        which is pure, there.
    """
    validate.check_state(state, "predict")
    validate.check_not_traced("x", x, "predict")
    if _checks.check_bool("use_ema", use_ema):
        state = state.with_ema_params()
    x = validate.as_data("x", x)
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


__all__ = ["DEFAULT_EVAL_BATCH", "Evaluator", "evaluate", "predict"]
