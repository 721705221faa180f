"""The learning rate an optimizer keeps in its state, read and set between epochs.

An optimizer built with ``optax.inject_hyperparams`` holds its hyperparameters in its state:
``InjectHyperparamsState.hyperparams["learning_rate"]``, a float array (``<float32>[]`` for
float32 parameters). Every ``fnn.optim`` optimizer is built that way, and so is any
``optax.inject_hyperparams(optax.adam)(learning_rate=...)``, wrapped or not (inside
``optax.MultiSteps``, a chain, ...). That value is what ``fit`` records in ``History`` as
``learning_rate`` (the rate of the epoch's last update; with a schedule, the schedule's value
at that update) and what ``ReduceLROnPlateau`` changes. Without such a state (a plain
``optax.adam(1e-3)``), the learning rate cannot be read from the state and is not recorded.

With a schedule (``learning_rate=`` a callable), ``inject_hyperparams`` recomputes the value at
every step, so setting it has no lasting effect; :func:`is_scheduled` tells.
"""

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

NAME = "learning_rate"

_STATE_TYPES = tuple(
    {
        getattr(optax, name)
        for name in ("InjectHyperparamsState", "InjectStatefulHyperparamsState")
        if hasattr(optax, name)
    }
)


def _holds_learning_rate(node: Any) -> bool:
    return isinstance(node, _STATE_TYPES) and NAME in node.hyperparams


def find(opt_state: Any) -> list[Any]:
    """The ``inject_hyperparams`` states in ``opt_state`` that hold a learning rate, in tree
    order (usually one; several with ``optax.multi_transform`` over injected optimizers)."""
    nodes = jax.tree_util.tree_leaves(opt_state, is_leaf=_holds_learning_rate)
    return [node for node in nodes if _holds_learning_rate(node)]


def is_scheduled(inject_state: Any) -> bool:
    """Whether the learning rate of ``inject_state`` comes from a schedule (recomputed at every
    step). Only ``InjectStatefulHyperparamsState`` says so; the older state never does."""
    return NAME in (getattr(inject_state, "hyperparams_states", None) or {})


def _scalar(x: Any) -> float:
    """``x`` as a Python float, read from this process's copy (the array may be replicated over
    devices of several processes)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        x = x.addressable_data(0)
    return float(np.asarray(x))


def read(opt_state: Any) -> float | None:
    """The learning rate in ``opt_state``, or None when it cannot be determined (no
    ``inject_hyperparams`` state with a learning rate, or several)."""
    found = find(opt_state)
    if len(found) != 1:
        return None
    return _scalar(found[0].hyperparams[NAME])


def _like(old: Any, value: float) -> Any:
    """``value`` as an array of ``old``'s shape, dtype and sharding (so that the compiled epoch
    programs take it without recompiling)."""
    host = np.full(np.shape(old), value, dtype=old.dtype)
    if isinstance(old, jax.Array):
        return jax.make_array_from_callback(host.shape, old.sharding, lambda index: host[index])
    return host


def update(opt_state: Any, fn: Callable[[float], float]) -> Any:
    """``opt_state`` with every learning rate ``lr`` found by :func:`find` replaced by
    ``fn(lr)``, each keeping its dtype and sharding."""

    def replace(node):
        if not _holds_learning_rate(node):
            return node
        hyperparams = dict(node.hyperparams)
        old = hyperparams[NAME]
        hyperparams[NAME] = _like(old, fn(_scalar(old)))
        return node._replace(hyperparams=hyperparams)

    return jax.tree_util.tree_map(replace, opt_state, is_leaf=_holds_learning_rate)
