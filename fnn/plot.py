"""Training curves with matplotlib (the ``plot`` extra)."""

import os

from fnn.train.history import History


def plot_history(history: History, path: str | os.PathLike, *, title: str | None = None) -> str:
    """Draws loss and metric curves per epoch (train solid, validation dashed) to a PNG.

    One panel for the loss and one per scalar metric found in the history.

    Args:
      history: from ``fnn.fit``.
      path: output file (``.png``).
      title: figure title.

    Returns:
      The path written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plot_history needs matplotlib: pip install 'fnn[plot]'") from err
    if not len(history):
        raise ValueError(
            "history: expected at least one epoch, got an empty history (train before plotting)"
        )
    skip = {"epoch", "steps", "epoch_time", "compile_time", "val_time", "samples_per_s"}
    names = [
        k
        for k in history.keys()
        if k not in skip
        and not k.startswith("val_")
        and all(isinstance(v, int | float) for v in history[k])
    ]
    epochs = history["epoch"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        ax.plot(epochs, history[name], "-o", ms=3, label=f"train {name}")
        if f"val_{name}" in history.keys():
            ax.plot(epochs, history[f"val_{name}"], "--o", ms=3, label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.fspath(path)
