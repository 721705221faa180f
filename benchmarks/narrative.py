"""The report's prose, and its assembly with the tables into report.md and the console text.

The prose answers the suite's question (which batch size reaches the target accuracy fastest,
and why), explains each missed target from the measurements, and states the method.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.records import Record, groups, where
from benchmarks.summary import TARGET_ITERABLE_BATCH, TargetId
from benchmarks.tables import (
    fmt_percent,
    fmt_rate,
    fmt_value,
    noise_table,
    targets_table,
    throughput_tables,
    tta_table,
)

__all__ = [
    "METHOD",
    "answer_lines",
    "console_report",
    "markdown_report",
    "nnx_lines",
    "shortfall_lines",
    "variant_lines",
]

Shortfall = Callable[[dict[str, Any], dict[str, Any], dict[tuple, Record]], list[str]]


def _header_lines(results: dict[str, Any]) -> list[str]:
    meta = results["meta"]
    v = meta["versions"]
    peak = meta["matmul_peak"]
    versions = ", ".join(f"{k} {v[k]}" for k in v if v[k] is not None)
    return [
        f"device: {meta['device']['summary']}",
        f"measured f32 matmul peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s "
        f"(jnp.dot {peak['n']}x{peak['n']}, best of "
        f"{len(peak.get('samples_flops_per_s', [0]))} measurements spread over the run)",
        f"MNIST-shaped data: {meta['mnist_source']}",
        f"versions: {versions}",
        f"preset: {meta['preset']}; wall time {meta.get('wall_s', 0):.0f} s ("
        + ", ".join(
            f"{k[:-2].replace('_', ' ')} {v:.0f} s" for k, v in meta.get("phases", {}).items()
        )  # fmt: skip
        + ")",
    ]


def _skipped_lines(results: dict[str, Any]) -> list[str]:
    reasons = {}
    for r in results["records"]:
        if r["status"] in ("skipped", "error"):
            reasons.setdefault((r["implementation"], r["status"]), r["reason"])
    return [f"{impl} {status}: {reason}" for (impl, status), reason in reasons.items()]


def answer_lines(results: dict[str, Any]) -> list[str]:
    """Which batch size reaches the target fastest, and why (throughput x steps x noise)."""
    lines: list[str] = []
    noise = {n["workload"]: n for n in results.get("noise_scale", [])}
    tta = where(results["records"], benchmark="time_to_accuracy", status="ok")
    by_workload = groups(results["summary"]["time_to_accuracy"], ("workload",))
    for (w,), bests in by_workload.items():
        for best in bests:
            if best["best_batch_size"] is None:
                lines.append(
                    f"{w}, {best['implementation']}: no batch size reached "
                    f"{best['target_accuracy']:.2f} test accuracy within the limits."
                )
                continue
            lines.append(
                f"{w}, {best['implementation']}: batch {best['best_batch_size']} "
                f"({best['best_mode']}) reached {best['target_accuracy']:.2f} test accuracy "
                f"fastest: {best['time_to_target_s']:.2f} s, {best['epochs_to_target']} epochs."
            )
        for (impl,), group in groups(where(tta, workload=w), ("implementation",)).items():
            parts = []
            for r in group:
                epochs = r.get("epochs_to_target")
                rate = r["samples_per_s"]
                epoch_s = r["samples_per_epoch"] / rate if rate else None
                what = f"{epochs} epochs" if epochs is not None else "not reached"
                parts.append(
                    f"batch {r['batch_size']}: {what} x {fmt_value(epoch_s, '.3f')} s/epoch"
                )
            lines.append(f"  {impl}: time = epochs x epoch time: " + "; ".join(parts) + ".")
        if w in noise:
            n = noise[w]
            lines.append(
                f"  gradient noise scale near the target (epoch {n['epoch_at_target']}): "
                f"B_simple ~ {fmt_value(n['b_simple_at_target'], '.0f')} (exact "
                f"{fmt_value(n['b_simple_exact_at_target'], '.0f')}). Below it a bigger batch "
                f"cuts the steps needed almost proportionally; above it the examples needed grow "
                f"like (1 + B / B_simple), so only extra throughput per example can pay for it."
            )
    rows = results["summary"]["throughput"]
    for row in rows:
        if row["mode"] != "full" or not row["fnn_fused_samples_per_s"]:
            continue
        first = next(
            (r for r in rows if r["workload"] == row["workload"] and r["fnn_fused_samples_per_s"]),
            None,
        )
        if first is not None and first is not row:
            gain = row["fnn_fused_samples_per_s"] / first["fnn_fused_samples_per_s"]
            lines.append(
                f"throughput ({row['workload']}, fnn fused): "
                f"{fmt_rate(first['fnn_fused_samples_per_s'])}/s at batch {first['batch_size']} "
                f"vs {fmt_rate(row['fnn_fused_samples_per_s'])}/s at full batch ({gain:.1f}x per "
                f"example): "
                + (
                    "small batches pay a fixed cost per step, large ones approach the "
                    "hardware's matmul rate."
                    if gain > 1
                    else f"here the full batch trains {'fewer' if gain < 1 else 'no more'} "
                    f"examples per second than batch {first['batch_size']}, so larger batches do "
                    f"not pay for themselves in throughput."
                )
            )
        if row.get("matmul_bound_fraction_of_peak") is not None:
            lines.append(
                f"full batch ({row['workload']}, fnn fused): "
                f"{fmt_percent(row['fnn_fraction_of_peak'])} of the matmul peak; the step's "
                f"matmuls alone run at {fmt_percent(row['matmul_bound_fraction_of_peak'])} of "
                f"it, and the whole step at {fmt_percent(row['fnn_fraction_of_matmul_bound'])} "
                f"of their speed."
            )
    return lines


def _paired_text(ratio: float, rounds: dict[str, float] | None, what: str) -> str:
    if not rounds:
        return f"{ratio:.2f}x {what}"
    return f"{rounds['median']:.2f}x {what} (quartiles {rounds['p25']:.2f}-{rounds['p75']:.2f}x)"


def nnx_lines(results: dict[str, Any]) -> list[str]:
    """fnn on the network written in Flax NNX against fnn on the linen one, and against the
    hand-written NNX loop: per batch size, paired round by round."""
    lines = []
    rows = [r for r in results["summary"]["throughput"] if r.get("fnn_nnx_vs_linen") is not None]
    for (w,), group in groups(rows, ("workload",)).items():
        parts = []
        for r in group:
            texts = [_paired_text(r["fnn_nnx_vs_linen"], r.get("fnn_nnx_vs_linen_per_round"),
                                  "fnn fused on linen")]  # fmt: skip
            if r.get("fnn_nnx_vs_nnx_loop") is not None:
                texts.append(_paired_text(r["fnn_nnx_vs_nnx_loop"],
                                          r.get("fnn_nnx_vs_nnx_loop_per_round"),
                                          "the hand NNX loop"))  # fmt: skip
            parts.append(f"batch {_where(r)}: " + " and ".join(texts))
        lines.append(
            f"{w}, fnn fused on the same network written in Flax NNX (same engine and shapes; "
            f"medians of the per-round ratios): " + "; ".join(parts) + "."
        )
    return lines


def _where(row: dict[str, Any]) -> str:
    return "full" if row["mode"] == "full" else str(row["batch_size"])


def _per_batch_ratios(group: list[dict[str, Any]], key: str, what: str) -> str:
    return "; ".join(
        f"batch {_where(r)}: " + _paired_text(r[key], r.get(f"{key}_per_round"), what)
        for r in group
    )


def _device_word(results: dict[str, Any]) -> str:
    platform = results.get("meta", {}).get("device", {}).get("platform") or "cpu"
    return platform.upper()


def _bf16_lines(results: dict[str, Any]) -> list[str]:
    """fnn fused with bf16 compute against float32, per batch size; the test accuracies it
    ended time to accuracy with."""
    lines = []
    rows = [r for r in results["summary"]["throughput"] if r.get("fnn_bf16_vs_f32") is not None]
    for (w,), group in groups(rows, ("workload",)).items():
        top = max(group, key=lambda r: r["batch_size"])
        rounds = top.get("fnn_bf16_vs_f32_per_round")
        speed = rounds["median"] if rounds else top["fnn_bf16_vs_f32"]
        lines.append(
            f"{w}, fnn fused with bfloat16 compute (float32 parameters and optimizer state, the "
            f"loss in float32) against fnn fused in float32 (medians of the per-round ratios): "
            + _per_batch_ratios(group, "fnn_bf16_vs_f32", "f32")
            + f". On this {_device_word(results)} bf16 compute is {speed:.2f}x the f32 speed "
            f"(at batch {_where(top)}, the largest measured)."
        )
    tta = where(results["records"], benchmark="time_to_accuracy", status="ok")
    for (w,), group in groups(tta, ("workload",)).items():
        by = {(r["implementation"], r["batch_size"]): r for r in group}
        pairs = [(b, r, by.get(("fnn_fused", b), {})) for (i, b), r in by.items()
                 if i == "fnn_fused_bf16"]  # fmt: skip
        if pairs:
            lines.append(
                f"{w}, time to accuracy on digits, bf16 / f32: "
                + "; ".join(
                    f"batch {b}: test accuracy at the end "
                    f"{fmt_value(r['final_test_accuracy'], '.3f')} / "
                    f"{fmt_value(f.get('final_test_accuracy'), '.3f')}, target after "
                    f"{fmt_value(r['epochs_to_target'], 'd')} / "
                    f"{fmt_value(f.get('epochs_to_target'), 'd')} epochs"
                    for b, r, f in pairs
                )
                + "."
            )
    return lines


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{1e3 * seconds:.1f} ms" if abs(seconds) < 1 else f"{seconds:.2f} s"


def _source_text(d: dict[str, Any]) -> str:
    """What reading the batches from the source directly, by index, costs next to the loader."""
    source_s, read_s = d.get("source_s"), d.get("read_s")
    if source_s is None:
        return ""
    text = f" (the same batches straight from its source, by index, take {_ms(source_s)}"
    if read_s is not None and read_s > source_s:
        return text + f": the other {_ms(read_s - source_s)} is the Grain pipeline's own work)"
    return text + ")"


def iterable_breakdown_text(row: dict[str, Any]) -> str:
    """Where an epoch of fnn fed by Grain goes against the in-memory fused path (from
    :func:`benchmarks.summary._iterable_breakdown`); empty without one."""
    d = row.get("fnn_iterable_breakdown")
    if not d:
        return ""
    steps = d["steps_per_epoch"]
    text = (
        f"an epoch ({steps} step{'s' if steps != 1 else ''}) takes {_ms(d['epoch_s'])} against "
        f"{_ms(d['in_memory_s'])} for the same examples in memory"
    )
    rest = d["rest_s"]
    if rest is not None:
        text += (
            f"; of the {_ms(d['epoch_s'] - d['in_memory_s'])} more, reading the batches from "
            f"the Grain loader alone takes {_ms(d['read_s'])}{_source_text(d)}, starting and "
            f"closing its iterator {_ms(d['call_s'])} (once per "
            f"fit call, here per {d['epochs_per_repeat']} "
            f"epoch{'s' if d['epochs_per_repeat'] != 1 else ''}; closing waits for the batch it "
            f"reads ahead), stacking and copying the batches to the device {_ms(d['copy_s'])}, "
            + (
                f"and the rest (fnn's per-batch checks, padding, stacking and dispatch) {_ms(rest)}"
                if rest >= 0
                else f"and the parts overlap by {_ms(-rest)} (Grain reads ahead in a thread "
                f"while the device trains)"
            )
        )
    if d["compile_s"] is not None and d["in_memory_compile_s"] is not None:
        text += (
            f"; the first epoch's compile costs {d['compile_s']:.2f} s against "
            f"{d['in_memory_compile_s']:.2f} s (once per run, not in samples/s)"
        )
    return text


def _iterable_lines(results: dict[str, Any]) -> list[str]:
    """fnn fed by a Grain loader against fnn fused on in-memory arrays, per batch size, with
    where each epoch's extra time goes."""
    lines = []
    key = "fnn_iterable_vs_in_memory"
    rows = [r for r in results["summary"]["throughput"] if r.get(key) is not None]
    for (w,), group in groups(rows, ("workload",)).items():
        lines.append(
            f"{w}, fnn fed by a Grain loader (fnn.data.grain_loader over the same arrays, fit on "
            f"the iterable) against fnn fused on in-memory arrays (medians of the per-round "
            f"ratios): " + _per_batch_ratios(group, key, "in memory") + "."
        )
        lines += [
            f"  batch {_where(r)}: {text}." for r in group if (text := iterable_breakdown_text(r))
        ]
    return lines


