"""The data seam: where the batches of an epoch come from.

Nothing else in the engine knows which kind of source it reads. Every source has the epoch's
:class:`~fnn.train.plan.Plan` and one example batch ``(x[:1], y[:1])`` (host arrays, for the
shapes of the metric sums), and is one of two kinds:

* :class:`DeviceArrays`: the whole training set on the device. The epoch programs draw the
  permutation and gather every batch by index themselves, so nothing crosses to the host.
* :class:`HostArrays`: the training set in host memory. Each epoch's batches are gathered on the
  host in the order of the epoch's permutation and handed out ``K`` batches at a time
  (:meth:`HostArrays.chunks`); :func:`prefetch` copies the next chunk to the device while the
  device works on the current one.
"""

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import jax
import numpy as np

from fnn.parallel import Placement
from fnn.train import data_tree, programs
from fnn.train.plan import Plan, epoch_indices

PRNGKey = jax.Array
# xs: [K, B, ...], ys: [K, B, ...], masks: <float32>[K, B]
HostChunk = tuple[np.ndarray, np.ndarray, np.ndarray]


class EpochSource(Protocol):
    """What every source has (see the module docstring)."""

    plan: Plan
    example: tuple[np.ndarray, np.ndarray]


class DeviceArrays:
    """The training set, replicated on every device of the mesh.

    Attributes:
      x, y: ``[n, ...]`` device arrays; the caller's own ``jax.Array`` when it was already laid
        out so (nothing is copied).
      key: the run's shuffling key (an argument of the epoch programs).
      example: ``(x[:1], y[:1])`` as host arrays (given: slicing a device array costs a
        dispatch).
      split: the sharding of a batch's example axis over the mesh, or None when batches are not
        split (one device, or a batch size the device count does not divide).
    """

    def __init__(self, x, y, plan: Plan, key: PRNGKey, place: Placement, *, example):
        self.plan, self.key, self.example = plan, key, example
        self.x, self.y = place.put_replicated((x, y))
        self.split = place.batch_axis(0, plan.batch) if place.splits(plan.batch) else None


class HostArrays:
    """The training set in host memory, handed out in the order of each epoch's permutation."""

    def __init__(self, x: Any, y: Any, plan: Plan, key: PRNGKey):
        self.x, self.y, self.plan, self.key = x, y, plan, key
        self.example = (data_tree.head(x), data_tree.head(y))

    def indices(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """``idx: <int32>[steps, batch]`` and ``mask: <float32>[steps, batch]`` of ``epoch``."""
        idx, mask = programs.run(epoch_indices, (self.key, np.int32(epoch)), dict(plan=self.plan))
        return jax.device_get((idx, mask))

    def chunks(
        self, epoch: int, *, size: int, stop_after: int | None = None
    ) -> Iterator[HostChunk]:
        """The batches of ``epoch`` as host chunks of ``size`` batches (the last may be shorter).

        Lazy: a chunk is gathered only when it is asked for. ``stop_after`` ends the epoch after
        that many batches. An unpadded full batch is the data itself (a view, not a copy).
        """
        if self.plan.full_batch and not self.plan.padded:
            whole = data_tree.tree_map(lambda a: a[None], (self.x, self.y))
            yield *whole, np.ones((1, self.plan.n), np.float32)
            return
        idx, mask = self.indices(epoch)
        steps = self.plan.steps if stop_after is None else min(stop_after, self.plan.steps)
        for begin in range(0, steps, size):
            i, m = idx[begin : min(begin + size, steps)], mask[begin : min(begin + size, steps)]
            yield data_tree.take(self.x, i), data_tree.take(self.y, i), m


def prefetch(items: Iterable[Any], put: Callable[[Any], Any]) -> Iterator[Any]:
    """Yields ``put(item)`` for each item, putting the next one while the caller works.

    The next item is read and put when the caller asks for it, right after it has dispatched
    work on the current one, so a host-to-device copy overlaps the device's computation (double
    buffering).
    """
    it = iter(items)
    done = object()
    item = next(it, done)
    while item is not done:
        yield put(item)
        item = next(it, done)


__all__ = ["DeviceArrays", "EpochSource", "HostArrays", "HostChunk", "prefetch"]
