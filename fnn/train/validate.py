"""Checks of what fit / evaluate / predict are given, on the host, before anything is traced.

The argument-level checks themselves live in :mod:`fnn._checks` (one message style, ``"arg:
expected X, got Y"``; TypeError for a wrong type, ValueError for a wrong value); this module
adds the checks that need the model or the loss, and :func:`fit_inputs`, which checks
everything ``fit`` is given in one call.
"""

import functools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnn import _checks
from fnn import losses as losses_lib
from fnn import metrics as metrics_lib
from fnn.parallel import check_same_everywhere, global_examples
from fnn.train import data_tree
from fnn.train.callbacks import Callback
from fnn.train.checkpoint import OVERRIDABLE, STRUCTURAL
from fnn.train.executors import Strategy
from fnn.train.model import ModelFacts, model_facts
from fnn.train.sources import IterableBatches, is_batch_iterable
from fnn.train.state import TrainState


def check_not_traced(name: str, value: Any, caller: str) -> None:
    """A clear TypeError when ``value`` holds tracers: ``caller`` (fit, evaluate, predict) runs
    its own compiled programs and cannot run inside ``jax.jit`` / ``jax.grad`` / ``vmap``."""
    if is_batch_iterable(value):  # its batches are read later, on the host
        return
    # A plain pytree flatten (a TrainState is a pytree node), lists of numbers kept whole.
    numbers = lambda o: isinstance(o, list) and data_tree.is_leaf(o)
    leaves = jax.tree_util.tree_leaves(value, is_leaf=numbers)
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        raise TypeError(
            f"{name}: fnn.{caller} was called inside a JAX transformation (jax.jit, jax.grad, "
            f"vmap: {name} holds tracers); it compiles and runs its own programs. Inside a "
            f"transformation use the pure steps: fnn.train.predict_step(state, x), "
            f"fnn.train.eval_step or fnn.train.train_step"
        )


ARRAY = np.ndarray | jax.Array  # what the value checks read (a pytree's leaves are not)


def facts(state: TrainState, x: Any, name: str = "x") -> ModelFacts:
    """The model's :class:`~fnn.train.model.ModelFacts` on inputs like ``x``, or a clear error."""
    expected = state.input_shape
    if expected is not None and isinstance(x, ARRAY) and x.ndim != len(expected) + 1:
        shape = ", ".join(["n", *map(str, expected)])
        raise ValueError(
            f"{name}: expected inputs of rank {len(expected) + 1} ([{shape}], like the example "
            f"given to TrainState.create), got shape {x.shape}"
        )
    example = data_tree.spec(x, batch=1)
    try:
        return model_facts(state.model, state.params, state.model_state, example)
    except Exception as err:
        if isinstance(x, ARRAY):
            what = f"examples of shape {x.shape[1:]} and dtype {x.dtype}"
        else:
            what = f"examples {data_tree.describe(x)}"
        raise ValueError(f"{name}: {what} do not fit the model: {err}") from None


