"""The model seam: one object that initialises a model and applies it in train or eval mode.

Nothing else in the engine knows which kind of model it trains. A model is anything with

* ``init(key, example) -> (params, model_state)``: the trainable parameters and every other
  collection the model keeps (e.g. BatchNorm statistics; ``{}`` when there is none);
* ``apply(params, model_state, x, *, train, key) -> (outputs, new_model_state)``: in train mode
  the model may draw from ``key`` (dropout) and update its state; in eval mode it must not.

:class:`LinenModel` adapts a ``flax.linen.Module``.

:func:`model_facts` traces a model once on abstract inputs and reports what the engine needs to
know before compiling anything: the output shape, and which operations the forward pass uses
(convolutions, loops) for the choice of strategy.
"""

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import flax.linen as nn
import jax
import jax.extend as jex

PRNGKey = jax.Array


@runtime_checkable
class Model(Protocol):
    """What the engine calls on a model (see the module docstring)."""

    def init(self, key: PRNGKey, example: Any) -> tuple[Any, Any]: ...

    def apply(
        self, params: Any, model_state: Any, x: Any, *, train: bool, key: PRNGKey | None = None
    ) -> tuple[Any, Any]: ...


MODE_ARGUMENTS = ("train", "training", "deterministic", "use_running_average")


def mode_argument(module: nn.Module) -> str | None:
    """The keyword through which ``module.__call__`` is told train or eval mode, or None.

    The first of :data:`MODE_ARGUMENTS` that ``__call__`` names is used: ``train`` /
    ``training`` get ``True`` in train mode, ``deterministic`` / ``use_running_average`` get
    ``True`` in eval mode (Flax's own convention for ``nn.Dropout`` and ``nn.BatchNorm``).
    A ``__call__`` that names none of them (``nn.Sequential``'s ``**kwargs`` included) is called
    without one, the same in both modes.
    """
    return _mode_argument(type(module))


@functools.lru_cache(maxsize=256)
def _mode_argument(cls: type) -> str | None:
    parameters = inspect.signature(cls.__call__).parameters
    named = {
        n for n, p in parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    return next((name for name in MODE_ARGUMENTS if name in named), None)


def _mode_kwargs(argument: str | None, train: bool) -> dict[str, bool]:
    if argument is None:
        return {}
    if argument in ("deterministic", "use_running_average"):
        return {argument: not train}
    return {argument: train}


@functools.lru_cache(maxsize=64)
def _jitted_init(model: "LinenModel") -> Callable:
    """``module.init`` in eval mode as one compiled program (eager init compiles every
    initializer), cached per model so equal models share it."""
    module = model.module
    return jax.jit(functools.partial(module.init, **_mode_kwargs(mode_argument(module), False)))


def _module_hash(module: nn.Module) -> int | None:
    try:
        return hash(module)
    except TypeError:  # attributes such as nn.Sequential's list of layers
        return None


@dataclass(frozen=True, eq=False)
class LinenModel:
    """A ``flax.linen.Module`` behind the model seam.

    The module's ``params`` collection is trained; every other collection it creates at init
    (``batch_stats``, anything ``mutable``) is its model state, updated by train-mode calls and
    only read in eval mode. The mode reaches the module through the keyword
    :func:`mode_argument` finds in its ``__call__`` (``train=``, ``deterministic=``, ...), and
    the step key as its ``"dropout"`` RNG stream.

    Equal modules give equal (and equally hashed) adapters, so two states built from equal
    modules share their compiled programs. A module that cannot be hashed (``nn.Sequential``
    holds a list) is compared by identity: the same module object shares programs.

    Attributes:
      module: the linen module.
    """

    module: nn.Module

    def __hash__(self) -> int:
        h = _module_hash(self.module)
        return id(self.module) if h is None else h

    def __eq__(self, other) -> bool:
        if not isinstance(other, LinenModel):
            return NotImplemented
        if self.module is other.module:
            return True
        if _module_hash(self.module) is None or _module_hash(other.module) is None:
            return False
        return self.module == other.module

    def init(self, key: PRNGKey, example: Any) -> tuple[Any, Any]:
        variables = dict(_jitted_init(self)(key, example))
        params = variables.pop("params", {})
        return params, variables

    def apply(
        self, params: Any, model_state: Any, x: Any, *, train: bool, key: PRNGKey | None = None
    ) -> tuple[Any, Any]:
        variables = {"params": params, **model_state}
        rngs = {"dropout": key} if key is not None else None
        mode = _mode_kwargs(mode_argument(self.module), train)
        if train and model_state:
            outputs, updates = self.module.apply(
                variables, x, rngs=rngs, mutable=list(model_state), **mode
            )
            return outputs, {**model_state, **updates}
        return self.module.apply(variables, x, rngs=rngs, **mode), model_state


def as_model(model: Any) -> Model:
    """``model`` behind the seam: a linen module is wrapped, a :class:`Model` kept as it is."""
    if isinstance(model, nn.Module):
        return LinenModel(model)
    if isinstance(model, Model):
        return model
    raise TypeError(
        f"model: expected a flax.linen.Module or an object with init(key, example) and "
        f"apply(params, model_state, x, *, train, key), got {type(model).__name__}"
    )


@dataclass(frozen=True)
class ModelFacts:
    """What one abstract trace of the model's eval-mode forward pass shows.

    Attributes:
      output_shape: the per-example output shape (without the batch axis).
      primitives: names of every JAX primitive in the forward pass, nested ones included.
    """

    output_shape: tuple[int, ...]
    primitives: frozenset[str]

    @property
    def has_convolution(self) -> bool:
        return "conv_general_dilated" in self.primitives

    @property
    def has_loop(self) -> bool:
        """Whether the forward pass itself loops (``lax.scan``, ``while``: recurrent layers)."""
        return not self.primitives.isdisjoint({"scan", "while"})


def model_facts(model: Model, params: Any, model_state: Any, example: jax.ShapeDtypeStruct):
    """:class:`ModelFacts` of ``model`` on inputs like ``example`` (``[1, ...]``), cached."""
    spec = lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype)
    leaves, treedef = jax.tree_util.tree_flatten((params, model_state))
    return _facts(model, treedef, tuple(map(spec, leaves)), spec(example))


@functools.lru_cache(maxsize=256)
def _facts(model, treedef, leaves, example) -> ModelFacts:
    # Abstract: tracing a model costs tens of ms, so the result is cached per signature.
    params, model_state = jax.tree_util.tree_unflatten(treedef, leaves)
    closed = jax.make_jaxpr(lambda p, s, x: model.apply(p, s, x, train=False)[0])(
        params, model_state, example
    )
    (out,) = closed.out_avals
    return ModelFacts(output_shape=tuple(out.shape[1:]), primitives=_primitive_names(closed.jaxpr))


def _primitive_names(jaxpr) -> frozenset[str]:
    names: set[str] = set()
    stack = [jaxpr]
    while stack:
        current = stack.pop()
        names.update(eqn.primitive.name for eqn in current.eqns)
        stack.extend(jex.core.subjaxprs(current))
    return frozenset(names)


__all__ = ["LinenModel", "Model", "ModelFacts", "as_model", "mode_argument", "model_facts"]
