"""PNG plots (matplotlib, Agg backend): throughput vs batch size, accuracy vs wall-clock time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_plots"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    """Lays out, writes (110 dpi) and closes ``fig``; returns ``path``."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_throughput(results: dict[str, Any], out: Path) -> list[Path]:
    """``throughput_<workload>.png``: samples/s vs batch size, log-log, one line per implementation.

    Error bars span the 25th to 75th percentile of the repeats; a star marks the speed of the
    step's matmuls alone where it was measured (full batch).
    """
    plt = _pyplot()
    recs = [
        r
        for r in results["records"]
        if r["benchmark"] == "throughput" and r["status"] == "ok" and r.get("samples_per_s")
    ]
    paths = []
    peak = results["meta"]["matmul_peak"]["flops_per_s"]
    for workload in dict.fromkeys(r["workload"] for r in recs):
        group = [r for r in recs if r["workload"] == workload]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for impl in dict.fromkeys(r["implementation"] for r in group):
            rows = sorted((r for r in group if r["implementation"] == impl),
                          key=lambda r: r["batch_size"])  # fmt: skip
            xs = [r["batch_size"] for r in rows]
            ys = [r["samples_per_s"] for r in rows]
            lo = [r["samples_per_s"] - (r["samples_per_s_spread"] or {}).get("p25", ys[i])
                  for i, r in enumerate(rows)]  # fmt: skip
            hi = [(r["samples_per_s_spread"] or {}).get("p75", ys[i]) - r["samples_per_s"]
                  for i, r in enumerate(rows)]  # fmt: skip
            style = "-" if rows[0]["family"] == "fnn" else "--"
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o" + style, capsize=3, label=rows[0]["label"],
                        linewidth=2 if impl == "fnn_fused" else 1)  # fmt: skip
        bound = next((r for r in group if r.get("matmul_bound")), None)
        if bound is not None:
            ax.plot([bound["batch_size"]], [bound["matmul_bound"]["samples_per_s"]], "*",
                    markersize=16, markerfacecolor="none", markeredgecolor="black", zorder=5,
                    label="the step's matmuls alone")  # fmt: skip
        fpe = next((r["flops_per_example"] for r in group if r.get("flops_per_example")), None)
        if fpe:
            ax.axhline(peak / fpe, color="gray", linestyle=":", label="matmul peak / FLOPs per ex.")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size (examples per step)")
        ax.set_ylabel("training samples / s")
        first = group[0]
        ax.set_title(f"{workload}: {first['model']}\n{first['dataset']}, "
                     f"{results['meta']['device']['summary']}", fontsize=9)  # fmt: skip
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / f"throughput_{workload}.png"))
    return paths


def plot_accuracy_vs_time(results: dict[str, Any], out: Path) -> list[Path]:
    """``accuracy_vs_time_<workload>.png``: test accuracy vs training time, one line per batch.

    One panel per implementation; the dotted line is the target accuracy.
    """
    plt = _pyplot()
    recs = [
        r
        for r in results["records"]
        if r["benchmark"] == "time_to_accuracy" and r["status"] == "ok" and r.get("curve")
    ]
    paths = []
    for workload in dict.fromkeys(r["workload"] for r in recs):
        group = [r for r in recs if r["workload"] == workload]
        impls = list(dict.fromkeys(r["implementation"] for r in group))
        fig, axes = plt.subplots(1, len(impls), figsize=(6 * len(impls), 4.5), squeeze=False,
                                 sharey=True)  # fmt: skip
        for ax, impl in zip(axes[0], impls, strict=True):
            rows = sorted((r for r in group if r["implementation"] == impl),
                          key=lambda r: r["batch_size"])  # fmt: skip
            for r in rows:
                pts = [p for p in r["curve"] if p["time_s"] > 0]
                label = f"batch {r['batch_size']}" + (" (full)" if r["mode"] == "full" else "")
                ax.plot([p["time_s"] for p in pts], [p["test_accuracy"] for p in pts],
                        marker=".", label=label)  # fmt: skip
            ax.axhline(rows[0]["target_accuracy"], color="gray", linestyle=":", label="target")
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(plt.NullFormatter())  # minor labels overlap on short spans
            ax.set_xlabel("training time (s, compile excluded)")
            ax.set_title(f"{workload} on {rows[0]['dataset']}: {rows[0]['label']}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        axes[0][0].set_ylabel("test accuracy")
        target = group[0]["target_accuracy"]
        axes[0][0].set_ylim(max(0.0, target - 0.4), 1.0)
        paths.append(_save(fig, out / f"accuracy_vs_time_{workload}.png"))
    return paths


def plot_noise_scale(results: dict[str, Any], out: Path) -> list[Path]:
    """``noise_scale.png``: B_simple (estimate and exact) against epochs of training."""
    noise = results.get("noise_scale") or []
    if not noise:
        return []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for n in noise:
        pts = n["points"]
        ax.plot([p["epoch"] for p in pts], [p["b_simple"] for p in pts], "o-",
                label=f"{n['workload']}: 2-batch estimate")  # fmt: skip
        ax.plot([p["epoch"] for p in pts], [p["b_simple_exact"] for p in pts], "x--",
                label=f"{n['workload']}: exact")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("epochs trained")
    ax.set_ylabel("B_simple = tr(Sigma) / |G|^2")
    ax.set_title("gradient noise scale (critical batch size estimate)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return [_save(fig, out / "noise_scale.png")]


def write_plots(results: dict[str, Any], out: Path) -> list[Path]:
    """Writes every plot into ``out``; returns their paths.

    Raises:
      ImportError: when matplotlib is not installed.
    """
    out = Path(out)
    return [
        *plot_throughput(results, out),
        *plot_accuracy_vs_time(results, out),
        *plot_noise_scale(results, out),
    ]
