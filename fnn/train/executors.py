"""How an epoch runs: the strategies, the one function that chooses between them, the runners.

Every runner has the same interface, :class:`EpochRunner`: ``run(state, epoch, *,
stop_after=None) -> EpochResult``. All of them visit the same batches in the same order, use the
key ``fold_in(state.key, state.step)`` at every step, and record the first non-finite loss, so
they give the same parameters up to float rounding (the programs differ only in how XLA fuses
the batch gather). A given strategy is deterministic: the same seed gives the same bits on the
same device.

:func:`choose_strategy` is the only place where a strategy is picked; ``fit(strategy=...)``
overrides it, and ``History.strategy`` / ``History.strategy_reason`` record what ran and why.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import jax
import numpy as np
from tqdm.auto import tqdm

from fnn.parallel import Placement
from fnn.train import data_tree, programs
from fnn.train.model import ModelFacts
from fnn.train.plan import Plan, epoch_indices
from fnn.train.sources import BatchError, DeviceArrays, HostArrays, IterableBatches, prefetch
from fnn.train.state import TrainState

DEFAULT_MAX_DEVICE_BYTES = 2 * 1024**3
CHUNK_TARGET_BYTES = 64 * 1024**2  # default size of a streamed chunk
# At most this many batches of an iterable per chunk by default: the first chunk waits for all
# of its batches, and a generator may be slow to produce them.
ITERABLE_MAX_CHUNK = 32


class Strategy(enum.Enum):
    """How the steps of an epoch are grouped into compiled programs, and where the data lives.

    * ``FUSED``: data on the device, one program per epoch (``lax.scan`` over the steps).
    * ``STEPWISE``: data and permutation on the device, one program dispatched per step.
    * ``STREAMED``: data on the host, one program per chunk of ``K`` batches copied over.
    * ``STREAMED_STEPWISE``: data on the host, chunks copied over, one program per step.
    * ``UNFUSED``: NumPy batches sliced on the host, one jitted step each: the loop people
      write by hand, kept as the reference.
    * ``ITERABLE``: batches read from an iterable (a generator, a Grain loader), copied to the
      device ``K`` at a time, one program per chunk.
    * ``ITERABLE_STEPWISE``: the same, one program per step.
    """

    FUSED = "fused"
    STEPWISE = "stepwise"
    STREAMED = "streamed"
    STREAMED_STEPWISE = "streamed_stepwise"
    UNFUSED = "unfused"
    ITERABLE = "iterable"
    ITERABLE_STEPWISE = "iterable_stepwise"


IN_MEMORY = frozenset(set(Strategy) - {Strategy.ITERABLE, Strategy.ITERABLE_STEPWISE})


@dataclass(frozen=True)
class StrategyChoice:
    """A strategy and its settings, with the reason it was chosen."""

    strategy: Strategy
    reason: str
    unroll: int = 1  # lax.scan unroll factor (FUSED, STREAMED)
    steps_per_chunk: int = 0  # batches per streamed chunk (STREAMED*)


def default_unroll(batch: int, facts: ModelFacts) -> tuple[int, str]:
    """The ``lax.scan`` unroll factor of a fused epoch, and why.

    Measured on a 2-core CPU, MLP 64-256-256-10: unroll 2 gave 1.5x the samples/s of no unroll
    at batch 1, 1.06x at batch 32 and 1.05x at batch 256 (it lets XLA alternate two parameter
    buffers instead of copying the weights every step); unroll 4 and 8 were slower and compiled
    2-5x longer. Models whose forward pass loops (recurrent layers) gained nothing and compiled
    twice as long.
    """
    if facts.has_loop:
        return 1, "no unrolling (the model's forward pass loops)"
    if batch > 256:
        return 1, "no unrolling (batches above 256)"
    return 2, "unroll 2 (batches up to 256)"


def choose_strategy(
    facts: ModelFacts,
    plan: Plan | None,
    data_bytes: int,
    *,
    backend: str,
    strategy: Strategy | None = None,
    max_device_bytes: int | None = None,
    steps_per_chunk: int | None = None,
    unroll: int | None = None,
    batch: int | None = None,
) -> StrategyChoice:
    """Picks how to run the epochs of one ``fit``.

    Args:
      facts: what the model's forward pass uses (:func:`fnn.train.model.model_facts`).
      plan: the epoch's shape; None for an iterable of batches.
      data_bytes: bytes of the training inputs and targets (of one batch, for an iterable).
      backend: ``jax.default_backend()``.
      strategy: forced by the caller (None: choose).
      max_device_bytes: above this, data is streamed from the host (default 2 GiB).
      steps_per_chunk: batches per streamed chunk; giving it asks for streaming.
      unroll: the scan unroll factor (None: :func:`default_unroll`).
      batch: the batch size of an iterable's batches (with ``plan=None``).

    Rules, in order: an iterable runs ``ITERABLE`` (``ITERABLE_STEPWISE`` for convolutions on
    CPU, see below); a forced strategy is taken; data above ``max_device_bytes`` (or a given
    ``steps_per_chunk``) is streamed; on CPU, models with convolutions dispatch one step per
    batch, because XLA:CPU runs convolutions several times slower inside a loop body
    (jax-ml/jax#12868; measured here 4x for the CNN at batch 128) while one dispatch costs tens
    of microseconds next to a conv step's milliseconds; everything else is fused.

    Raises:
      ValueError: a full batch that would have to be streamed, or ``steps_per_chunk`` with a
        strategy that does not stream.
    """
    if plan is None:
        return _choose_for_iterable(facts, data_bytes, batch, backend=backend, strategy=strategy,
                                    steps_per_chunk=steps_per_chunk, unroll=unroll)  # fmt: skip
    if strategy is not None and strategy not in IN_MEMORY:
        raise ValueError(
            f"strategy: {strategy.value!r} reads an iterable of batches; x is in memory (use "
            f"one of {sorted(s.value for s in IN_MEMORY)})"
        )
    limit = DEFAULT_MAX_DEVICE_BYTES if max_device_bytes is None else max_device_bytes
    forced = strategy is not None
    if forced:
        reason = "forced by fit(strategy=...)"
    elif steps_per_chunk is not None:
        strategy, reason = Strategy.STREAMED, "steps_per_chunk was given"
    elif data_bytes > limit:
        strategy = Strategy.STREAMED
        reason = f"the data ({data_bytes} bytes) is larger than max_device_bytes={limit}"
    else:
        strategy, reason = Strategy.FUSED, f"the data fits on the device ({data_bytes} bytes)"
    per_step = backend == "cpu" and facts.has_convolution
    if per_step and not forced:
        if strategy is Strategy.FUSED:
            strategy = Strategy.STEPWISE
        elif strategy is Strategy.STREAMED:
            strategy = Strategy.STREAMED_STEPWISE
        reason += "; convolutions on CPU run one step per program (XLA:CPU is slower in loops)"

    streamed = strategy in (Strategy.STREAMED, Strategy.STREAMED_STEPWISE)
    if steps_per_chunk is not None and not streamed:
        raise ValueError(
            f"steps_per_chunk: applies only to the streamed strategies, got "
            f"steps_per_chunk={steps_per_chunk} with strategy={strategy.value!r}"
        )
    if streamed and plan.full_batch:
        raise ValueError(
            f"batch_size: a full batch of {data_bytes} bytes cannot be streamed in chunks "
            f"(max_device_bytes={limit}); use mini-batches or raise max_device_bytes"
        )
    k = 0
    if streamed:
        if steps_per_chunk is None:
            per_batch = max(1, data_bytes // plan.n * plan.batch)
            steps_per_chunk = max(1, min(plan.steps, CHUNK_TARGET_BYTES // per_batch))
        k = min(steps_per_chunk, plan.steps)
        reason += f"; {k} batches per chunk"
    scans = strategy in (Strategy.FUSED, Strategy.STREAMED)
    if not scans:
        return StrategyChoice(strategy, reason, 1, k)
    if unroll is None:
        unroll, why = default_unroll(plan.batch, facts)
    else:
        why = f"unroll {unroll} (given)"
    return StrategyChoice(strategy, f"{reason}; {why}", unroll, k)


def _choose_for_iterable(facts, batch_bytes, batch, *, backend, strategy, steps_per_chunk,
                         unroll) -> StrategyChoice:  # fmt: skip
    per_step = backend == "cpu" and facts.has_convolution
    if strategy is None:
        strategy = Strategy.ITERABLE_STEPWISE if per_step else Strategy.ITERABLE
        reason = "x is an iterable of batches"
        if per_step:
            reason += "; convolutions on CPU run one step per program (XLA:CPU is slower in loops)"
    elif strategy in IN_MEMORY:
        raise ValueError(
            f"strategy: {strategy.value!r} needs x in memory; x is an iterable of batches (use "
            f"'iterable' or 'iterable_stepwise')"
        )
    else:
        reason = "forced by fit(strategy=...)"
    if steps_per_chunk is None:
        steps_per_chunk = max(1, min(ITERABLE_MAX_CHUNK, CHUNK_TARGET_BYTES // max(batch_bytes, 1)))
    reason += f"; {steps_per_chunk} batches per chunk"
    if strategy is Strategy.ITERABLE_STEPWISE:
        return StrategyChoice(strategy, reason, 1, steps_per_chunk)
    if unroll is None:
        unroll, why = default_unroll(batch, facts)
    else:
        why = f"unroll {unroll} (given)"
    return StrategyChoice(strategy, f"{reason}; {why}", unroll, steps_per_chunk)


class EpochResult(NamedTuple):
    """What running (part of) an epoch gives back. The arrays may still be computing."""

    state: TrainState
    sums: Any  # loss and metric sums over the steps run
    first_bad_step: jax.Array  # <int32>[]: optimizer step of the first non-finite loss, or -1
    compile_seconds: float  # spent compiling during this call
    steps: int  # train steps run


class EpochRunner(Protocol):
    """Runs epochs of one ``fit``. The given state is never donated.

    ``run(..., stop_after=k)`` runs only the epoch's first ``k`` steps; ``replay(state, epoch,
    k)`` gives the state after the first ``k`` steps of an epoch that started from ``state``
    (after a non-finite loss); ``data_state()`` / ``set_data_state()`` save and restore the
    input pipeline's position with a checkpoint.
    """

    def run(
        self, state: TrainState, epoch: int, *, stop_after: int | None = None
    ) -> EpochResult: ...

    def replay(self, state: TrainState, epoch: int, steps: int) -> TrainState: ...

    def data_state(self) -> Any: ...

    def set_data_state(self, state: Any) -> None: ...


class _Runner:
    """An :class:`EpochRunner` whose ``_epoch`` returns ``((state, sums, first_bad), steps)``;
    ``run`` adds the seconds spent compiling during the call."""

    def run(self, state: TrainState, epoch: int, *, stop_after: int | None = None) -> EpochResult:
        before = programs.compile_seconds()
        (new_state, sums, first_bad), steps = self._epoch(state, epoch, stop_after)
        if stop_after is None and not self.marks_epoch:
            carry = (new_state, sums, first_bad)
            new_state, sums, first_bad = programs.run(programs.flag_non_finite_state, (carry,), {})
            # A transfer of one scalar with the sharding the programs were compiled for.
            done = jax.device_put(np.int32(epoch), new_state.epoch.sharding)
            new_state = new_state.replace(epoch=done)
        return EpochResult(new_state, sums, first_bad, programs.compile_seconds() - before, steps)

    # Whether ``_epoch``'s program itself sets ``state.epoch`` and flags a non-finite state
    # (``programs.completed``, ``programs.flag_non_finite_state``).
    marks_epoch = False
    # Whether ``replay`` can give the state after any number of an epoch's steps (an iterable
    # cannot be read again: its runner keeps only the state before the first bad step).
    replays_any_step = True

    def replay(self, state: TrainState, epoch: int, steps: int) -> TrainState:
        return state if steps == 0 else self.run(state, epoch, stop_after=steps).state

    def data_state(self) -> Any:
        """The input pipeline's position to checkpoint (None: in-memory data needs none)."""
        return None

    def set_data_state(self, state: Any) -> None:
        if state is not None:
            raise ValueError(
                "resume_from: the checkpoint holds the position of an input pipeline, but x is "
                "in memory"
            )

    def _epoch(self, state, epoch, stop_after):
        raise NotImplementedError

    def _steps(self, stop_after: int | None) -> int:
        return self.source.plan.steps if stop_after is None else stop_after


