"""An MLP on the bundled iris data: accuracy, precision, recall, F1 and a confusion matrix.

``fnn.data.load("iris")`` (150 flowers, 4 measurements, 3 species; a stratified 80/20 split,
offline) standardized with the training split's statistics, a one-hidden-layer
``fnn.models.MLP`` trained with cross-entropy by mini-batch Adam, then ``fnn.evaluate`` with
``fnn.metrics``' accuracy, macro precision / recall / F1 and confusion matrix on the test
split. Per-class precision, recall and F1 are read off the confusion matrix::

    python examples/iris_mlp.py --quick   # ~5 s on a 2-core CPU
    python examples/iris_mlp.py

Outputs in ``--out``: ``iris_confusion.png`` (the test confusion matrix) and
``iris_history.png`` (loss / accuracy curves).
"""

import argparse
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

import fnn

# ----------------------------------------------------------------------------------- defaults
SPECIES = ("setosa", "versicolor", "virginica")
CONFIG = dict(
    hidden=(16,),
    learning_rate=0.01,  # Adam
    batch_size=16,
    epochs=100,
)
QUICK = dict(epochs=40)
METRICS = ["accuracy", "macro_precision", "macro_recall", "macro_f1", "confusion_matrix"]


def per_class(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 of each class from a confusion matrix (row = true class)."""
    tp = np.diag(confusion).astype(np.float64)
    predicted, actual = confusion.sum(0), confusion.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1}


def plot_confusion(confusion: np.ndarray, path: str, title: str) -> str:
    """The confusion matrix as an annotated heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax, label="test examples")
    for i in range(confusion.shape[0]):
        for j in range(confusion.shape[1]):
            dark = confusion[i, j] > confusion.max() / 2
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center",
                    color="white" if dark else "black")  # fmt: skip
    ax.set_xticks(range(len(SPECIES)), SPECIES)
    ax.set_yticks(range(len(SPECIES)), SPECIES)
    ax.set_xlabel("predicted species")
    ax.set_ylabel("true species")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Trains and evaluates the MLP; returns the test metrics, the state and the test split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs")
    parser.add_argument("--out", default="out", help="output directory (default ./out)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    config = {**CONFIG, **(QUICK if args.quick else {})}

    (x_train, y_train), (x_test, y_test) = fnn.data.load("iris", seed=args.seed)
    x_train, x_test = fnn.data.standardize(x_train, x_test)  # training statistics only
    print(f"data: iris, {len(x_train)} train and {len(x_test)} test flowers, 4 features")

    model = fnn.models.MLP(config["hidden"], len(SPECIES))
    state = fnn.TrainState.create(
        model, fnn.optim.adam(config["learning_rate"]), x_train[:1], seed=args.seed
    )
    state, history = fnn.fit(
        state,
        x_train,
        y_train,
        loss="cross_entropy",
        metrics=["accuracy"],
        batch_size=config["batch_size"],
        epochs=config["epochs"],
        validation_data=(x_test, y_test),
        seed=args.seed,
        verbose=0,
    )
    test = fnn.evaluate(state, x_test, y_test, loss="cross_entropy", metrics=METRICS)
    confusion = np.asarray(test["confusion_matrix"]).round().astype(int)
    classes = per_class(confusion)

    print(
        f"test accuracy {float(test['accuracy']):.4f}, macro precision "
        f"{float(test['macro_precision']):.4f}, macro recall {float(test['macro_recall']):.4f}, "
        f"macro F1 {float(test['macro_f1']):.4f}, loss {float(test['loss']):.4f}"
    )
    print(f"{'species':<11} {'precision':>9} {'recall':>7} {'F1':>7} {'support':>7}")
    for i, name in enumerate(SPECIES):
        print(
            f"{name:<11} {classes['precision'][i]:>9.4f} {classes['recall'][i]:>7.4f} "
            f"{classes['f1'][i]:>7.4f} {confusion[i].sum():>7d}"
        )
    print("confusion matrix (row = true species, column = predicted):")
    for name, row in zip(SPECIES, confusion, strict=True):
        print(f"  {name:<11}" + "".join(f"{v:>4d}" for v in row))

    plot = plot_confusion(
        confusion, os.path.join(args.out, "iris_confusion.png"),
        f"iris MLP, test accuracy {float(test['accuracy']):.3f}",
    )  # fmt: skip
    curves = fnn.plot_history(history, os.path.join(args.out, "iris_history.png"), title="iris MLP")
    print(f"wrote {plot} and {curves}")
    return {
        "test_accuracy": float(test["accuracy"]),
        "macro_precision": float(test["macro_precision"]),
        "macro_recall": float(test["macro_recall"]),
        "macro_f1": float(test["macro_f1"]),
        "confusion_matrix": confusion,
        "per_class": classes,
        "state": state,
        "test_data": (x_test, y_test),
        "plots": [plot, curves],
    }


if __name__ == "__main__":
    main()
