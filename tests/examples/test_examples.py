"""Runs every example with ``--quick`` end to end and checks its outputs and quality.

Each example's ``main(argv)`` returns its results; the bars below are well under what the quick
settings reach (noted next to each bar), so they catch a broken pipeline, not noise. The two
slowest are marked ``slow`` (run them with ``pytest -m slow tests/examples``).
"""

import json

import numpy as np
import pytest


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
