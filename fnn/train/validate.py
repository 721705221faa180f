"""Checks of user input for fit / evaluate / predict, run on the host before any tracing.

Every failure is a ``ValueError`` or ``TypeError`` whose message starts with the argument's
name and says what was received and what was expected.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnn import losses as losses_lib
from fnn.train.state import TrainState


def as_inputs(name: str, x: Any) -> np.ndarray:
    """``x`` as a NumPy array of a dtype JAX keeps (float32 / int32), checked for sanity."""
    if isinstance(x, jax.Array):
        x = np.asarray(x)
    try:
        arr = np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{name}: cannot be read as an array ({err})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected an array with a leading example axis, got a scalar")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: is empty (0 examples); expected at least one example")
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            bad = int(arr.size - np.count_nonzero(finite))
            first = int(np.argwhere(~finite.reshape(arr.shape[0], -1).all(axis=1))[0, 0])
            raise ValueError(
                f"{name}: contains {bad} NaN/Inf value(s) (first in example {first}); "
                f"expected finite numbers"
            )
        if arr.dtype != np.float32 and arr.dtype != jnp.bfloat16:
            arr = arr.astype(np.float32)
    elif arr.dtype.kind == "b":
        arr = arr.astype(np.float32)
    elif arr.dtype.itemsize > 4 or arr.dtype.kind == "u":
        arr = arr.astype(np.int32)
    return arr


def check_pair(x: np.ndarray, y: np.ndarray, x_name: str = "x", y_name: str = "y") -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{x_name}, {y_name}: different numbers of examples: {x_name} has {x.shape[0]}, "
            f"{y_name} has {y.shape[0]}; expected the same"
        )


def output_shape(state: TrainState, x: np.ndarray, name: str = "x") -> tuple[int, ...]:
    """The model's per-example output shape for inputs like ``x``, or a clear error."""
    expected = state.input_shape
    if expected is not None and x.ndim != len(expected) + 1:
        shape = ", ".join(["n", *map(str, expected)])
        raise ValueError(
            f"{name}: expected inputs of rank {len(expected) + 1} ([{shape}], like the example "
            f"given to TrainState.create), got shape {x.shape}"
        )
    params = jax.tree_util.tree_map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), state.params)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    try:
        return _output_shape(state.apply_fn, treedef, tuple(leaves), x.shape[1:], x.dtype)
    except Exception as err:
        raise ValueError(
            f"{name}: examples of shape {x.shape[1:]} and dtype {x.dtype} do not fit the model: "
            f"{err}"
        ) from None


@functools.lru_cache(maxsize=256)
def _output_shape(apply_fn, treedef, leaves, example_shape, dtype) -> tuple[int, ...]:
    """Abstract evaluation of the model (cached: tracing a model costs tens of ms)."""
    out = jax.eval_shape(
        lambda p, v: apply_fn({"params": p}, v, train=False),
        jax.tree_util.tree_unflatten(treedef, leaves),
        jax.ShapeDtypeStruct((1, *example_shape), dtype),
    )
    return tuple(out.shape[1:])


def check_targets(loss_fn, y: np.ndarray, out_shape: tuple[int, ...], name: str = "y") -> None:
    """Checks ``y`` against the loss and the model's output shape (values where known)."""
    if loss_fn is losses_lib.sparse_categorical_cross_entropy:
        classes = out_shape[-1] if out_shape else 1
        if y.dtype.kind not in "iu":
            raise TypeError(
                f"{name}: sparse_categorical_cross_entropy needs integer class labels, "
                f"got dtype {y.dtype}"
            )
        if y.ndim != 1:
            raise ValueError(f"{name}: expected class labels of shape [n], got shape {y.shape}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= classes:
            raise ValueError(
                f"{name}: labels must lie in [0, {classes}) for a model with {classes} outputs, "
                f"got range [{lo}, {hi}]"
            )
    elif loss_fn is losses_lib.binary_cross_entropy:
        lo, hi = float(y.min()), float(y.max())
        if lo < 0 or hi > 1:
            raise ValueError(
                f"{name}: binary_cross_entropy needs labels in [0, 1], got range [{lo}, {hi}]"
            )
    try:
        _loss_shape(loss_fn, (y.shape[0], *out_shape), y.shape, y.dtype)
    except (ValueError, TypeError) as err:
        raise type(err)(
            f"{name}: does not fit the loss for model outputs of shape [n, "
            f"{', '.join(map(str, out_shape))}]: {err}"
        ) from None


@functools.lru_cache(maxsize=256)
def _loss_shape(loss_fn, prediction_shape, target_shape, target_dtype):
    return jax.eval_shape(
        loss_fn,
        jax.ShapeDtypeStruct(prediction_shape, jnp.float32),
        jax.ShapeDtypeStruct(target_shape, target_dtype),
    ).shape


def check_batch_size(batch_size: Any, n: int, name: str = "batch_size") -> int:
    """Resolves ``"full"`` and checks ``1 <= batch_size <= n``."""
    if batch_size == "full":
        return n
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"{name}: expected an integer or 'full', got {batch_size!r}")
    if not 1 <= batch_size <= n:
        raise ValueError(f"{name}: expected an integer in [1, {n}] or 'full', got {batch_size}")
    return int(batch_size)


def check_epochs(epochs: Any) -> int:
    if isinstance(epochs, bool) or not isinstance(epochs, int | np.integer) or epochs < 1:
        raise ValueError(f"epochs: expected an integer >= 1, got {epochs!r}")
    return int(epochs)
