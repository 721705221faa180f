"""fnn (fused and unfused) and the hand-written Flax + Optax loops a user would write."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from benchmarks.runners.base import Runner, Unavailable, logits_metrics
from benchmarks.workloads import MOMENTUM

__all__ = [
    "FlaxLoopRunner",
    "FlaxScanRunner",
    "FnnFusedRunner",
    "FnnUnfusedRunner",
    "MatmulBoundRunner",
]

EVAL_BATCH = 1024


def _predict_in_batches(apply_fn, params, x: np.ndarray) -> np.ndarray:
    outs = [
        np.asarray(apply_fn(params, x[i : i + EVAL_BATCH])) for i in range(0, len(x), EVAL_BATCH)
    ]
    return np.concatenate(outs)


# ----------------------------------------------------------------------------------------------
# fnn
# ----------------------------------------------------------------------------------------------


class _FnnRunner(Runner):
    """``fnn.fit`` with the workload's model and ``fnn.optim.sgd``; one ``fit`` call per chunk."""

    family = "fnn"
    fused = True

    @classmethod
    def check_available(cls) -> None:
        import fnn

        if not hasattr(fnn, "fit"):
            raise Unavailable("fnn.fit is not available in this checkout (training loop missing)")

    def setup(self) -> None:
        import fnn
        from fnn import optim
        from fnn.train import TrainState

        self._fnn = fnn
        model = self.build_model()
        optimizer = optim.sgd(self.learning_rate, momentum=MOMENTUM)
        self.state = TrainState.create(model, optimizer, self.data.x_train[:1], seed=self.seed)
        self.place_data()

    def build_model(self) -> Any:
        """The model ``fnn.fit`` trains: the workload's reference linen module."""
        return self.workload.build(self.data.num_classes)

    def place_data(self) -> None:
        """Puts the training arrays on the device, where fit's epoch programs gather from."""
        self._x = jax.device_put(self.data.x_train)
        self._y = jax.device_put(self.data.y_train)
        full = self.batch_size == self.data.num_train
        self._batch: int | str = "full" if full else self.batch_size

    def run_epochs(self, epochs: int) -> None:
        self.fit(
            epochs,
            self._x,
            self._y,
            batch_size=self._batch,
            shuffle=True,
            seed=self.seed + self.epochs_done,
            drop_remainder=False,
            fused=self.fused,
        )

    def fit(self, epochs: int, x: Any, y: Any = None, **options: Any) -> None:
        """``epochs`` epochs of ``fnn.fit`` on ``x`` (and ``y``), silent, no metrics."""
        self.state, _ = self._fnn.fit(
            self.state, x, y, loss="cross_entropy", epochs=epochs, metrics=(), verbose=0, **options
        )
        jax.block_until_ready(self.state.params)
        self.epochs_done += epochs

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        out = self._fnn.evaluate(
            self.state,
            x,
            y,
            loss="cross_entropy",
            metrics=("accuracy",),
            batch_size=min(EVAL_BATCH, len(x)),
        )
        return {"loss": float(out["loss"]), "accuracy": float(out["accuracy"])}

    @property
    def params(self) -> Any:
        return self.state.params

    def close(self) -> None:
        self.state = self._x = self._y = None


class FnnFusedRunner(_FnnRunner):
    implementation = "fnn_fused"
    label = "fnn fused"
    fused = True


class FnnUnfusedRunner(_FnnRunner):
    implementation = "fnn_unfused"
    label = "fnn unfused"
    fused = False


# ----------------------------------------------------------------------------------------------
# Hand-written Flax + Optax
# ----------------------------------------------------------------------------------------------


