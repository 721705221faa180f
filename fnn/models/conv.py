"""LeNet-style convolutional network."""

from collections.abc import Sequence

import flax.linen as nn
import jax

from fnn._checks import check_unit_interval
from fnn.models.activations import Activation, get_activation
from fnn.models.linear import flatten


class CNN(nn.Module):
    """Conv -> activation -> 2x2 max-pool blocks, then dense layers (LeNet-5 shape).

    Convolutions use ``SAME`` padding, so any image of at least ``2**len(channels)`` pixels a
    side works: 8x8x1 (digits), 28x28x1 (MNIST), 32x32x3 (CIFAR-10).

    Attributes:
      outputs: number of logits.
      channels: output channels of each conv block.
      dense: widths of the dense layers between the conv blocks and the output.
      kernel_size: side of the square convolution kernels.
      activation: name or callable used after every conv and hidden dense layer.
      dropout: drop probability before the output layer during training.

    Input ``x: <float>[batch, height, width, channels]``; output ``<float32>[batch, outputs]``.
    """

    outputs: int
    channels: Sequence[int] = (16, 32)
    dense: Sequence[int] = (128,)
    kernel_size: int = 3
    activation: str | Activation = "relu"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(
                f"x: CNN expects <float>[batch, height, width, channels], got shape {x.shape}"
            )
        check_unit_interval("dropout", self.dropout)
        act = get_activation(self.activation)
        for c in self.channels:
            x = act(nn.Conv(c, (self.kernel_size, self.kernel_size), padding="SAME")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
        x = flatten(x)
        for width in self.dense:
            x = act(nn.Dense(width)(x))
        if self.dropout > 0:
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.outputs)(x)
