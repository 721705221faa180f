"""Multi-layer perceptron."""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from fnn._checks import check_unit_interval
from fnn.models.activations import Activation, get_activation
from fnn.models.linear import flatten


class MLP(nn.Module):
    """Dense layers with an activation and optional dropout after each hidden layer.

    Attributes:
      hidden: widths of the hidden layers, e.g. ``(256, 256)``.
      outputs: width of the output layer (logits or regression outputs).
      activation: name (``"relu"``, ``"tanh"``, ...) or callable applied after each hidden layer.
      dropout: probability of *dropping* a hidden unit during training (0 disables dropout).
      dtype: compute dtype, e.g. ``jnp.bfloat16`` for mixed precision (None: from the inputs
        and parameters); fit computes losses and metrics in float32 whatever it is.
      param_dtype: dtype of the parameters (float32 by default).

    Input ``x: <float>[batch, ...]`` (flattened); output ``<dtype>[batch, outputs]``.
    With ``train=True`` and ``dropout > 0`` the caller passes ``rngs={"dropout": key}``.
    """

    hidden: Sequence[int]
    outputs: int
    activation: str | Activation = "relu"
    dropout: float = 0.0
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        check_unit_interval("dropout", self.dropout)
        act = get_activation(self.activation)
        x = flatten(x)
        for width in self.hidden:
            x = act(nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype)(x))
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.outputs, dtype=self.dtype, param_dtype=self.param_dtype)(x)
