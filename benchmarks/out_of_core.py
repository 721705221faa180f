"""Training from disk in bounded memory: ``fnn.fit`` on a ``np.memmap`` larger than the device.

``python -m benchmarks.out_of_core [--sizes 0.1,0.25,0.5] [--out DIR] [--steps N] [--cold]``

For each size (in GB of float32 features on disk, ``10**9`` bytes) it writes ``x.npy`` (256
features an example: a class centre plus Gaussian noise, ten classes) and ``y.npy`` (int32
labels) a chunk at a time, then starts a fresh Python process (so each size's peak memory is
its own) that opens both with ``np.load(path, mmap_mode="r")`` and trains ``fnn.models.MLP((64,),
10)`` with ``fnn.optim.sgd`` for one epoch: ``fnn.fit(..., batch_size=256, epochs=1,
max_device_bytes=64 MiB)``. The data is larger than ``max_device_bytes``, so fit streams it:
each chunk of batches is gathered from the mapping in the epoch's permutation and copied to the
device; fit never copies the whole set.

The worker process samples ``/proc/self/status`` from a thread every 50 ms (and once more at
the end) and keeps the peak of

* ``RssAnon``: anonymous resident memory - the Python heap, NumPy arrays, JAX's CPU buffers.
  This is the number that must not grow with the dataset;
* ``RssFile``: resident pages of mapped files - mostly the pages of ``x.npy`` read so far.
  They are page cache, clean and reclaimable: the kernel drops them under memory pressure and
  reads them again from disk when touched;

and ``VmHWM`` (the kernel's own peak of the total resident size, anonymous plus file pages).
It also records the wall time of ``fit`` (compilation included), the epoch's samples/s (as
``history`` reports it: compilation excluded), the epoch's mean training loss, the loss of the
first 4096 examples before and after training, and ``history.strategy``.

It prints a table and writes ``out_of_core.json`` and ``out_of_core.png`` (peak RssAnon against
dataset size) into ``--out`` (default: a new temporary directory). Data files go to
``--data-dir`` (default: a temporary directory under the system's temp folder), one size at a
time: each size's files are deleted after its run (``--keep-data`` keeps them), and a size that
does not fit in the free disk space is skipped with a message. ``--full`` runs 0.25, 1 and 4 GB.

By default the freshly written files are still in the page cache, so fit reads them from
memory; ``--cold`` asks the kernel to drop them first (``posix_fadvise(DONTNEED)``), so fit
reads them from the disk itself - in order, in its finite check, which brings them back into the
page cache where memory allows; the epoch's random reads then hit the cache.

``--steps N`` trains only the first ``N * 256`` rows (a view of the mapping, still read from
disk); a subset smaller than ``--max-device-mb`` fits on the device and runs fused.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "parse_size", "read_status", "write_dataset"]

FEATURES = 256
CLASSES = 10
BATCH = 256
HIDDEN = 64
LEARNING_RATE = 0.05
EVAL_ROWS = 4096
GB = 10**9
MB = 2**20  # memory is reported in MiB ("MB" in the table)
WRITE_ROWS = 65536  # rows written at a time (64 MiB of features)
DISK_MARGIN = 256 * MB  # free space kept on the data disk beyond the files
SAMPLE_INTERVAL_S = 0.05
DEFAULT_SIZES = (0.1, 0.25, 0.5)
FULL_SIZES = (0.25, 1.0, 4.0)
STATUS_FIELDS = ("RssAnon", "RssFile", "RssShmem", "VmRSS", "VmHWM")
_REPO = Path(__file__).resolve().parent.parent


def parse_size(text: str) -> int:
    """Bytes of ``"0.25"`` (GB), ``"250MB"``, ``"2GB"``, ``"64KB"`` (powers of ten) or
    ``"4MiB"``, ``"1GiB"`` (powers of two)."""
    t = text.strip().upper()
    units = (("KIB", 2**10), ("MIB", 2**20), ("GIB", 2**30), ("KB", 10**3), ("MB", 10**6),
             ("GB", GB), ("B", 1))  # fmt: skip
    for suffix, scale in units:
        if t.endswith(suffix):
            t, unit = t[: -len(suffix)], scale
            break
    else:
        unit = GB
    try:
        value = float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 0.25, 250MB)") from None
    if not math.isfinite(value) or value * unit < FEATURES * 4 * BATCH:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected at least one batch of rows")
    return int(value * unit)


def read_status() -> dict[str, int]:
    """The memory fields of ``/proc/self/status`` (``STATUS_FIELDS``), in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in STATUS_FIELDS:
                out[name] = int(rest.split()[0]) * 1024  # "123456 kB"
    return out


