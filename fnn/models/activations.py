"""Activation functions looked up by name."""

from collections.abc import Callable

import flax.linen as nn
import jax

from fnn._checks import check_choice, check_type

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
      TypeError: for something that is neither a string nor callable.
      ValueError: for an unknown name.
    """
    if callable(activation):
        return activation
    check_type("activation", activation, str, "a name or a callable")
    return ACTIVATIONS[check_choice("activation", activation.lower(), sorted(ACTIVATIONS))]
