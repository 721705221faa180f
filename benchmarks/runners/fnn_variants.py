"""fnn.fit on the reference network two other ways: bfloat16 compute, and batches from Grain.

Both are family ``fnn``: never a peer, and ``fnn_fused`` (float32, in-memory arrays) stays the
one the targets are held to; the report sets each against it, paired round by round. Only the
dense workloads (``logreg``, ``mlp``) are measured; the others are reported as skipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.runners.base import Unavailable, require_dense
from benchmarks.runners.jax_runners import FnnFusedRunner
from benchmarks.workloads import Workload

__all__ = ["FnnFusedBf16Runner", "FnnIterableRunner"]

READ_EPOCHS = 3  # diagnostics: at least this many epochs read from the loader alone,
MIN_READ_S = 0.3  # and for at least about this long,
MAX_READ_EPOCHS = 50  # but no more epochs than this
GRAIN_THREADS = "grain-prefetch"  # the name prefix of Grain's reading threads


class FnnFusedBf16Runner(FnnFusedRunner):
    """``fnn.fit`` (fused) with bfloat16 compute: the workload's model built with
    ``dtype=jnp.bfloat16``; parameters and optimizer state stay float32, and fit computes the
    loss in float32."""

    implementation = "fnn_fused_bf16"
    label = "fnn fused (bf16)"

    @classmethod
    def check_workload(cls, workload: Workload) -> None:
        require_dense(workload, "no bf16 benchmark")

    def build_model(self) -> Any:
        return self.workload.build(self.data.num_classes, dtype=jnp.bfloat16)


class FnnIterableRunner(FnnFusedRunner):
    """``fnn.fit`` fed by a Grain pipeline instead of in-memory arrays.

    The loader is ``fnn.data.grain_loader`` over an ``ArraySource`` of the training arrays
    (shuffled anew each Grain epoch, repeated without end, the last partial batch dropped).
    Each ``run_epochs(k)`` is one ``fit(state, iterator, epochs=k, steps_per_epoch=n // B)``
    on an iterator of it that starts where the previous call's stopped (``get_state`` /
    ``set_state``) and is closed after it: Grain reads ahead in a thread, and an iterator kept
    open between timed repeats would read the next batches for free while the other
    implementations are timed (at full batch, the whole next epoch).
    """

    implementation = "fnn_iterable"
    label = "fnn, Grain loader"
    drops_remainder = True

    @classmethod
    def check_available(cls) -> None:
        FnnFusedRunner.check_available()
        try:
            import grain  # noqa: F401

            from fnn.data import grain_loader  # noqa: F401
            from fnn.data.grain import ArraySource  # noqa: F401
        except ImportError as e:
            raise Unavailable(f"Grain loader not available ({e})") from None

    @classmethod
    def check_workload(cls, workload: Workload) -> None:
        require_dense(workload, "no Grain-loader benchmark")

    def place_data(self) -> None:
        from fnn.data import grain_loader
        from fnn.data.grain import ArraySource

        self._source = source = ArraySource(self.data.x_train, self.data.y_train,
                                            name=self.data.name)  # fmt: skip
        self._loader = grain_loader(source, batch_size=self.batch_size, num_epochs=None,
                                    shuffle=True, seed=self.seed, drop_remainder=True)  # fmt: skip
        self._position: dict[str, Any] | None = None  # where the last fit call stopped

    def _iterator(self) -> Any:
        """A new iterator of the loader, where the last ``fit`` call stopped."""
        batches = iter(self._loader)
        if self._position is not None:
            batches.set_state(self._position)
        return batches

    def run_epochs(self, epochs: int) -> None:
        batches = self._iterator()
        try:
            self.fit(epochs, batches, steps_per_epoch=self.steps_per_epoch)
            self._position = batches.get_state()
        finally:
            _close(batches)

    def diagnostics(self) -> dict[str, Any]:
        """Parts of the time of ``run_epochs``, each timed alone (medians): what an iterator of
        the loader costs per ``fit`` call (starting it where training stopped, up to its
        first batch less one batch's reading, and closing it, which waits for the batch it
        was reading ahead), reading an epoch's batches from it, the same batches straight
        from the source without Grain, and stacking the batches and copying them to the
        device (what fit does with them, here in one piece)."""
        steps = self.steps_per_epoch

        def one_call() -> None:
            it = self._iterator()
            next(it)
            _close(it)

        call_s = _median_s(one_call)
        it = self._iterator()
        next(it)
        read: list[float] = []
        while len(read) < READ_EPOCHS or (sum(read) < MIN_READ_S and len(read) < MAX_READ_EPOCHS):
            start = time.perf_counter()
            batches = [next(it) for _ in range(steps)]
            read.append(time.perf_counter() - start)
        _close(it)
        read_s = float(np.median(read))
        source, b = self._source, self.batch_size
        many = getattr(source, "__getitems__", None)
        order = np.random.default_rng(self.seed).permutation(len(source))[: steps * b]

        def from_source() -> None:  # a batch of indices at a time, then stacked like Grain's
            for idx in order.reshape(steps, b).tolist():
                _stack(many(idx) if many is not None else [source[i] for i in idx])

        return {
            "input_call_s": max(0.0, call_s - read_s / steps),
            "input_read_epoch_s": read_s,
            "input_source_epoch_s": _median_s(from_source),
            "input_copy_epoch_s": _median_s(
                lambda: jax.block_until_ready(jax.device_put(_stack(batches)))
            ),
        }

    def close(self) -> None:
        super().close()
        self._loader = None


def _stack(items: list[Any]) -> Any:
    """Items (or batches) ``(x, y)`` stacked into one ``(x, y)`` along a new first axis."""
    return jax.tree_util.tree_map(lambda *a: np.stack(a), *items)


def _median_s(fn: Callable[[], Any], repeats: int = READ_EPOCHS) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _close(iterator: Any) -> None:
    """Ends a Grain iterator and waits for the batch its reading thread is in the middle of
    (Grain's ``close`` does not), so that no reading spills into what is timed next."""
    close = getattr(iterator, "close", None)
    if callable(close):
        close()
    for thread in threading.enumerate():
        if thread.name.startswith(GRAIN_THREADS) and thread is not threading.current_thread():
            thread.join(timeout=60)
