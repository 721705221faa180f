"""Keras 3 on the JAX backend: ``model.fit`` as a user calls it (``steps_per_execution`` 1 / tuned).

Keras is imported lazily, with ``KERAS_BACKEND=jax`` set first; if Keras is missing, or was
already imported with another backend, the runners report themselves unavailable.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from benchmarks.runners.base import Runner, Unavailable, logits_metrics
from benchmarks.workloads import MOMENTUM

__all__ = ["KerasRunner", "KerasTunedRunner", "TUNED_STEPS_PER_EXECUTION"]

TUNED_STEPS_PER_EXECUTION = 64


def import_keras() -> Any:
    """Imports Keras 3 on the JAX backend.

    Raises:
      Unavailable: if Keras is not installed, is older than 3, or runs another backend.
    """
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError as e:
        raise Unavailable(f"keras not installed ({e}); pip install 'fnn[bench]'") from None
    if int(keras.__version__.split(".")[0]) < 3:
        raise Unavailable(f"keras {keras.__version__} < 3")
    if keras.backend.backend() != "jax":
        raise Unavailable(f"keras backend is {keras.backend.backend()!r}, not 'jax'")
    return keras


def _implicit_broadcasting():
    """Keras relies on NumPy rank promotion (e.g. adding a bias), which a caller may forbid."""
    return jax.numpy_rank_promotion("allow")


def build_keras_model(keras: Any, workload_name: str, input_shape, num_classes: int):
    """The workload's model in Keras layers (same shapes as the Flax reference)."""
    layers = keras.layers
    body: list[Any]
    if workload_name == "logreg":
        body = [layers.Dense(num_classes)]
    elif workload_name == "mlp":
        body = [
            layers.Dense(256, activation="relu"),
            layers.Dense(256, activation="relu"),
            layers.Dense(num_classes),
        ]
    elif workload_name == "cnn":
        body = [
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2, padding="same"),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2, padding="same"),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(num_classes),
        ]
    elif workload_name == "lstm":
        body = [layers.LSTM(128), layers.Dense(num_classes)]
    else:
        raise ValueError(f"no Keras model for workload {workload_name!r}")
    return keras.Sequential([keras.Input(shape=tuple(input_shape)), *body])


class KerasRunner(Runner):
    """``model.fit(x, y, batch_size=b, epochs=k, shuffle=True, verbose=0)``, jit-compiled."""

    implementation = "keras_spe1"
    label = "Keras JAX (spe=1)"
    family = "keras"
    steps_per_execution = 1

    @classmethod
    def check_available(cls) -> None:
        import_keras()

    def setup(self) -> None:
        with _implicit_broadcasting():
            self._setup()

    def _setup(self) -> None:
        keras = import_keras()
        keras.utils.set_random_seed(self.seed)
        self.model = build_keras_model(
            keras, self.workload.name, self.data.input_shape, self.data.num_classes
        )
        self.model.compile(
            optimizer=keras.optimizers.SGD(self.learning_rate, momentum=MOMENTUM),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            steps_per_execution=self.steps_per_execution,
            jit_compile=True,
        )

    def run_epochs(self, epochs: int) -> None:
        with _implicit_broadcasting():
            self.model.fit(
                self.data.x_train,
                self.data.y_train,
                batch_size=self.batch_size,
                epochs=epochs,
                shuffle=True,
                verbose=0,
            )
        jax.block_until_ready([v.value for v in self.model.trainable_variables])
        self.epochs_done += epochs

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        with _implicit_broadcasting():
            logits = self.model.predict(x, batch_size=1024, verbose=0)
        return logits_metrics(logits, y)

    def close(self) -> None:
        self.model = None


class KerasTunedRunner(KerasRunner):
    """Keras with ``steps_per_execution`` tuned (several steps per compiled call)."""

    implementation = f"keras_spe{TUNED_STEPS_PER_EXECUTION}"
    label = f"Keras JAX (spe={TUNED_STEPS_PER_EXECUTION})"
    steps_per_execution = TUNED_STEPS_PER_EXECUTION
