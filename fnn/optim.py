"""Optimizers as Optax compositions, and learning-rate schedules.

Every optimizer is a short ``optax.chain`` of existing Optax transformations, applied in this
order to the gradient ``g`` of the loss at parameters ``w``:

1. clipping: ``clip_value`` clips each element to ``[-c, c]``, then ``clip_norm`` rescales ``g``
   to a global L2 norm of at most ``c``;
2. ``weight_decay`` (coupled L2): ``g <- g + weight_decay * w``. This is the gradient of
   ``weight_decay * fnn.losses.l2_penalty(w)``, so it also flows through momentum / Adam's
   moments (PyTorch's ``SGD(weight_decay=...)`` and ``Adam(weight_decay=...)``);
3. the update rule (SGD with optional (Nesterov) momentum, or Adam);
4. ``decoupled_weight_decay``: ``u <- u + decoupled_weight_decay * w`` after the update rule,
   so the decay bypasses the moments (AdamW, Loshchilov & Hutter, arXiv:1711.05101, 2017);
5. scaling by ``-learning_rate`` (a float or a schedule of the step count).

The chain is wrapped in ``optax.inject_hyperparams``, so the learning rate lives in the
optimizer's state (``hyperparams["learning_rate"]``, see ``fnn.train.learning_rate``): ``fit``
records it in ``History`` every epoch and ``fnn.ReduceLROnPlateau`` can lower it. The updates
are bit for bit those of the bare chain (tested).
"""

import functools
import numbers
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from fnn._checks import (
    check_bool,
    check_float,
    check_int,
    check_positive,
    check_type,
    check_unit_interval,
)

Schedule = Callable[[int], float]
LearningRate = float | Schedule


def _check_learning_rate(learning_rate: LearningRate) -> None:
    if callable(learning_rate):
        return
    check_type("learning_rate", learning_rate, numbers.Real, "a float or a schedule")
    check_positive("learning_rate", learning_rate, allow_zero=True)


def _scale_by_learning_rate(learning_rate: jax.Array) -> optax.GradientTransformation:
    """``u <- -learning_rate * u``, the rate cast to each update's dtype first.

    ``optax.scale_by_learning_rate`` of the injected rate would promote bfloat16 updates to the
    float32 of a scheduled rate; casting as ``optax.scale_by_schedule`` does keeps the updates
    bit for bit those of ``optax.scale_by_learning_rate(float or schedule)`` in every dtype.
    """

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: -jnp.asarray(learning_rate, u.dtype) * u, updates), state

    return optax.GradientTransformation(optax.init_empty_state, update)


def _chain(
    rule: optax.GradientTransformation,
    learning_rate: LearningRate,
    clip_norm: float | None,
    clip_value: float | None,
    weight_decay: float,
    decoupled_weight_decay: float,
) -> optax.GradientTransformation:
    _check_learning_rate(learning_rate)
    parts = []
    if clip_value is not None:
        check_positive("clip_value", clip_value)
        parts.append(optax.clip(clip_value))
    if clip_norm is not None:
        check_positive("clip_norm", clip_norm)
        parts.append(optax.clip_by_global_norm(clip_norm))
    check_positive("weight_decay", weight_decay, allow_zero=True)
    check_positive("decoupled_weight_decay", decoupled_weight_decay, allow_zero=True)
    if weight_decay:
        parts.append(optax.add_decayed_weights(weight_decay))
    parts.append(rule)
    if decoupled_weight_decay:
        parts.append(optax.add_decayed_weights(decoupled_weight_decay))

    def with_learning_rate(learning_rate):
        return optax.chain(*parts, _scale_by_learning_rate(learning_rate))

    if not callable(learning_rate):
        learning_rate = float(learning_rate)  # an int would make the injected rate an integer
    return optax.inject_hyperparams(with_learning_rate)(learning_rate=learning_rate)


# Optimizers and schedules are cached by their arguments: building ``sgd(0.1)`` twice returns the
# same object, so states made with equal configurations share compiled training programs.
_cached = functools.lru_cache(maxsize=256)