class _Sampler(threading.Thread):
    """Reads ``/proc/self/status`` every ``interval`` seconds, keeping each field's peak."""

    def __init__(self, interval: float):
        super().__init__(daemon=True)
        self.interval, self.peak, self.samples = interval, read_status(), 1
        self._done = threading.Event()

    def sample(self) -> None:
        for name, value in read_status().items():
            self.peak[name] = max(self.peak.get(name, 0), value)
        self.samples += 1

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, int]:
        self._done.set()
        self.join()
        self.sample()
        return dict(self.peak)


def write_dataset(directory: Path, size_bytes: int, seed: int = 0) -> tuple[Path, Path, int]:
    """Writes ``x.npy`` (``<float32>[n, 256]``, ``size_bytes`` of features) and ``y.npy``
    (``<int32>[n]``) into ``directory`` a chunk of rows at a time; returns ``(x, y, n)``.

    Each example is its class's centre plus unit Gaussian noise, the centres far enough apart
    for a linear model to separate most of them."""
    n = size_bytes // (FEATURES * 4)
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 0.25, (CLASSES, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, n, dtype=np.int32)
    x_path, y_path = directory / "x.npy", directory / "y.npy"
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": (n, FEATURES)}  # fmt: skip
    with open(x_path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for begin in range(0, n, WRITE_ROWS):
            labels = y[begin : begin + WRITE_ROWS]
            rows = rng.standard_normal((labels.size, FEATURES), dtype=np.float32)
            rows += centres[labels]
            rows.tofile(f)
    np.save(y_path, y)
    return x_path, y_path, n


def _drop_from_cache(path: Path) -> None:
    """Writes ``path`` back and asks the kernel to drop its pages from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# ---- the worker: one fresh process per size -------------------------------------------------


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Trains one epoch on the mapped files of ``spec``; returns the measurements."""
    sampler = _Sampler(spec["interval"])
    sampler.start()
    t0 = time.perf_counter()
    import jax

    import fnn

    x = np.load(spec["x"], mmap_mode="r")
    y = np.load(spec["y"], mmap_mode="r")
    rows = x.shape[0] if spec["steps"] is None else min(x.shape[0], spec["steps"] * BATCH)
    x_fit, y_fit = x[:rows], y[:rows]  # a view of the mapping (all of it without --steps)
    model = fnn.models.MLP((HIDDEN,), CLASSES)
    state = fnn.TrainState.create(model, fnn.optim.sgd(LEARNING_RATE, momentum=0.9), x[:1])
    head = (x[:EVAL_ROWS], y[:EVAL_ROWS])
    loss_before = fnn.evaluate(state, *head, loss="cross_entropy")["loss"]
    baseline = read_status()
    t_fit = time.perf_counter()
    state, history = fnn.fit(
        state, x_fit, y_fit, loss="cross_entropy", batch_size=BATCH, epochs=1,
        max_device_bytes=spec["max_device_bytes"], steps_per_chunk=spec["steps_per_chunk"],
        verbose=0,
    )  # fmt: skip
    jax.block_until_ready(state)
    fit_s = time.perf_counter() - t_fit
    after = fnn.evaluate(state, *head, loss="cross_entropy", metrics=["accuracy"])
    peak = sampler.stop()
    record = history.records[-1]
    return {
        "examples": int(x.shape[0]),
        "examples_trained": int(rows),
        "steps": int(record["steps"]),
        "x_is_memmap": isinstance(x_fit, np.memmap),
        "strategy": history.strategy,
        "strategy_reason": history.strategy_reason,
        "fit_s": fit_s,
        "compile_s": float(record["compile_time"]),
        "epoch_s": float(record["epoch_time"]),
        "samples_per_s": float(record["samples_per_s"]),
        "samples_per_s_wall": rows / fit_s,
        "loss": float(record["loss"]),
        "head_loss_before": float(loss_before),
        "head_loss_after": float(after["loss"]),
        "head_accuracy_after": float(after["accuracy"]),
        "baseline": baseline,  # before fit: Python, JAX, the model and the mapping opened
        "peak": peak,
        "samples": sampler.samples,
        "process_s": time.perf_counter() - t0,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
    }


def _run_worker(spec: dict[str, Any], work: Path, timeout: float) -> dict[str, Any]:
    """Runs :func:`_worker` in a fresh interpreter; its result, or ``{"error": ...}``."""
    spec_path, result_path = work / "spec.json", work / "result.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "benchmarks.out_of_core", "--worker", str(spec_path),
           str(result_path)]  # fmt: skip
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0 or not result_path.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-8:]
        return {"error": f"worker exited {done.returncode}: " + " | ".join(tail)}
    return json.loads(result_path.read_text())


