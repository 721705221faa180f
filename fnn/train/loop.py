"""fit / evaluate / predict: full-batch, stochastic and mini-batch gradient descent.

Three ways to run an epoch, one set of semantics:

* **fused** (default): the training set is put on the device once; each epoch is one compiled
  XLA program that draws the epoch's permutation on the device, gathers each batch and runs
  ``lax.scan`` over :func:`fnn.train.step.train_step`, with the state and the loss and metric
  sums carried in the scan. Nothing returns to Python until the epoch ends.
* **streamed**: when the data is larger than ``max_device_bytes``, the host gathers chunks of
  ``steps_per_chunk`` batches and the device scans over each chunk while the next one is copied.
* **dispatched**: on CPU, models with convolutions keep the data and the permutation on the
  device but dispatch one compiled step per batch, because XLA:CPU runs convolutions several
  times slower inside a loop body (jax-ml/jax#12868).
* **unfused** (``fused=False``): a plain Python loop that slices NumPy batches and calls one
  jitted step per batch - the loop most people write by hand, kept as the reference.

All three visit the same batches in the same order for a given seed (the permutation of epoch
``e`` is ``jax.random.permutation(fold_in(key(seed), e), n)``), use the dropout key
``fold_in(state.key, state.step)`` at every step, and so give the same parameters up to float
rounding (the programs differ only in how XLA fuses the batch gather). A given path is
deterministic: the same seed gives the same bits on the same device, and so does a run resumed
from a checkpoint.

Remainders: with ``n`` examples and batch size ``B``, ``drop_remainder=False`` (the default)
runs ``ceil(n / B)`` steps per epoch and the last batch is padded with masked rows, so its loss
is exactly the mean over its real examples; ``drop_remainder=True`` runs ``floor(n / B)`` steps
and skips the last ``n mod B`` examples of each epoch's permutation.

Dispatch: with no callback and no validation data, epoch ``e + 1`` is handed to the device
before ``fit`` waits for epoch ``e`` (after epochs shorter than ``RUN_AHEAD_MAX_EPOCH_S``), so
the device does not sit idle while the host records an epoch. The results are bit-identical
either way.

Non-finite losses: every step records whether its loss was NaN or Inf. When an epoch reports
one, ``fit`` replays that epoch from its start up to the first bad step, so it holds the last good
state, and raises :class:`NonFiniteLossError` naming the epoch and step, with that state
attached. Checkpoints are never written for such an epoch.
"""

import collections
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from fnn import metrics as metrics_lib
from fnn.losses import LossFn, get_loss
from fnn.parallel import Placement, check_same_everywhere, is_main_process, placement, to_host
from fnn.train import validate
from fnn.train.callbacks import Callback, Run
from fnn.train.checkpoint import CheckpointStore
from fnn.train.history import History
from fnn.train.state import TrainState
from fnn.train.step import eval_step, predict_step, summarize, train_step

