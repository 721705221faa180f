"""Runs every example with ``--quick`` end to end and checks its outputs and quality.

Each example's ``main(argv)`` returns its results; the bars below are well under what the quick
settings reach (noted next to each bar), so they catch a broken pipeline, not noise. The two
slowest are marked ``slow`` (run them with ``pytest -m slow tests/examples``).
"""

import json

import numpy as np
import pytest

import fnn


def test_digits_gd_modes(load_example, tmp_path):
    results = load_example("digits_gd_modes").main(["--quick", "--out", str(tmp_path)])
    assert set(results) == {"full_batch", "sgd", "mini_batch"}
    for mode, r in results.items():
        assert r["test_accuracy"] >= 0.93, (mode, r["test_accuracy"])  # quick: 0.96-0.98
        assert r["samples_per_s"] > 0 and r["wall_seconds"] > r["train_seconds"] > 0
        assert (tmp_path / f"digits_{mode}.png").stat().st_size > 0
    assert results["sgd"]["steps"] == results["sgd"]["epochs"] * 1294  # batch 1: one step each
    assert results["full_batch"]["steps"] == results["full_batch"]["epochs"]
    assert (tmp_path / "digits_gd_modes_time.png").stat().st_size > 0
    saved = json.loads((tmp_path / "digits_gd_modes.json").read_text())
    assert saved["sgd"]["test_accuracy"] == results["sgd"]["test_accuracy"]


@pytest.mark.slow  # ~30 s on a loaded 2-core CPU, mostly XLA compiling the conv scan
def test_cnn_mnist_and_resume(load_example, tmp_path, capsys):
    cnn = load_example("cnn_mnist")
    first = cnn.main(["--quick", "--out", str(tmp_path), "--verbose", "0"])
    assert "synthetic_mnist" in first["data"]  # --quick never reads TFDS
    assert first["test_accuracy"] >= 0.8  # quick: ~0.95
    assert (tmp_path / "cnn_mnist.png").stat().st_size > 0
    epochs = len(first["history"])
    assert epochs >= 1
    capsys.readouterr()

    # One more epoch on top of the saved run: the first epochs come back from the checkpoint.
    second = cnn.main(
        [
            "--quick",
            "--out",
            str(tmp_path),
            "--verbose",
            "0",
            "--resume",
            "--epochs",
            str(epochs + 1),
        ]
    )
    assert "resuming from" in capsys.readouterr().out
    assert second["history"]["epoch"] == list(range(1, epochs + 2))
    assert second["history"].records[:epochs] == first["history"].records
    assert second["test_accuracy"] >= 0.8


@pytest.mark.slow  # ~25 s: three recurrent models, each compiled
def test_lstm_forecast(load_example, tmp_path):
    results = load_example("lstm_forecast").main(["--quick", "--out", str(tmp_path)])
    assert set(results) == {"LSTM", "GRU", "SimpleRNN", "Linear"}
    for name, r in results.items():
        assert r["test_r2"] >= 0.8, (name, r)  # quick: 0.91-0.99
        assert (tmp_path / f"lstm_forecast_{name}.png").stat().st_size > 0
    assert results["Linear"]["test_r2"] >= 0.98  # a sum of sines is linearly predictable
    assert (tmp_path / "lstm_forecast_test.png").stat().st_size > 0


def test_text_classifier(load_example, tmp_path):
    result = load_example("text_classifier").main(
        ["--quick", "--out", str(tmp_path), "--verbose", "0"]
    )
    assert "synthetic_reviews" in result["data"]
    assert result["test_accuracy"] >= 0.65  # quick: ~0.76; chance is 0.5
    assert result["test_f1"] >= 0.6
    assert (tmp_path / "text_classifier.png").stat().st_size > 0


def test_regression_matches_sklearn(load_example, tmp_path):
    results = load_example("regression").main(["--quick", "--out", str(tmp_path)])
    assert set(results) == {"diabetes", "breast_cancer", "iris"}
    # Same split, same standardization, (nearly) the same objective: the scores agree.
    assert results["diabetes"]["fnn"] >= 0.45
    np.testing.assert_allclose(
        results["diabetes"]["fnn"], results["diabetes"]["sklearn"], atol=0.02
    )
    for name in ("breast_cancer", "iris"):
        assert results[name]["fnn"] >= 0.9, (name, results[name])
        assert abs(results[name]["fnn"] - results[name]["sklearn"]) <= 0.04, (name, results[name])
    for name in results:
        assert (tmp_path / f"regression_{name}.png").stat().st_size > 0


def test_linear_regression_recovers_the_weights(load_example, tmp_path):
    results = load_example("linear_regression").main(["--quick", "--out", str(tmp_path)])
    true_w, true_b = results["true_w"], results["true_b"]
    for mode in ("full-batch GD", "SGD (batch 1)"):
        r = results[mode]
        # quick: largest error ~0.02 against the true weights (the sample's noise)
        np.testing.assert_allclose(r["w"], true_w, atol=0.06, err_msg=mode)
        assert abs(r["b"] - true_b) < 0.06, (mode, r["b"], true_b)
        assert r["test_mse"] < 0.02, (mode, r["test_mse"])  # noise floor 0.01
    # Full-batch GD on a convex quadratic converges to the least-squares solution itself.
    full = results["full-batch GD"]
    np.testing.assert_allclose(np.append(full["w"], full["b"]), results["least_squares"], atol=2e-3)
    assert results["SGD (batch 1)"]["steps"] == 3 * 256  # batch 1: one step per example
    assert results["full-batch GD"]["steps"] == 100  # one step per epoch
    for name in ("fit", "loss"):
        assert (tmp_path / f"linear_regression_{name}.png").stat().st_size > 0


