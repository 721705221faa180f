"""``python -m benchmarks --device-check``: the short run to make whenever a GPU or TPU is at hand.

It records, in ``device_check.json`` and ``device_check.md``:

- the preset's throughput ratios (fnn fused / hand-written Flax loop, fnn fused / best peer) at
  every batch size of every workload;
- at batch 1, whether the fused scan is bound by XLA's loop control (the host's part of a
  ``lax.scan`` iteration, which on a GPU is a device-to-host copy of the loop predicate) or by
  the device's compute: the fused step time against the per-iteration time of a scan whose body
  does next to nothing;
- bf16 against f32 compute (fnn fused) where the preset measures both;
- the fraction of the device's measured matmul peak that fnn fused reaches at full batch.

Time to accuracy and the noise scale are left out, and the throughput groups stop starting
after :data:`THROUGHPUT_BUDGET_S` (the groups left are recorded as skipped), so on a GPU or TPU
the whole check stays under 4 minutes.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks.config import DEFAULT_OUT, Config

__all__ = ["THROUGHPUT_BUDGET_S", "loop_floor_us", "main", "summarize_check"]

THROUGHPUT_BUDGET_S = 150.0
LOOP_BOUND_FACTOR = 1.5  # a fused step within 1.5x an empty iteration is bound by loop control


def loop_floor_us(steps: int = 4096, repeats: int = 5) -> float:
    """Microseconds per iteration of a jitted ``lax.scan`` whose body does one multiply-add on
    a scalar read from its input (so XLA cannot fold the loop away): the cost of the loop
    itself on the default device. The slope between ``steps`` and ``2 * steps`` iterations
    (medians of ``repeats``), so the program's dispatch is not counted."""

    def body(carry, x):
        return carry * 0.5 + x, None

    @jax.jit
    def program(carry, xs):
        return jax.lax.scan(body, carry, xs)[0]

    def median_s(n: int) -> float:
        carry = jnp.zeros((), jnp.float32)
        xs = jnp.arange(n, dtype=jnp.float32)
        program(carry, xs).block_until_ready()  # compile
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            program(carry, xs).block_until_ready()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    slope = (median_s(2 * steps) - median_s(steps)) / steps
    return max(1e6 * slope, 1e-3)  # never zero or negative under noise


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "x") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def summarize_check(results: dict[str, Any], floor_us: float) -> dict[str, Any]:
    """The device check's figures from a suite run's ``results`` and the loop floor."""
    rows = results["summary"]["throughput"]
    meta = results["meta"]
    batch_1 = []
    for r in rows:
        if r["mode"] != "sgd" or not r["fnn_step_time_us"]:
            continue
        step = r["fnn_step_time_us"]
        bound = "loop control" if step <= LOOP_BOUND_FACTOR * floor_us else "device compute"
        batch_1.append({"workload": r["workload"], "fused_step_us": step,
                        "loop_floor_us": floor_us, "bound_by": bound})  # fmt: skip
    return {
        "device": meta["device"],
        "versions": meta["versions"],
        "matmul_peak_flops_per_s": meta["matmul_peak"]["flops_per_s"],
        "loop_floor_us": floor_us,
        "ratios": [
            {
                "workload": r["workload"],
                "batch_size": r["batch_size"],
                "mode": r["mode"],
                "fnn_fused_samples_per_s": r["fnn_fused_samples_per_s"],
                "fnn_vs_flax_loop": r["fnn_vs_flax_loop"],
                "fnn_vs_best_peer": r["fnn_vs_best_peer"],
                "best_peer": r["best_peer"],
            }
            for r in rows
        ],
        "batch_1": batch_1,
        "bf16_vs_f32": [
            {
                "workload": r["workload"],
                "batch_size": r["batch_size"],
                "ratio": r["fnn_bf16_vs_f32"],
            }
            for r in rows
            if r.get("fnn_bf16_vs_f32") is not None
        ],  # fmt: skip
        "full_batch_fraction_of_peak": [
            {
                "workload": r["workload"],
                "batch_size": r["batch_size"],
                "fraction": r["fnn_fraction_of_peak"],
                "fraction_of_own_matmuls": r.get("fnn_fraction_of_matmul_bound"),
            }
            for r in rows
            if r["mode"] == "full" and r["fnn_fraction_of_peak"] is not None
        ],  # fmt: skip
        "skipped": [
            {k: rec.get(k) for k in ("workload", "implementation", "batch_size", "reason")}
            for rec in results["records"]
            if rec.get("status") == "skipped"
        ],
    }