def variant_lines(results: dict[str, Any]) -> list[str]:
    """fnn fused with bf16 compute and fnn fed by a Grain loader, each against fnn fused."""
    return _bf16_lines(results) + _iterable_lines(results)


def _summary_row(results: dict[str, Any], workload: str, batch_size: int) -> dict[str, Any]:
    return next(
        r
        for r in results["summary"]["throughput"]
        if r["workload"] == workload and r["batch_size"] == batch_size
    )


def _sgd_shortfall(
    results: dict[str, Any], target: dict[str, Any], recs: dict[tuple, Record]
) -> list[str]:
    """Batch 1: the fused step's time against the hand loops' and its FLOPs at the peak."""
    w = target["workload"]
    fused = recs.get((w, "fnn_fused", 1))
    loop = recs.get((w, "flax_loop", 1))
    scan = recs.get((w, "flax_scan", 1))
    if not (fused and loop):
        return []
    peak = results["meta"]["matmul_peak"]["flops_per_s"]
    ideal_us = 1e6 * (fused["flops_per_example"] or 0) / peak
    scan_text = (
        f" and {scan['step_time_us']:.1f} us for the hand-written lax.scan" if scan
        else ""
    )  # fmt: skip
    return [
        f"- **{w}, batch 1**: a fused step takes {fused['step_time_us']:.1f} us against "
        f"{loop['step_time_us']:.1f} us for the hand-written loop{scan_text}; its "
        f"{fused['flops_per_example']:.3g} FLOPs would take {ideal_us:.2f} us at "
        f"the matmul peak. The step is latency-bound: the fixed cost per step "
        f"(one loop iteration of the compiled program: dispatching each of the "
        f"step's few dozen tiny kernels, the dynamic-slice gather of the example, "
        f"the optimizer update of every parameter leaf) dominates, not arithmetic. "
        f"The hand loop pays a Python dispatch on top of those same per-op costs, "
        f"so removing Python alone bounds the gain to the ratio above."
    ]


