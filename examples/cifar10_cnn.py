"""A small CNN on CIFAR-10 (TFDS when prepared), else on a synthetic 32x32x3 stand-in.

Real CIFAR-10 is read through ``fnn.data`` when it is prepared for TFDS (``python -m fnn.data
prepare cifar10 --data-dir DIR`` on a machine with internet, then copy ``DIR`` over and set
``TFDS_DATA_DIR`` or pass ``--data-dir``); nothing is ever downloaded here. Otherwise, and always
with ``--quick``, the script trains on a synthetic stand-in of the same shape, built below from
``synthetic_mnist``: each class is a shape, drawn in a random colour on a random background, so
colour says nothing about the class. The script says which data it trained on::

    python examples/cifar10_cnn.py --quick   # ~10 s on a 2-core CPU, mostly compiling
    python examples/cifar10_cnn.py           # real CIFAR-10: minutes per epoch on a CPU

Outputs in ``--out``: ``cifar10_cnn.png`` (loss / accuracy curves) and ``cifar10_samples.png``
(a few training images with their labels).
"""

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fnn

# ----------------------------------------------------------------------------------- defaults
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")  # fmt: skip
CONFIG = dict(
    channels=(32, 64),  # conv blocks (3x3 conv, ReLU, 2x2 max-pool)
    dense=(128,),
    dropout=0.2,
    learning_rate=1e-3,  # Adam
    batch_size=128,
    epochs=15,
    val_fraction=0.1,
    n_train=50_000,  # the stand-in's sizes (CIFAR-10's)
    n_test=10_000,
)
QUICK = dict(channels=(8, 16), dense=(32,), learning_rate=3e-3, batch_size=64, epochs=4,
             n_train=1024, n_test=256)  # fmt: skip


def synthetic_cifar10(*, n_train: int, n_test: int, seed: int = 0) -> tuple[Any, Any]:
    """A 32x32x3, 10-class stand-in for CIFAR-10: ``synthetic_mnist``'s class shapes in colour.

    Each 28x28 ``synthetic_mnist`` image ``s`` (in [0, 1], pixel noise 0.3) is padded to 32x32
    and coloured: ``x = s * foreground + (1 - s) * background`` with a light foreground and a
    dark background colour drawn uniformly per image, independently of the label.

    Returns:
      ``(x_train, y_train), (x_test, y_test)``: <float32>[n, 32, 32, 3] in [0, 1], <int32>[n].
    """
    (s_train, y_train), (s_test, y_test) = fnn.data.load(
        "synthetic_mnist", n_train=n_train, n_test=n_test, noise=0.3, seed=seed
    )
    rng = np.random.default_rng((seed, 32))

    def colour(s: np.ndarray) -> np.ndarray:
        s = np.pad(s, ((0, 0), (2, 2), (2, 2), (0, 0)))  # [n, 32, 32, 1]
        fg = rng.uniform(0.5, 1.0, (len(s), 1, 1, 3)).astype(np.float32)
        bg = rng.uniform(0.0, 0.4, (len(s), 1, 1, 3)).astype(np.float32)
        return s * fg + (1 - s) * bg

    return (colour(s_train), y_train), (colour(s_test), y_test)


def load_data(
    quick: bool, config: dict[str, Any], seed: int, data_dir: str | None
) -> tuple[str, Any, Any]:
    """Real CIFAR-10 when prepared (and not ``quick``), else the synthetic stand-in."""
    if not quick and fnn.data.is_available("cifar10", data_dir=data_dir):
        train, test = fnn.data.load("cifar10", data_dir=data_dir)
        return "CIFAR-10 (TFDS)", train, test
    why = "--quick" if quick else "CIFAR-10 is not prepared: python -m fnn.data prepare cifar10"
    train, test = synthetic_cifar10(n_train=config["n_train"], n_test=config["n_test"], seed=seed)
    return f"synthetic 32x32x3 stand-in for CIFAR-10 ({why})", train, test


def plot_samples(x: np.ndarray, y: np.ndarray, path: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 8, figsize=(10, 3))
    for ax, image, label in zip(axes.ravel(), x, y, strict=False):
        ax.imshow(np.clip(image, 0, 1))
        ax.set_title(CLASSES[label] if "CIFAR-10 (TFDS)" in title else f"class {label}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Trains the CNN; returns the test metrics and where the plots went."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small synthetic data (seconds)")
    parser.add_argument("--out", default="out", help="output directory (default ./out)")
    parser.add_argument("--data-dir", default=None, help="TFDS data directory (default: TFDS's)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: preset)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1), help="progress bar")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    config = {**CONFIG, **(QUICK if args.quick else {})}

    source, (x_train, y_train), (x_test, y_test) = load_data(
        args.quick, config, args.seed, args.data_dir
    )
    (x_train, y_train), (x_val, y_val) = fnn.data.train_val_split(
        x_train, y_train, val_fraction=config["val_fraction"], seed=args.seed
    )
    print(
        f"data: {source}; {len(x_train)} train, {len(x_val)} validation, {len(x_test)} test "
        f"images of shape {x_train.shape[1:]}"
    )
    # bfloat16 compute on a TPU (its native matmul type), float32 elsewhere.
    dtype = jnp.bfloat16 if jax.default_backend() == "tpu" else jnp.float32
    model = fnn.models.CNN(
        len(CLASSES),
        channels=config["channels"],
        dense=config["dense"],
        dropout=config["dropout"],
        dtype=dtype,
    )
    optimizer = fnn.optim.adam(config["learning_rate"])
    state = fnn.TrainState.create(model, optimizer, x_train[:1], seed=args.seed)
    start = time.perf_counter()
    state, history = fnn.fit(
        state,
        x_train,
        y_train,
        loss="cross_entropy",
        batch_size=config["batch_size"],
        epochs=args.epochs or config["epochs"],
        metrics=["accuracy"],
        validation_data=(x_val, y_val),
        seed=args.seed,
        verbose=args.verbose,
    )
    wall = time.perf_counter() - start
    test = fnn.evaluate(state, x_test, y_test, loss="cross_entropy", metrics=["accuracy"])
    for record in history:
        print(
            f"epoch {record['epoch']:>2}: loss {record['loss']:.4f}  accuracy "
            f"{record['accuracy']:.4f}  val_accuracy {record['val_accuracy']:.4f}  "
            f"({record['samples_per_s']:.0f} samples/s)"
        )
    print(
        f"test accuracy {float(test['accuracy']):.4f} (chance 0.1), test loss "
        f"{float(test['loss']):.4f}; {history.strategy} epochs, compute dtype "
        f"{jnp.dtype(dtype).name}; fit took {wall:.1f}s including compilation"
    )
    short = source.split(" (")[0]
    curves = fnn.plot_history(history, os.path.join(args.out, "cifar10_cnn.png"), title=short)
    samples = plot_samples(
        x_train[:16], y_train[:16], os.path.join(args.out, "cifar10_samples.png"), source
    )
    print(f"wrote {curves} and {samples}")
    return {
        "data": source,
        "epochs": len(history),
        "test_accuracy": float(test["accuracy"]),
        "test_loss": float(test["loss"]),
        "wall_seconds": wall,
        "plots": [curves, samples],
    }


if __name__ == "__main__":
    main()