def check_targets(loss_fn, y: Any, out_shape: tuple[int, ...], name: str = "y") -> None:
    """Checks ``y`` against the loss and the model's output shape (values where known; a
    pytree of targets is checked through the loss's output shape only)."""
    if not isinstance(y, ARRAY):
        pass
    elif loss_fn is losses_lib.sparse_categorical_cross_entropy:
        classes = out_shape[-1] if out_shape else 1
        if np.dtype(y.dtype).kind not in "iu":
            raise TypeError(
                f"{name}: sparse_categorical_cross_entropy needs integer class labels, "
                f"got dtype {y.dtype}"
            )
        if y.ndim != 1:
            raise ValueError(f"{name}: expected class labels of shape [n], got shape {y.shape}")
        values = data_tree.summary(y)
        lo, hi = int(values.low), int(values.high)
        if lo < 0 or hi >= classes:
            raise ValueError(
                f"{name}: labels must lie in [0, {classes}) for a model with {classes} outputs, "
                f"got range [{lo}, {hi}]"
            )
    elif loss_fn is losses_lib.binary_cross_entropy:
        values = data_tree.summary(y)
        lo, hi = float(values.low), float(values.high)
        if lo < 0 or hi > 1:
            raise ValueError(
                f"{name}: binary_cross_entropy needs labels in [0, 1], got range [{lo}, {hi}]"
            )
    n = data_tree.num_examples(y)
    target_leaves, target_tree = jax.tree_util.tree_flatten(data_tree.spec(y))
    try:
        shape = _loss_shape(loss_fn, (n, *out_shape), target_tree, tuple(target_leaves))
    except (ValueError, TypeError) as err:
        raise type(err)(
            f"{name}: does not fit the loss for model outputs of shape [n, "
            f"{', '.join(map(str, out_shape))}]: {err}"
        ) from None
    if tuple(shape) != (n,):
        loss_name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
        raise ValueError(
            f"loss: {loss_name} returned shape {tuple(shape)} for {n} examples; expected one "
            f"value per example, shape ({n},). fit masks padded rows and averages itself: "
            f"return the per-example values (e.g. fnn.losses.mean_squared_error), not their "
            f"mean or an unreduced [n, k] array"
        )


@functools.lru_cache(maxsize=256)
def _loss_shape(loss_fn, prediction_shape, target_tree, target_leaves):
    return jax.eval_shape(
        loss_fn,
        jax.ShapeDtypeStruct(prediction_shape, jnp.float32),
        jax.tree_util.tree_unflatten(target_tree, target_leaves),
    ).shape


def check_state(state: Any, caller: str) -> TrainState:
    _checks.check_type("state", state, TrainState, "a fnn.TrainState")
    check_not_traced("state", state, caller)
    return state


def labelled(state: TrainState, x, y, loss_fn, x_name="x", y_name="y", metrics=()):
    """Checked ``(x, y, facts)`` of a labelled set for ``state``'s model, ``loss_fn`` and
    ``metrics``."""
    if loss_fn is losses_lib.sparse_categorical_cross_entropy and _is_bool(y):
        raise TypeError(
            f"{y_name}: sparse_categorical_cross_entropy needs integer class labels, got dtype "
            f"bool; pass {y_name}.astype(np.int32) (with a model of 2 outputs), or use "
            f"loss='binary_cross_entropy' with a single output"
        )
    x, y = data_tree.as_data(x_name, x), data_tree.as_data(y_name, y)
    data_tree.check_pair(x, y, x_name, y_name)
    model = facts(state, x, x_name)
    check_targets(loss_fn, y, model.output_shape, y_name)
    check_metric_targets(metrics, loss_fn, y, y_name)
    return x, y, model


def _is_bool(y: Any) -> bool:
    dtype = getattr(y, "dtype", None)
    return dtype is not None and np.dtype(dtype) == np.bool_


def check_metric_targets(metrics, loss_fn, y: Any, name: str = "y") -> None:
    """Checks that each metric can read ``y`` (see ``fnn.metrics.Metric.targets``).

    Class-label metrics (accuracy, precision, recall, F1, the confusion matrix) need integer
    labels, or 0/1 targets for a single logit; regression metrics (MAE, R^2) need values
    shaped like the predictions, not the class labels of a cross-entropy. A pytree of targets
    is not checked.
    """
    if not metrics or not isinstance(y, ARRAY) or y.size == 0:
        return
    labels_like = np.dtype(y.dtype).kind in "iub"
    if not labels_like and any(m.targets == "labels" for m in metrics):
        values = data_tree.summary(y)
        lo, hi, labels_like = float(values.low), float(values.high), values.binary
    for m in metrics:
        if m.targets == "labels" and not labels_like:
            raise ValueError(
                f"metrics: {m.name!r} compares predicted classes with class labels, but {name} "
                f"holds {y.dtype} values in [{lo:.4g}, {hi:.4g}], not labels (integers, or 0/1 "
                f"for a single logit); for regression targets use 'mae' or 'r2'"
            )
        if m.targets == "values" and loss_fn is losses_lib.sparse_categorical_cross_entropy:
            raise ValueError(
                f"metrics: {m.name!r} compares predictions with targets of the same shape, but "
                f"{name} holds the class labels of a cross-entropy; for classification use "
                f"'accuracy', 'macro_f1' or another label metric"
            )


