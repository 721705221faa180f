"""How an epoch's examples become batches: the plan, the epoch's permutation, the padding.

With ``n`` examples and batch size ``B``, ``drop_remainder=False`` runs ``ceil(n / B)`` steps per
epoch and pads the last batch with masked rows, so its loss is exactly the mean over its real
examples; ``drop_remainder=True`` runs ``floor(n / B)`` steps and skips the last ``n mod B``
examples of each epoch's permutation.

The permutation of epoch ``e`` is ``jax.random.permutation(fold_in(key, e), n)`` with ``key``
the run's shuffling key, ``jax.random.key(seed)``; every strategy visits the same batches in the
same order.
"""

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnn.train import data_tree

PRNGKey = jax.Array


@dataclass(frozen=True)
class Plan:
    """Static shape of one epoch: how ``n`` examples become ``steps`` batches of ``batch``."""

    n: int
    batch: int
    steps: int
    padded: bool  # the last batch has masked rows
    shuffle: bool

    @property
    def full_batch(self) -> bool:
        return self.batch == self.n

    @classmethod
    def make(cls, n: int, batch: int, *, drop_remainder: bool, shuffle: bool) -> "Plan":
        padded = (n % batch != 0) and not drop_remainder
        steps = n // batch + (1 if padded else 0)
        return cls(n=n, batch=batch, steps=steps, padded=padded, shuffle=shuffle)


def epoch_key(key: PRNGKey, epoch: jax.Array) -> PRNGKey:
    """The key of the permutation of ``epoch``: ``fold_in(key, epoch)``.

    Args:
      key: the run's shuffling key, ``jax.random.key(seed)`` (a typed PRNG key).
      epoch: ``<int32>[]`` 1-based epoch number.
    """
    return jax.random.fold_in(key, epoch)


def epoch_indices(key: PRNGKey, epoch: jax.Array, plan: Plan) -> tuple[jax.Array, jax.Array]:
    """The epoch's batches as example indices and a mask.

    Computed inside the compiled programs, so an epoch costs no separate dispatch for its key.

    Args:
      key: the run's shuffling key (see :func:`epoch_key`).
      epoch: ``<int32>[]`` 1-based epoch number.
      plan: the epoch's static shape.

    Returns:
      ``idx: <int32>[steps, batch]`` and ``mask: <float32>[steps, batch]`` (0 on padded rows,
      whose index is 0).
    """
    if plan.shuffle:
        order = jax.random.permutation(epoch_key(key, epoch), plan.n)
    else:
        order = jnp.arange(plan.n)
    order = order.astype(jnp.int32)
    size = plan.steps * plan.batch
    if size > plan.n:
        order = jnp.concatenate([order, jnp.zeros((size - plan.n,), jnp.int32)])
    mask = (jnp.arange(size) < plan.n).astype(jnp.float32)
    return order[:size].reshape(plan.steps, plan.batch), mask.reshape(plan.steps, plan.batch)


def padded_batches(data: Any, batch: int) -> tuple[Any, np.ndarray]:
    """Host data (an array or pytree of ``[n, ...]`` arrays) as ``[steps, batch, ...]``
    batches in order, plus their mask.

    The last batch is padded with copies of the first example, masked out: ``mask:
    <float32>[steps, batch]``. Used for evaluation and prediction, where order is kept.
    """
    n = data_tree.num_examples(data)
    steps = math.ceil(n / batch)
    pad = steps * batch - n

    def batched(a):
        if pad:
            a = np.concatenate([a, np.repeat(a[:1], pad, axis=0)])
        return a.reshape(steps, batch, *a.shape[1:])

    mask = (np.arange(steps * batch) < n).astype(np.float32).reshape(steps, batch)
    return data_tree.tree_map(batched, data), mask


__all__ = ["Plan", "epoch_indices", "epoch_key", "padded_batches"]