class FusedRunner(_Runner):
    """:attr:`Strategy.FUSED`: each epoch is one program over device-resident data."""

    marks_epoch = True

    def __init__(self, source: DeviceArrays, loss_fn, metrics, unroll: int):
        self.source = source
        self.static = dict(
            plan=source.plan, loss_fn=loss_fn, metrics=metrics, unroll=unroll, split=source.split
        )
        # Outputs of one program always have the same shapes, dtypes and shardings, so the
        # program to run on them is looked up once (``_next``): from the second epoch on, the
        # signature over every leaf of the state is skipped.
        self._last = None  # (the state the last call returned, the program that made it)
        self._next: dict[Any, Any] = {}  # program -> the program to run on its outputs
        self._segments: list[tuple[int, int]] = []  # (start, length); empty: one program
        self._on_segment: Callable[[int, int, int], Any] | None = None

    def split(self, parts: int, on_segment: Callable[[int, int, int], Any] | None = None):
        """Runs each later epoch as about ``parts`` programs of consecutive steps (the same
        steps in the same order: bit for bit the same epoch), calling ``on_segment(epoch,
        steps_done, steps)`` as each but the last has run, so that a long epoch can show its
        progress. Segment lengths are multiples of the scan's unroll, so that every step runs
        in the same unrolled body as in one whole-epoch program (a step compiled into a
        different body may round differently); they are equal where a number of parts
        between ``parts`` and ``2 * parts`` allows it (one program to compile), else the last
        is shorter. ``parts <= 1`` goes back to one program per epoch."""
        steps, unroll = self.source.plan.steps, max(1, int(self.static["unroll"]))
        parts = min(int(parts), steps // unroll)
        if parts <= 1 or (self.source.plan.full_batch and not self.source.plan.padded):
            self._segments, self._on_segment = [], None
            return
        fits = lambda p: steps % p == 0 and (steps // p) % unroll == 0  # noqa: E731
        even = next((p for p in range(parts, 2 * parts + 1) if fits(p)), None)
        if even:
            length = steps // even
        else:
            length = -(-steps // parts)
            length += -length % unroll
        self._segments = [(s, min(length, steps - s)) for s in range(0, steps, length)]
        self._on_segment = on_segment

    @property
    def segments(self) -> list[tuple[int, int]]:
        """``(first step, steps)`` of each program an epoch runs as (empty: one program)."""
        return list(self._segments)

    def run(self, state: TrainState, epoch: int, *, stop_after: int | None = None) -> EpochResult:
        if stop_after is not None or not self._segments:
            return super().run(state, epoch, stop_after=stop_after)
        before = programs.compile_seconds()
        carry = self._segmented(state, epoch)
        return EpochResult(*carry, programs.compile_seconds() - before, self.source.plan.steps)

    def _segmented(self, state, epoch):
        """The epoch as consecutive segment programs; segment ``k + 1`` is dispatched before
        segment ``k`` is waited for, so the device never waits on the host's progress report."""
        src, static = self.source, self.static
        carry = programs.run(programs.start, (state, *src.example), dict(
            loss_fn=static["loss_fn"], metrics=static["metrics"]))  # fmt: skip
        idx, mask = programs.run(epoch_indices, (src.key, np.int32(epoch)), dict(plan=src.plan))
        seg_static = dict(padded=src.plan.padded, loss_fn=static["loss_fn"],
                          metrics=static["metrics"], unroll=static["unroll"],
                          split=static["split"])  # fmt: skip
        waiting = None  # the `done` marker of the segment before the one just dispatched
        for first, length in self._segments:
            args = (carry, src.x, src.y, idx, mask, np.int32(first))
            program = programs.compiled(programs.fused_segment, args,
                                        {**seg_static, "length": length}, (0,))  # fmt: skip
            carry, done = program(*args)
            if waiting is not None and self._on_segment is not None:
                self._on_segment(epoch, int(np.asarray(waiting)), src.plan.steps)
            waiting = done
        self._last = None  # the next whole-epoch call (if any) looks its program up again
        return programs.run(programs.finish_epoch, (carry, np.int32(epoch)), {}, (0,))

    def _epoch(self, state, epoch, stop_after):
        src = self.source
        args = (state, src.x, src.y, src.key, np.int32(epoch))
        chained = stop_after is None and self._last is not None and state is self._last[0]
        producer = self._last[1] if chained else None
        executable = self._next.get(producer)
        if executable is None:
            static = {**self.static, "stop_after": stop_after}
            executable = programs.compiled(programs.fused_epoch, args, static)
            if producer is not None:
                self._next[producer] = executable
        # Not donated: the loop copies the state into its carry once per epoch anyway, and the
        # epoch's starting state is kept for a replay after a non-finite loss.
        out = executable(*args)
        if stop_after is None:
            self._last = (out[0], executable)
        return out, self._steps(stop_after)


class StepwiseRunner(_Runner):
    """:attr:`Strategy.STEPWISE`: device-resident data and permutation, one program per step."""

    def __init__(self, source: DeviceArrays, loss_fn, metrics):
        self.source = source
        self.static = dict(loss_fn=loss_fn, metrics=metrics)
        self.step_static = dict(loss_fn=loss_fn, metrics=metrics, split=source.split,
                                padded=source.plan.padded)  # fmt: skip
        self._every = 0  # report progress every this many steps (0: never)
        self._on_segment: Callable[[int, int, int], Any] | None = None

    def split(self, parts: int, on_segment: Callable[[int, int, int], Any] | None = None):
        """Calls ``on_segment(epoch, steps_done, steps)`` about ``parts - 1`` times per epoch,
        each after waiting for the step it reports (the same programs run: the epoch is the
        same bit for bit); ``parts <= 1`` stops it. See :meth:`FusedRunner.split`."""
        steps = self.source.plan.steps
        parts = min(int(parts), steps)
        self._every = -(-steps // parts) if parts > 1 else 0
        self._on_segment = on_segment if parts > 1 else None

    @property
    def segments(self) -> list[tuple[int, int]]:
        """``(first step, steps)`` of each reported part of an epoch (empty: not reported)."""
        steps = self.source.plan.steps
        if not self._every:
            return []
        return [(s, min(self._every, steps - s)) for s in range(0, steps, self._every)]

    def _epoch(self, state, epoch, stop_after):
        src, plan = self.source, self.source.plan
        carry = programs.run(programs.start, (state, *src.example), self.static)
        idx, mask = programs.run(epoch_indices, (src.key, np.int32(epoch)), dict(plan=plan))
        program = None
        for s in range(self._steps(stop_after)):
            args = (carry, src.x, src.y, idx, mask, np.int32(s))
            # Step 0 takes the carry `start` made, step 1 the outputs of step 0's program, and
            # every later step the outputs of that same program: the same signature, so the
            # cache lookup (a walk over every leaf of the state, ~40 us for the CNN, 8% of its
            # batch-1 step on CPU) is made for the first two steps only.
            if s < 2:
                program = programs.compiled(programs.indexed_step, args, self.step_static, (0,))
            carry = program(*args)
            done = s + 1
            if self._on_segment is not None and stop_after is None and done % self._every == 0:
                if done < plan.steps:  # the epoch's end is reported by fit itself
                    jax.block_until_ready(carry[2])  # before the next step takes the buffers
                    self._on_segment(epoch, done, plan.steps)
        return carry, self._steps(stop_after)


def run_chunk(carry, chunk, static, chunk_static, *, per_step: bool, steps: int | None = None,
              donate: bool = True):  # fmt: skip
    """``carry`` after the first ``steps`` batches (None: all) of a device chunk ``[K, B, ...]``:
    one scan over the chunk, or (``per_step``, or a partial chunk) one program per batch.
    ``donate`` hands the carry's buffers to the programs."""
    donated = (0,) if donate else ()
    if per_step or steps is not None:
        program = None
        for j in range(chunk[2].shape[0] if steps is None else steps):  # masks: [K, B]
            args = (carry, *chunk, np.int32(j))
            if j < 2:  # later steps run on the outputs of step 1's program (StepwiseRunner)
                program = programs.compiled(programs.chunk_step, args, static, donated)
            carry = program(*args)
        return carry
    args = (carry, *chunk)
    return programs.compiled(programs.chunk, args, chunk_static, donated)(*args)


class StreamedRunner(_Runner):
    """:attr:`Strategy.STREAMED` and :attr:`Strategy.STREAMED_STEPWISE`: host data copied to
    the device a chunk at a time, the next copy overlapping the device's work on the current
    chunk; each chunk is scanned, or (``per_step``) dispatched one step per batch."""

    def __init__(self, source: HostArrays, loss_fn, metrics, unroll, steps_per_chunk, place,
                 *, per_step: bool, progress: bool):  # fmt: skip
        self.source, self.place, self.k = source, place, steps_per_chunk
        self.per_step, self.progress = per_step, progress
        padded = source.plan.padded
        self.static = dict(loss_fn=loss_fn, metrics=metrics, padded=padded)
        self.chunk_static = dict(loss_fn=loss_fn, metrics=metrics, unroll=unroll, padded=padded)
        self.start_static = dict(loss_fn=loss_fn, metrics=metrics)

    def _put(self, host_chunk):
        return self.place.put_batches(host_chunk, axis=1, batch=self.source.plan.batch)

    def _epoch(self, state, epoch, stop_after):
        src = self.source
        carry = programs.run(programs.start, (state, *src.example), self.start_static)
        host = src.chunks(epoch, size=self.k, stop_after=stop_after)
        total = -(-self._steps(stop_after) // self.k)
        bar = tqdm(total=total, desc="chunks", leave=False, disable=not self.progress)
        for current in prefetch(host, self._put):
            # The previous chunk must be done before this one starts: the next copy then
            # overlaps this chunk's compute, and at most two chunks are held (one computing,
            # one copied). Without the wait the host ran ahead and queued chunks: peak memory
            # grew with the data (2.2 GB over the baseline for a 4 GB file, measured).
            jax.block_until_ready(carry)
            carry = run_chunk(carry, current, self.static, self.chunk_static,
                              per_step=self.per_step)  # fmt: skip
            bar.update(1)
        bar.close()
        return carry, self._steps(stop_after)


class UnfusedRunner(_Runner):
    """:attr:`Strategy.UNFUSED`: a Python loop that slices NumPy batches and calls one jitted
    step per batch - the loop most people write by hand, kept as the reference."""

    def __init__(self, source: HostArrays, loss_fn, metrics, place: Placement):
        self.source, self.place = source, place
        self.static = dict(loss_fn=loss_fn, metrics=metrics)
        self.step_static = dict(loss_fn=loss_fn, metrics=metrics, padded=source.plan.padded)

    def _epoch(self, state, epoch, stop_after):
        src = self.source
        carry = programs.run(programs.start, (state, *src.example), self.static)
        executable = None
        for chunk in src.chunks(epoch, size=1, stop_after=stop_after):
            batch = data_tree.take(chunk, 0)
            if self.place.size > 1:
                batch = self.place.put_batches(batch, axis=0, batch=src.plan.batch)
            if executable is None:  # every batch has the same shape: look the program up once
                executable = programs.compiled(
                    programs.single_step, (carry, *batch), self.step_static, (0,)
                )
            carry = executable(carry, *batch)
        return carry, self._steps(stop_after)


class IterableRunner(_Runner):
    """:attr:`Strategy.ITERABLE` and :attr:`Strategy.ITERABLE_STEPWISE`: batches from an
    iterable, ``K`` at a time, the next chunk read and copied while the device works.

    An iterable cannot be read twice, so the runner checks each chunk's non-finite flag after
    dispatching the next one (the device stays busy), and on a NaN replays that chunk from the
    state it started from, up to the bad step: :meth:`replay` then hands back that state.
    """

    def __init__(self, source: IterableBatches, loss_fn, metrics, unroll, steps_per_chunk,
                 place, *, per_step: bool, process_local: bool = False):  # fmt: skip
        self.source, self.place, self.k, self.per_step = source, place, steps_per_chunk, per_step
        self.process_local = process_local  # each process reads its part of every batch
        self.static = dict(loss_fn=loss_fn, metrics=metrics)
        self.chunk_static = dict(loss_fn=loss_fn, metrics=metrics, unroll=unroll)
        self._good: dict[int, TrainState] = {}  # epoch -> state before its first bad step

    def _put(self, host_chunk):
        if self.process_local:
            return self.place.put_process_local(host_chunk, axis=1)
        return self.place.put_batches(host_chunk, axis=1, batch=self.source.batch)

    def _run_chunk(self, carry, chunk, steps: int | None = None):
        """Not donated: a chunk's starting carry is kept for a replay after a NaN."""
        return run_chunk(carry, chunk, self.static, self.chunk_static, per_step=self.per_step,
                         steps=steps, donate=False)  # fmt: skip

    def _epoch(self, state, epoch, stop_after):
        if stop_after is not None:
            raise ValueError("stop_after: an iterable cannot be read again; use replay")
        carry = programs.run(programs.start, (state, *self.source.example), self.static)
        steps, previous = 0, None  # previous: (carry before, chunk, carry after) not yet checked
        try:
            for chunk in prefetch(self.source.chunks(epoch, size=self.k), self._put):
                before, carry = carry, self._run_chunk(carry, chunk)
                if previous is not None and self._bad(previous, epoch):
                    return previous[2], steps
                previous = (before, chunk, carry)
                steps += chunk[2].shape[0]
        except BatchError as err:
            if previous is not None and self._bad(previous, epoch):
                return previous[2], steps
            err.state = carry[0]
            raise
        if previous is not None:
            self._bad(previous, epoch)
        return carry, steps

    def _bad(self, checked, epoch: int) -> bool:
        """Whether the chunk ``checked`` hit a non-finite loss; if so keeps the good state."""
        before, chunk, after = checked
        bad = int(after[2])
        if bad < 0:
            return False
        self._good[epoch] = self._run_chunk(before, chunk, bad - int(before[0].step))[0]
        return True

    replays_any_step = False

    def replay(self, state: TrainState, epoch: int, steps: int) -> TrainState:
        del state, steps  # the replay ran when the bad chunk was found
        return self._good.pop(epoch, None)  # None: no chunk had a bad loss

    def data_state(self) -> Any:
        return self.source.get_state()

    def set_data_state(self, state: Any) -> None:
        if state is not None:
            self.source.set_state(state)


def make_runner(
    choice: StrategyChoice, x, y, plan: Plan, key, loss_fn, metrics, place: Placement,
    *, example=None, progress: bool = False, process_local: bool = False,
) -> EpochRunner:  # fmt: skip
    """The runner of ``choice`` over the training set ``(x, y)`` (host or device arrays), or
    over ``x`` an :class:`~fnn.train.sources.IterableBatches` (``y`` unused).

    ``example`` is ``(x[:1], y[:1])`` as host arrays, when the caller has them at hand.
    """
    s = choice.strategy
    if s in (Strategy.ITERABLE, Strategy.ITERABLE_STEPWISE):
        return IterableRunner(x, loss_fn, metrics, choice.unroll, choice.steps_per_chunk, place,
                              per_step=s is Strategy.ITERABLE_STEPWISE,
                              process_local=process_local)  # fmt: skip
    if example is None:
        example = data_tree.tree_map(np.asarray, (data_tree.head(x), data_tree.head(y)))
    if s in (Strategy.FUSED, Strategy.STEPWISE):
        source = DeviceArrays(x, y, plan, key, place, example=example,
                              process_local=process_local)  # fmt: skip
        if s is Strategy.FUSED:
            return FusedRunner(source, loss_fn, metrics, choice.unroll)
        return StepwiseRunner(source, loss_fn, metrics)
    if process_local:
        raise ValueError(
            f"process_local: each process's rows must live on its devices, which strategy "
            f"{s.value!r} does not do (it reads the whole training set on the host); use "
            f"'fused' or 'stepwise', or give every process the same data"
        )
    host = HostArrays(*data_tree.tree_map(np.asarray, (x, y)), plan, key)
    if s is Strategy.UNFUSED:
        return UnfusedRunner(host, loss_fn, metrics, place)
    return StreamedRunner(
        host, loss_fn, metrics, choice.unroll, choice.steps_per_chunk, place,
        per_step=s is Strategy.STREAMED_STEPWISE, progress=progress,
    )  # fmt: skip


__all__ = [
    "EpochResult",
    "EpochRunner",
    "FusedRunner",
    "IterableRunner",
    "Strategy",
    "StrategyChoice",
    "StepwiseRunner",
    "StreamedRunner",
    "UnfusedRunner",
    "choose_strategy",
    "default_unroll",
    "make_runner",
]
