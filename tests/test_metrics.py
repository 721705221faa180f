"""Metrics accumulated over masked batches against scikit-learn on the whole data."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from fnn import metrics

N = 203


def accumulate(names, predictions, targets, batch=32):
    """Sums over batches of ``batch``, the last one padded and masked, then normalised."""
    ms = metrics.get_metrics(names)
    total = None
    for start in range(0, len(predictions), batch):
        p = predictions[start : start + batch]
        t = targets[start : start + batch]
        real = len(p)
        pad = batch - real
        p = np.concatenate([p, np.repeat(p[:1], pad, axis=0)])  # garbage in the padded rows
        t = np.concatenate([t, np.repeat(t[:1], pad, axis=0)])
        mask = (np.arange(batch) < real).astype(np.float32)
        sums = metrics.update(ms, jnp.asarray(p), jnp.asarray(t), jnp.asarray(mask))
        total = sums if total is None else metrics.merge(total, sums)
    return {k: np.asarray(v) for k, v in metrics.compute(ms, total).items()}


@pytest.fixture
def multiclass():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(N, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=N).astype(np.int32)
    return logits, labels, logits.argmax(1)


@pytest.fixture
def binary():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(N, 1)).astype(np.float32)
    labels = rng.integers(0, 2, size=N).astype(np.int32)
    return logits, labels, (logits[:, 0] > 0).astype(int)


def test_multiclass_metrics_match_sklearn(multiclass):
    logits, labels, pred = multiclass
    names = ["accuracy", "macro_precision", "macro_recall", "macro_f1", "confusion_matrix"]
    got = accumulate(names, logits, labels)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, pred), abs=1e-6)
    for name, fn in [
        ("macro_precision", skm.precision_score),
        ("macro_recall", skm.recall_score),
        ("macro_f1", skm.f1_score),
    ]:
        assert got[name] == pytest.approx(fn(labels, pred, average="macro"), abs=1e-6), name
    np.testing.assert_array_equal(got["confusion_matrix"], skm.confusion_matrix(labels, pred))


def test_binary_metrics_match_sklearn(binary):
    logits, labels, pred = binary
    got = accumulate(["accuracy", "precision", "recall", "f1", "macro_f1"], logits, labels)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, pred), abs=1e-6)
    assert got["precision"] == pytest.approx(skm.precision_score(labels, pred), abs=1e-6)
    assert got["recall"] == pytest.approx(skm.recall_score(labels, pred), abs=1e-6)
    assert got["f1"] == pytest.approx(skm.f1_score(labels, pred), abs=1e-6)
    assert got["macro_f1"] == pytest.approx(skm.f1_score(labels, pred, average="macro"), abs=1e-6)


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    targets = rng.normal(loc=3.0, size=(N, 2)).astype(np.float32)
    predictions = (targets + rng.normal(scale=0.5, size=(N, 2))).astype(np.float32)
    got = accumulate(["mae", "r2"], predictions, targets)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(targets, predictions), rel=1e-5)
    assert got["r2"] == pytest.approx(skm.r2_score(targets, predictions), rel=1e-4)


def test_regression_column_predictions_with_flat_targets():
    rng = np.random.default_rng(4)
    t = rng.normal(size=N).astype(np.float32)
    p = (t + rng.normal(scale=0.3, size=N)).astype(np.float32)[:, None]
    got = accumulate(["r2"], p, t)
    assert got["r2"] == pytest.approx(skm.r2_score(t, p[:, 0]), rel=1e-4)


def test_precision_is_zero_when_nothing_is_predicted_positive():
    ms = metrics.get_metrics(["precision"])
    sums = metrics.update(ms, -jnp.ones((4, 1)), jnp.array([0, 1, 1, 0]), jnp.ones(4))
    assert float(metrics.compute(ms, sums)["precision"]) == 0.0


def test_unknown_metric_and_bad_specs():
    with pytest.raises(ValueError, match=r"metrics: expected one of \[.*'accuracy'.*\], got 'auc'"):
        metrics.get_metric("auc")
    with pytest.raises(TypeError, match="metrics: expected a metric name or a fnn.metrics.Metric"):
        metrics.get_metric(3)
    with pytest.raises(TypeError, match="metrics: expected a sequence"):
        metrics.get_metrics("accuracy")
    with pytest.raises(ValueError, match="metrics: expected distinct names, got duplicates"):
        metrics.get_metrics(["f1", metrics.f1()])
    with pytest.raises(
        ValueError, match=r"average: expected one of \['binary', 'macro'\], got 'micro'"
    ):
        metrics.precision("micro")
    with pytest.raises(TypeError, match=r"average: expected one of \['binary', 'macro'\], got 1"):
        metrics.f1(1)


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 40),
    cuts=st.lists(st.integers(1, 39), max_size=4),
)
def test_sums_merge_to_the_whole_for_any_split(seed, n, cuts):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=n).astype(np.int32)
    ms = metrics.get_metrics(["accuracy", "macro_f1", "confusion_matrix"])
    bounds = sorted({0, n, *[c for c in cuts if c < n]})
    parts = [
        metrics.update(ms, logits[a:b], labels[a:b], np.ones(b - a, np.float32))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    merged = parts[0]
    for part in parts[1:]:
        merged = metrics.merge(merged, part)
    whole = metrics.update(ms, logits, labels, np.ones(n, np.float32))
    for name, value in metrics.compute(ms, merged).items():
        np.testing.assert_allclose(value, metrics.compute(ms, whole)[name], rtol=1e-6, err_msg=name)