DEFAULT_MAX_DEVICE_BYTES = 2 * 1024**3
DEFAULT_EVAL_BATCH = 1024
CHUNK_TARGET_BYTES = 64 * 1024**2
RUN_AHEAD_MAX_EPOCH_S = 1.0  # see fit: epochs shorter than this are dispatched one ahead


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or Inf loss.

    Attributes:
      epoch: 1-based epoch in which it happened.
      step: 0-based step within that epoch.
      global_step: the optimizer step count at the bad step.
      state: the last good state (after ``global_step`` updates).
      history: the records of the epochs completed before.
    """

    def __init__(self, message, *, epoch, step, global_step, state, history):
        super().__init__(message)
        self.epoch, self.step, self.global_step = epoch, step, global_step
        self.state, self.history = state, history


# ------------------------------------------------------------------------------ epoch plans


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


def epoch_key(root: jax.Array, epoch: jax.Array) -> jax.Array:
    """The key of the permutation of ``epoch``: ``fold_in(root, epoch)``.

    Args:
      root: ``<uint32>[2]`` raw data of the run's shuffling key, ``jax.random.key(seed)``.
      epoch: ``<int32>[]`` 1-based epoch number.
    """
    return jax.random.fold_in(jax.random.wrap_key_data(root), epoch)


def epoch_indices(root: jax.Array, epoch: jax.Array, plan: Plan) -> tuple[jax.Array, jax.Array]:
    """The epoch's batches as example indices and a mask.

    Computed inside the compiled programs, so an epoch costs no separate dispatch for its key.

    Args:
      root: ``<uint32>[2]`` raw data of the run's shuffling key (see :func:`epoch_key`).
      epoch: ``<int32>[]`` 1-based epoch number.
      plan: the epoch's static shape.

    Returns:
      ``idx: <int32>[steps, batch]`` and ``mask: <float32>[steps, batch]`` (0 on padded rows,
      whose index is 0).
    """
    if plan.shuffle:
        order = jax.random.permutation(epoch_key(root, epoch), plan.n)
    else:
        order = jnp.arange(plan.n)
    order = order.astype(jnp.int32)
    size = plan.steps * plan.batch
    if size > plan.n:
        order = jnp.concatenate([order, jnp.zeros((size - plan.n,), jnp.int32)])
    mask = (jnp.arange(size) < plan.n).astype(jnp.float32)
    return order[:size].reshape(plan.steps, plan.batch), mask.reshape(plan.steps, plan.batch)


# ------------------------------------------------------------------------------- the steps


def _zero_sums(state, x_spec, y_spec, loss_fn, metrics):
    shapes = jax.eval_shape(
        lambda s, x, y: train_step(s, (x, y), loss_fn, metrics)[1], state, x_spec, y_spec
    )
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _tracked_step(carry, batch, loss_fn, metrics):
    """``train_step`` that also records where the loss first stopped being finite.

    ``carry = (state, sums, bad)`` with ``bad: <int32>[]`` the optimizer step at which the first
    non-finite loss appeared (-1: none yet). Steps are not frozen after it (a select over the
    whole state every step cost a third of the step time at batch 1); instead ``fit`` replays
    the epoch from its start up to ``bad`` to recover the last good state.
    """
    state, sums, bad = carry
    new_state, step_sums = train_step(state, batch, loss_fn, metrics)
    finite = jnp.isfinite(step_sums["loss"]["sum"])
    bad = jnp.where((bad < 0) & ~finite, state.step, bad)
    return new_state, metrics_lib.merge(sums, step_sums), bad


def _gather(x, y, i):
    """Rows ``i: <int>[batch]`` of the device-resident ``x`` and ``y``."""
    return jnp.take(x, i, axis=0, mode="clip"), jnp.take(y, i, axis=0, mode="clip")


def _fused_epoch(state, x, y, root, epoch, *, plan, loss_fn, metrics, unroll, split, limit):
    """One whole epoch on device-resident data; returns ``(state, sums, bad)``.

    ``split`` is the sharding of the example axis of a batch over the device mesh (None on one
    device): the indices of every batch are split, so each device gathers only its rows.
    ``limit`` runs only the first ``limit`` steps (replaying up to a bad step).
    """
    sums = _zero_sums(state, x[:1], y[:1], loss_fn, metrics)
    carry = (state, sums, jnp.int32(-1))
    if plan.full_batch and not plan.padded:
        if split is not None:  # a local slice of the replicated data: no communication
            x = lax.with_sharding_constraint(x, split)
            y = lax.with_sharding_constraint(y, split)
        return _tracked_step(carry, (x, y), loss_fn, metrics)  # no permutation, no gather
    idx, mask = epoch_indices(root, epoch, plan)
    if limit is not None:
        idx, mask = idx[:limit], mask[:limit]
    if split is not None:
        rows = NamedSharding(split.mesh, P(None, *split.spec))
        idx = lax.with_sharding_constraint(idx, rows)
        mask = lax.with_sharding_constraint(mask, rows)

    def body(c, batch):
        i, m = batch
        xb, yb = _gather(x, y, i)
        # Without padding the mask is all ones: leave it out so XLA folds it away.
        step_batch = (xb, yb, m) if plan.padded else (xb, yb)
        return _tracked_step(c, step_batch, loss_fn, metrics), None

    carry, _ = lax.scan(body, carry, (idx, mask), unroll=unroll)
    return carry


def _chunk(carry, xs, ys, masks, *, loss_fn, metrics, unroll):
    """Scans over pre-gathered batches ``xs: [K, B, ...]`` (streaming path)."""
    carry, _ = lax.scan(
        lambda c, b: (_tracked_step(c, b, loss_fn, metrics), None),
        carry,
        (xs, ys, masks),
        unroll=unroll,
    )
    return carry


def _chunk_step(carry, xs, ys, masks, j, *, loss_fn, metrics):
    """Batch ``j`` of a streamed chunk as one step (conv models on CPU: see ``_Dispatched``)."""
    return _tracked_step(carry, (xs[j], ys[j], masks[j]), loss_fn, metrics)


def _single(carry, x, y, mask, *, loss_fn, metrics):
    """One guarded step (unfused path)."""
    return _tracked_step(carry, (x, y, mask), loss_fn, metrics)


def _start(state, x, y, *, loss_fn, metrics):
    """The carry of a step-by-step epoch, on a *copy* of the state: the steps donate their
    carry, and the epoch's starting state must survive for a replay."""
    state = jax.tree_util.tree_map(jnp.copy, state)
    return state, _zero_sums(state, x[:1], y[:1], loss_fn, metrics), jnp.int32(-1)


