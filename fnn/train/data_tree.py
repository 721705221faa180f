"""Data as pytrees of arrays that share a leading example axis, and the helpers on them.

Inputs and targets may be one array or any pytree of arrays: a dict (``{"image": ...,
"lengths": ...}``), a tuple, nested containers. Every leaf has the example axis first. Dicts and
tuples are always containers; a list is a container when it holds arrays or containers, and a
leaf (one array, ``np.asarray(list)``) when it holds numbers or lists of numbers.

The helpers work on host (NumPy) and device (``jax.Array``) leaves alike, and inside traced
programs; :func:`as_data` checks and converts data given by a user, on the host.
"""

import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_CONTAINER_ITEMS = (np.ndarray, jax.Array, dict, tuple)


def is_leaf(obj: Any) -> bool:
    """Whether ``obj`` is one array of the tree (see the module docstring)."""
    if isinstance(obj, dict | tuple):
        return False
    if isinstance(obj, list):
        return not any(isinstance(item, _CONTAINER_ITEMS) for item in obj)
    return True


def leaves_with_names(name: str, tree: Any) -> tuple[list[tuple[str, Any]], Any]:
    """``([(name + path, leaf), ...], treedef)``, e.g. ``x['image']``, ``x[0]``, or ``x``."""
    paths, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    return [(name + jax.tree_util.keystr(path), leaf) for path, leaf in paths], treedef


def leaves(tree: Any) -> list[Any]:
    return jax.tree_util.tree_leaves(tree, is_leaf=is_leaf)


def tree_map(fn: Callable, tree: Any, *rest: Any) -> Any:
    return jax.tree_util.tree_map(fn, tree, *rest, is_leaf=is_leaf)


def num_examples(tree: Any) -> int:
    """The length of the leading axis (of the first leaf; checked equal by ``validate``)."""
    return int(np.shape(leaves(tree)[0])[0])


def nbytes(tree: Any) -> int:
    return int(sum(leaf.nbytes for leaf in leaves(tree)))


def head(tree: Any, n: int = 1) -> Any:
    """The first ``n`` examples of every leaf."""
    return tree_map(lambda a: a[:n], tree)


def example_of(tree: Any) -> Any:
    """One host example ``[1, ...]`` per leaf, for shapes and dtypes: ``a[:1]`` of a NumPy
    array (a view), zeros shaped like it for a device array (slicing one costs a dispatch and
    a copy back, and only the shape and dtype are used)."""

    def one(a):
        if isinstance(a, jax.Array):
            return np.zeros((1, *a.shape[1:]), a.dtype)
        return a[:1]

    return tree_map(one, tree)


def take(tree: Any, index: Any) -> Any:
    """Rows ``index`` of every leaf (NumPy fancy indexing on the host, ``a[index]``)."""
    return tree_map(lambda a: a[index], tree)


def spec(tree: Any, batch: int | None = None) -> Any:
    """``jax.ShapeDtypeStruct`` of every leaf, the leading axis replaced by ``batch`` if given."""

    def one(a):
        shape = tuple(np.shape(a))
        if batch is not None:
            shape = (batch, *shape[1:])
        return jax.ShapeDtypeStruct(shape, a.dtype)

    return tree_map(one, tree)


def describe(tree: Any) -> str:
    """``float32[n, 64]`` for an array, ``{'image': float32[n, 8, 8, 1], ...}`` for a tree."""
    named, _ = leaves_with_names("", tree)
    parts = [f"{path}{leaf.dtype}{list(np.shape(leaf))}" for path, leaf in named]
    return parts[0] if len(parts) == 1 and not named[0][0] else ", ".join(parts)


LOW_PRECISION_FLOATS = (jnp.bfloat16, np.float16)


def as_inputs(name: str, x: Any) -> np.ndarray:
    """``x`` as a NumPy array of a dtype JAX keeps, checked for sanity.

    float32, bfloat16 and float16 are kept; other floats become float32, bools float32, and
    other integers int32.
    """
    if isinstance(x, jax.Array):
        kept = _device_inputs(name, x)
        if kept is not None:
            return kept
        x = np.asarray(x)  # a dtype to convert, or bad values to report: on the host
    mapped = isinstance(x, np.memmap)  # read from disk: never copied whole
    try:
        arr = np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{name}: cannot be read as an array ({err})") from None
    low_precision = arr.dtype in LOW_PRECISION_FLOATS
    if arr.dtype.kind not in "biuf" and not low_precision:
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected an array with a leading example axis, got a scalar")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: is empty (0 examples); expected at least one example")
    if arr.dtype.kind == "f" or low_precision:
        _check_finite(name, arr)
        if arr.dtype != np.float32 and not low_precision:
            _check_copy(name, arr, np.float32, mapped)
            _check_range(name, arr, np.float32)
            arr = arr.astype(np.float32)
    elif arr.dtype.kind == "b":
        _check_copy(name, arr, np.float32, mapped)
        arr = arr.astype(np.float32)
    elif arr.dtype.itemsize > 4 or arr.dtype.kind == "u":
        _check_copy(name, arr, np.int32, mapped)
        _check_range(name, arr, np.int32)
        arr = arr.astype(np.int32)
    return arr


def _device_inputs(name: str, x: jax.Array) -> jax.Array | None:
    """A device array checked where it lives (one reduction, no copy to the host), or None
    when it must go through the host path (a dtype to convert, bad values to locate)."""
    if x.ndim == 0:
        raise ValueError(f"{name}: expected an array with a leading example axis, got a scalar")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: is empty (0 examples); expected at least one example")
    dtype = np.dtype(x.dtype)
    if dtype == np.bool_:
        return x.astype(jnp.float32)
    if dtype not in (np.float32, np.int32, *map(np.dtype, LOW_PRECISION_FLOATS)):
        return None
    return x if summary(x).finite else None