# ---- the driver ------------------------------------------------------------------------------


def _measure(size: int, args, data_dir: Path) -> dict[str, Any]:
    """Writes, trains on and deletes the files of one size; its record."""
    rows = size // (FEATURES * 4)
    record: dict[str, Any] = {"size_bytes": rows * FEATURES * 4, "examples": rows}
    need = rows * (FEATURES + 1) * 4 + DISK_MARGIN
    free = shutil.disk_usage(data_dir).free
    if need > free:
        record.update(status="skipped", reason=f"needs {need / GB:.2f} GB free on {data_dir}, "
                      f"has {free / GB:.2f} GB")  # fmt: skip
        print(f"skipping {size / GB:g} GB: {record['reason']}", flush=True)
        return record
    work = Path(tempfile.mkdtemp(prefix="size_", dir=data_dir))
    try:
        t = time.perf_counter()
        x_path, y_path, n = write_dataset(work, size, seed=args.seed)
        record["write_s"] = time.perf_counter() - t
        if args.cold:
            for path in (x_path, y_path):
                _drop_from_cache(path)
        spec = {"x": str(x_path), "y": str(y_path), "steps": args.steps,
                "max_device_bytes": args.max_device_mb * MB,
                "steps_per_chunk": args.steps_per_chunk, "interval": SAMPLE_INTERVAL_S}  # fmt: skip
        result = _run_worker(spec, work, args.timeout)
    finally:
        if not args.keep_data:
            shutil.rmtree(work, ignore_errors=True)
    if "error" in result:
        record.update(status="error", reason=result["error"])
        print(f"{size / GB:g} GB failed: {result['error']}", flush=True)
        return record
    record.update(status="ok", **result)
    for name in STATUS_FIELDS:
        if name in result["peak"]:
            record[f"peak_{name}_mb"] = result["peak"][name] / MB
    record["baseline_RssAnon_mb"] = result["baseline"]["RssAnon"] / MB
    record["anon_growth_mb"] = record["peak_RssAnon_mb"] - record["baseline_RssAnon_mb"]
    if args.keep_data:
        record["data_dir"] = str(work)
    return record


COLUMNS = (  # (heading, width, format of a record)
    ("size on disk", 12, lambda r: _size_text(r["size_bytes"])),
    ("examples", 10, lambda r: f"{r['examples']:,}"),
    ("trained", 10, lambda r: f"{r['examples_trained']:,}"),
    ("peak RssAnon MB", 15, lambda r: f"{r['peak_RssAnon_mb']:.0f}"),
    ("(+ over base)", 13, lambda r: f"{r['anon_growth_mb']:+.0f}"),
    ("peak RssFile MB", 15, lambda r: f"{r['peak_RssFile_mb']:.0f}"),
    ("samples/s", 10, lambda r: f"{r['samples_per_s']:,.0f}"),
    ("fit s", 7, lambda r: f"{r['fit_s']:.1f}"),
    ("loss", 6, lambda r: f"{r['loss']:.3f}"),
    ("strategy", 9, lambda r: r["strategy"]),
)


def _size_text(n: int) -> str:
    return f"{n / GB:.2f} GB" if n >= GB else f"{n / 10**6:.1f} MB"


def format_table(records: list[dict[str, Any]]) -> str:
    lines = ["  ".join(h.rjust(w) for h, w, _ in COLUMNS)]
    for r in records:
        if r["status"] == "ok":
            lines.append("  ".join(fmt(r).rjust(w) for _, w, fmt in COLUMNS))
        else:
            lines.append(f"{_size_text(r['size_bytes']).rjust(COLUMNS[0][1])}  "
                         f"{r['status']}: {r['reason']}")  # fmt: skip
    return "\n".join(lines)