def _eval_batches(state, xs, ys, masks, *, loss_fn, metrics):
    """Sums of the loss and metrics over ``xs: [S, B, ...]`` batches."""
    zero = jax.eval_shape(
        lambda s, x, y: eval_step(s, (x, y), loss_fn, metrics), state, xs[0], ys[0]
    )
    zero = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), zero)

    def body(acc, batch):
        return metrics_lib.merge(acc, eval_step(state, batch, loss_fn, metrics)), None

    return lax.scan(body, zero, (xs, ys, masks))[0]


def _predict_batches(state, xs):
    return lax.map(lambda xb: predict_step(state, xb), xs)


# -------------------------------------------------------------------- compiled-program cache


_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 64
_JITTED: dict[tuple, Callable] = {}


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


def _signature(args) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(args)
    return treedef, tuple(map(_leaf_key, leaves))


def compiled(fn: Callable, args: tuple, static: dict, donate: tuple[int, ...] = ()):
    """Returns ``(executable, seconds spent compiling now)`` for ``fn(*args, **static)``.

    Programs are compiled ahead of time (``jit(...).lower(...).compile()``) so compile time is
    measured apart from run time, and kept in a process-wide cache keyed by the function, the
    static arguments and the shapes / dtypes / shardings of the arguments: a second ``fit`` with
    the same configuration compiles nothing.
    """
    key = (fn, tuple(sorted(static.items())), donate, _signature(args))
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit, 0.0
    jit_key = (fn, tuple(sorted(static)), donate)
    if jit_key not in _JITTED:
        _JITTED[jit_key] = jax.jit(fn, static_argnames=tuple(static), donate_argnums=donate)
    start = time.perf_counter()
    executable = _JITTED[jit_key].lower(*args, **static).compile()
    seconds = time.perf_counter() - start
    _CACHE[key] = executable
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return executable, seconds


def _run(fn, args, static, donate=()):
    executable, seconds = compiled(fn, args, static, donate)
    return executable(*args), seconds


# ------------------------------------------------------------------------ epoch executors


def _default_unroll(plan: Plan, state: TrainState) -> int:
    """Loop unrolling for the fused scan.

    Measured on a 2-core CPU, MLP 64-256-256-10: unroll 2 gave 1.5x the samples/s of no unroll
    at batch 1, 1.06x at batch 32 and 1.05x at batch 256 (it lets XLA alternate two parameter
    buffers instead of copying the weights every step); unroll 4 and 8 were slower and compiled
    2-5x longer.
    Recurrent models gain nothing and compile twice as long, so they get no unrolling.
    """
    paths = jax.tree_util.tree_flatten_with_path(state.params)[0]
    recurrent = any("Cell" in jax.tree_util.keystr(path) for path, _ in paths)
    return 2 if plan.batch <= 256 and not recurrent else 1


class _Fused:
    def __init__(self, x, y, plan, loss_fn, metrics, unroll, place: Placement):
        self.x, self.y = place.put_replicated((x, y))
        split = place.batch_axis(0, plan.batch) if place.splits(plan.batch) else None
        self.static = dict(plan=plan, loss_fn=loss_fn, metrics=metrics, unroll=unroll, split=split)

        # Outputs of one program always have the same shapes, dtypes and shardings, so the
        # program to run on them is looked up once (``_next``): from the second epoch on, the
        # signature over every leaf of the state is skipped.
        self._last = None  # (the state the last call returned, the program that made it)
        self._next: dict[Any, Any] = {}  # program -> the program to run on its outputs

    def __call__(self, state, root, epoch, progress=None, limit=None):
        args = (state, self.x, self.y, root, epoch)
        chained = limit is None and self._last is not None and state is self._last[0]
        producer = self._last[1] if chained else None
        executable, seconds = self._next.get(producer), 0.0
        if executable is None:
            executable, seconds = compiled(_fused_epoch, args, {**self.static, "limit": limit})
            if producer is not None:
                self._next[producer] = executable
        # Not donated: the loop copies the state into its carry once per epoch anyway, and the
        # epoch's starting state is kept for a replay after a non-finite loss.
        out = executable(*args)
        if limit is None:
            self._last = (out[0], executable)
        return out, seconds


