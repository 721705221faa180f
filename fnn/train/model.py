"""The model seam: one object that initialises a model and applies it in train or eval mode.

Nothing else in the engine knows which kind of model it trains. A model is anything with

* ``init(key, example) -> (params, model_state)``: the trainable parameters and every other
  collection the model keeps (e.g. BatchNorm statistics; ``{}`` when there is none);
* ``apply(params, model_state, x, *, train, key) -> (outputs, new_model_state)``: in train mode
  the model may draw from ``key`` (dropout) and update its state; in eval mode it must not.

:class:`LinenModel` adapts a ``flax.linen.Module``, :class:`NnxModel` a ``flax.nnx.Module``.

:func:`model_facts` traces a model once on abstract inputs and reports what the engine needs to
know before compiling anything: the output shape, and which operations the forward pass uses
(convolutions, loops) for the choice of strategy.
"""

import functools
import inspect
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import flax.linen as nn
import jax
import jax.extend as jex
import jax.numpy as jnp

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


def _nnx():
    """``flax.nnx`` if it has been imported, else None: an NNX module cannot exist before it
    is, so linen-only programs never pay for the import."""
    return sys.modules.get("flax.nnx")


KeyPath = tuple[Any, ...]


def _get(tree: Any, path: KeyPath) -> Any:
    for k in path:
        tree = tree[k]
    return tree


def _with(tree: dict, path: KeyPath, value: Any) -> dict:
    """``tree`` with the leaf at ``path`` replaced, copying only the dicts along the path."""
    head, *rest = path
    return {**tree, head: _with(tree[head], tuple(rest), value) if rest else value}


def _like(template: Any, new: Any, path: KeyPath = ()) -> Any:
    """``new`` restricted to the structure of ``template`` (a forward pass may add variables,
    e.g. ``sow``'n intermediates, that the next step must not carry), every leaf checked to
    keep its shape and dtype (the state is a ``lax.scan`` carry)."""
    if isinstance(template, dict):
        missing = [k for k in template if not isinstance(new, dict) or k not in new]
        if missing:
            where = "/".join(map(str, (*path, missing[0])))
            raise ValueError(f"model: the NNX module's forward pass removed its state {where!r}")
        return {k: _like(v, new[k], (*path, k)) for k, v in template.items()}
    before = (jnp.shape(template), jnp.result_type(template))
    after = (jnp.shape(new), jnp.result_type(new))
    if before != after:
        where = "/".join(map(str, path))
        raise ValueError(
            f"model: the NNX module's forward pass changed its state {where!r} from "
            f"{before[1]}{list(before[0])} to {after[1]}{list(after[0])}; the state of a "
            f"training step must keep its shapes and dtypes"
        )
    return new


def _stream_key(key: PRNGKey, tag: str) -> PRNGKey:
    """The key stream ``tag`` is reseeded with: ``fold_in(key, crc32(tag))``, so each stream
    gets its own bits and adding a stream changes no other's."""
    return jax.random.fold_in(key, zlib.crc32(tag.encode()))