def _loss_fn(params, apply_fn, x, y):
    logits = apply_fn({"params": params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _train_step(state: train_state.TrainState, x: jax.Array, y: jax.Array):
    loss, grads = jax.value_and_grad(_loss_fn)(state.params, state.apply_fn, x, y)
    return state.apply_gradients(grads=grads), loss


@functools.lru_cache(maxsize=32)
def _jitted_init(workload_name: str, num_classes: int):
    """``jax.jit(model.init)``, one per model, so equal shapes compile once per process."""
    from benchmarks.workloads import get_workload

    return jax.jit(get_workload(workload_name).build(num_classes).init)


def make_train_state(workload, num_classes: int, x_example, learning_rate: float, seed: int):
    """The Flax ``TrainState`` the hand-written loops start from."""
    model = workload.build(num_classes)
    init = _jitted_init(workload.name, num_classes)
    params = init(jax.random.key(seed), jnp.asarray(x_example))["params"]
    tx = optax.sgd(learning_rate, momentum=MOMENTUM)
    return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def _step_specs(workload, data, batch_size: int):
    """Shapes of the arguments of the reference training step: ``(state, x, y)``."""
    model = workload.build(data.num_classes)
    x1 = jax.ShapeDtypeStruct((1, *data.input_shape), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), x1)["params"]
    tx = optax.sgd(workload.learning_rate(batch_size), momentum=MOMENTUM)
    state = jax.eval_shape(
        lambda p: train_state.TrainState.create(apply_fn=model.apply, params=p, tx=tx), params
    )
    x = jax.ShapeDtypeStruct((batch_size, *data.input_shape), jnp.float32)
    y = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
    return state, x, y


def train_step_flops(workload, data, batch_size: int) -> int:
    """Model FLOPs of one training step of ``workload`` at ``batch_size`` (see hardware).

    Shapes only: the parameters come from ``jax.eval_shape``, nothing is compiled or run.
    """
    from benchmarks.hardware import count_flops

    return count_flops(_train_step, *_step_specs(workload, data, batch_size))


def step_matmul_program(workload, data, batch_size: int):
    """The matmuls of one training step of ``workload`` at ``batch_size``, alone, compiled
    (:func:`benchmarks.hardware.matmul_program`); None for a step that loops over them."""
    from benchmarks.hardware import matmul_program

    return matmul_program(_train_step, *_step_specs(workload, data, batch_size))


class _FlaxRunner(Runner):
    family = "flax"

    def setup(self) -> None:
        self.state = make_train_state(
            self.workload,
            self.data.num_classes,
            self.data.x_train[:1],
            self.learning_rate,
            self.seed,
        )
        apply_fn = self.state.apply_fn
        self._predict = jax.jit(lambda params, x: apply_fn({"params": params}, x))

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return logits_metrics(_predict_in_batches(self._predict, self.state.params, x), y)

    @property
    def params(self) -> Any:
        return self.state.params

    def close(self) -> None:
        self.state = None


class FlaxLoopRunner(_FlaxRunner):
    """What a user writes: ``@jax.jit`` step, Python loop over NumPy slices of a permutation.

    The last partial batch is trained on (one extra compilation for its shape).
    """

    implementation = "flax_loop"
    label = "hand Flax loop"

    def setup(self) -> None:
        super().setup()
        self._step = jax.jit(_train_step)
        self._rng = np.random.default_rng(self.seed)

    def run_epochs(self, epochs: int) -> None:
        x, y, b = self.data.x_train, self.data.y_train, self.batch_size
        n = x.shape[0]
        state = self.state
        for _ in range(epochs):
            perm = self._rng.permutation(n)
            for start in range(0, n, b):
                idx = perm[start : start + b]
                state, _ = self._step(state, x[idx], y[idx])
        self.state = jax.block_until_ready(state)
        self.epochs_done += epochs


class FlaxScanRunner(_FlaxRunner):
    """A hand-written fused epoch: ``jax.random.permutation`` + ``lax.scan`` over the steps.

    Drops the last partial batch (the simplest thing to write by hand).
    """

    implementation = "flax_scan"
    label = "hand lax.scan"
    drops_remainder = True

    def setup(self) -> None:
        super().setup()
        self._x = jax.device_put(self.data.x_train)
        self._y = jax.device_put(self.data.y_train)
        self._key = jax.random.key(self.seed)
        n, b = self.data.num_train, self.batch_size
        steps = n // b

        @functools.partial(jax.jit, donate_argnums=0)
        def epoch(state, x, y, key):
            perm = jax.random.permutation(key, n)[: steps * b].reshape(steps, b)

            def body(state, idx):
                return _train_step(state, x[idx], y[idx])

            state, losses = jax.lax.scan(body, state, perm)
            return state, losses.mean()

        self._epoch = epoch

    def run_epochs(self, epochs: int) -> None:
        state = self.state
        for i in range(epochs):
            key = jax.random.fold_in(self._key, self.epochs_done + i)
            state, _ = self._epoch(state, self._x, self._y, key)
        self.state = jax.block_until_ready(state)
        self.epochs_done += epochs

    def close(self) -> None:
        super().close()
        self._x = self._y = None


# ----------------------------------------------------------------------------------------------
# The step's matmul bound (not an implementation)
# ----------------------------------------------------------------------------------------------


class MatmulBoundRunner(Runner):
    """The matmuls of one training step alone (:func:`step_matmul_program`), one call per step.

    Not an implementation and not a peer: it trains nothing. It is timed in the same
    interleaved rounds as the implementations, so a step's speed can be set against the speed
    of its own matmuls on this device, measured under the same conditions.
    """

    implementation = "matmul_bound"
    family = "bound"
    label = "step matmuls alone"

    def __init__(self, workload, data, batch_size: int, *, program, seed: int = 0):
        """``program``: the step's :func:`step_matmul_program`, compiled by the caller (which
        needs it first to know whether the step has one)."""
        super().__init__(workload, data, batch_size, seed=seed)
        self.program = program

    def setup(self) -> None:
        pass  # compiled already

    def run_epochs(self, epochs: int) -> None:
        out = None
        for _ in range(epochs * self.steps_per_epoch):
            out = self.program()
        jax.block_until_ready(out)
        self.epochs_done += epochs

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        del x, y
        raise NotImplementedError("the step's matmul bound trains no model")

    def close(self) -> None:
        self.program = None
