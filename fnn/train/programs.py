"""The pure, jit-able bodies of training and inference, and the cache of their compiled programs.

Every body here is a pure function of arrays (the loss, metrics, plan and shardings are static
keyword arguments), compiled ahead of time by :func:`compiled`:

* :func:`fused_epoch`: a whole epoch on device-resident data (permutation, gather, ``lax.scan``
  over the steps);
* :func:`chunk`: a scan over ``K`` pre-gathered batches (streamed data);
* :func:`indexed_step`, :func:`chunk_step`, :func:`single_step`: one step, on a batch gathered on
  the device, taken from a streamed chunk, or given as it is;
* :func:`eval_batches`, :func:`predict_batches`: inference over ``[S, B, ...]`` batches.

The training bodies carry ``(state, sums, first_bad)``: the state, the loss and metric sums of
the epoch so far, and ``first_bad: <int32>[]``, the optimizer step at which the loss first was
NaN or Inf (-1: none yet). Steps are not frozen after it (a select over the whole state every
step cost a third of the step time at batch 1); the driver replays the epoch up to it instead.
"""

import collections
import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from fnn import metrics as metrics_lib
from fnn.train import data_tree
from fnn.train.plan import Plan, epoch_indices
from fnn.train.state import TrainState
from fnn.train.step import eval_step, predict_step, train_step

# ---------------------------------------------------------------------------- training bodies


def zero_sums(state: TrainState, x_example, y_example, loss_fn, metrics):
    """Zero loss and metric sums shaped like one step's on ``[1, ...]`` examples."""
    shapes = jax.eval_shape(
        lambda s, x, y: train_step(s, (x, y), loss_fn, metrics)[1], state, x_example, y_example
    )
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def tracked_step(carry, batch, loss_fn, metrics):
    """``train_step`` on ``carry = (state, sums, first_bad)``; records a first non-finite loss."""
    state, sums, first_bad = carry
    new_state, step_sums = train_step(state, batch, loss_fn, metrics)
    finite = jnp.isfinite(step_sums["loss"]["sum"])
    first_bad = jnp.where((first_bad < 0) & ~finite, state.step, first_bad)
    return new_state, metrics_lib.merge(sums, step_sums), first_bad


def _masked(batch, padded: bool):
    """``(x, y, mask)``, or ``(x, y)`` when no batch of the epoch is padded (the mask is all
    ones): XLA then folds the masking away, which saved 9-14% of the CNN's batch-1 step on
    CPU (A/B of the compiled step programs, medians of 15 interleaved rounds)."""
    return batch if padded else batch[:2]


def gather(x, y, i):
    """Rows ``i: <int>[batch]`` of every leaf of the device-resident ``x`` and ``y``."""
    rows = lambda a: jnp.take(a, i, axis=0, mode="clip")
    return data_tree.tree_map(rows, x), data_tree.tree_map(rows, y)


def fused_epoch(
    state, x, y, key, epoch, *, plan: Plan, loss_fn, metrics, unroll, split, stop_after
):
    """One whole epoch on device-resident data; returns ``(state, sums, first_bad)``.

    Args:
      state: the state at the start of the epoch.
      x, y: the whole training set, arrays or pytrees of ``[n, ...]`` arrays, on the device.
      key: the run's shuffling key; ``epoch``: ``<int32>[]`` 1-based epoch number.
      plan: the epoch's static shape.
      unroll: the ``lax.scan`` unroll factor.
      split: the sharding of a batch's example axis over the mesh (None on one device): the
        indices of every batch are split, so each device gathers only its own rows.
      stop_after: run only the first ``stop_after`` steps (None: all, and the returned state
        records ``epoch`` as completed: ``state.epoch == epoch``).
    """
    sums = zero_sums(state, data_tree.head(x), data_tree.head(y), loss_fn, metrics)
    carry = (state, sums, jnp.int32(-1))
    if plan.full_batch and not plan.padded:
        if split is not None:  # a local slice of the replicated data: no communication
            x = lax.with_sharding_constraint(x, split)
            y = lax.with_sharding_constraint(y, split)
        carry = tracked_step(carry, (x, y), loss_fn, metrics)  # no permutation, no gather
        return completed(flag_non_finite_state(carry), epoch)
    idx, mask = epoch_indices(key, epoch, plan)
    if stop_after is not None:
        idx, mask = idx[:stop_after], mask[:stop_after]
    carry = _scan_steps(carry, x, y, idx, mask, padded=plan.padded, loss_fn=loss_fn,
                        metrics=metrics, unroll=unroll, split=split)  # fmt: skip
    return carry if stop_after is not None else completed(flag_non_finite_state(carry), epoch)


