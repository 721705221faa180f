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
* :class:`IterableBatches`: batches read from an iterable (a generator, a Grain loader), checked
  against the first one and handed out ``K`` at a time like :class:`HostArrays`' chunks; they
  can be read only once, so a replay uses the chunks the runner kept.
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
      process_local: ``x`` and ``y`` are this process's own rows of the training set
        (``fnn.parallel.Placement.put_process_local``), not all of it.
      split: the sharding of a batch's example axis over the mesh, or None when batches are not
        split (one device, or a batch size the device count does not divide).
    """

    def __init__(self, x, y, plan: Plan, key: PRNGKey, place: Placement, *, example,
                 process_local: bool = False):  # fmt: skip
        self.plan, self.key, self.example = plan, key, example
        if process_local:  # each process gave its own rows: one global array, split by rows
            self.x, self.y = place.put_process_local((x, y))
        else:
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


class BatchError(ValueError):
    """A batch of an iterable that does not match the first one (or is not a batch at all).

    ``fit`` raises it with the state it reached before that batch, nothing of the bad batch
    applied.

    Attributes:
      index: 0-based position of the batch in its epoch.
      epoch: the 1-based epoch (set by ``fit``).
      state: the state after the batches before it (set by ``fit``).
      history: the records of the epochs completed before (set by ``fit``).
    """

    def __init__(self, message: str, index: int):
        super().__init__(message)
        self.index = index
        self.epoch = self.state = self.history = None


def is_batch_iterable(data: Any) -> bool:
    """Whether ``data`` is an iterable of batches rather than in-memory arrays: anything
    iterable that is not an array, a dict or a tuple, and not a list of arrays or numbers (a
    list of ``(x, y)`` tuples is an iterable of batches)."""
    if isinstance(data, np.ndarray | jax.Array | dict | tuple | str | bytes):
        return False
    if isinstance(data, list):
        return bool(data) and isinstance(data[0], tuple | list) and not data_tree.is_leaf(data)
    return isinstance(data, Iterable)


class IterableBatches:
    """Batches read from an iterable: a generator, a list of batches, a ``grain.DataLoader``,
    anything yielding ``(x, y)`` or ``(x, y, mask)`` with ``x`` and ``y`` arrays or pytrees of
    NumPy arrays sharing their leading (batch) axis, and ``mask: [B]`` 1 for real examples.

    The first batch fixes the structure, the trailing shapes and the dtypes, and its size ``B``
    the batch size. A later batch may be smaller (a ragged last batch): it is padded to ``B``
    with masked rows, exactly as a partial in-memory batch. Anything else that differs raises
    :class:`BatchError` naming the batch.

    Epochs: without ``steps_per_epoch`` an epoch is one pass over ``iter(data)`` (so ``data``
    must be iterable again for a second epoch: a list or a loader, not a generator); with it,
    each epoch takes the next ``steps_per_epoch`` batches, starting a new pass over ``data``
    when one ends (a generator that ends raises :class:`BatchError`).
    """

    def __init__(self, data: Any, *, steps_per_epoch: int | None, name: str = "x"):
        self.data, self.steps_per_epoch, self.name = data, steps_per_epoch, name
        self.one_pass = isinstance(data, Iterator)  # a generator: iterated once only
        self._it = iter(data)
        try:
            raw = next(self._it)
        except StopIteration:
            raise ValueError(
                f"{name}: the iterable yielded no batches; expected at least one"
            ) from None
        self.first = self._unpack(raw, 0)
        x, y, mask = self.first
        self.batch = data_tree.num_examples(x)
        self._tree = jax.tree_util.tree_structure((x, y))
        self._specs = [(a.shape[1:], a.dtype) for a in jax.tree_util.tree_leaves((x, y))]
        self.example = (data_tree.head(x), data_tree.head(y))
        self.batch_bytes = data_tree.nbytes((x, y))
        self._buffered = True  # the first batch is read and not yet trained on

    def get_state(self) -> Any:
        """The position of the underlying iterator (a Grain iterator's ``get_state()``), or None
        when it keeps none (a generator, a list) or is restarted each epoch (no
        ``steps_per_epoch``, so the position at an epoch's end says nothing)."""
        get = getattr(self._it, "get_state", None)
        if get is None or self.steps_per_epoch is None:
            return None
        return {"iterator": get()}

    def set_state(self, state: Any) -> None:
        """Continues from a position :meth:`get_state` gave (a resumed run)."""
        it = iter(self.data)
        set_state = getattr(it, "set_state", None)
        if set_state is None:
            raise ValueError(
                f"resume_from: the checkpoint holds the position of an input pipeline, but "
                f"{self.name} ({type(self.data).__name__}) cannot be set to it"
            )
        set_state(state["iterator"])
        self._it, self._buffered = it, False  # the first batch, read to check it, is dropped

    def _unpack(self, raw: Any, index: int):
        """``(x, y, mask)`` of one raw batch as NumPy, checked like in-memory data."""
        where = f"{self.name}: batch {index}"
        if not isinstance(raw, tuple | list) or len(raw) not in (2, 3):
            hint = ""
            if isinstance(raw, dict):  # e.g. the examples of tfds.data_source, one at a time
                hint = (
                    "; this looks like one example of a dataset, not a batch: give fit a loader "
                    "of batches, e.g. fnn.data.grain_loader(name, batch_size=32) for a TFDS or "
                    "bundled dataset"
                )
            got = type(raw).__name__
            raise BatchError(f"{where}: expected a tuple (x, y) or (x, y, mask), got {got}{hint}",
                             index)  # fmt: skip
        x = data_tree.as_data(f"{where} x", raw[0])
        y = data_tree.as_data(f"{where} y", raw[1])
        data_tree.check_pair(x, y, f"{where} x", f"{where} y")
        n = data_tree.num_examples(x)
        mask = np.ones((n,), np.float32) if len(raw) == 2 else np.asarray(raw[2], np.float32)
        if mask.shape != (n,):
            raise BatchError(f"{where} mask: expected shape ({n},), got {mask.shape}", index)
        return x, y, mask

    def _checked(self, raw: Any, index: int):
        """A later batch, checked against the first and padded to its size."""
        x, y, mask = self._unpack(raw, index)
        where = f"{self.name}: batch {index}"
        if jax.tree_util.tree_structure((x, y)) != self._tree:
            raise BatchError(
                f"{where}: its structure {jax.tree_util.tree_structure((x, y))} differs from the "
                f"first batch's {self._tree}",
                index,
            )
        n = data_tree.num_examples(x)
        for a, (shape, dtype) in zip(jax.tree_util.tree_leaves((x, y)), self._specs,
                                     strict=True):  # fmt: skip
            if a.shape[1:] != shape or a.dtype != dtype:
                raise BatchError(
                    f"{where}: has an array {a.dtype}{list(a.shape)} where the first batch had "
                    f"{dtype}{['B', *shape]}",
                    index,
                )
        if n > self.batch:
            raise BatchError(
                f"{where}: has {n} examples, more than the first batch's {self.batch}", index
            )
        if n < self.batch:  # a ragged batch: pad with masked copies of its first row
            pad = self.batch - n
            grow = lambda a: np.concatenate([a, np.repeat(a[:1], pad, axis=0)])
            x, y = data_tree.tree_map(grow, x), data_tree.tree_map(grow, y)
            mask = np.concatenate([mask, np.zeros((pad,), np.float32)])
        return x, y, mask

    def _batches(self, epoch: int) -> Iterator[tuple[Any, Any, np.ndarray]]:
        if self._buffered:
            self._buffered = False
            yield self.first
            start = 1
        else:
            if self.steps_per_epoch is None:
                if self.one_pass:
                    raise BatchError(
                        f"{self.name}: a generator yields its batches once and was used up in "
                        f"the first epoch; give steps_per_epoch, or an iterable that can be "
                        f"iterated again (a list, a grain.DataLoader)",
                        0,
                    )
                self._it = iter(self.data)
            start = 0
        limit = self.steps_per_epoch
        index = start
        while limit is None or index < limit:
            try:
                raw = next(self._it)
            except StopIteration:
                if limit is None:
                    return
                if self.one_pass:
                    raise BatchError(
                        f"{self.name}: ran out of batches at batch {index} of epoch {epoch} "
                        f"(steps_per_epoch={limit}); it yields fewer batches than the epochs "
                        f"need",
                        index,
                    ) from None
                self._it = iter(self.data)  # a new pass
                continue
            yield self._checked(raw, index)
            index += 1

    def chunks(
        self, epoch: int, *, size: int, stop_after: int | None = None
    ) -> Iterator[HostChunk]:
        """The batches of ``epoch``, stacked ``size`` at a time (``[K, B, ...]``). A bad batch
        ends the chunk it is in early: the good batches before it come first, then the
        :class:`BatchError`."""
        del stop_after  # an iterable cannot be read again: replays use kept chunks instead
        batches = self._batches(epoch)
        while True:
            group, error = [], None
            try:
                for _ in range(size):
                    group.append(next(batches))
            except StopIteration:
                pass
            except BatchError as err:
                error = err
            if group:
                stacked = jax.tree_util.tree_map(lambda *a: np.stack(a), *group)
                yield stacked
            if error is not None:
                raise error
            if len(group) < size:
                return


__all__ = [
    "BatchError",
    "DeviceArrays",
    "EpochSource",
    "HostArrays",
    "HostChunk",
    "IterableBatches",
    "is_batch_iterable",
    "prefetch",
]
