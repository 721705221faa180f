"""A LeNet-style CNN on MNIST, with early stopping, checkpoints and resuming.

Uses real MNIST when it is prepared for TFDS (``python -m fnn.data prepare mnist`` on a machine
with internet), else the offline ``synthetic_mnist`` stand-in of the same shape; ``--quick``
always uses a small synthetic set. The script says which data it trained on.

A ``Checkpoint`` callback saves the run after every epoch to ``--out/cnn_mnist_ckpt``; an
``EarlyStopping`` callback ends training when the validation accuracy stops improving and puts
back the best parameters. ``--resume`` continues from the last checkpoint, e.g.::

    python examples/cnn_mnist.py --quick --epochs 2           # trains epochs 1-2, saves both
    python examples/cnn_mnist.py --quick --epochs 4 --resume  # restores epoch 2, trains 3-4
    python examples/cnn_mnist.py                              # full setting (see below)

The full setting takes about 4 minutes per epoch on a 2-core CPU (a GPU or TPU: seconds).

Outputs in ``--out``: ``cnn_mnist.png`` (loss / accuracy curves) and the checkpoints.
"""

import argparse
import os
import shutil
import time
from collections.abc import Sequence
from typing import Any

import fnn

# ----------------------------------------------------------------------------------- defaults
CONFIG = dict(
    channels=(16, 32),  # conv blocks (3x3 conv, ReLU, 2x2 max-pool)
    dense=(128,),
    dropout=0.1,
    learning_rate=1e-3,  # Adam
    batch_size=128,
    epochs=10,
    patience=2,  # epochs without a better validation accuracy before stopping
    val_fraction=1 / 12,  # 5,000 of MNIST's 60,000 training images
    n_train=60_000,  # synthetic stand-in only
    n_test=10_000,
)
# --quick: a small synthetic set, a narrower network, a larger step.
QUICK = dict(
    channels=(8, 16),
    dense=(64,),
    learning_rate=3e-3,
    epochs=5,
    n_train=1_500,
    n_test=500,
)


def load_data(quick: bool, config: dict[str, Any], seed: int) -> tuple[str, Any, Any]:
    """Real MNIST when prepared (and not ``quick``), else ``synthetic_mnist``.

    Returns:
      ``(description, (x_train, y_train), (x_test, y_test))`` with images
      ``<float32>[n, 28, 28, 1]`` in [0, 1] and ``<int32>[n]`` labels.
    """
    if not quick and fnn.data.is_available("mnist"):
        train, test = fnn.data.load("mnist")
        return "MNIST (TFDS)", train, test
    why = "--quick" if quick else "MNIST is not prepared: python -m fnn.data prepare mnist"
    train, test = fnn.data.load(
        "synthetic_mnist", seed=seed, n_train=config["n_train"], n_test=config["n_test"]
    )
    return f"synthetic_mnist, the offline stand-in ({why})", train, test


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Trains (or resumes) the CNN; returns the test metrics and where the outputs went."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small synthetic data (seconds)")
    parser.add_argument("--out", default="out", help="output directory (default ./out)")
    parser.add_argument("--epochs", type=int, default=None, help="total epochs (default: preset)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in --out"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1), help="progress bar")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    ckpt_dir = os.path.join(args.out, "cnn_mnist_ckpt")
    if not args.resume and os.path.exists(ckpt_dir):
        shutil.rmtree(ckpt_dir)  # a fresh run starts from scratch

    config = {**CONFIG, **(QUICK if args.quick else {})}
    epochs = args.epochs or config["epochs"]

    source, (x_train, y_train), (x_test, y_test) = load_data(args.quick, config, args.seed)
    (x_train, y_train), (x_val, y_val) = fnn.data.train_val_split(
        x_train, y_train, val_fraction=config["val_fraction"], seed=args.seed
    )
    print(
        f"data: {source}; {x_train.shape[0]} train, {x_val.shape[0]} validation, "
        f"{x_test.shape[0]} test images of shape {x_train.shape[1:]}"
    )

    model = fnn.models.CNN(
        10, channels=config["channels"], dense=config["dense"], dropout=config["dropout"]
    )
    optimizer = fnn.optim.adam(config["learning_rate"])
    state = fnn.TrainState.create(model, optimizer, x_train[:1], seed=args.seed)
    callbacks = [
        fnn.EarlyStopping("val_accuracy", patience=config["patience"], restore_best=True),
        fnn.Checkpoint(ckpt_dir, every=1, max_to_keep=2),
    ]
    if args.resume:
        print(f"resuming from {ckpt_dir} (if it holds a checkpoint)")
    start = time.perf_counter()
    state, history = fnn.fit(
        state,
        x_train,
        y_train,
        loss="cross_entropy",
        batch_size=config["batch_size"],
        epochs=epochs,
        metrics=["accuracy"],
        validation_data=(x_val, y_val),
        callbacks=callbacks,
        seed=args.seed,
        verbose=args.verbose,
        resume_from=ckpt_dir if args.resume else None,
        resume_missing_ok=True,  # nothing saved yet: start fresh
        resume_overrides=("epochs",),  # --resume --epochs N trains a saved run further
    )
    wall = time.perf_counter() - start
    test = fnn.evaluate(state, x_test, y_test, loss="cross_entropy", metrics=["accuracy"])

    for record in history:
        print(
            f"epoch {record['epoch']:>2}: loss {record['loss']:.4f}  "
            f"accuracy {record['accuracy']:.4f}  val_accuracy {record['val_accuracy']:.4f}  "
            f"{record['epoch_time']:.2f}s ({record['samples_per_s']:.0f} samples/s)"
        )
    if history.stop_reason:
        print(history.stop_reason)
    print(
        f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f} after "
        f"{len(history)} epochs; fit took {wall:.1f}s including compilation"
    )
    plot = fnn.plot_history(
        history, os.path.join(args.out, "cnn_mnist.png"), title=f"CNN on {source.split(',')[0]}"
    )
    print(f"wrote {plot}; checkpoints in {ckpt_dir}")
    return {
        "data": source,
        "epochs": len(history),
        "test_accuracy": float(test["accuracy"]),
        "test_loss": float(test["loss"]),
        "wall_seconds": wall,
        "plot": plot,
        "checkpoint_dir": ckpt_dir,
        "history": history,
    }


if __name__ == "__main__":
    main()