def markdown(check: dict[str, Any]) -> str:
    """The device check as a short Markdown report."""
    lines = [
        f"# Device check: {check['device']['summary']}",
        "",
        "versions: " + ", ".join(f"{k} {v}" for k, v in check["versions"].items() if v),
        f"f32 matmul peak: {check['matmul_peak_flops_per_s'] / 1e12:.2f} TFLOP/s; an empty "
        f"lax.scan iteration: {check['loop_floor_us']:.3g} us",
        "",
        "| workload | batch | fnn fused samples/s | / hand Flax loop | / best peer | best peer |",
        "|---|---|---|---|---|---|",
    ]
    for r in check["ratios"]:
        rate = r["fnn_fused_samples_per_s"]
        lines.append(
            f"| {r['workload']} | {r['batch_size']} | {_fmt(rate, ',.0f', '')} | "
            f"{_fmt(r['fnn_vs_flax_loop'])} | {_fmt(r['fnn_vs_best_peer'])} | "
            f"{r['best_peer'] or '-'} |"
        )
    lines += ["", "Batch 1, what bounds the fused scan:", ""]
    for b in check["batch_1"]:
        lines.append(
            f"- {b['workload']}: a fused step takes {b['fused_step_us']:.1f} us against "
            f"{b['loop_floor_us']:.3g} us for an empty iteration: bound by {b['bound_by']}"
        )
    if check["bf16_vs_f32"]:
        lines += ["", "bf16 compute / f32 (fnn fused): " + ", ".join(
            f"{b['workload']} batch {b['batch_size']} {_fmt(b['ratio'])}"
            for b in check["bf16_vs_f32"])]  # fmt: skip
    if check["full_batch_fraction_of_peak"]:
        lines += ["", "Full batch, fnn fused as a fraction of the matmul peak (and of the step's "
                  "own matmuls timed alone):", ""]  # fmt: skip
        for f in check["full_batch_fraction_of_peak"]:
            own = f["fraction_of_own_matmuls"]
            own_text = "" if own is None else f" ({own:.0%} of its own matmuls)"
            share = f"{f['fraction']:.0%}"
            lines.append(f"- {f['workload']} batch {f['batch_size']}: {share}{own_text}")
    if check["skipped"]:
        lines += ["", f"{len(check['skipped'])} measurements skipped (see device_check.json)."]
    return "\n".join(lines) + "\n"


def main(
    config: Config,
    *,
    argv: Sequence[str] | None = None,
    out: Path | str | None = None,
    progress: bool = True,
) -> int:
    """Runs the device check on ``config``'s throughput measurements; writes its files."""
    from benchmarks.suite import run

    out = Path(out) if out is not None else DEFAULT_OUT / "device_check"
    config = config.replace(
        tta_workloads=(),
        noise_scale=False,
        repeats=min(config.repeats, 3),
        max_throughput_s=THROUGHPUT_BUDGET_S,
        plots=False,
        out=out,
    )
    results = run(config, argv=list(argv or []), progress=progress)
    check = summarize_check(results, loop_floor_us())
    out.mkdir(parents=True, exist_ok=True)
    (out / "device_check.json").write_text(json.dumps(check, indent=2, default=str) + "\n")
    text = markdown(check)
    (out / "device_check.md").write_text(text)
    print(text)
    print(f"wrote {out / 'device_check.json'} and {out / 'device_check.md'}")
    return 0
