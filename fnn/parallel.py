"""Data parallelism with JAX's own sharding: one mesh axis ``"data"`` over the devices.

The training state is replicated on every device; each batch is split along its example axis,
so every device computes the gradient of its slice and XLA's SPMD partitioner inserts the
all-reduce. Device-resident training data is replicated, and each device gathers only its own
rows of every batch, so shuffling needs no communication.

A batch is split only when the number of devices divides its size; otherwise (batch 1 on 8
devices, say) the step runs replicated, with the same result.

Several hosts: call ``jax.distributed.initialize()`` on every process before anything else,
then run the same program everywhere. Either give ``fit`` / ``evaluate`` / ``predict`` the same
arrays on every process (each process places its own copy; :func:`check_same_everywhere`
says so when they differ), or (``fit(..., process_local=True)``) give each process only its own
examples: the global training set is their concatenation in process order, assembled on the
mesh with ``jax.make_array_from_process_local_data`` (:meth:`Placement.put_process_local`),
each process's rows on its own devices. The mesh then spans every device of every process, and XLA's
collectives (Gloo on CPU, NCCL on GPU, ICI on TPU) carry the gradient all-reduce.
"""

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all devices)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices: expected at least one device, got none")
    return jax.make_mesh((len(devices),), (AXIS,), devices=devices, axis_types=(AxisType.Auto,))


@dataclass(frozen=True)
class Placement:
    """Where arrays live for one ``fit`` / ``evaluate`` call.

    Attributes:
      mesh: the data mesh.
    """

    mesh: Mesh

    @property
    def size(self) -> int:
        return self.mesh.size

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    def splits(self, batch: int) -> bool:
        """Whether a batch of ``batch`` examples is split across the devices."""
        return self.size > 1 and batch % self.size == 0

    def batch_axis(self, axis: int, batch: int) -> NamedSharding:
        """Sharding that splits ``axis`` (the example axis) when the batch divides evenly."""
        if not self.splits(batch):
            return self.replicated
        return NamedSharding(self.mesh, P(*([None] * axis), AXIS))

    def put_replicated(self, tree):
        """A copy of every device of the mesh (arrays already placed so are kept as they are)."""
        return _put(tree, self.replicated)

    def put_process_local(self, tree, *, axis: int = 0):
        """One global array per leaf from every process's local rows (``axis`` of length
        ``n_local``, the same everywhere): ``n_local * processes`` long, split along ``axis``,
        each process's rows on its own devices."""
        sharding = NamedSharding(self.mesh, P(*([None] * axis), AXIS))
        put = lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a))
        return jax.tree_util.tree_map(put, tree)

    def put_batches(self, tree, *, axis: int, batch: int):
        """Places arrays whose ``axis`` is the example axis, split across devices if possible."""
        return _put(tree, self.batch_axis(axis, batch))


def _put(tree, sharding: NamedSharding):
    """``jax.device_put(tree, sharding)`` that leaves alone the arrays already laid out so.

    ``fit`` places its state and data at every call; a state that comes back from a previous
    call is already in place, and re-placing its leaves would cost a copy each.
    """
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    moving = [
        i
        for i, leaf in enumerate(leaves)
        if not (isinstance(leaf, jax.Array) and _placed(leaf.sharding, sharding, leaf.ndim))
    ]
    if moving:
        moved = jax.device_put([leaves[i] for i in moving], sharding)
        for i, leaf in zip(moving, moved, strict=True):
            leaves[i] = leaf
    return jax.tree_util.tree_unflatten(treedef, leaves)


@functools.lru_cache(maxsize=256)
def _placed(current, target: NamedSharding, ndim: int) -> bool:
    return current.is_equivalent_to(target, ndim)


def placement(devices: Sequence[jax.Device] | None = None) -> Placement:
    """The placement over ``devices`` (default: all devices)."""
    return _placement(None if devices is None else tuple(devices))


@functools.lru_cache(maxsize=64)
def _placement(devices: tuple[jax.Device, ...] | None) -> Placement:
    return Placement(data_mesh(devices))  # building a mesh costs ~0.1 ms: once per device set


def is_main_process() -> bool:
    """Whether this is process 0 (the one that prints progress), True on a single host."""
    return jax.process_index() == 0


def check_same_everywhere(**arrays: np.ndarray) -> None:
    """Checks that every process holds the same ``arrays`` (a no-op on a single process).

    Each process hashes its arrays (BLAKE2b over the bytes, shape and dtype) and the digests
    are gathered across processes, so a mismatch is caught before any training program runs.

    Raises:
      ValueError: naming the first argument that differs between processes.
    """
    if jax.process_count() == 1 or not arrays:
        return
    digests = np.stack([_digest(a) for a in arrays.values()])  # [arrays, 2]
    every = np.asarray(multihost_utils.process_allgather(digests))  # [processes, arrays, 2]
    for i, name in enumerate(arrays):
        if not (every[:, i] == every[0, i]).all():
            differ = [p for p in range(every.shape[0]) if (every[p, i] != every[0, i]).any()]
            raise ValueError(
                f"{name}: differs between processes (process 0 and process(es) {differ}); "
                f"with several processes every process must pass the same {name}"
            )


def global_examples(n_local: int, name: str = "x") -> int:
    """The size of a training set of which every process holds ``n_local`` examples.

    Raises:
      ValueError: when the processes hold different numbers of examples, or a number their
        devices do not divide (each device holds the same number of rows).
    """
    counts = [n_local]
    if jax.process_count() > 1:
        counts = np.asarray(multihost_utils.process_allgather(np.int64(n_local))).reshape(-1)
        counts = [int(c) for c in counts]
    if len(set(counts)) > 1:
        raise ValueError(
            f"{name}: with process_local=True every process must hold as many examples; they "
            f"hold {counts}"
        )
    local_devices = jax.local_device_count()
    if n_local % local_devices:
        raise ValueError(
            f"{name}: with process_local=True each process's examples are split evenly over its "
            f"{local_devices} devices; {n_local} is not a multiple of {local_devices}"
        )
    return n_local * len(counts)


def _digest(a: np.ndarray) -> np.ndarray:
    h = hashlib.blake2b(digest_size=8)
    h.update(repr((a.shape, str(a.dtype))).encode())
    h.update(np.ascontiguousarray(a).data)
    return np.frombuffer(h.digest(), np.uint32)


def to_host(x: jax.Array) -> np.ndarray:
    """``x`` as a NumPy array, gathered from every process when it spans several."""
    if x.is_fully_addressable or x.is_fully_replicated:
        return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
