"""Full-batch GD, stochastic GD and mini-batch GD on the bundled digits, side by side.

The same MLP is trained three times with ``fnn.fit``; only ``batch_size``, the optimizer and the
number of epochs change. Each mode prints its test accuracy, epochs, wall time (including XLA
compilation), training time (excluding it) and samples per second, and the script plots the
validation accuracy of the three modes against training time::

    python examples/digits_gd_modes.py            # full setting, ~20 s on a 2-core CPU
    python examples/digits_gd_modes.py --quick    # fewer epochs, ~15 s (mostly compiling)

Outputs in ``--out``: ``digits_gd_modes_time.png`` (validation accuracy vs training time),
``digits_<mode>.png`` (loss / accuracy curves per mode, ``fnn.plot_history``) and
``digits_gd_modes.json`` (the numbers printed).
"""

import argparse
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import fnn

# ----------------------------------------------------------------------------------- defaults
HIDDEN = (128,)  # MLP hidden widths
VAL_FRACTION = 0.1  # of the training split, for the curves; the test split is used once
SEED = 0


def modes(n_train: int, quick: bool) -> dict[str, dict[str, Any]]:
    """The three ways to run gradient descent, with settings that reach ~0.97 test accuracy.

    Args:
      n_train: training examples (the SGD learning-rate schedule spans all its steps).
      quick: fewer epochs (a little lower accuracy).

    Returns:
      ``{mode: {"batch_size", "optimizer", "epochs"}}``.
    """
    sgd_epochs = 3 if quick else 8
    return {
        "full_batch": dict(
            batch_size="full", optimizer=fnn.optim.adam(0.01), epochs=60 if quick else 150
        ),
        "sgd": dict(
            batch_size=1,
            optimizer=fnn.optim.sgd(fnn.optim.cosine_decay(0.05, decay_steps=sgd_epochs * n_train)),
            epochs=sgd_epochs,
        ),
        "mini_batch": dict(
            batch_size=32, optimizer=fnn.optim.sgd(0.1, momentum=0.9), epochs=6 if quick else 15
        ),
    }


def plot_time_to_accuracy(results: dict[str, dict[str, Any]], path: str) -> str:
    """Validation accuracy against cumulative training time (compilation excluded), per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, r in results.items():
        ax.plot(r["train_seconds_curve"], r["val_accuracy_curve"], "-o", ms=3, label=mode)
    ax.set_xscale("log")
    ax.set_xlabel("training time, s (log scale; compilation excluded)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("digits MLP: full-batch vs stochastic vs mini-batch GD")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Trains the three modes and writes the plots; returns the per-mode results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (seconds)")
    parser.add_argument("--out", default="out", help="output directory (default ./out)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1), help="progress bars")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    (x_train, y_train), (x_test, y_test) = fnn.data.load("digits", flatten=True, seed=args.seed)
    (x_train, y_train), (x_val, y_val) = fnn.data.train_val_split(
        x_train, y_train, val_fraction=VAL_FRACTION, seed=args.seed
    )
    n = x_train.shape[0]
    print(f"digits: {n} train, {x_val.shape[0]} validation, {x_test.shape[0]} test, 64 features")

    results: dict[str, dict[str, Any]] = {}
    for mode, cfg in modes(n, args.quick).items():
        model = fnn.models.MLP(HIDDEN, 10)
        state = fnn.TrainState.create(model, cfg["optimizer"], x_train[:1], seed=args.seed)
        start = time.perf_counter()
        state, history = fnn.fit(
            state,
            x_train,
            y_train,
            loss="cross_entropy",
            batch_size=cfg["batch_size"],
            epochs=cfg["epochs"],
            metrics=["accuracy"],
            validation_data=(x_val, y_val),
            seed=args.seed,
            verbose=args.verbose,
        )
        wall = time.perf_counter() - start
        test = fnn.evaluate(state, x_test, y_test, loss="cross_entropy", metrics=["accuracy"])
        train_s = sum(history.epoch_time)
        curve, total = [], 0.0
        for t in history.epoch_time:
            total += t
            curve.append(total)
        results[mode] = {
            "batch_size": cfg["batch_size"],
            "epochs": len(history),
            "steps": len(history) * history["steps"][-1],
            "test_accuracy": float(test["accuracy"]),
            "test_loss": float(test["loss"]),
            "wall_seconds": wall,
            "train_seconds": train_s,
            "compile_seconds": sum(history.compile_time),
            "samples_per_s": n * len(history) / train_s,
            "train_seconds_curve": curve,
            "val_accuracy_curve": history["val_accuracy"],
        }
        fnn.plot_history(
            history, os.path.join(args.out, f"digits_{mode}.png"), title=f"digits MLP, {mode}"
        )

    print(
        f"{'mode':<11} {'batch':>5} {'epochs':>6} {'steps':>6} {'test acc':>8} "
        f"{'wall s':>7} {'train s':>7} {'compile s':>9} {'samples/s':>10}"
    )
    for mode, r in results.items():
        print(
            f"{mode:<11} {r['batch_size']!s:>5} {r['epochs']:>6} {r['steps']:>6} "
            f"{r['test_accuracy']:>8.4f} {r['wall_seconds']:>7.2f} {r['train_seconds']:>7.3f} "
            f"{r['compile_seconds']:>9.2f} {r['samples_per_s']:>10.0f}"
        )
    plot = plot_time_to_accuracy(results, os.path.join(args.out, "digits_gd_modes_time.png"))
    with open(os.path.join(args.out, "digits_gd_modes.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {plot} and the per-mode curves to {args.out}/")
    return results


if __name__ == "__main__":
    main()
