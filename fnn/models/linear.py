"""Linear and logistic regression as Flax modules."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from fnn._checks import check_int


def flatten(x: jax.Array) -> jax.Array:
    """Flattens every axis but the leading batch axis: ``[B, ...] -> [B, prod(...)]``."""
    return x.reshape((x.shape[0], -1))


class LinearRegression(nn.Module):
    """Affine map ``y = x W + b``.

    Attributes:
      outputs: number of regression targets.
      dtype: compute dtype, e.g. ``jnp.bfloat16`` for mixed precision (None: from the inputs
        and parameters); fit computes losses and metrics in float32 whatever it is.
      param_dtype: dtype of the parameters (float32 by default).

    Input ``x: <float>[batch, ...]`` (flattened to ``[batch, features]``); output
    ``<dtype>[batch, outputs]``.
    """

    outputs: int = 1
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train  # no dropout or other train-time behaviour
        dense = nn.Dense(self.outputs, dtype=self.dtype, param_dtype=self.param_dtype)
        return dense(flatten(x))


class LogisticRegression(nn.Module):
    """Multinomial logistic regression; returns logits, not probabilities.

    Attributes:
      classes: number of classes (>= 2). Two classes give a single logit
        (``[batch, 1]``, for ``binary_cross_entropy``); more give ``[batch, classes]`` (for
        ``sparse_categorical_cross_entropy``).
      dtype: compute dtype, e.g. ``jnp.bfloat16`` for mixed precision (None: from the inputs
        and parameters); fit computes losses and metrics in float32 whatever it is.
      param_dtype: dtype of the parameters (float32 by default).
    """

    classes: int
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train
        check_int("classes", self.classes, minimum=2)
        width = 1 if self.classes == 2 else self.classes
        dense = nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype)
        return dense(flatten(x))