class Summary(NamedTuple):
    """What the checks need to know of an array's values."""

    finite: bool  # no NaN or Inf
    low: float  # its smallest and largest values
    high: float
    binary: bool  # every value is 0 or 1


@jax.jit
def _summarize(x: jax.Array):
    finite = jnp.all(jnp.isfinite(x)) if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.bool_(True)
    return finite, jnp.min(x), jnp.max(x), jnp.all((x == 0) | (x == 1))


# Summaries of device arrays, by identity: an array is immutable, so a second fit on the same
# arrays reads the summary instead of reducing them again. Entries die with their arrays.
_SUMMARIES: dict[int, tuple[Any, Summary]] = {}


def summary(a: Any) -> Summary:
    """:class:`Summary` of ``a`` (NumPy: computed here; a device array: one reduction on the
    device, remembered for that array)."""
    if not isinstance(a, jax.Array):
        a = np.asarray(a)
        finite = bool(np.isfinite(a).all()) if a.dtype.kind == "f" else True
        return Summary(finite, a.min(), a.max(), bool(np.all((a == 0) | (a == 1))))
    hit = _SUMMARIES.get(id(a))
    if hit is not None and hit[0]() is a:
        return hit[1]
    values = [np.asarray(v.addressable_data(0)) for v in _summarize(a)]
    result = Summary(bool(values[0]), values[1][()], values[2][()], bool(values[3]))
    key = id(a)
    _SUMMARIES[key] = (weakref.ref(a, lambda _: _SUMMARIES.pop(key, None)), result)
    return result


CHECK_CHUNK_BYTES = 64 * 1024**2  # the finite check reads this much of an array at a time


def _check_finite(name: str, arr: np.ndarray) -> None:
    """Raises ValueError at the first example holding NaN or Inf. Reads ``arr`` in chunks of
    rows, so an array mapped from disk (``np.memmap``) is checked in bounded memory."""
    n = arr.shape[0]
    rows = max(1, CHECK_CHUNK_BYTES // max(arr[:1].nbytes, 1))
    bad, first = 0, None
    for begin in range(0, n, rows):
        finite = np.isfinite(arr[begin : begin + rows]).reshape(min(rows, n - begin), -1)
        if finite.all():
            continue
        bad += int(finite.size - np.count_nonzero(finite))
        if first is None:
            first = begin + int(np.argwhere(~finite.all(axis=1))[0, 0])
    if first is not None:
        raise ValueError(
            f"{name}: contains {bad} NaN/Inf value(s) (first in example {first}); expected "
            f"finite numbers"
        )


def _check_range(name: str, arr: np.ndarray, dtype) -> None:
    """Values that ``dtype`` cannot hold would wrap (integers) or become inf (floats)."""
    integer = np.dtype(dtype).kind == "i"
    info = np.iinfo(dtype) if integer else np.finfo(dtype)
    lo, hi = arr.min(), arr.max()
    if lo < info.min or hi > info.max:
        show = (lambda v: str(v)) if integer else (lambda v: f"{float(v):.4g}")
        raise ValueError(
            f"{name}: holds values in [{show(lo)}, {show(hi)}], outside the range of "
            f"{np.dtype(dtype).name} ([{show(info.min)}, {show(info.max)}]) that fnn computes "
            f"in; they would {'wrap around' if integer else 'become inf'}"
        )


def _check_copy(name: str, arr: np.ndarray, dtype, mapped: bool) -> None:
    """An array mapped from disk is never copied whole into memory to change its dtype."""
    if mapped:
        raise TypeError(
            f"{name}: a np.memmap of dtype {arr.dtype} would be copied whole into memory as "
            f"{np.dtype(dtype).name}; store it as {np.dtype(dtype).name} (or bfloat16 / float16) "
            f"so it is read from disk a batch at a time"
        )


def as_data(name: str, data: Any) -> Any:
    """``data`` (an array or a pytree of arrays, see ``fnn.train.data_tree``) with every leaf
    checked by :func:`as_inputs` under its path (``x['image']``) and all leaves of one length."""
    named, treedef = leaves_with_names(name, data)
    if not named:
        raise ValueError(
            f"{name}: expected an array or a pytree of arrays, got an empty {type(data).__name__}"
        )
    checked = [as_inputs(path, leaf) for path, leaf in named]
    sizes = [(path, a.shape[0]) for (path, _), a in zip(named, checked, strict=True)]
    if len({n for _, n in sizes}) > 1:
        listed = ", ".join(f"{path} has {n}" for path, n in sizes)
        raise ValueError(
            f"{name}: its arrays have different numbers of examples ({listed}); expected the "
            f"same leading (example) axis"
        )
    return jax.tree_util.tree_unflatten(treedef, checked)


def check_pair(x: Any, y: Any, x_name: str = "x", y_name: str = "y") -> None:
    nx, ny = num_examples(x), num_examples(y)
    if nx != ny:
        raise ValueError(
            f"{x_name}, {y_name}: different numbers of examples: {x_name} has {nx}, "
            f"{y_name} has {ny}; expected the same"
        )


__all__ = [
    "LOW_PRECISION_FLOATS",
    "as_data",
    "as_inputs",
    "check_pair",
    "describe",
    "head",
    "is_leaf",
    "leaves",
    "leaves_with_names",
    "nbytes",
    "num_examples",
    "spec",
    "take",
    "tree_map",
]