class _Unfused:
    def __init__(self, x, y, plan, loss_fn, metrics, place: Placement):
        self.x, self.y, self.plan, self.place = x, y, plan, place
        self.static = dict(loss_fn=loss_fn, metrics=metrics)

    def __call__(self, state, root, epoch, progress=None, limit=None):
        plan = self.plan
        carry, seconds = _run(_start, (state, self.x[:1], self.y[:1]), self.static)
        if plan.full_batch and not plan.padded:
            batches = [(self.x, self.y, np.ones((plan.n,), np.float32))]
        else:
            (idx, mask), compile_s = _run(epoch_indices, (root, epoch), dict(plan=plan))
            seconds += compile_s
            idx, mask = jax.device_get((idx, mask))
            batches = (
                (self.x[i], self.y[i], m) for i, m in zip(idx[:limit], mask[:limit], strict=True)
            )
        executable = None
        for batch in batches:
            if self.place.size > 1:
                batch = self.place.put_batches(batch, axis=0, batch=plan.batch)
            if executable is None:  # every batch has the same shape: look the program up once
                executable, compile_s = compiled(_single, (carry, *batch), self.static, (0,))
                seconds += compile_s
            carry = executable(carry, *batch)
        return carry, seconds


def _indexed_step(carry, x, y, idx, mask, s, *, loss_fn, metrics, split):
    """One guarded step on batch ``s`` of the epoch, gathered on the device."""
    i, m = idx[s], mask[s]
    if split is not None:
        i = lax.with_sharding_constraint(i, split)
        m = lax.with_sharding_constraint(m, split)
    return _tracked_step(carry, (*_gather(x, y, i), m), loss_fn, metrics)


class _Dispatched:
    """Device-resident data and permutation, one compiled step dispatched per batch.

    Used instead of the scan on CPU for models with convolutions: XLA:CPU runs convolutions
    several times slower inside a loop body (jax-ml/jax#12868; measured here 4x for the CNN at
    batch 128), while one dispatch costs tens of microseconds next to a conv step's
    milliseconds. Same batches, keys and guard as the scan.
    """

    def __init__(self, x, y, plan, loss_fn, metrics, place: Placement):
        self.x, self.y = place.put_replicated((x, y))
        self.plan = plan
        split = place.batch_axis(0, plan.batch) if place.splits(plan.batch) else None
        self.static = dict(loss_fn=loss_fn, metrics=metrics)
        self.step_static = dict(loss_fn=loss_fn, metrics=metrics, split=split)

    def __call__(self, state, root, epoch, progress=None, limit=None):
        carry, seconds = _run(_start, (state, self.x[:1], self.y[:1]), self.static)
        (idx, mask), compile_s = _run(epoch_indices, (root, epoch), dict(plan=self.plan))
        seconds += compile_s
        for s in range(self.plan.steps if limit is None else limit):
            args = (carry, self.x, self.y, idx, mask, np.int32(s))
            executable, compile_s = compiled(_indexed_step, args, self.step_static, (0,))
            seconds += compile_s
            carry = executable(*args)
        return carry, seconds


def _has_convolutions(state: TrainState) -> bool:
    """Whether the parameters include a convolution kernel (rank >= 3)."""
    return any(np.ndim(p) >= 3 for p in jax.tree_util.tree_leaves(state.params))


class _Streamed:
    """Host-resident data, device scans over chunks of ``steps_per_chunk`` batches.

    With ``per_step`` (conv models on CPU, see :class:`_Dispatched`) each batch of a chunk is
    dispatched as its own step instead of scanned.
    """

    def __init__(
        self, x, y, plan, loss_fn, metrics, unroll, steps_per_chunk, place: Placement, per_step
    ):
        self.x, self.y, self.plan, self.place = x, y, plan, place
        self.k, self.per_step = steps_per_chunk, per_step
        self.static = dict(loss_fn=loss_fn, metrics=metrics)
        self.chunk_static = dict(loss_fn=loss_fn, metrics=metrics, unroll=unroll)

    def _gather(self, idx, mask, start, stop):
        """Chunk ``[start, stop)`` of the epoch's batches, copied to the device (the last chunk
        may be shorter, which costs one more compiled program)."""
        i, m = idx[start:stop], mask[start:stop]
        return self.place.put_batches((self.x[i], self.y[i], m), axis=1, batch=self.plan.batch)

    def __call__(self, state, root, epoch, progress=None, limit=None):
        carry, seconds = _run(_start, (state, self.x[:1], self.y[:1]), self.static)
        (idx, mask), compile_s = _run(epoch_indices, (root, epoch), dict(plan=self.plan))
        seconds += compile_s
        idx, mask = jax.device_get((idx, mask))
        steps = self.plan.steps if limit is None else limit
        starts = range(0, steps, self.k)
        chunks = tqdm(starts, desc="chunks", leave=False, disable=progress is None)
        pending = self._gather(idx, mask, 0, min(self.k, steps))
        for start in chunks:
            current = pending
            if self.per_step:
                for j in range(current[0].shape[0]):
                    args = (carry, *current, np.int32(j))
                    executable, compile_s = compiled(_chunk_step, args, self.static, (0,))
                    seconds += compile_s
                    carry = executable(*args)
            else:
                args = (carry, *current)
                executable, compile_s = compiled(_chunk, args, self.chunk_static, (0,))
                seconds += compile_s
                carry = executable(*args)  # asynchronous: the device starts on it
            if start + self.k < steps:  # the next copy overlaps the scan above
                pending = self._gather(idx, mask, start + self.k, min(start + 2 * self.k, steps))
        return carry, seconds


