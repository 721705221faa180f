"""One-step forecasting of a synthetic series with LSTM, GRU and SimpleRNN vs a linear baseline.

The series (a sum of three sines plus noise, ``fnn.data.make_series``) is split in time, and
each part is cut into windows of the last ``window`` values with the next value as the target
(``fnn.data.split_series`` / ``make_windows``: no test value ever appears in a training
window). Each recurrent model reads a window ``<float32>[batch, window, 1]`` and predicts the
next value; the baseline is ``fnn.models.LinearRegression`` on the same windows, trained the
same way. Loss: mean squared error; metric: R^2 on the test windows::

    python examples/lstm_forecast.py --quick   # short series, few epochs (seconds)
    python examples/lstm_forecast.py           # full setting

A sum of sines obeys a linear recurrence, so the linear baseline is strong here: the recurrent
models have to match it, which is the honest first check for any forecasting model.

Outputs in ``--out``: ``lstm_forecast_<model>.png`` (loss / R^2 curves) and
``lstm_forecast_test.png`` (the test series and each model's one-step forecasts).
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
    series="sum_of_sines",  # or "sine", "ar2" (see fnn.data.make_series)
    length=4_000,  # values in the series
    noise=0.05,  # observation noise (standard deviation)
    test_fraction=0.2,  # the last 20% of the series is the test period
    window=32,  # past values the model sees
    hidden=32,  # recurrent state width
    learning_rate=3e-3,  # Adam
    batch_size=32,
    epochs=20,
    linear_learning_rate=0.02,  # Adam, full batch, for the linear baseline
    linear_epochs=300,
)
QUICK = dict(length=1_200, window=24, hidden=16, learning_rate=1e-2, batch_size=64, epochs=6)


def models(hidden: int) -> dict[str, Any]:
    """The models compared; each maps ``[batch, window, 1]`` to ``[batch, 1]``."""
    return {
        "LSTM": fnn.models.LSTM(hidden, outputs=1),
        "GRU": fnn.models.GRU(hidden, outputs=1),
        "SimpleRNN": fnn.models.SimpleRNN(hidden, outputs=1),
        "Linear": fnn.models.LinearRegression(1),  # flattens the window to [batch, window]
    }


def plot_forecasts(y_test: np.ndarray, forecasts: dict[str, np.ndarray], path: str) -> str:
    """The first 200 test targets and each model's one-step forecasts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = slice(0, min(200, y_test.shape[0]))
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(y_test[shown], "k-", lw=2, label="series")
    for name, pred in forecasts.items():
        ax.plot(pred[shown], "-", lw=1, label=name)
    ax.set_xlabel("test step")
    ax.set_title("one-step forecasts on the test period")
    ax.grid(alpha=0.3)
    ax.legend(ncol=5, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Trains every model; returns ``{model: {"test_r2", "test_mse", "seconds"}}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short series, few epochs")
    parser.add_argument("--out", default="out", help="output directory (default ./out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1), help="progress bars")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    config = {**CONFIG, **(QUICK if args.quick else {})}

    series = fnn.data.make_series(
        config["series"], config["length"], noise=config["noise"], seed=args.seed
    )
    train_series, test_series = fnn.data.split_series(series, test_fraction=config["test_fraction"])
    x_train, y_train = fnn.data.make_windows(train_series, config["window"])  # [n, window, 1], [n]
    x_test, y_test = fnn.data.make_windows(test_series, config["window"])
    print(
        f"{config['series']} series of {config['length']} values: {x_train.shape[0]} train and "
        f"{x_test.shape[0]} test windows of {config['window']} steps"
    )

    results: dict[str, dict[str, float]] = {}
    forecasts: dict[str, np.ndarray] = {}
    for name, model in models(config["hidden"]).items():
        linear = name == "Linear"
        learning_rate = config["linear_learning_rate" if linear else "learning_rate"]
        state = fnn.TrainState.create(
            model, fnn.optim.adam(learning_rate), x_train[:1], seed=args.seed
        )
        start = time.perf_counter()
        state, history = fnn.fit(
            state,
            x_train,
            y_train,
            loss="mse",
            metrics=["r2"],
            batch_size="full" if linear else config["batch_size"],
            epochs=config["linear_epochs"] if linear else config["epochs"],
            validation_data=(x_test, y_test),
            seed=args.seed,
            verbose=args.verbose,
        )
        seconds = time.perf_counter() - start
        test = fnn.evaluate(state, x_test, y_test, loss="mse", metrics=["r2"])
        forecasts[name] = fnn.predict(state, x_test)[:, 0]
        results[name] = {
            "test_r2": float(test["r2"]),
            "test_mse": float(test["loss"]),
            "seconds": seconds,
        }
        fnn.plot_history(
            history, os.path.join(args.out, f"lstm_forecast_{name}.png"), title=f"{name} forecast"
        )

    # The linear model's closed-form optimum, to show how close gradient descent got.
    design = np.c_[x_train[..., 0], np.ones(x_train.shape[0])]
    coef = np.linalg.lstsq(design, y_train, rcond=None)[0]
    residual = y_test - np.c_[x_test[..., 0], np.ones(x_test.shape[0])] @ coef
    lstsq_r2 = 1.0 - np.sum(residual**2) / np.sum((y_test - y_test.mean()) ** 2)

    print(f"{'model':<10} {'test R^2':>9} {'test MSE':>9} {'fit s':>6}")
    for name, r in results.items():
        print(f"{name:<10} {r['test_r2']:>9.4f} {r['test_mse']:>9.5f} {r['seconds']:>6.1f}")
    print(f"(least-squares optimum of the linear model: test R^2 {lstsq_r2:.4f})")
    plot = plot_forecasts(y_test, forecasts, os.path.join(args.out, "lstm_forecast_test.png"))
    print(f"wrote {plot} and the training curves to {args.out}/")
    return results


if __name__ == "__main__":
    main()