def _scan_steps(carry, x, y, idx, mask, *, padded, loss_fn, metrics, unroll, split):
    """``lax.scan`` of :func:`tracked_step` over the batches ``idx, mask: [steps, B]`` of the
    device-resident ``x``, ``y`` (the body of a fused epoch and of its segments)."""
    if split is not None:
        rows = NamedSharding(split.mesh, P(None, *split.spec))
        idx = lax.with_sharding_constraint(idx, rows)
        mask = lax.with_sharding_constraint(mask, rows)

    def body(c, batch):
        i, m = batch
        return tracked_step(c, _masked((*gather(x, y, i), m), padded), loss_fn, metrics), None

    carry, _ = lax.scan(body, carry, (idx, mask), unroll=unroll)
    return carry


def fused_segment(carry, x, y, idx, mask, start, *, length, padded, loss_fn, metrics, unroll,
                  split):  # fmt: skip
    """Steps ``start .. start + length - 1`` of an epoch, a part of :func:`fused_epoch` run as
    its own program so that a long epoch can report progress (and the same steps, in the same
    order, give the same state bit for bit).

    Args:
      carry: ``(state, sums, first_bad)`` after the epoch's first ``start`` steps (donated).
      idx, mask: the epoch's ``[steps, B]`` batches (:func:`fnn.train.plan.epoch_indices`).
      start: ``<int32>[]``, the first step of the segment; ``length``: its steps (static).

    Returns ``(carry, done)``: ``done`` is a scalar that is ready when the segment has run (a
    separate output, so the next segment may take the carry's buffers).
    """
    idx = lax.dynamic_slice_in_dim(idx, start, length, axis=0)
    mask = lax.dynamic_slice_in_dim(mask, start, length, axis=0)
    carry = _scan_steps(carry, x, y, idx, mask, padded=padded, loss_fn=loss_fn,
                        metrics=metrics, unroll=unroll, split=split)  # fmt: skip
    return carry, start + length


def finish_epoch(carry, epoch):
    """``carry`` after the last segment of epoch ``epoch: <int32>[]``: the state's finiteness
    flagged and the epoch marked completed, as :func:`fused_epoch` ends."""
    return completed(flag_non_finite_state(carry), epoch)


def state_is_finite(state: TrainState) -> jax.Array:
    """``<bool>[]``: every float in the parameters, the model state (BatchNorm statistics) and
    the weight average is finite. Not the optimizer state: some hold an infinity by design
    (``optax.contrib.reduce_on_plateau`` starts its best value at +inf)."""
    trees = (state.params, state.model_state, state.ema_params)
    flags = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jax.tree_util.tree_leaves(trees)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
    ]
    return jnp.all(jnp.stack(flags)) if flags else jnp.bool_(True)


def flag_non_finite_state(carry):
    """``carry`` with ``first_bad`` set to the state's step when every loss was finite but the
    state is not (an update overflowed): the driver then searches for the step that did it.
    One reduction over the state per epoch, not per step (per step it cost a fifth of a
    batch-1 step)."""
    state, sums, first_bad = carry
    first_bad = jnp.where((first_bad < 0) & ~state_is_finite(state), state.step, first_bad)
    return state, sums, first_bad


def completed(carry, epoch):
    """``carry`` with its state marked as having completed epoch ``epoch: <int32>[]``."""
    state, sums, first_bad = carry
    return state.replace(epoch=jnp.asarray(epoch, jnp.int32)), sums, first_bad


def chunk(carry, xs, ys, masks, *, loss_fn, metrics, unroll, padded=True):
    """Scans over pre-gathered batches ``xs: [K, B, ...]`` (streamed data)."""
    carry, _ = lax.scan(
        lambda c, b: (tracked_step(c, _masked(b, padded), loss_fn, metrics), None),
        carry,
        (xs, ys, masks),
        unroll=unroll,
    )
    return carry


def chunk_step(carry, xs, ys, masks, j, *, loss_fn, metrics, padded=True):
    """Batch ``j`` of a streamed chunk ``xs: [K, B, ...]`` as one step."""
    batch = data_tree.take((xs, ys, masks), j)
    return tracked_step(carry, _masked(batch, padded), loss_fn, metrics)


def single_step(carry, x, y, mask, *, loss_fn, metrics, padded=True):
    """One step on a batch ``x: [B, ...]`` given as it is (the unfused reference loop)."""
    return tracked_step(carry, _masked((x, y, mask), padded), loss_fn, metrics)


def indexed_step(carry, x, y, idx, mask, s, *, loss_fn, metrics, split, padded=True):
    """Step ``s`` of the epoch, its batch gathered on the device from ``idx: <int32>[steps, B]``.
    Without ``padded`` the mask (all ones) is left out (:func:`_masked`)."""
    i, m = idx[s], mask[s]
    if split is not None:
        i = lax.with_sharding_constraint(i, split)
        m = lax.with_sharding_constraint(m, split)
    return tracked_step(carry, _masked((*gather(x, y, i), m), padded), loss_fn, metrics)


def start(state, x_example, y_example, *, loss_fn, metrics):
    """The carry of a step-by-step epoch, on a *copy* of the state: the steps donate their
    carry, and the epoch's starting state must survive for a replay."""
    state = jax.tree_util.tree_map(jnp.copy, state)
    return state, zero_sums(state, x_example, y_example, loss_fn, metrics), jnp.int32(-1)