@_cached
def sgd(
    learning_rate: LearningRate,
    *,
    momentum: float = 0.0,
    nesterov: bool = False,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    weight_decay: float = 0.0,
    decoupled_weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """Stochastic gradient descent with optional heavy-ball or Nesterov momentum.

    With momentum ``m`` the velocity is ``v <- m v + g`` and the update ``-lr v``
    (``-lr (g + m v)`` with ``nesterov=True``), as in PyTorch's ``SGD`` without dampening.

    Args:
      learning_rate: step size, a float >= 0 or a schedule ``step -> float``.
      momentum: in [0, 1); 0 is plain SGD.
      nesterov: use Nesterov's look-ahead form (Sutskever et al., ICML 2013).
      clip_norm: clip the gradient to this global L2 norm (> 0), or None.
      clip_value: clip each gradient element to ``[-clip_value, clip_value]`` (> 0), or None.
      weight_decay: coupled L2 coefficient (>= 0), see the module docstring.
      decoupled_weight_decay: decoupled decay coefficient (>= 0), see the module docstring.

    Returns:
      An ``optax.GradientTransformation``.

    Raises:
      TypeError: for a hyperparameter of the wrong type (named in the message).
      ValueError: for a hyperparameter out of range (named in the message).

    Example:
      >>> import jax.numpy as jnp, optax
      >>> tx = sgd(0.1, momentum=0.9)
      >>> params = {"w": jnp.ones(2)}
      >>> updates, _ = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
      >>> optax.apply_updates(params, updates)["w"]
      Array([0.9, 0.9], dtype=float32)
    """
    check_unit_interval("momentum", momentum)
    if check_bool("nesterov", nesterov) and momentum == 0:
        raise ValueError(
            "nesterov: expected False with momentum=0 (Nesterov momentum needs momentum > 0), "
            "got True"
        )
    rule = optax.trace(decay=momentum, nesterov=nesterov) if momentum else optax.identity()
    return _chain(rule, learning_rate, clip_norm, clip_value, weight_decay, decoupled_weight_decay)


@_cached
def adam(
    learning_rate: LearningRate,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    weight_decay: float = 0.0,
    decoupled_weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """Adam (Kingma & Ba, "Adam: A Method for Stochastic Optimization", arXiv:1412.6980, 2014).

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``, update
    ``-lr * m_hat / (sqrt(v_hat) + eps)`` with bias-corrected ``m_hat``, ``v_hat``. With
    ``decoupled_weight_decay`` this is AdamW.

    Args:
      learning_rate: a float >= 0 or a schedule.
      b1: first-moment decay in [0, 1).
      b2: second-moment decay in [0, 1).
      eps: > 0, added to the denominator.
      clip_norm, clip_value, weight_decay, decoupled_weight_decay: as in :func:`sgd`.

    Returns:
      An ``optax.GradientTransformation``.
    """
    check_unit_interval("b1", b1)
    check_unit_interval("b2", b2)
    check_positive("eps", eps)
    return _chain(
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
        learning_rate,
        clip_norm,
        clip_value,
        weight_decay,
        decoupled_weight_decay,
    )


# ----------------------------------------------------------------------------- schedules


@_cached
def constant(value: float) -> Schedule:
    """``lr(step) = value``."""
    check_positive("value", value, allow_zero=True)
    return optax.constant_schedule(value)


@_cached
def exponential_decay(
    init_value: float, *, decay_rate: float, decay_steps: int, staircase: bool = False
) -> Schedule:
    """``lr(step) = init_value * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)``.
    """
    check_positive("init_value", init_value, allow_zero=True)
    check_positive("decay_rate", decay_rate)
    check_int("decay_steps", decay_steps, minimum=1)
    check_bool("staircase", staircase)
    return optax.exponential_decay(
        init_value, transition_steps=decay_steps, decay_rate=decay_rate, staircase=staircase
    )


def step_decay(init_value: float, *, boundaries: Sequence[int], factor: float = 0.1) -> Schedule:
    """Piecewise constant: multiply by ``factor`` at each step in ``boundaries``.

    ``lr(step) = init_value * factor ** (number of boundaries b with b <= step)``; e.g.
    ``step_decay(0.1, boundaries=[100, 200])`` is 0.1 before step 100, 0.01 until 200, then 0.001.
    """
    check_positive("init_value", init_value, allow_zero=True)
    check_positive("factor", factor)
    boundaries = [check_int(f"boundaries[{i}]", b, minimum=1) for i, b in enumerate(boundaries)]
    if boundaries != sorted(set(boundaries)):
        raise ValueError(
            f"boundaries: expected strictly increasing integers >= 1, got {boundaries}"
        )
    return optax.piecewise_constant_schedule(init_value, {b: factor for b in boundaries})


@_cached
def cosine_decay(init_value: float, *, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """``lr(step) = init_value * ((1 - alpha) * 0.5 * (1 + cos(pi * t)) + alpha)`` with
    ``t = min(step, decay_steps) / decay_steps`` (Loshchilov & Hutter, SGDR, arXiv:1608.03983).
    """
    check_positive("init_value", init_value, allow_zero=True)
    check_int("decay_steps", decay_steps, minimum=1)
    check_float("alpha", alpha, low=0, high=1, open_high=False)
    return optax.cosine_decay_schedule(init_value, decay_steps=decay_steps, alpha=alpha)


@_cached
def warmup_cosine_decay(
    peak_value: float,
    *,
    warmup_steps: int,
    decay_steps: int,
    init_value: float = 0.0,
    end_value: float = 0.0,
) -> Schedule:
    """Linear warm-up from ``init_value`` to ``peak_value`` over ``warmup_steps``, then cosine
    decay to ``end_value`` at step ``decay_steps`` (which counts the warm-up steps too).
    """
    check_positive("peak_value", peak_value)
    check_positive("init_value", init_value, allow_zero=True)
    check_positive("end_value", end_value, allow_zero=True)
    check_int("warmup_steps", warmup_steps, minimum=1)
    check_int("decay_steps", decay_steps, minimum=1)
    if decay_steps <= warmup_steps:
        raise ValueError(
            f"decay_steps: expected an integer > warmup_steps={warmup_steps}, got {decay_steps}"
        )
    return optax.warmup_cosine_decay_schedule(
        init_value, peak_value, warmup_steps, decay_steps, end_value=end_value
    )