def _peer_shortfall(
    results: dict[str, Any], target: dict[str, Any], recs: dict[tuple, Record]
) -> list[str]:
    """Each batch size behind the best peer: step times, and whether the gap is noise."""
    w = target["workload"]
    out = []
    worse = {b: v for b, v in target.get("per_batch", {}).items() if v is not None and v < 1}
    for b, ratio in worse.items():
        row = _summary_row(results, w, int(b))
        fused = recs.get((w, "fnn_fused", int(b)))
        peer = recs.get((w, row["best_peer"], int(b)))
        step = ""
        if fused and peer and fused.get("step_time_us") and peer.get("step_time_us"):
            delta = fused["step_time_us"] - peer["step_time_us"]
            step = (
                f" A step takes {fused['step_time_us']:.1f} us against "
                f"{peer['step_time_us']:.1f} us ({delta:+.1f} us per step)."
            )
        rounds = row.get("fnn_vs_best_peer_per_round")
        paired = ""
        if rounds:
            within = rounds["p25"] <= 1.0 <= rounds["p75"]
            paired = (
                f" Paired round by round, fnn / {row['best_peer']} has median "
                f"{rounds['median']:.2f}x and quartiles {rounds['p25']:.2f}-"
                f"{rounds['p75']:.2f}x: "
                + ("1.0x lies inside them, so this gap is within the run-to-run noise."
                   if within else "1.0x lies outside them, so the gap is real. To find "
                   "it, compare the two compiled programs (XLA_FLAGS=--xla_dump_to=DIR: "
                   "the optimized HLO of fnn's epoch against the peer's) or take a "
                   "jax.profiler trace.")
            )  # fmt: skip
        out.append(
            f"- **{w}, batch {b}**: fnn fused {fmt_rate(row['fnn_fused_samples_per_s'])}/s is "
            f"{ratio:.2f}x {row['best_peer']} ({fmt_rate(row['best_peer_samples_per_s'])}"
            f"/s).{step}{paired}"
        )
    return out