def test_logistic_regression_boundary(load_example, tmp_path):
    results = load_example("logistic_regression").main(["--quick", "--out", str(tmp_path)])
    assert results["test_accuracy"] >= 0.84  # quick: 0.87 (Bayes 0.933 on this sample: 0.87)
    assert abs(results["test_accuracy"] - results["sklearn_accuracy"]) <= 0.03
    assert results["cosine_to_true_normal"] >= 0.98  # the boundary is x0 + x1 = 0
    assert (tmp_path / "logistic_regression_boundary.png").stat().st_size > 0
    assert (tmp_path / "logistic_regression_history.png").stat().st_size > 0


def test_iris_mlp_confusion_matrix(load_example, tmp_path, capsys):
    from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score

    results = load_example("iris_mlp").main(["--quick", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert results["test_accuracy"] >= 0.9  # quick: 0.93
    # The printed matrix is the one NumPy / scikit-learn compute from fnn.predict's outputs.
    x_test, y_test = results["test_data"]
    predicted = np.argmax(np.asarray(fnn.predict(results["state"], x_test)), axis=1)
    expected = confusion_matrix(y_test, predicted, labels=[0, 1, 2])
    lines = printed.split("confusion matrix (row = true species, column = predicted):\n")[1]
    rows = [[int(v) for v in line.split()[1:]] for line in lines.splitlines()[:3]]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_array_equal(results["confusion_matrix"], expected)
    assert results["test_accuracy"] == pytest.approx(np.mean(predicted == y_test))
    for name, sk in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        reference = sk(y_test, predicted, average=None, zero_division=0)
        np.testing.assert_allclose(results["per_class"][name], reference, atol=1e-6)
        macro = sk(y_test, predicted, average="macro", zero_division=0)
        assert results[f"macro_{name}"] == pytest.approx(macro, abs=1e-5)
    assert (tmp_path / "iris_confusion.png").stat().st_size > 0
    assert (tmp_path / "iris_history.png").stat().st_size > 0


def test_optimizers_tour(load_example, tmp_path):
    import optax

    tour = load_example("optimizers_tour").main(["--quick", "--out", str(tmp_path)])
    results = tour["results"]
    expected = {"sgd", "momentum", "nesterov", "clip_value", "clip_norm", "l2", "adam",
                "decoupled"} | {f"momentum + {s}" for s in tour["schedules"]}  # fmt: skip
    assert set(results) == expected
    for name, r in results.items():
        assert all(np.isfinite(r["losses"])), name
        assert r["losses"][-1] < 0.9 * r["initial_loss"], (name, r)  # quick: 0.4-0.8x
        assert r["losses"][-1] < r["losses"][0], (name, r["losses"])
    # Each fnn.optim schedule gives what Optax's own schedule function gives.
    settings = {name: s["settings"] for name, s in tour["schedules"].items()}
    e, st = settings["exponential_decay"], settings["step_decay"]
    c, w = settings["cosine_decay"], settings["warmup_cosine_decay"]
    reference = {
        "exponential_decay": optax.exponential_decay(
            e["init_value"], transition_steps=e["decay_steps"], decay_rate=e["decay_rate"]
        ),
        "step_decay": optax.piecewise_constant_schedule(
            st["init_value"], {b: st["factor"] for b in st["boundaries"]}
        ),
        "cosine_decay": optax.cosine_decay_schedule(c["init_value"], c["decay_steps"]),
        "warmup_cosine_decay": optax.warmup_cosine_decay_schedule(
            0.0, w["peak_value"], w["warmup_steps"], w["decay_steps"]
        ),
    }
    assert set(reference) == set(tour["schedules"])
    total = tour["total_steps"]
    for name, schedule in reference.items():
        values = tour["schedules"][name]["values"]
        for step in (0, 1, total // 4, total // 2, (3 * total) // 4, total - 1, total):
            assert values[step] == pytest.approx(float(schedule(step)), rel=1e-6, abs=1e-9), (
                name,
                step,
            )
    assert tour["schedules"]["warmup_cosine_decay"]["values"][0] == 0.0
    assert max(tour["schedules"]["step_decay"]["values"]) == pytest.approx(0.05)
    for name in ("loss", "schedules"):
        assert (tmp_path / f"optimizers_{name}.png").stat().st_size > 0


def test_cifar10_cnn_stand_in(load_example, tmp_path):
    result = load_example("cifar10_cnn").main(["--quick", "--out", str(tmp_path), "--verbose", "0"])
    assert "stand-in" in result["data"] and "--quick" in result["data"]  # never reads TFDS
    assert result["test_accuracy"] >= 0.25  # quick: ~0.5; chance is 0.1
    assert result["epochs"] == 4
    for name in ("cifar10_cnn", "cifar10_samples"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    (x_train, y_train), (x_test, _) = load_example("cifar10_cnn").synthetic_cifar10(
        n_train=20, n_test=10, seed=0
    )
    assert x_train.shape == (20, 32, 32, 3) and x_test.shape == (10, 32, 32, 3)
    assert x_train.dtype == np.float32 and 0 <= x_train.min() and x_train.max() <= 1
    assert y_train.dtype == np.int32
