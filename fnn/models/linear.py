"""Linear and logistic regression as Flax modules."""

import flax.linen as nn
import jax

from fnn._checks import check_int


def flatten(x: jax.Array) -> jax.Array:
    """Flattens every axis but the leading batch axis: ``[B, ...] -> [B, prod(...)]``."""
    return x.reshape((x.shape[0], -1))


class LinearRegression(nn.Module):
    """Affine map ``y = x W + b``.

    Attributes:
      outputs: number of regression targets.

    Input ``x: <float>[batch, ...]`` (flattened to ``[batch, features]``); output
    ``<float32>[batch, outputs]``.
    """

    outputs: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train  # no dropout or other train-time behaviour
        return nn.Dense(self.outputs)(flatten(x))


class LogisticRegression(nn.Module):
    """Multinomial logistic regression; returns logits, not probabilities.

    Attributes:
      classes: number of classes (>= 2). Two classes give a single logit
        (``<float32>[batch, 1]``, for ``binary_cross_entropy``); more give
        ``<float32>[batch, classes]`` (for ``sparse_categorical_cross_entropy``).
    """

    classes: int

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train
        check_int("classes", self.classes, minimum=2)
        return nn.Dense(1 if self.classes == 2 else self.classes)(flatten(x))