def _paired_percent(rounds: dict[str, float] | None) -> str:
    """`` (paired round by round: median M, quartiles P25-P75)`` in percent ("" if unpaired)."""
    if not rounds:
        return ""
    return (
        f" (paired round by round: median {fmt_percent(rounds['median'])}, quartiles "
        f"{fmt_percent(rounds['p25'])}-{fmt_percent(rounds['p75'])})"
    )


def _fused_full_batch(recs: dict[tuple, Record], workload: str) -> Record | None:
    """fnn fused's full-batch throughput record of ``workload`` (None: not measured)."""
    return next((r for (w, i, _), r in recs.items() if w == workload and i == "fnn_fused"
                 and r["mode"] == "full"), None)  # fmt: skip


def _full_batch_shortfall(
    results: dict[str, Any], target: dict[str, Any], recs: dict[tuple, Record]
) -> list[str]:
    """Full batch: :func:`_full_batch_line` for fnn fused's full-batch record."""
    w = target["workload"]
    full = _fused_full_batch(recs, w)
    if not full:
        return []
    row = _summary_row(results, w, full["batch_size"])
    peak_n = results["meta"]["matmul_peak"].get("n")
    return [_full_batch_line(full, row, target["threshold"], peak_n)]


def _matmuls_shortfall(
    results: dict[str, Any], target: dict[str, Any], recs: dict[tuple, Record]
) -> list[str]:
    """Full batch: the whole step against the speed of its own matmuls, timed alone."""
    w = target["workload"]
    full = _fused_full_batch(recs, w)
    if not full or not full.get("matmul_bound"):
        return []
    row = _summary_row(results, w, full["batch_size"])
    paired = _paired_percent(row.get("fnn_vs_matmul_bound_per_round"))
    return [
        f"- **{w}, full batch**: the fnn step runs at "
        f"{fmt_percent(full.get('fraction_of_matmul_bound'))} of the speed of its own "
        f"{len(full['matmul_bound']['shapes'])} matmuls timed alone{paired}, under the "
        f"{fmt_percent(target['threshold'])} target: the work around them (elementwise ops, "
        f"the loss, the update, the loop) takes the rest."
    ]