# ----------------------------------------------------------------------------- evaluation


def _padded_batches(arrays: Sequence[np.ndarray], batch: int):
    """Pads to a multiple of ``batch`` and reshapes to ``[steps, batch, ...]`` (+ a mask)."""
    n = arrays[0].shape[0]
    steps = math.ceil(n / batch)
    pad = steps * batch - n
    out = []
    for a in arrays:
        if pad:
            a = np.concatenate([a, np.repeat(a[:1], pad, axis=0)])
        out.append(a.reshape(steps, batch, *a.shape[1:]))
    mask = (np.arange(steps * batch) < n).astype(np.float32).reshape(steps, batch)
    return out, mask


class _Evaluator:
    """Device-resident evaluation data, reused every epoch."""

    def __init__(self, x, y, batch, loss_fn, metrics, place: Placement):
        (xs, ys), mask = _padded_batches([x, y], batch)
        self.args = place.put_batches((xs, ys, mask), axis=1, batch=batch)
        self.place = place
        self.static = dict(loss_fn=loss_fn, metrics=metrics)

    def __call__(self, state):
        state = self.place.put_replicated(state)
        return _run(_eval_batches, (state, *self.args), self.static)


def _eval_batch_size(batch_size, n):
    if batch_size is None:
        return min(n, DEFAULT_EVAL_BATCH)
    return validate.check_batch_size(batch_size, n)


