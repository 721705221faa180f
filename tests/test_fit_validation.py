"""Every bad input to fit / evaluate / predict gives a clear error before anything compiles."""

import numpy as np
import pytest

import fnn
from fnn import models, optim

X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
Y = np.arange(20, dtype=np.int32) % 3


@pytest.fixture(scope="module")
def state():
    return fnn.TrainState.create(models.MLP((8,), 3), optim.sgd(0.1), X[:1])


def with_nan(a, where=(5, 2), value=np.nan):
    a = a.copy()
    a[where] = value
    return a


CASES = {
    "length_mismatch": (
        dict(y=Y[:19]),
        ValueError,
        r"x, y: different numbers of examples: x has 20, y has 19",
    ),
    "wrong_rank": (
        dict(x=X.reshape(20, 2, 2)),
        ValueError,
        r"x: expected inputs of rank 2 \(\[n, 4\].*got shape \(20, 2, 2\)",
    ),
    "wrong_feature_count": (
        dict(x=np.ones((20, 5), np.float32)),
        ValueError,
        r"x: examples of shape \(5,\) and dtype float32 do not fit the model",
    ),
    "string_inputs": (
        dict(x=np.array([["a"] * 4] * 20)),
        TypeError,
        r"x: expected a numeric array, got dtype <U1",
    ),
    "object_labels": (dict(y=np.array([None] * 20)), TypeError, "y: expected a numeric array"),
    "label_too_large": (
        dict(y=np.where(Y == 2, 3, Y)),
        ValueError,
        r"y: labels must lie in \[0, 3\) for a model with 3 outputs, got range \[0, 3\]",
    ),
    "negative_label": (dict(y=Y - 1), ValueError, r"y: labels must lie in \[0, 3\).*\[-1, 1\]"),
    "float_labels": (
        dict(y=Y.astype(np.float32)),
        TypeError,
        "y: sparse_categorical_cross_entropy needs integer class labels, got dtype float32",
    ),
    "nan_inputs": (
        dict(x=with_nan(X)),
        ValueError,
        r"x: contains 1 NaN/Inf value\(s\) \(first in example 5\)",
    ),
    "inf_inputs": (dict(x=with_nan(X, (7, 0), np.inf)), ValueError, r"first in example 7"),
    "empty": (
        dict(x=X[:0], y=Y[:0]),
        ValueError,
        r"x: is empty \(0 examples\)",
    ),
    "batch_zero": (
        dict(batch_size=0),
        ValueError,
        r"batch_size: expected an integer in \[1, 20\] or 'full', got 0",
    ),
    "batch_too_big": (dict(batch_size=21), ValueError, r"batch_size: .*got 21"),
    "batch_float": (dict(batch_size=2.5), TypeError, r"batch_size: expected an integer or 'full'"),
    "epochs_zero": (dict(epochs=0), ValueError, r"epochs: expected an integer >= 1, got 0"),
    "unknown_loss": (
        dict(loss="hinge"),
        ValueError,
        r"loss: expected one of \[.*'cross_entropy'.*\], got 'hinge'",
    ),
    "unknown_metric": (
        dict(metrics=["auc"]),
        ValueError,
        r"metrics: expected one of \[.*'accuracy'.*\], got 'auc'",
    ),
    "bad_validation_pair": (
        dict(validation_data=(X[:5], Y[:4])),
        ValueError,
        r"validation_data\[0\], validation_data\[1\]: different numbers of examples",
    ),
    "bad_validation_labels": (
        dict(validation_data=(X[:5], Y[:5] + 7)),
        ValueError,
        r"validation_data\[1\]: labels must lie in \[0, 3\)",
    ),
    "bad_callback": (
        dict(callbacks=[print]), TypeError, r"callbacks\[0\]: expected an fnn.Callback"
    ),
    "mse_shape": (
        dict(loss="mse", y=np.ones((20, 2), np.float32)),
        ValueError,
        r"y: does not fit the loss for model outputs of shape \[n, 3\]",
    ),
    "bce_range": (
        dict(loss="binary_cross_entropy", y=np.full((20, 3), 2.0, np.float32)),
        ValueError,
        r"y: binary_cross_entropy needs labels in \[0, 1\], got range \[2.0, 2.0\]",
    ),
    "bool_labels": (
        dict(y=Y > 0),
        TypeError,
        r"y: sparse_categorical_cross_entropy needs integer class labels, got dtype bool; pass "
        r"y.astype\(np.int32\)",
    ),
    "r2_on_class_labels": (
        dict(metrics=["accuracy", "r2"]),
        ValueError,
        r"metrics: 'r2' compares predictions with targets of the same shape, but y holds the "
        r"class labels of a cross-entropy",
    ),
    "accuracy_on_regression_targets": (
        dict(loss="mse", y=X[:, :3] * 2, metrics=["accuracy"]),
        ValueError,
        r"metrics: 'accuracy' compares predicted classes with class labels, but y holds float32 "
        r"values in \[-?\d.*\], not labels",
    ),
    "f1_on_regression_targets_in_validation": (
        dict(loss="mse", y=np.zeros((20, 3), np.float32), metrics=["macro_f1"],
             validation_data=(X, X[:, :3])),  # fmt: skip
        ValueError,
        r"metrics: 'macro_f1' compares predicted classes with class labels, but "
        r"validation_data\[1\] holds",
    ),
    "metrics_none": (dict(metrics=None), TypeError, r"metrics: expected a sequence of metric "),
    "seed_too_large": (dict(seed=2**64), ValueError, r"seed: expected an integer in \[-9223"),
    "validation_of_one": (
        dict(validation_data=(X,)),
        TypeError,
        r"validation_data: expected a tuple \(x_val, y_val\), got a tuple of length 1",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_rejects_bad_input_before_compiling(state, case, compiles):
    overrides, error, match = CASES[case]
    kwargs = dict(x=X, y=Y, loss="cross_entropy", batch_size=4, epochs=1, verbose=0)
    kwargs.update(overrides)
    x, y = kwargs.pop("x"), kwargs.pop("y")
    with pytest.raises(error, match=match):
        fnn.fit(state, x, y, **kwargs)
    assert compiles.count() == 0, compiles.names()


def test_fit_rejects_a_non_state():
    with pytest.raises(TypeError, match="state: expected a fnn.TrainState, got dict"):
        fnn.fit({}, X, Y, loss="cross_entropy", batch_size=4, epochs=1)


def test_label_metrics_accept_binary_float_targets(state):
    # 0/1 floats with a single logit (binary cross-entropy) are labels too.
    single = fnn.TrainState.create(models.MLP((8,), 1), optim.sgd(0.1), X[:1])
    y = (X[:, 0] > 0).astype(np.float32)
    _, history = fnn.fit(single, X, y, loss="binary_cross_entropy", batch_size=4, epochs=1,
                         verbose=0, metrics=["accuracy", "f1"])  # fmt: skip
    assert 0 <= history["accuracy"][0] <= 1
    with pytest.raises(ValueError, match=r"metrics: 'accuracy' compares predicted classes"):
        fnn.evaluate(single, X, X[:, 0], loss="mse", metrics=["accuracy"])


def test_evaluate_and_predict_check_their_input(state):
    with pytest.raises(ValueError, match=r"y: labels must lie in \[0, 3\)"):
        fnn.evaluate(state, X, Y + 3, loss="cross_entropy")
    with pytest.raises(ValueError, match=r"x: expected inputs of rank 2"):
        fnn.predict(state, X[:, :, None])
    with pytest.raises(ValueError, match=r"batch_size: expected an integer in \[1, 20\]"):
        fnn.predict(state, X, batch_size=0)


def test_full_batch_cannot_be_streamed(state):
    with pytest.raises(ValueError, match="batch_size: a full batch of .* cannot be streamed"):
        fnn.fit(state, X, Y, loss="cross_entropy", batch_size="full", epochs=1, max_device_bytes=10)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (
            X,
            (Y.astype(np.int64) + 2**32),
            r"y: holds values in \[4294967296, 4294967298\], outside "
            r"the range of int32",
        ),
        (
            X,
            Y.astype(np.uint64) + np.uint64(2**40),
            r"y: holds values .* outside the range of int32",
        ),
        (
            X.astype(np.float64) * 1e39,
            Y,
            r"x: holds values in .*outside the range of float32 .*"
            r"they would become inf",
        ),
    ],
)
def test_values_out_of_the_computed_range_are_refused(state, x, y, match, compiles):
    with pytest.raises(ValueError, match=match):
        fnn.fit(state, x, y, loss="cross_entropy", batch_size=4, epochs=1, verbose=0)
    assert compiles.count() == 0