def _iterable_shortfall(
    results: dict[str, Any], target: dict[str, Any], recs: dict[tuple, Record]
) -> list[str]:
    """Batch 256: fnn fed by Grain against in memory, and which part of the epoch is the gap."""
    del recs
    row = _summary_row(results, target["workload"], TARGET_ITERABLE_BATCH)
    key = "fnn_iterable_vs_in_memory"
    head = (
        f"- **batch {TARGET_ITERABLE_BATCH}, Grain loader**: fnn fed by Grain runs at "
        + _paired_text(row[key], row.get(f"{key}_per_round"), "the in-memory fused path")
    )
    text = iterable_breakdown_text(row)
    d = row.get("fnn_iterable_breakdown") or {}
    parts = {"reading the batches from the Grain loader": d.get("read_s"),
             "starting and closing the loader's iterator": d.get("call_s"),
             "stacking and copying the batches to the device": d.get("copy_s"),
             "fnn's handling of each batch": d.get("rest_s")}  # fmt: skip
    known = {k: v for k, v in parts.items() if v is not None}
    verdict = ""
    if known and d["epoch_s"] > d["in_memory_s"]:
        name, part = max(known.items(), key=lambda kv: kv[1])
        share = part / (d["epoch_s"] - d["in_memory_s"])
        verdict = f" The largest part of the gap is {name} ({fmt_percent(share)} of it)."
    return [head + (f": {text}." if text else ".") + verdict]


_SHORTFALLS: dict[TargetId, Shortfall] = {
    TargetId.SGD_VS_HAND_LOOP: _sgd_shortfall,
    TargetId.VS_BEST_PEER: _peer_shortfall,
    TargetId.FULL_BATCH_PEAK: _full_batch_shortfall,
    TargetId.FULL_BATCH_MATMULS: _matmuls_shortfall,
    TargetId.ITERABLE_VS_IN_MEMORY: _iterable_shortfall,
}


def shortfall_lines(results: dict[str, Any]) -> list[str]:
    """Explains failed targets from the measurements (per-step time vs FLOPs at peak)."""
    recs = {
        (r["workload"], r["implementation"], r["batch_size"]): r
        for r in where(results["records"], benchmark="throughput", status="ok")
    }
    out = []
    for t in results["summary"]["targets"]:
        if t["passed"] is False:
            out += _SHORTFALLS[TargetId(t["id"])](results, t, recs)
    return out