# --------------------------------------------------------------------------- inference bodies


def eval_batches(state, xs, ys, masks, *, loss_fn, metrics):
    """Sums of the loss and metrics over ``xs: [S, B, ...]`` batches, in eval mode."""
    first = data_tree.take((xs, ys), 0)
    zero = jax.eval_shape(lambda s, b: eval_step(s, b, loss_fn, metrics), state, first)
    zero = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), zero)

    def body(acc, batch):
        return metrics_lib.merge(acc, eval_step(state, batch, loss_fn, metrics)), None

    return lax.scan(body, zero, (xs, ys, masks))[0]


def predict_batches(state, xs):
    """The model's outputs ``[S, B, ...]`` on ``xs: [S, B, ...]``, in eval mode."""
    return lax.map(lambda xb: predict_step(state, xb), xs)


# -------------------------------------------------------------------- compiled-program cache

CACHE_SIZE = 64  # compiled programs kept (least recently used evicted first)
_CACHE: collections.OrderedDict = collections.OrderedDict()
_COMPILE_SECONDS = [0.0]  # total seconds spent compiling in this process


def _canonical_sharding(sharding) -> tuple:
    """A canonical form of a sharding: equivalent shardings give equal keys."""
    devices = tuple(sorted(d.id for d in sharding.device_set))
    if sharding.is_fully_replicated:
        return ("replicated", devices)
    spec = tuple(getattr(sharding, "spec", ()))
    while spec and spec[-1] is None:
        spec = spec[:-1]
    return (type(sharding).__name__, devices, spec)


# Canonical keys memoised by the identity of the sharding object (held, so its id stays its
# own): a compiled program hands back the same sharding objects with every output, so a
# lookup costs a dictionary hit per leaf. Hashing and comparing the sharding objects instead
# (an lru_cache) took most of the lookup's time.
_SHARDING_KEYS: dict[int, tuple[Any, tuple]] = {}


def _sharding_key(sharding) -> tuple:
    hit = _SHARDING_KEYS.get(id(sharding))
    if hit is not None and hit[0] is sharding:
        return hit[1]
    if len(_SHARDING_KEYS) > 4096:
        _SHARDING_KEYS.clear()
    key = _canonical_sharding(sharding)
    _SHARDING_KEYS[id(sharding)] = (sharding, key)
    return key


def _leaf_key(leaf) -> tuple:
    if isinstance(leaf, jax.Array):
        return leaf.shape, leaf.dtype, _sharding_key(leaf.sharding)
    return np.shape(leaf), str(getattr(leaf, "dtype", type(leaf))), ("host",)


def signature(args) -> tuple:
    """The cache key of ``args``: their tree structure and each leaf's shape, dtype, sharding."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    return treedef, tuple(map(_leaf_key, leaves))


@functools.lru_cache(maxsize=CACHE_SIZE)
def _jitted(fn: Callable, static_names: tuple[str, ...], donate: tuple[int, ...]):
    return jax.jit(fn, static_argnames=static_names, donate_argnums=donate)


def compiled(fn: Callable, args: tuple, static: dict, donate: tuple[int, ...] = ()):
    """The compiled program of ``fn(*args, **static)``, from the cache or compiled now.

    Programs are compiled ahead of time (``jit(...).lower(...).compile()``) so compile time is
    measured apart from run time (see :func:`compile_seconds`), and kept in a process-wide
    cache of :data:`CACHE_SIZE` programs keyed by the function, the static arguments, the
    donated positions and the :func:`signature` of the arguments: a second ``fit`` with the same
    configuration compiles nothing.
    """
    key = (fn, tuple(sorted(static.items())), donate, signature(args))
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    started = time.perf_counter()
    executable = _jitted(fn, tuple(sorted(static)), donate).lower(*args, **static).compile()
    _COMPILE_SECONDS[0] += time.perf_counter() - started
    _CACHE[key] = executable
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return executable


def run(fn: Callable, args: tuple, static: dict, donate: tuple[int, ...] = ()):
    """``fn(*args, **static)`` through its compiled program."""
    return compiled(fn, args, static, donate)(*args)


def compile_seconds() -> float:
    """Seconds spent compiling programs in this process so far (a clock: take differences)."""
    return _COMPILE_SECONDS[0]


def cached_programs() -> list:
    """The compiled programs in the cache, least recently used first."""
    return list(_CACHE.values())


def clear_cache() -> None:
    """Forgets every compiled program."""
    _CACHE.clear()
    _jitted.cache_clear()


__all__ = [
    "CACHE_SIZE",
    "cached_programs",
    "chunk",
    "chunk_step",
    "clear_cache",
    "compile_seconds",
    "compiled",
    "eval_batches",
    "finish_epoch",
    "fused_epoch",
    "fused_segment",
    "gather",
    "indexed_step",
    "predict_batches",
    "run",
    "signature",
    "single_step",
    "start",
    "tracked_step",
    "zero_sums",
]