def test_device_arrays_are_checked_on_the_device_once(state, monkeypatch):
    import jax.numpy as jnp

    from fnn.train import data_tree

    x, y = jnp.asarray(X), jnp.asarray(Y)
    calls = []
    summarize = data_tree._summarize
    monkeypatch.setattr(data_tree, "_summarize", lambda a: calls.append(a.shape) or summarize(a))
    kwargs = dict(loss="cross_entropy", batch_size=4, epochs=1, verbose=0)
    fnn.fit(state, x, y, **kwargs)
    assert sorted(calls) == [(20,), (20, 4)]  # x's finite check, y's label range
    fnn.fit(state, x, y, **kwargs)
    assert len(calls) == 2  # the same arrays again: remembered, not reduced again
    with pytest.raises(ValueError, match=r"x: contains 1 NaN/Inf value\(s\) \(first in exam"):
        fnn.fit(state, jnp.asarray(with_nan(X)), y, **kwargs)
    with pytest.raises(ValueError, match=r"y: labels must lie in \[0, 3\) for a model with 3 "
                       r"outputs, got range \[0, 7\]"):  # fmt: skip
        fnn.fit(state, x, jnp.asarray(Y).at[3].set(7), **kwargs)
    with pytest.raises(ValueError, match=r"metrics: 'accuracy' compares predicted classes"):
        fnn.evaluate(state, x, jnp.asarray(X[:, :3]), loss="mse", metrics=["accuracy"])
