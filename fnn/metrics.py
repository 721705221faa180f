"""Metrics as accumulable sums.

A :class:`Metric` turns one batch into a dict of *sums* (correct predictions, counts, confusion
counts, squared errors, ...). Sums from different batches or devices merge by addition
(:func:`merge`), and only :meth:`Metric.compute` normalises them. So an epoch's metric is exact,
whatever the batch size, and padded examples (``mask == 0``) count for nothing.

Classification metrics read logits: ``<float>[batch, classes]`` (prediction = argmax), or a
single logit ``<float>[batch]`` / ``<float>[batch, 1]`` for two classes (prediction = logit > 0).
Labels are ``<int>[batch]``. Regression metrics read ``<float>[batch, ...]`` predictions and
targets of the same shape (or ``[batch]`` for ``[batch, 1]`` predictions).

Precision, recall and F1 come ``binary`` (of class 1) or ``macro`` (unweighted mean over all
classes, a class that is never predicted or present contributing 0, as scikit-learn does with
``zero_division=0`` when every class appears).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnn._checks import check_choice, check_type
from fnn.losses import _match_targets

Sums = dict[str, jax.Array]


class Metric(NamedTuple):
    """A named pair of pure functions.

    Attributes:
      name: the key under which results are reported.
      update: ``(predictions, targets, mask<float>[batch]) -> Sums`` for one batch.
      compute: ``Sums -> <float32>[]`` (or an array, for the confusion matrix).
      targets: what targets the metric reads, checked against ``y`` before training:
        ``"labels"`` (class labels: integers, or 0/1 with a single logit), ``"values"``
        (regression targets shaped like the predictions), or ``"any"`` (not checked).
    """

    name: str
    update: Callable[[jax.Array, jax.Array, jax.Array], Sums]
    compute: Callable[[Sums], jax.Array]
    targets: str = "any"


def _safe_div(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.where(b > 0, a / jnp.where(b > 0, b, 1), 0.0)


def num_classes(logits: jax.Array) -> int:
    """Number of classes a logits array describes (a single logit means two)."""
    return 2 if logits.ndim == 1 or logits.shape[-1] == 1 else logits.shape[-1]


def predicted_classes(logits: jax.Array) -> jax.Array:
    """``<int32>[batch]`` class predictions from logits (see the module docstring)."""
    if logits.ndim == 1 or logits.shape[-1] == 1:
        return (logits.reshape(logits.shape[0]) > 0).astype(jnp.int32)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def _confusion_update(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> Sums:
    classes = num_classes(logits)
    pred = jax.nn.one_hot(predicted_classes(logits), classes)  # [B, C]
    true = jax.nn.one_hot(labels.reshape(labels.shape[0]).astype(jnp.int32), classes)
    return {"confusion": (true * mask[:, None]).T @ pred}  # [C, C], rows true, cols predicted


def _per_class(sums: Sums) -> tuple[jax.Array, jax.Array, jax.Array]:
    cm = sums["confusion"]
    tp = jnp.diagonal(cm)
    return tp, cm.sum(axis=0) - tp, cm.sum(axis=1) - tp  # tp, fp, fn


def _prf(kind: str, average: str) -> Metric:
    check_choice("average", average, ("binary", "macro"))

    def compute(sums: Sums) -> jax.Array:
        tp, fp, fn = _per_class(sums)
        if kind == "precision":
            per_class = _safe_div(tp, tp + fp)
        elif kind == "recall":
            per_class = _safe_div(tp, tp + fn)
        else:
            per_class = _safe_div(2 * tp, 2 * tp + fp + fn)
        return per_class[1] if average == "binary" else per_class.mean()

    name = kind if average == "binary" else f"macro_{kind}"
    return Metric(name, _confusion_update, compute, "labels")


def precision(average: str = "binary") -> Metric:
    """``tp / (tp + fp)`` of class 1 (``average="binary"``) or averaged over classes."""
    return _prf("precision", average)


def recall(average: str = "binary") -> Metric:
    """``tp / (tp + fn)`` of class 1 (``average="binary"``) or averaged over classes."""
    return _prf("recall", average)


def f1(average: str = "binary") -> Metric:
    """``2 tp / (2 tp + fp + fn)`` of class 1 (``average="binary"``) or averaged over classes."""
    return _prf("f1", average)


def accuracy() -> Metric:
    """Fraction of examples whose predicted class equals the label."""

    def update(logits, labels, mask):
        hit = predicted_classes(logits) == labels.reshape(labels.shape[0])
        return {"correct": jnp.sum(hit * mask), "count": jnp.sum(mask)}

    return Metric("accuracy", update, lambda s: _safe_div(s["correct"], s["count"]), "labels")


def confusion_matrix() -> Metric:
    """``<float32>[classes, classes]`` counts; row = true class, column = predicted class."""
    return Metric("confusion_matrix", _confusion_update, lambda s: s["confusion"], "labels")


def _flat_pair(predictions, targets) -> tuple[jax.Array, jax.Array]:
    targets = _match_targets(predictions, targets, "targets")
    b = predictions.shape[0]
    return predictions.reshape((b, -1)), targets.reshape((b, -1)).astype(predictions.dtype)


def mae() -> Metric:
    """Mean absolute error over examples and outputs."""

    def update(predictions, targets, mask):
        p, t = _flat_pair(predictions, targets)
        return {
            "abs_error": jnp.sum(jnp.abs(p - t) * mask[:, None]),
            "count": jnp.sum(mask) * p.shape[1],
        }

    return Metric("mae", update, lambda s: _safe_div(s["abs_error"], s["count"]), "values")


def r2() -> Metric:
    """Coefficient of determination ``1 - SS_res / SS_tot``, averaged over outputs.

    Kept as ``n, sum(y), sum(y^2), sum((y - p)^2)`` per output, so it merges across batches:
    ``SS_tot = sum(y^2) - sum(y)^2 / n``.
    That difference loses float32 precision when the targets' mean is large next to their
    spread (mean 1000, standard deviation 1: 0.891 where scikit-learn gives 0.911), so
    standardize such targets before training.
    """

    def update(predictions, targets, mask):
        p, t = _flat_pair(predictions, targets)
        m = mask[:, None]
        return {
            "count": jnp.sum(mask),
            "sum_y": jnp.sum(t * m, axis=0),
            "sum_y2": jnp.sum(t * t * m, axis=0),
            "sse": jnp.sum(jnp.square(t - p) * m, axis=0),
        }

    def compute(s):
        ss_tot = s["sum_y2"] - jnp.square(s["sum_y"]) / jnp.maximum(s["count"], 1)
        return jnp.mean(1.0 - _safe_div(s["sse"], ss_tot))

    return Metric("r2", update, compute, "values")


METRICS: dict[str, Metric] = {
    "accuracy": accuracy(),
    "precision": precision(),
    "recall": recall(),
    "f1": f1(),
    "macro_precision": precision("macro"),
    "macro_recall": recall("macro"),
    "macro_f1": f1("macro"),
    "confusion_matrix": confusion_matrix(),
    "mae": mae(),
    "r2": r2(),
}


def get_metric(metric: str | Metric) -> Metric:
    """Returns the metric named ``metric`` (see ``METRICS``), or ``metric`` itself.

    Raises:
      TypeError: for something that is neither a string nor a ``Metric``.
      ValueError: for an unknown name.
    """
    if isinstance(metric, Metric):
        return metric
    check_type("metrics", metric, str, "a metric name or a fnn.metrics.Metric")
    return METRICS[check_choice("metrics", metric, sorted(METRICS))]


def get_metrics(metrics: Sequence[str | Metric]) -> tuple[Metric, ...]:
    """Resolves a sequence of names / metrics; rejects a bare string and duplicate names."""
    if isinstance(metrics, str | Metric):
        raise TypeError(f"metrics: expected a sequence of metrics, got the single {metrics!r}")
    if not isinstance(metrics, Sequence | set | frozenset):
        raise TypeError(
            f"metrics: expected a sequence of metric names or fnn.metrics.Metric values (e.g. "
            f"['accuracy'], or () for none), got {metrics!r}"
        )
    resolved = tuple(get_metric(m) for m in metrics)
    names = [m.name for m in resolved]
    if len(set(names)) != len(names):
        raise ValueError(f"metrics: expected distinct names, got duplicates in {names}")
    return resolved


def update(
    metrics: Sequence[Metric], predictions: jax.Array, targets: jax.Array, mask: jax.Array
) -> dict[str, Sums]:
    """Sums of every metric for one batch, keyed by metric name."""
    return {m.name: m.update(predictions, targets, mask) for m in metrics}


def merge(a: Mapping, b: Mapping) -> dict:
    """Adds two pytrees of sums leaf by leaf."""
    return jax.tree_util.tree_map(jnp.add, a, b)


def compute(metrics: Sequence[Metric], sums: Mapping[str, Sums]) -> dict[str, jax.Array]:
    """Normalises accumulated sums: ``{name: value}``."""
    return {m.name: m.compute(sums[m.name]) for m in metrics}
