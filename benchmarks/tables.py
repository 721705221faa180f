"""Table formatting: numbers as text, and the result tables as Markdown or console text.

Each table function returns ``(title, table)`` pairs (or one pair, None when there is nothing
to show); ``markdown`` chooses between a Markdown table and right-aligned plain text.
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks.records import Record, groups, where
from benchmarks.summary import TargetId

__all__ = [
    "fmt_percent",
    "fmt_rate",
    "fmt_value",
    "noise_table",
    "targets_table",
    "throughput_tables",
    "tta_table",
]


def fmt_rate(x: float | None) -> str:
    """``19534.2 -> "19.5k"``; ``None -> "-"``."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}" if abs(x) < 100 * scale else f"{x / scale:.0f}{unit}"
    return f"{x:.3g}"


def fmt_value(x: Any, spec: str = ".2f", none: str = "-") -> str:
    """``x`` in format ``spec``; ``none`` for None, ``"inf"`` / ``"nan"`` for non-finite."""
    if x is None:
        return none
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else "nan"
    return format(x, spec)


def fmt_percent(x: float | None) -> str:
    """``0.634 -> "63%"``; ``None -> "-"``."""
    return "-" if x is None else f"{100 * x:.0f}%"


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in
              enumerate(header)]  # fmt: skip
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _batch_label(rec: Record) -> str:
    return f"{rec['batch_size']} (full)" if rec["mode"] == "full" else str(rec["batch_size"])


def _impl_order(records: list[Record]) -> list[str]:
    return list(dict.fromkeys(r["implementation"] for r in records))


def _rate_cell(rec: Record | None) -> str:
    """samples/s ± half the IQR of the repeats, or why there is none."""
    if rec is None or rec["status"] == "skipped":
        return "skipped"
    if rec["status"] != "ok":
        return "error"
    iqr = (rec.get("samples_per_s_spread") or {}).get("rel_iqr")
    pm = f" ±{100 * iqr / 2:.0f}%" if iqr is not None and math.isfinite(iqr) else ""
    return fmt_rate(rec["samples_per_s"]) + pm


def _ratio_cell(x: float | None) -> str:
    return fmt_value(x, ".2f") + ("x" if x else "")


def _paired_cell(x: float | None, rounds: dict[str, float] | None) -> str:
    """The median of the per-round ratios and their quartiles (else the ratio of medians)."""
    if not rounds:
        return _ratio_cell(x)
    return f"{rounds['median']:.2f}x ({rounds['p25']:.2f}-{rounds['p75']:.2f})"


# Columns shown when a run measured them: header -> the summary row's ratio (paired per round).
FNN_VS_FNN_COLUMNS = {
    "fnn NNX/linen": "fnn_nnx_vs_linen",
    "fnn bf16/f32": "fnn_bf16_vs_f32",
    "fnn Grain/in-memory": "fnn_iterable_vs_in_memory",
}


def throughput_tables(results: dict[str, Any], markdown: bool) -> list[tuple[str, str]]:
    """One (title, table) per throughput workload: samples/s per batch size x implementation."""
    recs = where(results["records"], benchmark="throughput")
    summary = {(s["workload"], s["batch_size"]): s for s in results["summary"]["throughput"]}
    out = []
    for (workload,), group in groups(recs, ("workload",)).items():
        impls = _impl_order(group)
        labels = {r["implementation"]: r["label"] for r in group}
        extra = {h: key for h, key in FNN_VS_FNN_COLUMNS.items()
                 if any(s.get(key) for (w, _), s in summary.items() if w == workload)}  # fmt: skip
        header = ["batch", *(labels[i] for i in impls), "fnn/best peer", "fnn/hand loop",
                  "fnn % peak", "fnn % step matmuls", *extra]  # fmt: skip
        rows = []
        for (b,), at_b in groups(group, ("batch_size",)).items():
            cells = {r["implementation"]: r for r in at_b}
            s = summary.get((workload, b), {})
            rows.append(
                [
                    _batch_label(at_b[0]),
                    *(_rate_cell(cells.get(impl)) for impl in impls),
                    _ratio_cell(s.get("fnn_vs_best_peer")),
                    _ratio_cell(s.get("fnn_vs_flax_loop")),
                    fmt_percent(s.get("fnn_fraction_of_peak")),
                    fmt_percent(s.get("fnn_fraction_of_matmul_bound")),
                    *(
                        _paired_cell(s.get(key), s.get(f"{key}_per_round"))
                        for key in extra.values()
                    ),  # fmt: skip
                ]
            )
        first = group[0]
        n_max = max(r["n_train"] for r in group)
        capped = any(r["n_train"] < n_max for r in group)
        title = (
            f"Throughput, samples/s (median of {first.get('repeats') or '?'} interleaved repeats, "
            f"± half the IQR): {workload} = {first['model']}, {n_max} examples of "
            f"{first['dataset']} ({first['data_source']})"
            + ("; small batches: epochs capped in steps" if capped else "")
            + ("; fnn X/Y: median of the per-round ratios (quartiles)" if extra else "")
        )
        out.append((title, _table(header, rows, markdown)))
    return out


