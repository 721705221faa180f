"""Per-example losses.

Every loss maps a batch of predictions and targets to one value per example, ``<float32>[batch]``;
the caller reduces (``fnn.train`` takes the mean over the real, unpadded examples). So the mean
squared error of a batch is ``mean_squared_error(p, t).mean()``.

Shapes and label ranges are checked before any computation; label ranges only where the labels
are concrete (outside ``jax.jit``), since a traced array has no values to check.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import check_choice, check_type, describe, is_concrete

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def _match_targets(predictions: jax.Array, targets: jax.Array, name: str) -> jax.Array:
    """Returns ``targets`` shaped like ``predictions``; ``[B]`` targets match ``[B, 1]``."""
    if predictions.ndim < 1:
        raise ValueError(f"predictions: expected a batch axis, got shape {predictions.shape}")
    if targets.shape == predictions.shape:
        return targets
    if predictions.shape[-1:] == (1,) and targets.shape == predictions.shape[:-1]:
        return targets[..., None]
    also = f" or {predictions.shape[:-1]}" if predictions.shape[-1:] == (1,) else ""
    raise ValueError(
        f"{name}: expected shape {predictions.shape}{also} for predictions of shape "
        f"{predictions.shape}, got shape {targets.shape}"
    )


def _per_example(values: jax.Array) -> jax.Array:
    """Means over every axis but the batch axis: ``[B, ...] -> [B]``."""
    return values.reshape((values.shape[0], -1)).mean(axis=1)


def mean_squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Squared error averaged over the output axes: ``mean((p - t)**2)`` per example.

    Args:
      predictions: ``<float>[batch, ...]``.
      targets: same shape, or ``[batch]`` when predictions are ``[batch, 1]``.

    Returns:
      ``<float32>[batch]``.

    Example:
      >>> import jax.numpy as jnp
      >>> mean_squared_error(jnp.array([[1.0], [3.0]]), jnp.array([0.0, 1.0]))
      Array([1., 4.], dtype=float32)
    """
    predictions = jnp.asarray(predictions)
    targets = _match_targets(predictions, jnp.asarray(targets), "targets")
    return _per_example(jnp.square(predictions - targets.astype(predictions.dtype)))


def binary_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Sigmoid cross-entropy from logits, ``-y log s(z) - (1 - y) log(1 - s(z))``, per example.

    Computed as ``max(z, 0) - z y + log1p(exp(-|z|))``, finite for any finite logit.

    Args:
      logits: ``<float>[batch]`` or ``<float>[batch, k]`` (k independent binary outputs).
      labels: targets in [0, 1] (0/1 labels or probabilities), the shape of ``logits`` or
        ``[batch]`` for ``[batch, 1]`` logits.

    Returns:
      ``<float32>[batch]``, averaged over the k outputs.

    Raises:
      ValueError: on a shape mismatch, or concrete labels outside [0, 1].
    """
    logits = jnp.asarray(logits)
    labels = _match_targets(logits, jnp.asarray(labels), "labels")
    if is_concrete(labels) and labels.size:
        values = np.asarray(labels)
        lo, hi = float(values.min()), float(values.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"labels: expected values in [0, 1], got range [{lo}, {hi}]")
    y = labels.astype(logits.dtype)
    values = jnp.maximum(logits, 0) - logits * y + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    return _per_example(values)


def sparse_categorical_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy from logits and integer class labels, ``logsumexp(z) - z[y]``.

    Args:
      logits: ``<float>[batch, classes]``.
      labels: ``<int>[batch]`` in ``[0, classes)``.

    Returns:
      ``<float32>[batch]``.

    Raises:
      ValueError: on a shape mismatch or concrete labels outside ``[0, classes)``.
      TypeError: for non-integer labels.

    Example:
      >>> import jax.numpy as jnp
      >>> sparse_categorical_cross_entropy(jnp.zeros((1, 4)), jnp.array([2]))
      Array([1.3862944], dtype=float32)
    """
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"logits: expected <float>[batch, classes], got {describe(logits)}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(
            f"labels: expected <int>[{logits.shape[0]}] for logits {describe(logits)}, "
            f"got {describe(labels)}"
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"labels: expected integer class ids, got dtype {labels.dtype}")
    classes = logits.shape[1]
    if is_concrete(labels) and labels.size:
        values = np.asarray(labels)
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi >= classes:
            raise ValueError(
                f"labels: expected class ids in [0, {classes}), got range [{lo}, {hi}]"
            )
    log_z = jax.nn.logsumexp(logits, axis=1)
    picked = jnp.take_along_axis(logits, labels[:, None].astype(jnp.int32), axis=1)[:, 0]
    return log_z - picked


def l2_penalty(params) -> jax.Array:
    """``0.5 * sum(w**2)`` over every leaf of ``params``; its gradient is ``params`` itself.

    Add ``lam * l2_penalty(params)`` to a loss for coupled L2 regularisation (or use
    ``fnn.optim.sgd(..., weight_decay=lam)``, which adds ``lam * w`` to the gradient directly).
    """
    leaves = jax.tree_util.tree_leaves(params)
    return 0.5 * sum(jnp.sum(jnp.square(leaf)) for leaf in leaves)


LOSSES: dict[str, LossFn] = {
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "binary_cross_entropy": binary_cross_entropy,
    "bce": binary_cross_entropy,
    "sparse_categorical_cross_entropy": sparse_categorical_cross_entropy,
    "cross_entropy": sparse_categorical_cross_entropy,
}


def get_loss(loss: str | LossFn) -> LossFn:
    """Returns the per-example loss named ``loss`` (see ``LOSSES``), or ``loss`` if callable.

    Raises:
      TypeError: for something that is neither a string nor callable.
      ValueError: for an unknown name.
    """
    if callable(loss):
        return loss
    check_type("loss", loss, str, "a loss name or a callable")
    return LOSSES[check_choice("loss", loss, sorted(LOSSES))]
