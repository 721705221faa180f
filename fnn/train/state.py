"""The training state: one pytree holding everything that changes during training."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from fnn import _checks
from fnn.train import data_tree
from fnn.train.model import LinenModel, Model, as_model

PRNGKey = jax.Array


class TrainState(struct.PyTreeNode):
    """Parameters, model state, optimizer state, step counter and random key of one run.

    ``model`` and ``tx`` are static (not leaves), so the state passes through ``jax.jit``,
    ``lax.scan`` and Orbax checkpoints as plain arrays.

    Attributes:
      step: ``<int32>[]`` number of train steps (optimizer calls) so far. With gradient
        accumulation (``optax.MultiSteps``) it counts micro-steps; :meth:`optimizer_updates`
        counts the updates actually applied to the parameters.
      params: the model's parameter pytree.
      model_state: the model's other collections (e.g. ``{"batch_stats": ...}``; ``{}`` when it
        has none), updated by the train step and only read in eval mode.
      opt_state: the optimizer's state pytree.
      ema_params: an exponential moving average of ``params`` (None without ``ema_decay``):
        after every update ``ema = decay * ema + (1 - decay) * params``, starting from the
        initial parameters; ``evaluate`` / ``predict`` use it with ``use_ema=True``.
      epoch: ``<int32>[]`` number of epochs ``fit`` has completed on this state. A further
        ``fit`` continues from it: its epochs are numbered after it and shuffled by it, so five
        ``fit(state, ..., epochs=1)`` calls in a row train exactly as one ``epochs=5`` call.
      key_data: ``<uint32>[2]`` raw data of the run's key (see :attr:`key`). The key of step
        ``s`` is ``fold_in(key, s)``, so the random stream never depends on how steps are grouped
        into epochs, chunks or resumed runs. Stored raw so the state copies to NumPy and
        checkpoints as plain arrays.
      model: the model behind the seam (``fnn.train.model``), e.g. a ``LinenModel``.
      tx: the ``optax.GradientTransformation``.
      ema_decay: the decay of ``ema_params`` (None: no average kept).
      input_shape: shape of one example (without the batch axis) of the input given to
        :meth:`create`; ``fit`` checks inputs against its rank before any tracing.
    """

    step: jax.Array
    epoch: jax.Array
    params: Any
    model_state: Any
    opt_state: optax.OptState
    key_data: jax.Array
    ema_params: Any
    model: Model = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)
    ema_decay: float | None = struct.field(pytree_node=False, default=None)
    input_shape: tuple[int, ...] | None = struct.field(pytree_node=False, default=None)

    @classmethod
    def create(
        cls,
        model: Any,
        optimizer: optax.GradientTransformation,
        example_input: Any,
        *,
        seed: int = 0,
        key: PRNGKey | None = None,
        ema_decay: float | None = None,
    ) -> "TrainState":
        """Initialises ``model`` on ``example_input`` and the optimizer on its parameters.

        Args:
          model: a Flax linen module called as ``model(x, train=...)``, or any object with the
            model seam's ``init`` and ``apply`` (see ``fnn.train.model``).
          optimizer: an ``optax.GradientTransformation`` (e.g. ``fnn.optim.adam(1e-3)``).
          example_input: a batch shaped like the training inputs, e.g. ``x_train[:1]``, or
            a pytree of them (``{"x": x[:1], "lengths": lengths[:1]}``);
            only its shape and dtype matter.
          seed: integer seed of the run, used when ``key`` is None.
          key: a PRNG key (``jax.random.key``) to use instead of ``seed``.
          ema_decay: keep an exponential moving average of the weights with this decay in
            ``[0, 1)`` (e.g. 0.999), updated inside the train step; None keeps none.

        Returns:
          A state at step 0.
        """
        model = as_model(model)
        if isinstance(optimizer, optax.MultiSteps):  # gradient accumulation
            optimizer = optimizer.gradient_transformation()
        if not isinstance(optimizer, optax.GradientTransformation):
            raise TypeError(
                f"optimizer: expected an optax.GradientTransformation or optax.MultiSteps, got "
                f"{type(optimizer).__name__}"
            )
        if ema_decay is not None:
            ema_decay = _checks.check_float("ema_decay", ema_decay, low=0, high=1)
        if key is None:
            seed = _checks.check_int("seed", seed, minimum=-(2**63), maximum=2**63 - 1)
            key = jax.random.key(seed)
        init_key, run_key = jax.random.split(key)
        example_input = data_tree.tree_map(jnp.asarray, example_input)
        named, _ = data_tree.leaves_with_names("example_input", example_input)
        for path, leaf in named:
            if leaf.ndim < 1 or leaf.shape[0] < 1:
                raise ValueError(
                    f"{path}: expected a batch [batch >= 1, ...], got shape {leaf.shape}"
                )
        single = isinstance(example_input, jax.Array)
        try:
            params, model_state = model.init(init_key, example_input)
        except Exception as err:
            name = type(getattr(model, "module", model)).__name__
            kind = type(err) if isinstance(err, TypeError | ValueError) else ValueError
            what = (
                f"of shape {tuple(example_input.shape)} and dtype {example_input.dtype}"
                if single
                else data_tree.describe(example_input)
            )
            raise kind(
                f"model: {name} failed to initialise on example_input {what}: "
                f"{type(err).__name__}: {err}"
            ) from err
        return cls(
            step=jnp.zeros((), jnp.int32),
            epoch=jnp.zeros((), jnp.int32),
            params=params,
            model_state=model_state,
            opt_state=optimizer.init(params),
            ema_params=None if ema_decay is None else params,
            ema_decay=ema_decay,
            key_data=jax.random.key_data(run_key),
            model=model,
            tx=optimizer,
            input_shape=tuple(example_input.shape[1:]) if single else None,
        )

    @property
    def key(self) -> PRNGKey:
        """The run's key as a typed PRNG key."""
        return jax.random.wrap_key_data(self.key_data)

    @property
    def apply_fn(self) -> Callable[..., Any]:
        """The linen module's ``apply``, as on Flax's own ``TrainState``: called as
        ``state.apply_fn({"params": state.params, **state.model_state}, x, train=False)``."""
        if not isinstance(self.model, LinenModel):
            raise AttributeError(
                f"apply_fn: only a linen model has one; this state's model is a "
                f"{type(self.model).__name__} (call state.model.apply)"
            )
        return self.model.module.apply

    def step_key(self) -> PRNGKey:
        """The key of the current step: ``fold_in(key, step)``."""
        return jax.random.fold_in(self.key, self.step)

    def apply_gradients(self, grads: Any, **extra_args: Any) -> "TrainState":
        """One optimizer call; returns the new state with ``step + 1``.

        ``extra_args`` (``value=``, ``grad=``, ``value_fn=``, ...) reach an
        ``optax.GradientTransformationExtraArgs`` (``reduce_on_plateau``, ``lbfgs``, any
        ``optax.chain``) and are dropped for a plain ``GradientTransformation``.
        """
        if isinstance(self.tx, optax.GradientTransformationExtraArgs):
            updates, opt_state = self.tx.update(grads, self.opt_state, self.params, **extra_args)
        else:
            updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        ema = self.ema_params
        if self.ema_decay is not None:
            d = self.ema_decay
            ema = jax.tree_util.tree_map(lambda e, p: d * e + (1.0 - d) * p, ema, params)
        return self.replace(step=self.step + 1, params=params, opt_state=opt_state,
                            ema_params=ema)  # fmt: skip

    def _multi_steps(self) -> optax.MultiStepsState | None:
        is_multi = lambda s: isinstance(s, optax.MultiStepsState)
        leaves = jax.tree_util.tree_leaves(self.opt_state, is_leaf=is_multi)
        return next((leaf for leaf in leaves if is_multi(leaf)), None)

    @property
    def accumulates_gradients(self) -> bool:
        """Whether the optimizer is an ``optax.MultiSteps`` (updates every k steps)."""
        return self._multi_steps() is not None

    def optimizer_updates(self) -> jax.Array:
        """``<int32>[]`` updates applied to the parameters: ``step``, or with
        ``optax.MultiSteps`` the number of accumulated updates (its ``gradient_step``)."""
        multi = self._multi_steps()
        return self.step if multi is None else multi.gradient_step

    def with_ema_params(self) -> "TrainState":
        """This state with ``params`` replaced by their moving average (see ``ema_decay``)."""
        if self.ema_params is None:
            raise ValueError(
                "use_ema: this state keeps no moving average of its weights; create it with "
                "TrainState.create(..., ema_decay=0.999)"
            )
        return self.replace(params=self.ema_params)

    def num_params(self) -> int:
        """Total number of scalar parameters."""
        return sum(int(x.size) for x in jax.tree_util.tree_leaves(self.params))