def tta_table(results: dict[str, Any], markdown: bool) -> tuple[str, str] | None:
    """Time to accuracy: one row per workload x batch size x implementation."""
    recs = where(results["records"], benchmark="time_to_accuracy")
    if not recs:
        return None
    header = ["workload", "batch", "implementation", "target", "time to target (s)",
              "epochs", "loss @ budget", "test acc (end)", "samples/s", "compile (s)"]  # fmt: skip
    rows = []
    for r in recs:
        if r["status"] != "ok":
            rows.append([r["workload"], _batch_label(r), r["label"], "", r["status"]]
                        + [""] * 5)  # fmt: skip
            continue
        reached = r.get("time_to_target_s")
        rows.append(
            [
                r["workload"],
                _batch_label(r),
                r["label"],
                f"{r['target_accuracy']:.2f}",
                fmt_value(reached, ".2f", none=f"no ({r['epochs']} ep, {r['train_s']:.1f} s)"),
                fmt_value(r.get("epochs_to_target"), "d"),
                fmt_value(r.get("final_loss_at_budget"), ".4f"),
                fmt_value(r.get("final_test_accuracy"), ".3f"),
                fmt_rate(r.get("samples_per_s")),
                fmt_value(r.get("compile_s"), ".2f"),
            ]
        )
    first = recs[0]
    budget = first.get("budget_examples")
    title = (
        f"Time to accuracy on {first['dataset']} ({first['n_train']} training examples; "
        f"loss @ budget = training loss after {budget} examples)"
    )
    return title, _table(header, rows, markdown)


def noise_table(results: dict[str, Any], markdown: bool) -> list[tuple[str, str]]:
    """One (title, table) per noise-scale trajectory: B_simple along training."""
    out = []
    for n in results.get("noise_scale", []):
        header = ["epoch", "test acc", "train loss", "B_simple (2-batch est.)", "B_simple (exact)"]
        rows = [
            [
                str(p["epoch"]),
                f"{p['test_accuracy']:.3f}",
                f"{p['train_loss']:.4f}",
                fmt_value(p["b_simple"], ".1f"),
                fmt_value(p["b_simple_exact"], ".1f"),
            ]
            for p in n["points"]
        ]
        title = (
            f"Gradient noise scale, {n['workload']} on {n['dataset']} ({n['trained_with']}; "
            f"estimate from |G_B|^2 at B={n['b_small']} and {n['b_big']}, {n['draws']} draws)"
        )
        out.append((title, _table(header, rows, markdown)))
    return out


def targets_table(results: dict[str, Any], markdown: bool) -> tuple[str, str] | None:
    """The target checks, workload by workload: what was measured against each target and the
    verdict; a ratio stated rather than held to a threshold gets its reason under the table."""
    targets = results["summary"]["targets"]
    if not targets:
        return None
    rows, notes = [], []
    for t in targets:
        verdict = {True: "PASS", False: "FAIL", None: "not measured"}[t["passed"]]
        measured = t["measured"]
        if measured is None:
            shown = "-"
        elif t["id"] == TargetId.FULL_BATCH_PEAK:
            shown = fmt_percent(measured)
        else:
            shown = f"{measured:.2f}x"
            if t.get("worst_batch_size") is not None:
                shown += f" (worst: batch {t['worst_batch_size']})"
        if t["passed"] is None and t.get("reason"):
            notes.append(t["reason"])
            verdict = f"{'stated' if measured is not None else verdict} [{len(notes)}]"
        rows.append([t["workload"], t["target"], shown, verdict])
    title = "Targets (ratios measured side by side in this run)"
    table = _table(["workload", "target", "measured", "verdict"], rows, markdown)
    if notes:
        table += "\n" + "\n".join(f"[{i}] {note}" for i, note in enumerate(notes, 1))
    return title, table
