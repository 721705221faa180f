"""Activation functions looked up by name."""

from collections.abc import Callable

import flax.linen as nn
import jax

Activation = Callable[[jax.Array], jax.Array]

ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": nn.sigmoid,
    "tanh": nn.tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "softmax": nn.softmax,
    "linear": lambda x: x,
}


def get_activation(activation: str | Activation) -> Activation:
    """Returns the activation function named ``activation``, or ``activation`` if callable.

    Args:
      activation: one of ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"gelu"``, ``"softmax"``,
        ``"linear"``, or any callable mapping an array to an array of the same shape.

    Raises:
      ValueError: for an unknown name.
      TypeError: for something that is neither a string nor callable.
    """
    if callable(activation):
        return activation
    if isinstance(activation, str):
        try:
            return ACTIVATIONS[activation.lower()]
        except KeyError:
            raise ValueError(
                f"activation: unknown name {activation!r}; expected one of "
                f"{sorted(ACTIVATIONS)} or a callable"
            ) from None
    raise TypeError(f"activation: expected a name or a callable, got {type(activation).__name__}")
