"""Shared test configuration: strict JAX numerics and a fresh-key fixture."""

import os

# Eight virtual CPU devices so the sharding tests have a mesh to shard over. Must be set
# before JAX initialises its backends.
os.environ.setdefault("JAX_NUM_CPU_DEVICES", "8")

import itertools  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def getkey():
    """Returns a function that hands out a new PRNG key on every call."""
    counter = itertools.count()
    root = jax.random.key(0)
    return lambda: jax.random.fold_in(root, next(counter))
