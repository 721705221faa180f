"""Data as pytrees of arrays that share a leading example axis, and the helpers on them.

Inputs and targets may be one array or any pytree of arrays: a dict (``{"image": ...,
"lengths": ...}``), a tuple, nested containers. Every leaf has the example axis first. Dicts and
tuples are always containers; a list is a container when it holds arrays or containers, and a
leaf (one array, ``np.asarray(list)``) when it holds numbers or lists of numbers.

Every helper here works on host (NumPy) and device (``jax.Array``) leaves alike, and inside
traced programs.
"""

from collections.abc import Callable
from typing import Any

import jax
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


__all__ = [
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