def _shape(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _full_batch_line(full: Record, row: dict[str, Any], target: float, peak_n: int | None) -> str:
    """Why the full-batch step misses the peak target, from the step's own matmul bound."""
    share = fmt_percent(full.get("fraction_of_peak"))
    head = f"- **{full['workload']}, full batch, matmul peak**: {share} of the measured peak."
    bound = full.get("matmul_bound")
    if not bound:
        return (
            f"{head} The peak is one large square matmul, a training step a chain of smaller "
            f"ones plus elementwise work; the step's matmuls alone were not timed here (only "
            f"at full batch, and not for a step that loops over them), so the share of each "
            f"is not known."
        )
    shapes = bound["shapes"]
    narrow = min(shapes, key=lambda pair: min(min(pair[0]), min(pair[1])))
    q = bound["fraction_of_peak"]
    r = full.get("fraction_of_matmul_bound")
    paired = _paired_percent(row.get("fnn_vs_matmul_bound_per_round"))
    verdict = (
        f"Even a step that did nothing but its matmuls would reach only {fmt_percent(q)}, "
        f"under the {fmt_percent(target)} target: most of the gap is in the matmul kernels at "
        f"these shapes, not in fnn's loop."
        if q is not None and q < target
        else "The rest of the gap is in the work around the matmuls."
    )
    around = (
        "so the work around them (elementwise ops, the loss, the update, the loop) costs next "
        "to nothing"
        if r is not None and r >= 0.98
        else "the work around them (elementwise ops, the loss, the update, the loop) takes the rest"
    )
    return (
        f"{head} The step's {len(shapes)} matmuls alone (the same shapes on random operands, "
        f"one program, timed in the same rounds) run at {fmt_percent(q)} of it: the peak is one "
        f"square {peak_n}-wide matmul, while the step's are skinny, from "
        f"{_shape(shapes[0][0])} x {_shape(shapes[0][1])} down to {_shape(narrow[0])} x "
        f"{_shape(narrow[1])}. The whole fnn step runs at {fmt_percent(r)} of the speed of its "
        f"own matmuls{paired}: {around}. {verdict}"
    )


def markdown_report(results: dict[str, Any], plots: list[Path] | None = None) -> str:
    """The Markdown report (``report.md``)."""
    meta = results["meta"]
    parts = [
        "# fnn benchmark: batch vs stochastic vs mini-batch gradient descent",
        f"`{meta['command'].strip()}`, started {meta['started_at']}.",
        "\n".join(f"- {line}" for line in _header_lines(results)),
        "## Which batch size reaches the target accuracy fastest, and why",
        "\n".join(answer_lines(results)) or "(time to accuracy not measured)",
    ]
    block = targets_table(results, True)
    if block:
        parts += [f"## {block[0]}", block[1]]
        shortfalls = shortfall_lines(results)
        if shortfalls:
            parts += ["### Where fnn falls short, and why", "\n".join(shortfalls)]
    for title, table in throughput_tables(results, markdown=True):
        parts += [f"## {title}", table]
    nnx = nnx_lines(results)
    if nnx:
        parts += ["## fnn on Flax NNX modules", "\n".join(f"- {line}" for line in nnx)]
    variants = variant_lines(results)
    if variants:
        parts += ["## fnn with bf16 compute, and fed by a Grain loader",
                  "\n".join(f"- {line.strip()}" if not line.startswith("  ") else
                            f"  - {line.strip()}" for line in variants)]  # fmt: skip
    block = tta_table(results, True)
    if block:
        parts += [f"## {block[0]}", block[1]]
    for title, table in noise_table(results, True):
        parts += [f"## {title}", table]
    if plots:
        parts.append("## Plots")
        parts += [f"![{p.stem}]({p.name})" for p in plots]
    skipped = _skipped_lines(results)
    if skipped:
        parts += ["## Skipped", "\n".join(f"- {s}" for s in skipped)]
    parts += ["## Method", METHOD]
    return "\n\n".join(parts) + "\n"


def console_report(results: dict[str, Any]) -> str:
    """The plain-text tables printed at the end of a run."""
    parts = ["\n".join(_header_lines(results))]
    for title, table in throughput_tables(results, markdown=False):
        parts.append(f"{title}\n{table}")
    blocks = (
        tta_table(results, False),
        *noise_table(results, False),
        targets_table(results, False),
    )
    for block in blocks:
        if block:
            parts.append(f"{block[0]}\n{block[1]}")
    parts += ["\n".join(answer_lines(results) + nnx_lines(results) + variant_lines(results))]
    skipped = _skipped_lines(results)
    if skipped:
        parts.append("\n".join(skipped))
    return "\n\n".join(parts)


METHOD = """\
- **Same work everywhere**: every implementation trains the same model shapes with SGD
  (momentum 0.9, the same learning rate) and cross-entropy on the same arrays; images are NCHW
  for PyTorch only.
- **Throughput**: each implementation first trains one epoch (compilation included:
  `first_epoch_s`), then one calibration epoch (`compile_s` = first - calibration). A timed
  repeat is whole epochs lasting at least `min_repeat_s`; repeats are interleaved across
  implementations in the rounds of a Williams design (E. J. Williams, 1949), so drift of the
  machine hits all alike and, over a whole cycle of rounds, each implementation takes each
  place in a round and follows each other one equally often; the median and the spread are
  reported.
- **FLOPs** are model FLOPs: 2 x the multiply-adds of the matmuls and convolutions of one
  training step of the reference Flax model, read from its jaxpr (scans times their length).
  `fraction_of_peak` divides by the f32 matmul peak (a jitted `jnp.dot` of two square
  matrices), measured before, between and after the measurement groups; the best is used.
- **The step's matmuls alone** (full batch): the matmuls and convolutions of one training
  step, read from its jaxpr, run as one program on random operands of the same shapes and
  timed in the same interleaved rounds as the implementations. `fraction_of_matmul_bound` is
  a step's speed against it: near 100% means the rest of the step costs next to nothing, and
  the gap to the peak lies in the matmul kernels at the step's shapes. Not measured for steps
  that loop over their matmuls (the LSTM).
- **Flax NNX**: `fnn fused (NNX)` trains the same network written with `flax.nnx` layers
  through `fnn.fit` (the module behind `fnn.train.NnxModel`); `hand NNX loop` is the loop of
  Flax's NNX tutorial (`nnx.Optimizer(model, tx, wrt=nnx.Param)`, an `@nnx.jit` step, a
  Python loop over NumPy batches). fnn on NNX / fnn on linen is the cost of the NNX seam:
  both run the same engine, timed in the same rounds.
- **bf16 compute**: `fnn fused (bf16)` is the same network and `fnn.fit` call with the model
  built with `dtype=jnp.bfloat16` (float32 parameters and optimizer state; fit computes the
  loss in float32). FLOPs and `fraction_of_peak` are counted as for float32.
- **Grain loader**: `fnn, Grain loader` trains the same network through `fnn.fit` on an
  iterable: `fnn.data.grain_loader(ArraySource(x, y), batch_size=B, num_epochs=None,
  shuffle=True, drop_remainder=True)`, one `fit(state, iterator, epochs=k,
  steps_per_epoch=n // B)` per timed repeat on a new iterator that continues where the last
  one stopped (an iterator kept open would read ahead while the others are timed). After its
  repeats, an iterator's cost per fit call (`input_call_s`: starting it, and closing it,
  which waits for the batch it reads ahead), reading one epoch's batches from it alone
  (`input_read_epoch_s`), reading the same batches straight from the source by index, without
  Grain (`input_source_epoch_s`), and stacking and copying them to the device
  (`input_copy_epoch_s`) are timed on their own; the report sets them against the extra time
  per epoch over the in-memory fused path.
- **Time to accuracy**: trained one epoch per call, the test set evaluated after every epoch
  (evaluation not timed); the first epoch is counted at the steady-state epoch time (its
  compile cost is reported separately). `final_loss_at_budget` is the training-set loss after
  a fixed number of examples.
- **Epoch length**: `--quick` caps a throughput epoch at 512 steps (`--full`: 2048), so at
  small batch sizes an epoch is the first `512 x batch` examples; samples/s in steady state
  does not depend on it, the run time does.
- **Noise scale**: B_simple = tr(Sigma) / |G|^2 (McCandlish et al., arXiv:1812.06162), from
  squared gradient norms at two batch sizes (Appendix A), checked against the exact value over
  all per-example gradients.
- **Memory**: `peak_memory_bytes` is the process high-water mark (device `peak_bytes_in_use`
  where the backend reports it, else host max RSS); `memory_delta_bytes` the RSS growth over
  one implementation's setup and first epoch.
- PyTorch runs with `OMP_WAIT_POLICY=PASSIVE` (unless set): its OpenMP workers otherwise spin
  after each parallel region and fight XLA's threads in the same process.
- Rerun on a GPU or TPU host with the same command; the device is detected and recorded.
"""