def evaluate(
    state: TrainState,
    x: Any,
    y: Any,
    *,
    loss: str | LossFn,
    metrics: Sequence[str | metrics_lib.Metric] = (),
    batch_size: int | str | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> dict[str, Any]:
    """Loss and metrics of ``state``'s model on ``(x, y)``, in inference mode.

    Args:
      state: a trained (or fresh) state.
      x: ``[n, ...]`` inputs.
      y: ``[n, ...]`` targets.
      loss: a per-example loss or its name.
      metrics: metric names or ``fnn.metrics.Metric`` values.
      batch_size: examples per compiled step (default ``min(n, 1024)``); results do not depend
        on it.
      devices: devices to split batches over (default: all; see ``fnn.parallel``).

    Returns:
      ``{"loss": float, <metric>: value}``.
    """
    loss_fn = get_loss(loss)
    metrics = metrics_lib.get_metrics(metrics)
    x, y = validate.as_inputs("x", x), validate.as_inputs("y", y)
    validate.check_pair(x, y)
    validate.check_targets(loss_fn, y, validate.output_shape(state, x))
    check_same_everywhere(x=x, y=y)
    batch = _eval_batch_size(batch_size, x.shape[0])
    sums, _ = _Evaluator(x, y, batch, loss_fn, metrics, placement(devices))(state)
    return summarize(sums, metrics)


def predict(
    state: TrainState,
    x: Any,
    *,
    batch_size: int | str | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> np.ndarray:
    """The model's outputs on ``x: [n, ...]`` in inference mode, as a NumPy array ``[n, ...]``.

    ``batch_size`` and ``devices`` are as in :func:`evaluate`.
    """
    x = validate.as_inputs("x", x)
    validate.output_shape(state, x)
    check_same_everywhere(x=x)
    batch = _eval_batch_size(batch_size, x.shape[0])
    (xs,), _ = _padded_batches([x], batch)
    place = placement(devices)
    args = (place.put_replicated(state), place.put_batches(xs, axis=1, batch=batch))
    out, _ = _run(_predict_batches, args, {})
    out = to_host(out)
    return out.reshape(-1, *out.shape[2:])[: x.shape[0]]


# ------------------------------------------------------------------------------------ fit


def _format_postfix(record: dict[str, Any]) -> dict[str, str]:
    shown = {}
    for key, value in record.items():
        if key in ("epoch", "steps", "epoch_time", "val_time", "compile_time"):
            continue
        if isinstance(value, float):
            shown[key] = f"{value:.4g}"
    if record.get("compile_time"):
        shown["compile"] = f"{record['compile_time']:.2f}s"
    return shown


@jax.jit
def _seed_key_data(seed: jax.Array) -> jax.Array:
    return jax.random.key_data(jax.random.key(seed))


def _root_key(seed: int) -> jax.Array:
    """``key_data(key(seed))``: one compiled call instead of two eager ones (~0.5 ms)."""
    if -(2**31) <= seed < 2**31:  # the same key as from the Python int (tested)
        return _seed_key_data(np.int32(seed))
    return jax.random.key_data(jax.random.key(seed))


def _resident(given, checked):
    """The arrays to keep on the device: the caller's own ``jax.Array`` where checking it
    changed nothing (so data already on the device is not copied back and forth), else the
    checked NumPy copy."""
    return tuple(
        g if isinstance(g, jax.Array) and g.dtype == c.dtype else c
        for g, c in zip(given, checked, strict=True)
    )


def _resolve_streaming(x, y, plan, fused, max_device_bytes, steps_per_chunk):
    nbytes = x.nbytes + y.nbytes
    limit = DEFAULT_MAX_DEVICE_BYTES if max_device_bytes is None else max_device_bytes
    if not fused:
        return False, 0
    if steps_per_chunk is not None or nbytes > limit:
        if plan.full_batch:
            raise ValueError(
                f"batch_size: a full batch of {nbytes} bytes cannot be streamed in chunks "
                f"(max_device_bytes={limit}); use mini-batches or raise max_device_bytes"
            )
        if steps_per_chunk is None:
            per_batch = max(1, nbytes // plan.n * plan.batch)
            steps_per_chunk = max(1, min(plan.steps, CHUNK_TARGET_BYTES // per_batch))
        if isinstance(steps_per_chunk, bool) or not (
            isinstance(steps_per_chunk, int) and steps_per_chunk >= 1
        ):
            raise ValueError(f"steps_per_chunk: expected an integer >= 1, got {steps_per_chunk!r}")
        return True, min(steps_per_chunk, plan.steps)
    return False, 0


def fit(
    state: TrainState,
    x: Any,
    y: Any,
    *,
    loss: str | LossFn,
    batch_size: int | str,
    epochs: int,
    validation_data: tuple[Any, Any] | None = None,
    metrics: Sequence[str | metrics_lib.Metric] = (),
    shuffle: bool = True,
    seed: int = 0,
    drop_remainder: bool = False,
    fused: bool = True,
    callbacks: Sequence[Callback] = (),
    verbose: int = 1,
    resume_from: str | None = None,
    max_device_bytes: int | None = None,
    steps_per_chunk: int | None = None,
    unroll: int | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> tuple[TrainState, History]:
    """Trains ``state`` on ``(x, y)`` by full-batch, stochastic or mini-batch gradient descent.

    Args:
      state: from :meth:`TrainState.create`; left as it is (the returned state is new).
      x: inputs ``[n, ...]`` (NumPy or JAX array).
      y: targets ``[n, ...]``: ``<int>[n]`` class labels for cross-entropy, ``[n]`` / ``[n, k]``
        for regression or binary labels.
      loss: per-example loss from ``fnn.losses`` or its name (``"cross_entropy"``, ``"mse"``,
        ``"binary_cross_entropy"``).
      batch_size: ``1`` (stochastic GD), ``n`` or ``"full"`` (full-batch GD), or any size in
        between (mini-batch GD).
      epochs: total number of epochs (a resumed run counts the epochs already done).
      validation_data: ``(x_val, y_val)`` evaluated after every epoch (``val_*`` fields).
      metrics: names or ``fnn.metrics.Metric`` values, accumulated over each epoch.
      shuffle: draw a new permutation each epoch (else the data order is kept).
      seed: seed of the epoch permutations (the dropout stream is the state's own key).
      drop_remainder: see the module docstring.
      fused: run each epoch as one XLA program (True) or as a Python loop of jitted steps.
      callbacks: e.g. ``EarlyStopping``, ``Checkpoint``.
      verbose: 0 silent, 1 a progress bar over epochs (and chunks when streaming).
      resume_from: a checkpoint directory; if it holds a checkpoint, training continues after
        its epoch with its state, seed and history, ending bit-identical to an uninterrupted run.
      max_device_bytes: above this size of ``x`` plus ``y`` the data is streamed to the device
        in chunks (default 2 GiB).
      steps_per_chunk: batches per streamed chunk; setting it forces streaming.
      unroll: ``lax.scan`` unroll factor for the fused epoch (default: by batch size).
      devices: devices to train on, data-parallel (default: all devices). The state is
        replicated and each batch split over the devices when its size divides evenly
        (see ``fnn.parallel``); results match a single device up to float rounding.

    Returns:
      ``(state, history)``.

    Raises:
      ValueError, TypeError: for bad input, before anything is compiled.
      NonFiniteLossError: when a loss becomes NaN/Inf (carries the last good state).
    """
    loss_fn = get_loss(loss)
    metrics = metrics_lib.get_metrics(metrics)
    if not isinstance(state, TrainState):
        raise TypeError(f"state: expected a fnn.TrainState, got {type(state).__name__}")
    given = (x, y)
    x, y = validate.as_inputs("x", x), validate.as_inputs("y", y)
    validate.check_pair(x, y)
    out_shape = validate.output_shape(state, x)
    validate.check_targets(loss_fn, y, out_shape)
    n = x.shape[0]
    batch = validate.check_batch_size(batch_size, n)
    epochs = validate.check_epochs(epochs)
    if not isinstance(seed, int | np.integer):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose!r}")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks: expected fnn.callbacks.Callback values, got {cb!r}")
    validation = None
    if validation_data is not None:
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            raise TypeError("validation_data: expected a tuple (x_val, y_val)")
        xv = validate.as_inputs("validation_data[0]", validation_data[0])
        yv = validate.as_inputs("validation_data[1]", validation_data[1])
        validate.check_pair(xv, yv, "validation_data[0]", "validation_data[1]")
        val_out = validate.output_shape(state, xv, "validation_data[0]")
        validate.check_targets(loss_fn, yv, val_out, "validation_data[1]")
        validation = (xv, yv)
    same = {"x": x, "y": y}
    if validation is not None:
        same.update({"validation_data[0]": validation[0], "validation_data[1]": validation[1]})
    check_same_everywhere(**same)

    plan = Plan.make(n, batch, drop_remainder=drop_remainder, shuffle=shuffle)
    if unroll is None:
        unroll = _default_unroll(plan, state)
    streamed, k = _resolve_streaming(x, y, plan, fused, max_device_bytes, steps_per_chunk)
    place = placement(devices)
    evaluator = None
    if validation is not None:
        xv, yv = validation
        evaluator = _Evaluator(
            xv, yv, min(xv.shape[0], DEFAULT_EVAL_BATCH), loss_fn, metrics, place
        )
    per_step = jax.default_backend() == "cpu" and _has_convolutions(state)
    if streamed:
        runner = _Streamed(x, y, plan, loss_fn, metrics, unroll, k, place, per_step)
    elif fused and per_step:
        runner = _Dispatched(*_resident(given, (x, y)), plan, loss_fn, metrics, place)
    elif fused:
        runner = _Fused(*_resident(given, (x, y)), plan, loss_fn, metrics, unroll, place)
    else:
        runner = _Unfused(x, y, plan, loss_fn, metrics, place)

    history, start_epoch = History(), 0
    if resume_from is not None:
        store = CheckpointStore(resume_from)
        if store.latest_epoch() is not None:
            state, start_epoch, seed, history = store.restore(state)
        store.close()
    state = place.put_replicated(state)
    root = place.put_replicated(_root_key(int(seed)))
    run = Run(state=state, history=history, epoch=start_epoch, epochs=epochs, seed=int(seed))
    for cb in callbacks:
        cb.on_train_begin(run)
    # With no callback (which may stop training or replace the state) and no validation, epoch
    # e + 1 is dispatched before waiting for epoch e, so the device does not wait for the host
    # between epochs. Only after short epochs: a NaN or a Ctrl-C then costs at most one short
    # epoch of wasted device time.
    run_ahead = not callbacks and evaluator is None
    show = verbose > 0 and is_main_process()  # one progress bar, on process 0
    bar = (  # not built at all when hidden: even a disabled tqdm costs ~0.1 ms per fit
        tqdm(total=epochs, initial=start_epoch, unit="epoch", dynamic_ncols=True) if show else None
    )

    def dispatch(epoch: int, start_state: TrainState) -> _Epoch:
        started = time.perf_counter()
        (new_state, sums, bad), compile_s = runner(start_state, root, np.int32(epoch), progress=bar)
        return _Epoch(epoch, start_state, new_state, sums, bad, started + compile_s, compile_s)

    current = ahead = None  # epochs dispatched to the device and not yet recorded
    last_done, last_time = None, math.inf
    try:
        for epoch in range(start_epoch + 1, epochs + 1):
            current = ahead if ahead is not None else dispatch(epoch, run.state)
            ahead = None
            if run_ahead and epoch < epochs and last_time < RUN_AHEAD_MAX_EPOCH_S:
                ahead = dispatch(epoch + 1, current.state)
            record, bad = _finish_epoch(current, plan, metrics, evaluator, last_done)
            last_done, last_time = time.perf_counter(), record["epoch_time"]
            if bad >= 0:
                ahead = None
                step_in_epoch = bad - int(current.start_state.step)
                run.state = current.start_state
                if step_in_epoch > 0:  # replay the good steps of this epoch
                    run.state = runner(
                        current.start_state, root, np.int32(epoch), limit=step_in_epoch
                    )[0][0]
                message = (
                    f"non-finite loss at epoch {epoch}/{epochs}, step {step_in_epoch} of "
                    f"{plan.steps} in that epoch (optimizer step {bad}); training stopped and "
                    f"the state after step {bad - 1} was kept"
                )
                history.stop_reason = message
                if bar is not None:
                    bar.close()
                raise NonFiniteLossError(
                    message,
                    epoch=epoch,
                    step=step_in_epoch,
                    global_step=bad,
                    state=run.state,
                    history=history,
                )
            run.state, current = current.state, None
            history.append(record)
            run.epoch = epoch
            for cb in callbacks:
                cb.on_epoch_end(run)
            if bar is not None:
                bar.set_postfix(_format_postfix(record), refresh=False)
                bar.start_t += record["compile_time"]  # the ETA extrapolates run time only
                bar.update(1)
            if run.stop_reason:
                history.stop_reason = run.stop_reason
                break
    except KeyboardInterrupt:
        if current is not None:  # the epoch runs to completion on the device anyway: keep it
            record, bad = _finish_epoch(current, plan, metrics, evaluator, last_done)
            if bad < 0:
                run.state = current.state
                history.append(record)
                run.epoch = current.epoch
        history.stop_reason = f"interrupted after epoch {run.epoch}"
        for cb in callbacks:
            cb.on_interrupt(run)
        raise
    finally:
        if bar is not None:
            bar.close()
    for cb in callbacks:
        cb.on_train_end(run)
    return run.state, history


@dataclass(frozen=True)
class _Epoch:
    """An epoch dispatched to the device: its states, its (future) sums, and when it could
    start running (``ready``: after dispatch and compilation, in ``time.perf_counter`` s)."""

    epoch: int
    start_state: TrainState  # not donated: kept for a replay after a non-finite loss
    state: TrainState
    sums: Any
    bad: jax.Array
    ready: float
    compile_s: float


def _finish_epoch(current: _Epoch, plan: Plan, metrics, evaluator, previous_done):
    """Blocks on a dispatched epoch and builds its history record; returns (record, bad).

    The epoch's time runs from when it could start (its dispatch, or the end of the previous
    epoch when it was dispatched ahead of it) to when its results reached the host.
    """
    # np.asarray rather than jax.device_get: on the CPU backend device_get's asynchronous
    # host copies cost ~300 us more main-thread CPU per call (measured), which on a small
    # machine is taken from the next epoch's compute.
    sums, bad = jax.tree_util.tree_map(np.asarray, (current.sums, current.bad))
    began = current.ready if previous_done is None else max(current.ready, previous_done)
    elapsed = time.perf_counter() - began
    record: dict[str, Any] = {"epoch": current.epoch, **summarize(sums, metrics)}
    record = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in record.items()}
    seen = float(sums["loss"]["count"])
    record.update(
        steps=plan.steps,
        epoch_time=elapsed,
        compile_time=current.compile_s,
        samples_per_s=seen / elapsed if elapsed > 0 else float("nan"),
    )
    if evaluator is not None and int(bad) < 0:
        started = time.perf_counter()
        val_sums, val_compile = evaluator(current.state)
        val = summarize(val_sums, metrics)
        record.update(
            {f"val_{k}": (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in val.items()}
        )
        record["val_time"] = time.perf_counter() - started - val_compile
        record["compile_time"] += val_compile
    return record, int(bad)


__all__ = ["NonFiniteLossError", "Plan", "epoch_indices", "epoch_key", "evaluate", "fit", "predict"]
