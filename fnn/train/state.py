"""The training state: one pytree holding everything that changes during training."""

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

PRNGKey = jax.Array


class ModelApply:
    """``model.apply`` as a value: equal models give equal (and equally hashed) functions.

    A bound method compares its ``__self__`` by identity, so two equal models would look like
    different static arguments to ``jax.jit`` and every new ``TrainState`` would compile anew.
    """

    def __init__(self, model: nn.Module):
        self.model = model

    def __call__(self, *args, **kwargs):
        return self.model.apply(*args, **kwargs)

    def __eq__(self, other) -> bool:
        return isinstance(other, ModelApply) and self.model == other.model

    def __hash__(self) -> int:
        return hash(self.model)

    def __repr__(self) -> str:
        return f"ModelApply({self.model!r})"


@functools.lru_cache(maxsize=64)
def _jitted_init(model: nn.Module) -> Callable:
    """``model.init`` as one compiled program (eager init compiles every initializer), cached
    per model so equal models share it."""
    return jax.jit(functools.partial(model.init, train=False))


class TrainState(struct.PyTreeNode):
    """Parameters, optimizer state, step counter and random key of one training run.

    ``apply_fn`` and ``tx`` are static (not leaves), so the state passes through ``jax.jit``,
    ``lax.scan`` and Orbax checkpoints as plain arrays.

    Attributes:
      step: ``<int32>[]`` number of optimizer updates applied so far.
      params: the model's parameter pytree.
      opt_state: the optimizer's state pytree.
      rng: ``<uint32>[2]`` raw key data of the run's root key (see :meth:`key`). The key of step
        ``s`` is ``fold_in(key, s)``, so the random stream never depends on how steps are grouped
        into epochs, chunks or resumed runs.
      apply_fn: the model's ``apply``, called as
        ``apply_fn({"params": p}, x, train=..., rngs=...)``.
      tx: the ``optax.GradientTransformation``.
      input_shape: shape of one example (without the batch axis) of the input given to
        :meth:`create`; ``fit`` checks inputs against its rank before any tracing.
    """

    step: jax.Array
    params: Any
    opt_state: optax.OptState
    rng: jax.Array
    apply_fn: Callable[..., Any] = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)
    input_shape: tuple[int, ...] | None = struct.field(pytree_node=False, default=None)

    @classmethod
    def create(
        cls,
        model: nn.Module,
        optimizer: optax.GradientTransformation,
        example_input: jax.Array,
        *,
        seed: int = 0,
        key: PRNGKey | None = None,
    ) -> "TrainState":
        """Initialises ``model`` on ``example_input`` and the optimizer on its parameters.

        Args:
          model: a Flax linen module called as ``model(x, train=...)``.
          optimizer: an ``optax.GradientTransformation`` (e.g. ``fnn.optim.adam(1e-3)``).
          example_input: a batch shaped like the training inputs, e.g. ``x_train[:1]``;
            only its shape and dtype matter.
          seed: integer seed of the run, used when ``key`` is None.
          key: a PRNG key (``jax.random.key``) to use instead of ``seed``.

        Returns:
          A state at step 0.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a flax.linen.Module, got {type(model).__name__}")
        if not isinstance(optimizer, optax.GradientTransformation):
            raise TypeError(
                f"optimizer: expected an optax.GradientTransformation, got "
                f"{type(optimizer).__name__}"
            )
        if key is None:
            if not isinstance(seed, int):
                raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
            key = jax.random.key(seed)
        init_key, run_key = jax.random.split(key)
        example_input = jnp.asarray(example_input)
        if example_input.ndim < 1 or example_input.shape[0] < 1:
            raise ValueError(
                f"example_input: expected a batch [batch >= 1, ...], "
                f"got shape {example_input.shape}"
            )
        variables = _jitted_init(model)(init_key, example_input)
        params = variables["params"]
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=optimizer.init(params),
            rng=jax.random.key_data(run_key),
            apply_fn=ModelApply(model),
            tx=optimizer,
            input_shape=tuple(example_input.shape[1:]),
        )

    @property
    def key(self) -> PRNGKey:
        """The run's root key as a typed PRNG key."""
        return jax.random.wrap_key_data(self.rng)

    def step_key(self) -> PRNGKey:
        """The key of the current step: ``fold_in(key, step)``."""
        return jax.random.fold_in(self.key, self.step)

    def apply_gradients(self, grads: Any) -> "TrainState":
        """One optimizer update; returns the new state with ``step + 1``."""
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(
            step=self.step + 1,
            params=optax.apply_updates(self.params, updates),
            opt_state=opt_state,
        )

    def num_params(self) -> int:
        """Total number of scalar parameters."""
        return sum(int(x.size) for x in jax.tree_util.tree_leaves(self.params))
