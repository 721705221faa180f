"""Linear regression with known weights, recovered by full-batch GD and by SGD (batch size 1).

The data come from ``fnn.data.load("linear_regression")``: ``y = x @ w + b + noise * e`` with
``x, e ~ N(0, 1)``, and ``fnn.data.linear_weights`` gives the true ``(w, b)``. The same
``fnn.models.LinearRegression`` is trained twice with the mean squared error: by full-batch
gradient descent (one step per epoch, on all examples) and by stochastic gradient descent
(batch size 1, one step per example). The script prints the true, the least-squares and both
learned weights, and plots the fit and the loss curves::

    python examples/linear_regression.py --quick   # ~5 s on a 2-core CPU
    python examples/linear_regression.py

Outputs in ``--out``: ``linear_regression_fit.png`` (test targets against predictions, and the
weights side by side) and ``linear_regression_loss.png`` (training loss against epochs).
"""

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import fnn

# ----------------------------------------------------------------------------------- defaults
CONFIG = dict(
    n_features=4,
    n_train=800,
    n_test=200,
    noise=0.1,  # the best possible mean squared error is noise**2 = 0.01
    full_batch_lr=0.1,
    full_batch_epochs=200,  # one step each
    sgd_lr=0.01,
    sgd_epochs=5,  # n_train steps each
)
QUICK = dict(n_train=256, n_test=128, full_batch_epochs=100, sgd_epochs=3)


def learned_weights(state: fnn.TrainState) -> tuple[np.ndarray, float]:
    """``(w, b)`` of a trained ``LinearRegression(1)``: <float32>[features] and a float."""
    dense = state.params["Dense_0"]
    return np.asarray(dense["kernel"])[:, 0], float(dense["bias"][0])


def plot(results: dict[str, Any], true_w, true_b, y_test, noise: float, out: str) -> list[str]:
    """The fit (test targets against predictions; weights) and the loss curves, as two PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_fit, ax_w) = plt.subplots(1, 2, figsize=(10, 4))
    lo, hi = float(y_test.min()), float(y_test.max())
    ax_fit.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = prediction")
    for mode, r in results.items():
        ax_fit.scatter(y_test, r["predictions"], s=8, alpha=0.6, label=mode)
    ax_fit.set_xlabel("test target y")
    ax_fit.set_ylabel("prediction")
    ax_fit.set_title("test set: targets against predictions")
    ax_fit.legend()
    names = [f"w{i}" for i in range(len(true_w))] + ["b"]
    positions = np.arange(len(names))
    width = 0.8 / (1 + len(results))
    ax_w.bar(positions, [*true_w, true_b], width, label="true", color="k", alpha=0.7)
    for i, (mode, r) in enumerate(results.items(), start=1):
        ax_w.bar(positions + i * width, [*r["w"], r["b"]], width, label=mode)
    ax_w.set_xticks(positions + width * len(results) / 2, names)
    ax_w.axhline(0, color="k", lw=0.5)
    ax_w.set_title("true and learned weights")
    ax_w.legend()
    fig.tight_layout()
    fit_path = os.path.join(out, "linear_regression_fit.png")
    fig.savefig(fit_path, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, r in results.items():
        ax.plot(r["history"]["epoch"], r["history"]["loss"], "-o", ms=2, label=mode)
    ax.axhline(noise**2, color="k", ls=":", label="noise floor (noise^2)")
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("epoch (log scale)")
    ax.set_ylabel("training loss, mean squared error (log scale)")
    ax.set_title("full-batch GD: 1 step an epoch; SGD: 1 step an example")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    loss_path = os.path.join(out, "linear_regression_loss.png")
    fig.savefig(loss_path, dpi=110)
    plt.close(fig)
    return [fit_path, loss_path]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Fits the two ways; returns the true and learned weights per mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples and epochs")
    parser.add_argument("--out", default="out", help="output directory (default ./out)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    config = {**CONFIG, **(QUICK if args.quick else {})}

    (x_train, y_train), (x_test, y_test) = fnn.data.load(
        "linear_regression",
        n_train=config["n_train"],
        n_test=config["n_test"],
        n_features=config["n_features"],
        noise=config["noise"],
        seed=args.seed,
    )
    true_w, true_b = fnn.data.linear_weights(config["n_features"], seed=args.seed)
    # The least-squares solution: the best any method can do on this sample.
    design = np.column_stack([x_train, np.ones(len(x_train), np.float32)])
    lstsq = np.linalg.lstsq(design, y_train, rcond=None)[0]
    print(f"data: {len(x_train)} train, {len(x_test)} test, {config['n_features']} features")

    modes = {
        "full-batch GD": dict(
            batch_size="full", lr=config["full_batch_lr"], epochs=config["full_batch_epochs"]
        ),
        "SGD (batch 1)": dict(batch_size=1, lr=config["sgd_lr"], epochs=config["sgd_epochs"]),
    }
    results: dict[str, Any] = {}
    for mode, cfg in modes.items():
        model = fnn.models.LinearRegression(1)
        state = fnn.TrainState.create(model, fnn.optim.sgd(cfg["lr"]), x_train[:1], seed=args.seed)
        start = time.perf_counter()
        state, history = fnn.fit(
            state,
            x_train,
            y_train,
            loss="mse",
            batch_size=cfg["batch_size"],
            epochs=cfg["epochs"],
            seed=args.seed,
            verbose=0,
        )
        wall = time.perf_counter() - start
        test = fnn.evaluate(state, x_test, y_test, loss="mse", metrics=["r2"])
        w, b = learned_weights(state)
        results[mode] = {
            "w": w,
            "b": b,
            "steps": len(history) * history["steps"][-1],
            "test_mse": float(test["loss"]),
            "test_r2": float(test["r2"]),
            "wall_seconds": wall,
            "predictions": np.asarray(fnn.predict(state, x_test))[:, 0],
            "history": history,
        }

    def show(w: np.ndarray) -> str:  # local: NumPy's global print options stay as they are
        return np.array2string(np.asarray(w), precision=4, suppress_small=True)

    print(f"{'':<15} {'weights w':<40} {'bias b':>8}")
    print(f"{'true':<15} {show(true_w):<40} {true_b:>8.4f}")
    print(f"{'least squares':<15} {show(lstsq[:-1]):<40} {lstsq[-1]:>8.4f}")
    for mode, r in results.items():
        print(f"{mode:<15} {show(r['w']):<40} {r['b']:>8.4f}")
    for mode, r in results.items():
        error = np.max(np.abs(np.append(r["w"] - true_w, r["b"] - true_b)))
        print(
            f"{mode}: {r['steps']} steps, largest weight error {error:.4f}, test MSE "
            f"{r['test_mse']:.4f} (noise floor {config['noise'] ** 2:.4f}), test R^2 "
            f"{r['test_r2']:.4f}, {r['wall_seconds']:.2f}s including compilation"
        )
    paths = plot(results, true_w, true_b, y_test, config["noise"], args.out)
    print("wrote", ", ".join(paths))
    return {"true_w": true_w, "true_b": float(true_b), "least_squares": lstsq, **results}


if __name__ == "__main__":
    main()
