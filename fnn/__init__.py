"""fnn: functional neural networks on JAX."""

__version__ = "0.1.0"
