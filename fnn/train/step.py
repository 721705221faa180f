"""Pure train / eval / predict steps.

A batch is a tuple ``(x, y)`` or ``(x, y, mask)`` with ``x: [batch, ...]``, ``y: [batch, ...]``
(each an array or a pytree of arrays)
and ``mask: <float32>[batch]`` (1 for a real example, 0 for padding). The loss of a step is the
mean of the per-example loss over the real examples, ``sum(loss * mask) / sum(mask)``, so a
padded last batch trains exactly as the same examples without padding would.

The steps return *sums* (see ``fnn.metrics``): ``{"loss": {"sum", "count"}, <metric>: ...}``,
which :func:`summarize` turns into numbers once the sums of an epoch are merged.

Jit them with the loss and metrics static and the state donated::

    step = jax.jit(train_step, static_argnames=("loss_fn", "metrics"), donate_argnames="state")
    state, sums = step(state, (x, y), loss_fn="cross_entropy", metrics=("accuracy",))
"""

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnn import metrics as metrics_lib
from fnn.losses import LossFn, get_loss
from fnn.train import data_tree
from fnn.train.state import TrainState

Batch = tuple[jax.Array, jax.Array] | tuple[jax.Array, jax.Array, jax.Array]
MetricSpec = Sequence[str | metrics_lib.Metric]


def _unpack(batch: Batch) -> tuple[jax.Array, jax.Array, jax.Array]:
    if not isinstance(batch, tuple | list) or len(batch) not in (2, 3):
        raise TypeError(f"batch: expected a tuple (x, y) or (x, y, mask), got {type(batch)}")
    if len(batch) == 2:
        x, y = batch
        mask = jnp.ones((data_tree.num_examples(x),), jnp.float32)
    else:
        x, y, mask = batch
    return x, y, mask


def _sums(loss_values, predictions, y, mask, metrics) -> dict[str, Any]:
    # where, not multiply: a padded row's loss must not leak in even when it is not finite.
    real = mask > 0
    sums = {"loss": {"sum": jnp.sum(jnp.where(real, loss_values, 0.0)), "count": jnp.sum(mask)}}
    sums.update(metrics_lib.update(metrics, predictions, y, mask))
    return sums


def train_step(
    state: TrainState, batch: Batch, loss_fn: str | LossFn, metrics: MetricSpec = ()
) -> tuple[TrainState, dict[str, Any]]:
    """One gradient step on ``batch``.

    Args:
      state: the current state.
      batch: ``(x, y)`` or ``(x, y, mask)``, see the module docstring.
      loss_fn: a per-example loss (``fnn.losses``) or its name.
      metrics: metric names or ``fnn.metrics.Metric`` values to accumulate.

    Returns:
      ``(new_state, sums)``: the state after one update (and the model state the train-mode
      forward pass produced), and the sums of the loss and metrics computed on the predictions
      made *before* the update (with dropout active).
    """
    loss_fn = get_loss(loss_fn)
    metrics = metrics_lib.get_metrics(metrics)
    x, y, mask = _unpack(batch)
    step_key = state.step_key()

    def objective(params):
        predictions, model_state = state.model.apply(
            params, state.model_state, x, train=True, key=step_key
        )
        predictions = as_float32(predictions)
        values = loss_fn(predictions, y)
        total = jnp.sum(jnp.where(mask > 0, values * mask, 0.0))
        mean = total / jnp.maximum(jnp.sum(mask), 1.0)
        return mean, (values, predictions, model_state)

    grad_fn = jax.value_and_grad(objective, has_aux=True)
    (loss, (values, predictions, model_state)), grads = grad_fn(state.params)
    # What optax's GradientTransformationExtraArgs may ask for: the batch loss (e.g.
    # optax.contrib.reduce_on_plateau) and the loss as a function of the parameters (the line
    # search of optax.lbfgs). Transformations that take neither ignore them.
    extra = dict(value=loss, grad=grads, value_fn=lambda p: objective(p)[0])
    new_state = state.apply_gradients(grads, **extra).replace(model_state=model_state)
    return new_state, _sums(values, predictions, y, mask, metrics)


def as_float32(predictions: Any) -> Any:
    """Low-precision floating outputs (bfloat16, float16) as float32, so that losses and metric
    sums are computed in float32 whatever the model's compute dtype."""

    def cast(a):
        if jnp.issubdtype(a.dtype, jnp.floating) and jnp.finfo(a.dtype).bits < 32:
            return a.astype(jnp.float32)
        return a

    return jax.tree_util.tree_map(cast, predictions)


def eval_step(
    state: TrainState, batch: Batch, loss_fn: str | LossFn, metrics: MetricSpec = ()
) -> dict[str, Any]:
    """Loss and metric sums on ``batch`` with the model in inference mode (no dropout)."""
    loss_fn = get_loss(loss_fn)
    metrics = metrics_lib.get_metrics(metrics)
    x, y, mask = _unpack(batch)
    predictions, _ = state.model.apply(state.params, state.model_state, x, train=False)
    predictions = as_float32(predictions)
    return _sums(loss_fn(predictions, y), predictions, y, mask, metrics)


def predict_step(state: TrainState, x: jax.Array) -> jax.Array:
    """The model's outputs on ``x`` in inference mode."""
    return state.model.apply(state.params, state.model_state, x, train=False)[0]


def summarize(sums: Mapping[str, Any], metrics: MetricSpec = ()) -> dict[str, Any]:
    """Turns accumulated sums into ``{"loss": float, <metric>: value}`` (host values)."""
    metrics = metrics_lib.get_metrics(metrics)
    sums = jax.tree_util.tree_map(np.asarray, sums)  # cheaper than device_get on CPU (see fit)
    out: dict[str, Any] = {"loss": float(sums["loss"]["sum"] / max(sums["loss"]["count"], 1.0))}
    for name, value in metrics_lib.compute(metrics, sums).items():
        value = np.asarray(value)
        out[name] = float(value) if value.ndim == 0 else value
    return out