def write_plot(results: dict[str, Any], path: Path) -> Path:
    """Peak RssAnon (and RssFile, the baseline, baseline + data) against the dataset size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = sorted((r for r in results["records"] if r["status"] == "ok"),
                key=lambda r: r["size_bytes"])  # fmt: skip
    size_mb = [r["size_bytes"] / MB for r in ok]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(size_mb, [r["peak_RssAnon_mb"] for r in ok], "o-", linewidth=2,
            label="peak RssAnon (anonymous memory)")  # fmt: skip
    ax.plot(size_mb, [r["baseline_RssAnon_mb"] for r in ok], "s:",
            label="RssAnon before fit (baseline)")  # fmt: skip
    ax.plot(size_mb, [r["peak_RssFile_mb"] for r in ok], "^--",
            label="peak RssFile (mapped page cache, reclaimable)")  # fmt: skip
    ax.plot(
        size_mb,
        [r["baseline_RssAnon_mb"] + s for r, s in zip(ok, size_mb, strict=True)],
        color="grey",
        linestyle="-.",
        label="baseline + dataset (a copy in memory)",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("dataset size on disk (MiB)")
    ax.set_ylabel("resident memory (MiB)")
    meta = results["meta"]
    ax.set_title(f"fnn.fit streaming a np.memmap (max_device_bytes={meta['max_device_mb']} MiB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.out_of_core",
        description="fnn.fit on np.memmap data of growing size: peak memory stays flat.",
    )
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument("--sizes", type=lambda s: [parse_size(v) for v in s.split(",") if v],
                       help="dataset sizes, in GB unless suffixed (e.g. 0.25,1,4 or 2MB,8MB); "
                       f"default {','.join(map(str, DEFAULT_SIZES))}")  # fmt: skip
    sizes.add_argument("--full", action="store_true",
                       help=f"sizes {','.join(map(str, FULL_SIZES))} GB")  # fmt: skip
    p.add_argument("--out", type=Path, help="where the JSON and PNG go (default: a temp dir)")
    p.add_argument("--data-dir", type=Path,
                   help="where the data files are written (default: a temp dir)")  # fmt: skip
    p.add_argument("--steps", type=int, default=None,
                   help="train at most N batches a size: the first N*256 rows of the mapping "
                   "(default: one whole epoch)")  # fmt: skip
    p.add_argument("--max-device-mb", type=int, default=64,
                   help="fit's max_device_bytes, in MiB (default 64)")  # fmt: skip
    p.add_argument(
        "--steps-per-chunk",
        type=int,
        default=None,
        help="batches per streamed chunk (default: fit's, about 64 MiB a chunk)",
    )
    p.add_argument("--cold", action="store_true",
                   help="drop the files from the page cache before training")  # fmt: skip
    p.add_argument("--keep-data", action="store_true", help="keep the data files")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per size (default 3600)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plot", dest="plot", action="store_false", help="skip the PNG")
    p.add_argument("--worker", nargs=2, metavar=("SPEC", "RESULT"), help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.worker:
        spec_path, result_path = map(Path, args.worker)
        result = _worker(json.loads(spec_path.read_text()))
        result_path.write_text(json.dumps(result))
        return 0
    for name in ("steps", "max_device_mb", "steps_per_chunk"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser().error(f"--{name.replace('_', '-')}: expected a positive integer")
    sizes = [int(s * GB) for s in FULL_SIZES] if args.full else args.sizes
    sizes = sizes or [int(s * GB) for s in DEFAULT_SIZES]
    out = args.out or Path(tempfile.mkdtemp(prefix="fnn_out_of_core_"))
    out.mkdir(parents=True, exist_ok=True)
    own_data_dir = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="fnn_ooc_data_")) if own_data_dir else args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    meta = {"features": FEATURES, "classes": CLASSES, "batch_size": BATCH,
            "model": f"MLP(({HIDDEN},), {CLASSES})",
            "optimizer": f"sgd({LEARNING_RATE}, momentum=0.9)", "epochs": 1,
            "max_device_mb": args.max_device_mb, "steps_per_chunk": args.steps_per_chunk,
            "steps": args.steps, "cold": args.cold, "sample_interval_s": SAMPLE_INTERVAL_S,
            "cpu_count": os.cpu_count(), "python": sys.version.split()[0]}  # fmt: skip
    records = []
    try:
        for size in sizes:
            print(f"{_size_text(size)}: writing, then training in a fresh process ...", flush=True)
            records.append(_measure(size, args, data_dir))
    finally:
        if own_data_dir and not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    from benchmarks.outputs import sanitize

    results = sanitize({"meta": meta, "records": records})
    (out / "out_of_core.json").write_text(json.dumps(results, indent=2))
    print()
    print(format_table(records))
    written = [out / "out_of_core.json"]
    if args.plot and any(r["status"] == "ok" for r in records):
        try:
            written.append(write_plot(results, out / "out_of_core.png"))
        except ImportError as err:
            print(f"no plot: {err}")
    print("\nwrote " + ", ".join(map(str, written)))
    return 0 if all(r["status"] != "error" for r in records) else 1


if __name__ == "__main__":
    raise SystemExit(main())