def check_strategy(strategy: Any, fused: Any) -> Strategy | None:
    """The strategy asked for by ``strategy=`` and the older ``fused=`` flag (None: choose)."""
    fused = _checks.check_bool("fused", fused)
    if strategy is not None:
        names = [s.value for s in Strategy]
        if isinstance(strategy, Strategy):
            pass
        elif isinstance(strategy, str):
            strategy = Strategy(_checks.check_choice("strategy", strategy, names))
        else:
            raise TypeError(f"strategy: expected one of {names} or None, got {strategy!r}")
        if not fused and strategy is not Strategy.UNFUSED:
            raise ValueError(
                f"fused, strategy: fused=False asks for the unfused loop, but strategy="
                f"{strategy.value!r}; give one of them"
            )
        return strategy
    return None if fused else Strategy.UNFUSED


@dataclass(frozen=True)
class FitInputs:
    """Everything ``fit`` was given, checked, with the model's facts."""

    loss_fn: losses_lib.LossFn
    metrics: tuple
    # The caller's own device arrays where checking changed nothing (data already on the
    # device is not copied back and forth), else the checked NumPy copies; for an iterable of
    # batches, x is its IterableBatches source and y None.
    x: Any
    y: Any
    facts: ModelFacts
    validation: Any  # (x_val, y_val) checked, an iterable of batches, or None
    batch: int
    epochs: int
    seed: int
    shuffle: bool
    drop_remainder: bool
    strategy: Strategy | None
    callbacks: tuple[Callback, ...]
    verbose: int
    resume_from: str | None
    resume_overrides: tuple[str, ...]
    resume_missing_ok: bool
    max_device_bytes: int | None
    steps_per_chunk: int | None
    unroll: int | None
    devices: tuple[jax.Device, ...] | None
    data_bytes: int  # of the training inputs and targets (of one batch for an iterable)
    example: tuple[Any, Any]  # host arrays shaped like (x[:1], y[:1]) (data_tree.example_of)
    iterable: bool  # x is an iterable of batches
    iterable_validation: bool  # so is validation_data
    process_local: bool  # x, y are this process's rows of the training set
    num_examples: int | None  # of the whole training set (None for an iterable)


def iterable_inputs(state, x, y, loss_fn, *, batch_size, drop_remainder, steps_per_epoch,
                    epochs, name="x",
                    metrics=()) -> tuple[IterableBatches, ModelFacts]:  # fmt: skip
    """The checked source of an iterable ``x`` of batches (its first batch read and checked
    against the model and the loss), and the model's facts on it."""
    if y is not None:
        raise TypeError(
            f"y: an iterable {name} yields (x, y) batches, so y must be None; got "
            f"{type(y).__name__}"
        )
    if batch_size is not None:
        raise ValueError(
            f"batch_size: an iterable {name} sets its own batch size (the size of its first "
            f"batch); expected batch_size=None, got {batch_size!r}"
        )
    if drop_remainder:
        raise ValueError(
            f"drop_remainder: an iterable {name}'s ragged last batch is always masked; drop "
            f"it in the pipeline (e.g. grain's batch(drop_remainder=True)) instead"
        )
    if steps_per_epoch is not None:
        steps_per_epoch = _checks.check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    source = IterableBatches(x, steps_per_epoch=steps_per_epoch, name=name)
    if source.one_pass and steps_per_epoch is None and epochs is not None and epochs > 1:
        raise ValueError(
            f"steps_per_epoch: {name} is a generator, which yields its batches once, and "
            f"epochs={epochs}; give steps_per_epoch (each epoch then takes that many batches in "
            f"turn), or an iterable that can be iterated again (a list, a grain.DataLoader)"
        )
    fx, fy, _ = source.first
    model = facts(state, fx, f"{name}: batch 0 x")
    check_targets(loss_fn, fy, model.output_shape, f"{name}: batch 0 y")
    check_metric_targets(metrics, loss_fn, fy, f"{name}: batch 0 y")
    return source, model