class NnxModel:
    """A ``flax.nnx.Module`` behind the model seam.

    The module is split once, here, with ``nnx.split``: its graph definition (static: the
    structure and every non-array attribute), its ``nnx.Param`` state (``params``, trained) and
    everything else (``model_state``: ``BatchStat``, the ``RngKey`` / ``RngCount`` of its
    ``nnx.Rngs`` streams, any other ``Variable``). Both are plain nested dicts of arrays
    (``nnx.to_pure_dict``) that ``jax.tree_util``, NumPy and Orbax take as they are; a
    typed PRNG key is kept as its raw ``jax.random.key_data`` (its implementation is static,
    here) and rewrapped inside :meth:`apply`.

    :meth:`apply` rebuilds the module with ``nnx.merge`` inside the traced function, sets it
    to ``module.train()`` / ``module.eval()`` (``deterministic`` / ``use_running_average`` of
    ``nnx.Dropout``, ``nnx.BatchNorm`` and any module with those attributes), runs it, and splits
    the state back out: all of it while tracing, once per compilation, nothing per step.

    Randomness: in train mode every RNG stream of the module is reseeded from the step key
    (``nnx.reseed``; stream ``t`` gets ``fold_in(key, crc32(t))``), so step ``s`` draws from
    ``fold_in(state.key, s)`` as with any fnn model: the same seed gives the same bits, and a
    resumed run continues the same sequence. Eval mode draws nothing new: the streams keep the
    keys they have, and the model state comes back unchanged.

    :meth:`init` returns the state the module had when it was wrapped (copied): the
    constructor initialised it already, from its own ``nnx.Rngs``, so ``key`` is not used and
    the parameters depend on the module's seed, not on ``fit``'s; fnn's seed decides the
    shuffling and every draw during training. Training never changes :attr:`module`; the
    trained module is :meth:`merge` of the trained state.

    Equal graph definitions (and key implementations) give equal, equally hashed adapters, so
    two states built from equal modules share their compiled programs; a graph definition that
    cannot be hashed is compared by identity.

    Attributes:
      graphdef: the module's ``nnx.GraphDef``.
      module: the module as given.
    """

    __slots__ = ("_hash", "_initial", "_keys", "_tags", "graphdef", "module")

    def __init__(self, module: Any):
        nnx = _nnx()
        if nnx is None or not isinstance(module, nnx.Module):
            raise TypeError(f"module: expected a flax.nnx.Module, got {type(module).__name__}")
        graphdef, params, rest = nnx.split(module, nnx.Param, ...)
        keys, tags = [], set()
        for path, variable in nnx.to_flat_state(rest):
            if isinstance(variable, nnx.RngKey):
                tags.add(variable.tag)
                value = variable[...]  # get_value() is flax>=0.12 only; .value warns there
                if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
                    keys.append((tuple(path), str(jax.random.key_impl(value))))
        model_state = nnx.to_pure_dict(rest)
        for path, _ in keys:
            model_state = _with(model_state, path, jax.random.key_data(_get(model_state, path)))
        self.graphdef = graphdef
        self.module = module
        self._initial = (nnx.to_pure_dict(params), model_state)
        self._keys = tuple(keys)
        self._tags = tuple(sorted(tags))
        try:
            self._hash = hash((NnxModel, graphdef, self._keys))
        except TypeError:  # an attribute that cannot be hashed
            self._hash = None

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "_hash"):
            raise AttributeError(f"NnxModel is immutable; cannot set {name!r}")
        object.__setattr__(self, name, value)

    def __hash__(self) -> int:
        return id(self) if self._hash is None else self._hash

    def __eq__(self, other) -> bool:
        if not isinstance(other, NnxModel):
            return NotImplemented
        if self is other:
            return True
        if self._hash is None or self._hash != other._hash:
            return False
        return self._keys == other._keys and self.graphdef == other.graphdef

    def __repr__(self) -> str:
        return f"NnxModel({type(self.module).__name__})"

    def init(self, key: PRNGKey, example: Any) -> tuple[Any, Any]:
        """A copy of the wrapped module's ``(params, model_state)``; ``key`` is not used (see
        the class docstring). One abstract eval-mode trace on ``example`` checks that it fits
        (and is the one :func:`model_facts` reports later)."""
        del key
        params, model_state = jax.tree_util.tree_map(jnp.copy, self._initial)
        spec = jax.ShapeDtypeStruct((1, *jnp.shape(example)[1:]), jnp.result_type(example))
        model_facts(self, params, model_state, spec)
        return params, model_state

    def merge(self, params: Any, model_state: Any) -> Any:
        """The module with ``params`` and ``model_state`` (e.g. a trained state's), a new
        object: ``nnx.merge`` of the graph definition and the two, keys rewrapped."""
        return _nnx().merge(self.graphdef, params, self._wrap_keys(model_state))

    def apply(
        self, params: Any, model_state: Any, x: Any, *, train: bool, key: PRNGKey | None = None
    ) -> tuple[Any, Any]:
        nnx = _nnx()
        module = self.merge(params, model_state)
        if not train:
            module.eval()
            return module(x), model_state
        module.train()
        if key is not None and self._tags:
            streams = {tag: _stream_key(key, tag) for tag in self._tags}
            nnx.reseed(module, policy="match_shape", **streams)
        outputs = module(x)
        _, _, rest = nnx.split(module, nnx.Param, ...)
        new = nnx.to_pure_dict(rest)
        for path, _ in self._keys:
            new = _with(new, path, jax.random.key_data(_get(new, path)))
        return outputs, _like(model_state, new)

    def _wrap_keys(self, model_state: Any) -> Any:
        for path, impl in self._keys:
            data = _get(model_state, path)
            model_state = _with(model_state, path, jax.random.wrap_key_data(data, impl=impl))
        return model_state


def as_model(model: Any) -> Model:
    """``model`` behind the seam: a linen module or an NNX module is wrapped (:class:`LinenModel`,
    :class:`NnxModel`), a :class:`Model` kept as it is."""
    if isinstance(model, nn.Module):
        return LinenModel(model)
    nnx = _nnx()
    if nnx is not None and isinstance(model, nnx.Module):
        return NnxModel(model)
    if isinstance(model, Model):
        return model
    raise TypeError(
        f"model: expected a flax.linen.Module or an object with init(key, example) and "
        f"apply(params, model_state, x, *, train, key) (or a flax.nnx.Module), "
        f"got {type(model).__name__}"
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


def model_facts(model: Model, params: Any, model_state: Any, example: Any) -> ModelFacts:
    """:class:`ModelFacts` of ``model`` on inputs like ``example`` (``[1, ...]`` arrays, or a
    pytree of them), cached."""
    spec = lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype)
    leaves, treedef = jax.tree_util.tree_flatten((params, model_state, example))
    return _facts(model, treedef, tuple(map(spec, leaves)))


@functools.lru_cache(maxsize=256)
def _facts(model, treedef, leaves) -> ModelFacts:
    # Abstract: tracing a model costs tens of ms, so the result is cached per signature.
    params, model_state, example = jax.tree_util.tree_unflatten(treedef, leaves)
    closed = jax.make_jaxpr(lambda p, s, x: model.apply(p, s, x, train=False)[0])(
        params, model_state, example
    )
    out = closed.out_avals[0]  # the first output (the only one for most models)
    return ModelFacts(output_shape=tuple(out.shape[1:]), primitives=_primitive_names(closed.jaxpr))


def _primitive_names(jaxpr) -> frozenset[str]:
    names: set[str] = set()
    stack = [jaxpr]
    while stack:
        current = stack.pop()
        names.update(eqn.primitive.name for eqn in current.eqns)
        stack.extend(_subjaxprs(current))
    return frozenset(names)


def _subjaxprs(jaxpr):
    """The jaxprs in the parameters of ``jaxpr``'s equations, not recursively (what
    ``jax.extend.core.subjaxprs`` gives, a name that jax 0.7 does not export)."""
    for eqn in jaxpr.eqns:
        for param in eqn.params.values():
            for value in param if isinstance(param, tuple) else (param,):
                if isinstance(value, jex.core.Jaxpr):
                    yield value
                elif isinstance(value, jex.core.ClosedJaxpr):
                    yield value.jaxpr


__all__ = [
    "LinenModel",
    "Model",
    "ModelFacts",
    "NnxModel",
    "as_model",
    "mode_argument",
    "model_facts",
]
