"""Flax NNX: the hand-written loop of Flax's NNX tutorial, and fnn.fit on the same NNX module.

Both train the workload's network written with ``flax.nnx`` layers (same shapes as the linen
reference; its own initial values, from ``nnx.Rngs(seed)``). Only the dense workloads
(``logreg``, ``mlp``) have an NNX version; the others are reported as skipped.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
import optax

from benchmarks.runners.base import Runner, Unavailable, logits_metrics, require_dense
from benchmarks.runners.jax_runners import EVAL_BATCH, FnnFusedRunner
from benchmarks.workloads import MOMENTUM, Workload

__all__ = ["FnnFusedNnxRunner", "NnxLoopRunner", "build_nnx_model"]


def _import_nnx() -> Any:
    try:
        from flax import nnx
    except ImportError as e:  # Flax older than 0.8
        raise Unavailable(f"flax.nnx not available ({e})") from None
    return nnx


def _check_dense(workload: Workload) -> None:
    require_dense(workload, "no NNX model")


@functools.cache
def _dense_net() -> type:
    """The NNX network class, defined once (its graph definition names it: equal networks
    then share fnn's compiled programs)."""
    nnx = _import_nnx()

    class NnxDenseNet(nnx.Module):
        """Linear + ReLU per hidden width, then the output Linear."""

        def __init__(self, widths: tuple[int, ...], rngs: nnx.Rngs):
            pairs = zip(widths, widths[1:], strict=False)
            # nnx.List is flax>=0.12 (which refuses a plain list of modules); flax 0.11 takes a list
            layers = getattr(nnx, "List", list)
            self.layers = layers([nnx.Linear(a, b, rngs=rngs) for a, b in pairs])

        def __call__(self, x):
            x = x.reshape(x.shape[0], -1)
            for layer in self.layers[:-1]:
                x = nnx.relu(layer(x))
            return self.layers[-1](x)

    return NnxDenseNet


def build_nnx_model(workload: Workload, input_shape, num_classes: int, seed: int) -> Any:
    """The workload's network in ``flax.nnx`` layers, with the shapes of the linen reference."""
    _check_dense(workload)
    widths = (int(np.prod(input_shape)), *workload.hidden, num_classes)
    return _dense_net()(widths, _import_nnx().Rngs(seed))


class _NnxMixin:
    """Availability: flax.nnx importable, and a workload with an NNX version."""

    @classmethod
    def check_available(cls) -> None:
        _import_nnx()

    @classmethod
    def check_workload(cls, workload: Workload) -> None:
        _check_dense(workload)


class FnnFusedNnxRunner(_NnxMixin, FnnFusedRunner):
    """``fnn.fit`` (fused) on the NNX module: the same engine, the model behind ``NnxModel``.

    Family ``fnn``: never a peer; ``fnn_fused`` (linen) stays the one the targets are held to.
    """

    implementation = "fnn_fused_nnx"
    label = "fnn fused (NNX)"

    @classmethod
    def check_available(cls) -> None:
        FnnFusedRunner.check_available()
        _import_nnx()

    def build_model(self) -> Any:
        return build_nnx_model(
            self.workload, self.data.input_shape, self.data.num_classes, self.seed
        )


class NnxLoopRunner(_NnxMixin, Runner):
    """What Flax's NNX tutorial writes: ``nnx.Optimizer(model, tx, wrt=nnx.Param)``, an
    ``@nnx.jit`` train step that updates the module in place, a Python loop over NumPy slices
    of a permutation. The last partial batch is trained on (one extra compilation)."""

    implementation = "nnx_loop"
    family = "flax"
    label = "hand NNX loop"

    def setup(self) -> None:
        nnx = _import_nnx()
        self.model = build_nnx_model(
            self.workload, self.data.input_shape, self.data.num_classes, self.seed
        )
        tx = optax.sgd(self.learning_rate, momentum=MOMENTUM)
        self.optimizer = nnx.Optimizer(self.model, tx, wrt=nnx.Param)

        @nnx.jit
        def train_step(model, optimizer, x, y):
            def loss_fn(model):
                logits = model(x)
                return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

            loss, grads = nnx.value_and_grad(loss_fn)(model)
            optimizer.update(model, grads)
            return loss

        @nnx.jit
        def predict(model, x):
            return model(x)

        self._step, self._predict = train_step, predict
        self._rng = np.random.default_rng(self.seed)

    def run_epochs(self, epochs: int) -> None:
        x, y, b = self.data.x_train, self.data.y_train, self.batch_size
        n = x.shape[0]
        self.model.train()
        loss = None
        for _ in range(epochs):
            perm = self._rng.permutation(n)
            for start in range(0, n, b):
                idx = perm[start : start + b]
                loss = self._step(self.model, self.optimizer, x[idx], y[idx])
        jax.block_until_ready((loss, self.params))
        self.epochs_done += epochs

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        self.model.eval()
        chunks = [
            np.asarray(self._predict(self.model, x[i : i + EVAL_BATCH]))
            for i in range(0, len(x), EVAL_BATCH)
        ]
        return logits_metrics(np.concatenate(chunks), y)

    @property
    def params(self) -> Any:
        nnx = _import_nnx()
        return nnx.to_pure_dict(nnx.state(self.model, nnx.Param))

    def close(self) -> None:
        self.model = self.optimizer = None
