"""Logistic regression on two 2-D Gaussian blobs, with its decision boundary.

The data come from ``fnn.data.load("blobs")``: two classes centred at ``-/+ separation / 2``
along the diagonal, so the best boundary is the line ``x0 + x1 = 0`` and the best possible
accuracy (the Bayes accuracy) is ``Phi(separation / (2 * std))``. ``fnn.models.
LogisticRegression(classes=2)`` gives one logit, trained with ``binary_cross_entropy`` by
mini-batch gradient descent; the script prints the test accuracy next to the Bayes accuracy and
scikit-learn's, the learned boundary, and plots it over the data::

    python examples/logistic_regression.py --quick   # ~5 s on a 2-core CPU
    python examples/logistic_regression.py

Outputs in ``--out``: ``logistic_regression_boundary.png`` (P(class 1) over the plane, the
p = 0.5 line, the test points) and ``logistic_regression_history.png`` (loss / accuracy curves).
"""

import argparse
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

import fnn

# ----------------------------------------------------------------------------------- defaults
CONFIG = dict(
    n_train=800,
    n_test=400,
    separation=3.0,  # distance between the class centres, in units of std
    std=1.0,
    learning_rate=0.1,  # SGD with momentum
    momentum=0.9,
    batch_size=32,
    epochs=30,
)
QUICK = dict(n_train=400, n_test=200, epochs=10)


def probability(state: fnn.TrainState, x: np.ndarray) -> np.ndarray:
    """P(class 1) for inputs ``<float32>[n, 2]``: the sigmoid of the model's single logit."""
    logits = np.asarray(fnn.predict(state, x), np.float64)[:, 0]
    return 1.0 / (1.0 + np.exp(-logits))


def plot_boundary(state, x_test, y_test, accuracy: float, path: str) -> str:
    """P(class 1) as a filled contour over the plane, the p = 0.5 line and the test points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pad = 1.0
    (x0_lo, x1_lo), (x0_hi, x1_hi) = x_test.min(0) - pad, x_test.max(0) + pad
    g0, g1 = np.meshgrid(np.linspace(x0_lo, x0_hi, 200), np.linspace(x1_lo, x1_hi, 200))
    grid = np.column_stack([g0.ravel(), g1.ravel()]).astype(np.float32)
    p = probability(state, grid).reshape(g0.shape)

    fig, ax = plt.subplots(figsize=(6, 5))
    filled = ax.contourf(g0, g1, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
    fig.colorbar(filled, ax=ax, label="P(class 1)")
    ax.contour(g0, g1, p, levels=[0.5], colors="k", linewidths=2)
    for label, marker in ((0, "o"), (1, "^")):
        pts = x_test[y_test == label]
        ax.scatter(pts[:, 0], pts[:, 1], s=14, marker=marker, edgecolor="k", lw=0.3,
                   label=f"class {label}")  # fmt: skip
    ax.plot([], [], "k-", lw=2, label="decision boundary (p = 0.5)")
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    ax.set_title(f"logistic regression, test accuracy {accuracy:.3f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Trains the model; returns its accuracy, weights and the plots' paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples and epochs")
    parser.add_argument("--out", default="out", help="output directory (default ./out)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    config = {**CONFIG, **(QUICK if args.quick else {})}

    (x_train, y_train), (x_test, y_test) = fnn.data.load(
        "blobs",
        n_train=config["n_train"],
        n_test=config["n_test"],
        separation=config["separation"],
        std=config["std"],
        seed=args.seed,
    )
    bayes = 0.5 * (1 + math.erf(config["separation"] / (2 * config["std"]) / math.sqrt(2)))
    print(f"data: blobs, {len(x_train)} train and {len(x_test)} test points in 2-D, 2 classes")

    model = fnn.models.LogisticRegression(classes=2)  # one logit
    optimizer = fnn.optim.sgd(config["learning_rate"], momentum=config["momentum"])
    state = fnn.TrainState.create(model, optimizer, x_train[:1], seed=args.seed)
    state, history = fnn.fit(
        state,
        x_train,
        y_train,
        loss="binary_cross_entropy",
        metrics=["accuracy"],
        batch_size=config["batch_size"],
        epochs=config["epochs"],
        validation_data=(x_test, y_test),
        seed=args.seed,
        verbose=0,
    )
    test = fnn.evaluate(state, x_test, y_test, loss="binary_cross_entropy", metrics=["accuracy"])
    accuracy = float(test["accuracy"])
    w = np.asarray(state.params["Dense_0"]["kernel"])[:, 0]
    b = float(state.params["Dense_0"]["bias"][0])
    # The true boundary's normal is (1, 1) / sqrt(2): how well the learned one lines up.
    cosine = float(w @ np.ones(2) / (np.linalg.norm(w) * math.sqrt(2)))

    from sklearn.linear_model import LogisticRegression as SklearnLogisticRegression

    sklearn_accuracy = SklearnLogisticRegression().fit(x_train, y_train).score(x_test, y_test)
    print(
        f"test accuracy {accuracy:.4f} (scikit-learn {sklearn_accuracy:.4f}, Bayes accuracy "
        f"{bayes:.4f}); test loss {float(test['loss']):.4f}"
    )
    print(
        f"learned boundary: {w[0]:.3f} * x0 + {w[1]:.3f} * x1 + {b:.3f} = 0; its normal is "
        f"at cosine {cosine:.4f} to the true one, (1, 1) / sqrt(2)"
    )
    boundary = plot_boundary(
        state, x_test, y_test, accuracy,
        os.path.join(args.out, "logistic_regression_boundary.png"),
    )  # fmt: skip
    curves = fnn.plot_history(
        history, os.path.join(args.out, "logistic_regression_history.png"),
        title="logistic regression on blobs",
    )  # fmt: skip
    print(f"wrote {boundary} and {curves}")
    return {
        "test_accuracy": accuracy,
        "sklearn_accuracy": float(sklearn_accuracy),
        "bayes_accuracy": bayes,
        "w": w,
        "b": b,
        "cosine_to_true_normal": cosine,
        "plots": [boundary, curves],
    }


if __name__ == "__main__":
    main()