def fit_inputs(state, x, y, *, loss, batch_size, epochs, validation_data, metrics, shuffle,
               seed, drop_remainder, fused, strategy, callbacks, verbose, resume_from,
               resume_overrides, resume_missing_ok, max_device_bytes, steps_per_chunk, unroll,
               devices, steps_per_epoch, process_local) -> FitInputs:  # fmt: skip
    """Checks every argument of ``fit`` (see there), in one call, before anything compiles."""
    check_state(state, "fit")
    check_not_traced("x", x, "fit")
    check_not_traced("y", y, "fit")
    loss_fn = losses_lib.get_loss(loss)
    metrics = metrics_lib.get_metrics(metrics)
    epochs = _checks.check_int("epochs", epochs, minimum=1)
    drop_remainder = _checks.check_bool("drop_remainder", drop_remainder)
    iterable = is_batch_iterable(x)
    process_local = _checks.check_bool("process_local", process_local)
    if iterable:
        source, model = iterable_inputs(
            state, x, y, loss_fn, batch_size=batch_size, drop_remainder=drop_remainder,
            steps_per_epoch=steps_per_epoch, epochs=epochs, metrics=metrics,
        )  # fmt: skip
        x, y = source, None
        batch, data_bytes, example = source.batch, source.batch_bytes, source.example
        if process_local:  # each process's batches are its part of the global batches
            batch = global_examples(source.batch, "x: batch 0")
    else:
        if y is None:
            raise TypeError("y: expected the targets of x (None only when x is an iterable)")
        if batch_size is None:
            raise TypeError("batch_size: expected an integer or 'full' for in-memory x")
        if steps_per_epoch is not None:
            raise ValueError(
                f"steps_per_epoch: applies to an iterable x only (in-memory data runs whole "
                f"epochs), got {steps_per_epoch!r}"
            )
        given = (x, y)
        x, y, model = labelled(state, x, y, loss_fn, metrics=metrics)
        n = data_tree.num_examples(x)
        if process_local:
            n = global_examples(n)
        batch = _checks.check_batch_size("batch_size", batch_size, n)
        data_bytes = (data_tree.nbytes(x) + data_tree.nbytes(y)) * (n // data_tree.num_examples(x))
        example = data_tree.example_of((x, y))
        x, y = _resident(given[0], x), _resident(given[1], y)
    validation = None
    if validation_data is not None and is_batch_iterable(validation_data):
        if isinstance(validation_data, Iterator):
            raise TypeError(
                "validation_data: a generator can be read once, but validation runs after every "
                "epoch; give a list of batches or a loader that can be iterated again"
            )
        iterable_inputs(state, validation_data, None, loss_fn, batch_size=None,
                        drop_remainder=False, steps_per_epoch=None, epochs=None,
                        name="validation_data")  # fmt: skip
        validation = validation_data
    elif validation_data is not None:
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            got = type(validation_data).__name__
            if isinstance(validation_data, tuple | list):
                got = f"a {got} of length {len(validation_data)}"
            raise TypeError(f"validation_data: expected a tuple (x_val, y_val), got {got}")
        xv, yv, _ = labelled(
            state, *validation_data, loss_fn, "validation_data[0]", "validation_data[1]",
            metrics=metrics,
        )
        validation = (xv, yv)
    same = [] if iterable or process_local else [("x", x), ("y", y)]
    iterable_validation = validation is not None and is_batch_iterable(validation)
    if validation is not None and not iterable_validation:
        same += [("validation_data[0]", validation[0]), ("validation_data[1]", validation[1])]
    named = [leaf for name, tree in same for leaf in data_tree.leaves_with_names(name, tree)[0]]
    check_same_everywhere(**dict(named))
    callbacks = _callbacks(callbacks)
    if resume_from is not None:
        _checks.check_type("resume_from", resume_from, str | os.PathLike, "a directory")
    resume_overrides = _resume_overrides(resume_overrides, resume_from)
    resume_missing_ok = _checks.check_bool("resume_missing_ok", resume_missing_ok)
    chunk = steps_per_chunk
    return FitInputs(
        loss_fn=loss_fn,
        metrics=metrics,
        x=x,
        y=y,
        facts=model,
        validation=validation,
        batch=batch,
        epochs=epochs,
        seed=_checks.check_int("seed", seed, minimum=-(2**63), maximum=2**63 - 1),
        shuffle=_checks.check_bool("shuffle", shuffle),
        drop_remainder=drop_remainder,
        strategy=check_strategy(strategy, fused),
        callbacks=callbacks,
        verbose=_checks.check_choice("verbose", verbose, (0, 1, 2)),
        resume_from=resume_from,
        resume_overrides=resume_overrides,
        resume_missing_ok=resume_missing_ok,
        max_device_bytes=None
        if max_device_bytes is None
        else _checks.check_int("max_device_bytes", max_device_bytes, minimum=1),
        steps_per_chunk=None
        if chunk is None
        else _checks.check_int("steps_per_chunk", chunk, minimum=1),  # fmt: skip
        unroll=None if unroll is None else _checks.check_int("unroll", unroll, minimum=1),
        devices=_checks.check_devices("devices", devices),
        data_bytes=data_bytes,
        example=example,
        iterable=iterable,
        iterable_validation=iterable_validation,
        process_local=process_local,
        num_examples=None if iterable else n,
    )


def _callbacks(callbacks) -> tuple[Callback, ...]:
    """``callbacks`` as a tuple: None is none, a single callback is one."""
    if callbacks is None:
        return ()
    if isinstance(callbacks, Callback):
        return (callbacks,)
    if isinstance(callbacks, str | bytes) or not isinstance(callbacks, Sequence | tuple):
        raise TypeError(
            f"callbacks: expected a list of fnn.Callback values (e.g. [fnn.EarlyStopping()]), "
            f"got {callbacks!r}"
        )
    callbacks = tuple(callbacks)
    for i, cb in enumerate(callbacks):
        _checks.check_type(f"callbacks[{i}]", cb, Callback, "an fnn.Callback")
        if any(cb is other for other in callbacks[:i]):
            raise ValueError(
                f"callbacks[{i}]: the same {type(cb).__name__} object is given twice; each "
                f"callback keeps its own state, so give it once (or two separate instances)"
            )
    return callbacks


def _resume_overrides(overrides, resume_from) -> tuple[str, ...]:
    """``resume_overrides`` checked: a sequence of run_config fields that may change."""
    if isinstance(overrides, str) or not isinstance(overrides, tuple | list):
        raise TypeError(
            f"resume_overrides: expected a tuple of field names such as ('epochs',), got "
            f"{overrides!r}"
        )
    for field in overrides:
        if field in STRUCTURAL:
            raise ValueError(
                f"resume_overrides: {field!r} cannot be overridden: it fixes the shapes of the "
                f"saved arrays; expected some of {OVERRIDABLE}"
            )
        if field not in OVERRIDABLE:
            raise ValueError(f"resume_overrides: expected some of {OVERRIDABLE}, got {field!r}")
    del resume_from  # without it there is nothing to resume and the overrides do nothing
    return tuple(overrides)


def _resident(given: Any, checked: Any) -> Any:
    """``checked``, with each leaf replaced by the caller's own ``jax.Array`` where checking
    changed nothing (data already on the device is not copied back and forth)."""
    given_leaves = data_tree.leaves(given)
    checked_leaves, treedef = jax.tree_util.tree_flatten(checked)
    if len(given_leaves) != len(checked_leaves):
        return checked
    kept = [
        g if isinstance(g, jax.Array) and g.dtype == c.dtype else c
        for g, c in zip(given_leaves, checked_leaves, strict=True)
    ]
    return jax.tree_util.tree_unflatten(treedef, kept)


__all__ = [
    "FitInputs",
    "check_strategy",
    "check_targets",
    "facts",
    "fit_inputs",
    "labelled",
]
