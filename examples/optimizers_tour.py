"""A tour of ``fnn.optim``: SGD, momentum, Nesterov, clipping, weight decay and LR schedules.

The same MLP on the bundled digits is trained once per optimizer with ``fnn.fit`` (mini-batch
32, the same seed, so the same initial parameters and batch order):

- ``sgd``: plain SGD; ``momentum`` (heavy ball) and ``nesterov`` momentum;
- ``clip_value`` (each gradient element clipped) and ``clip_norm`` (global L2 norm);
- ``l2`` (coupled weight decay, added to the gradient) and ``decoupled`` weight decay (AdamW),
  next to plain ``adam``;
- momentum SGD under each learning-rate schedule: ``exponential_decay``, ``step_decay``,
  ``cosine_decay`` and ``warmup_cosine_decay``.

Every optimizer is a short ``optax.chain`` and every schedule one of Optax's own (see
``fnn.optim``)::

    python examples/optimizers_tour.py --quick   # ~15 s on a 2-core CPU, mostly compiling
    python examples/optimizers_tour.py

Outputs in ``--out``: ``optimizers_loss.png`` (training loss against epochs, one line per
optimizer) and ``optimizers_schedules.png`` (the learning rate of each schedule against steps).
"""

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import fnn

# ----------------------------------------------------------------------------------- defaults
CONFIG = dict(hidden=(64,), batch_size=32, epochs=15, n_train=None)  # None: all 1438 digits
QUICK = dict(hidden=(32,), epochs=5, n_train=384)
SGD_LR = 0.1
MOMENTUM_LR = 0.02  # with momentum 0.9 the steady-state step is about 10x this
ADAM_LR = 3e-3
PEAK_LR = 0.05  # of the schedules (with momentum 0.9): they start, or warm up, higher and decay


def schedule_settings(total_steps: int) -> dict[str, dict[str, Any]]:
    """The keyword arguments of each ``fnn.optim`` schedule over a run of ``total_steps``."""
    return {
        "exponential_decay": dict(init_value=PEAK_LR, decay_rate=0.05, decay_steps=total_steps),
        "step_decay": dict(
            init_value=PEAK_LR,
            boundaries=(total_steps // 2, (3 * total_steps) // 4),
            factor=0.1,
        ),
        "cosine_decay": dict(init_value=PEAK_LR, decay_steps=total_steps),
        "warmup_cosine_decay": dict(
            peak_value=PEAK_LR,
            warmup_steps=max(1, total_steps // 10),
            decay_steps=total_steps,
        ),
    }


def optimizers(total_steps: int) -> dict[str, Any]:
    """``{name: optax.GradientTransformation}``, every one built by ``fnn.optim``."""
    sgd, adam = fnn.optim.sgd, fnn.optim.adam
    tour = {
        "sgd": sgd(SGD_LR),
        "momentum": sgd(MOMENTUM_LR, momentum=0.9),
        "nesterov": sgd(MOMENTUM_LR, momentum=0.9, nesterov=True),
        "clip_value": sgd(MOMENTUM_LR, momentum=0.9, clip_value=0.01),
        "clip_norm": sgd(MOMENTUM_LR, momentum=0.9, clip_norm=0.5),
        "l2": sgd(MOMENTUM_LR, momentum=0.9, weight_decay=1e-3),
        "adam": adam(ADAM_LR),
        "decoupled": adam(ADAM_LR, decoupled_weight_decay=1e-2),  # AdamW
    }
    for name, kwargs in schedule_settings(total_steps).items():
        schedule = getattr(fnn.optim, name)(**kwargs)
        tour[f"momentum + {name}"] = sgd(schedule, momentum=0.9)
    return tour


def plot_losses(results: dict[str, dict[str, Any]], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    styles = ["-", "--", "-.", ":"]
    for i, (name, r) in enumerate(results.items()):
        curve = [r["initial_loss"], *r["losses"]]
        ax.plot(range(len(curve)), curve, styles[i // 10], marker="o", ms=3, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("epoch (0: before training)")
    ax.set_ylabel("training loss, cross-entropy (log scale)")
    ax.set_title("digits MLP, mini-batch 32: one line per optimizer")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_schedules(schedules: dict[str, dict[str, Any]], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, s in schedules.items():
        ax.plot(s["steps"], s["values"], label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title("fnn.optim learning-rate schedules over the run")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Trains once per optimizer; returns the loss curves and the schedules' values."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples and epochs")
    parser.add_argument("--out", default="out", help="output directory (default ./out)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    config = {**CONFIG, **(QUICK if args.quick else {})}

    (x_train, y_train), _ = fnn.data.load("digits", flatten=True, seed=args.seed)
    x_train, y_train = x_train[: config["n_train"]], y_train[: config["n_train"]]
    steps_per_epoch = -(-len(x_train) // config["batch_size"])  # the last batch is masked
    total_steps = steps_per_epoch * config["epochs"]
    print(
        f"digits: {len(x_train)} training images, batch {config['batch_size']}, "
        f"{config['epochs']} epochs = {total_steps} steps per optimizer"
    )

    results: dict[str, dict[str, Any]] = {}
    model = fnn.models.MLP(config["hidden"], 10)
    initial = None  # the same seed gives every optimizer the same initial parameters
    for name, optimizer in optimizers(total_steps).items():
        state = fnn.TrainState.create(model, optimizer, x_train[:1], seed=args.seed)
        if initial is None:
            initial = float(fnn.evaluate(state, x_train, y_train, loss="cross_entropy")["loss"])
        start = time.perf_counter()
        state, history = fnn.fit(  # each optimizer compiles its own epoch program (~1 s on CPU)
            state,
            x_train,
            y_train,
            loss="cross_entropy",
            batch_size=config["batch_size"],
            epochs=config["epochs"],
            seed=args.seed,
            verbose=0,
        )
        results[name] = {
            "initial_loss": initial,
            "losses": [float(v) for v in history["loss"]],
            "wall_seconds": time.perf_counter() - start,
        }

    print(f"{'optimizer':<32} {'loss before':>11} {'last epoch':>10} {'fit s':>6}")
    for name, r in results.items():
        print(
            f"{name:<32} {r['initial_loss']:>11.4f} {r['losses'][-1]:>10.4f} "
            f"{r['wall_seconds']:>6.1f}"
        )

    steps = np.arange(total_steps + 1)
    schedules: dict[str, dict[str, Any]] = {}
    for name, kwargs in schedule_settings(total_steps).items():
        schedule = getattr(fnn.optim, name)(**kwargs)
        values = np.array([float(schedule(int(s))) for s in steps])
        schedules[name] = {"settings": kwargs, "steps": steps, "values": values}
        print(
            f"{name:<20} lr at steps 0 / {total_steps // 2} / {total_steps}: {values[0]:.5f} / "
            f"{values[total_steps // 2]:.5f} / {values[-1]:.5f}"
        )
    paths = [
        plot_losses(results, os.path.join(args.out, "optimizers_loss.png")),
        plot_schedules(schedules, os.path.join(args.out, "optimizers_schedules.png")),
    ]
    print("wrote", " and ".join(paths))
    return {"results": results, "schedules": schedules, "total_steps": total_steps, "plots": paths}


if __name__ == "__main__":
    main()
