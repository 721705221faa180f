"""Shared test configuration: strict JAX numerics and a fresh-key fixture."""

import itertools

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def getkey():
    """Returns a function that hands out a new PRNG key on every call."""
    counter = itertools.count()
    root = jax.random.key(0)
    return lambda: jax.random.fold_in(root, next(counter))


class CompileCounter:
    """Counts XLA compilations logged while active (``jax.log_compiles``)."""

    def __init__(self, caplog):
        self._caplog = caplog

    def count(self, name: str = "") -> int:
        """Compilations so far of functions whose name contains ``name``."""
        return sum(
            1
            for r in self._caplog.records
            if r.getMessage().startswith("Finished XLA compilation") and name in r.getMessage()
        )

    def names(self) -> list[str]:
        return [r.getMessage() for r in self._caplog.records if "XLA compilation" in r.getMessage()]


@pytest.fixture
def compiles(caplog):
    """Yields a CompileCounter; everything compiled inside the test is logged and counted."""
    caplog.set_level("WARNING")
    with jax.log_compiles():
        yield CompileCounter(caplog)
