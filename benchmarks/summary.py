"""Derived numbers and the target policy: ratios to peers, the target checks, the fastest batch.

:func:`summarize` gives ``results["summary"]``. Each target is identified by its
:class:`TargetId` (``summary["targets"][i]["id"]``); its ``"target"`` text is for readers only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from benchmarks.harness import spread
from benchmarks.records import Record, groups, ok, where

__all__ = [
    "TARGET_FULL_PEAK",
    "TARGET_ITERABLE_BATCH",
    "TARGET_ITERABLE_VS_IN_MEMORY",
    "TARGET_SGD_SPEEDUP",
    "TARGET_VS_BEST_PEER",
    "TargetId",
    "summarize",
]

TARGET_SGD_SPEEDUP = 3.0
TARGET_VS_BEST_PEER = 1.0
TARGET_FULL_PEAK = 0.70
TARGET_ITERABLE_VS_IN_MEMORY = 0.8
TARGET_ITERABLE_BATCH = 256  # on CPU
TARGET_WORKLOAD = "mlp"  # the targets are defined on the MLP of the target table


class TargetId(StrEnum):
    """The targets fnn is held to (on :data:`TARGET_WORKLOAD`)."""

    SGD_VS_HAND_LOOP = "sgd_vs_hand_loop"
    """batch 1: fnn fused >= :data:`TARGET_SGD_SPEEDUP` x the hand-written Flax loop."""
    VS_BEST_PEER = "vs_best_peer"
    """every batch size: fnn fused >= :data:`TARGET_VS_BEST_PEER` x the fastest peer."""
    FULL_BATCH_PEAK = "full_batch_peak"
    """full batch: fnn fused >= :data:`TARGET_FULL_PEAK` of the measured matmul peak."""
    ITERABLE_VS_IN_MEMORY = "iterable_vs_in_memory"
    """batch :data:`TARGET_ITERABLE_BATCH` on CPU: fnn fed by a Grain loader >=
    :data:`TARGET_ITERABLE_VS_IN_MEMORY` x fnn fused on in-memory arrays (not measured on
    other devices)."""


def _paired_ratios(a: dict[str, Any], b: dict[str, Any]) -> list[float]:
    """Per-round ratios ``a / b`` of two implementations' repeats.

    Repeat ``i`` of every implementation is timed in the same round of the interleaved order,
    so the ratio of the two is paired: the machine's slow drift, which moves both, cancels.
    """
    ra, rb = a.get("samples_per_s_repeats") or [], b.get("samples_per_s_repeats") or []
    return [x / y for x, y in zip(ra, rb, strict=False) if y]


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    return a["samples_per_s"] / b["samples_per_s"] if a and b and b["samples_per_s"] else None


def _versus(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> dict[str, Any]:
    """``{key: a / b, key + "_per_round": spread of the per-round ratios}`` (None without
    both)."""
    return {
        key: _ratio(a, b),
        f"{key}_per_round": spread(_paired_ratios(a, b) if a and b else []),
    }


def _nnx_fields(by_impl: dict[str, Record]) -> dict[str, Any]:
    """fnn fused on the NNX network against fnn fused on the linen one (the engine's cost of
    the NNX seam) and against the hand-written NNX loop, both paired round by round."""
    nnx, fused, loop = (by_impl.get(i) for i in ("fnn_fused_nnx", "fnn_fused", "nnx_loop"))
    return {
        "fnn_nnx_samples_per_s": nnx["samples_per_s"] if nnx else None,
        **_versus(nnx, fused, "fnn_nnx_vs_linen"),
        **_versus(nnx, loop, "fnn_nnx_vs_nnx_loop"),
    }


def _iterable_breakdown(it: Record | None, fused: Record | None) -> dict[str, Any] | None:
    """Where an epoch of fnn fed by Grain goes, in seconds per epoch of its examples: the
    in-memory fused path's time for them; the loader's iterator's cost per fit call (spread
    over the epochs of a repeat), reading the batches (and, for comparison, reading them from
    the source without Grain), and stacking and copying them to the device, each timed alone;
    the rest (fnn's per-batch handling and dispatch, negative where the parts overlap); and
    both first-epoch compile costs."""
    if not (it and fused and it.get("samples_per_epoch")):
        return None
    epoch_s = it["samples_per_epoch"] / it["samples_per_s"]
    in_memory_s = it["samples_per_epoch"] / fused["samples_per_s"]
    parts = [it.get(k) for k in ("input_call_s", "input_read_epoch_s", "input_copy_epoch_s")]
    call_s = read_s = copy_s = rest_s = None
    if None not in parts:
        call_s = parts[0] / max(1, it.get("epochs_per_repeat") or 1)
        read_s, copy_s = parts[1], parts[2]
        rest_s = epoch_s - in_memory_s - call_s - read_s - copy_s
    return {
        "steps_per_epoch": it.get("steps_per_epoch"),
        "epochs_per_repeat": it.get("epochs_per_repeat"),
        "epoch_s": epoch_s,
        "in_memory_s": in_memory_s,
        "call_s": call_s,
        "read_s": read_s,
        "source_s": it.get("input_source_epoch_s"),
        "copy_s": copy_s,
        "rest_s": rest_s,
        "compile_s": it.get("compile_s"),
        "in_memory_compile_s": fused.get("compile_s"),
    }


def _variant_fields(by_impl: dict[str, Record]) -> dict[str, Any]:
    """fnn fused with bf16 compute, and fnn fed by a Grain loader, each against fnn fused
    (float32, in-memory arrays), paired round by round."""
    bf16, it, fused = (by_impl.get(i) for i in ("fnn_fused_bf16", "fnn_iterable", "fnn_fused"))
    return {
        "fnn_bf16_samples_per_s": bf16["samples_per_s"] if bf16 else None,
        **_versus(bf16, fused, "fnn_bf16_vs_f32"),
        "fnn_iterable_samples_per_s": it["samples_per_s"] if it else None,
        **_versus(it, fused, "fnn_iterable_vs_in_memory"),
        "fnn_iterable_breakdown": _iterable_breakdown(it, fused),
    }


def _throughput_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per workload x batch size: fnn fused against its best peer, the hand loop, the
    matmul peak and the step's own matmuls; fnn on the NNX network against fnn on linen, fnn
    with bf16 compute and fnn fed by Grain against fnn fused."""
    recs: list[Record] = where(results["records"], benchmark="throughput")
    rows = []
    for workload, b in groups(recs, ("workload", "batch_size")):
        group = ok(recs, workload=workload, batch_size=b)
        by_impl = {r["implementation"]: r for r in group}
        peers = [r for r in group if r["family"] != "fnn"]
        best = max(peers, key=lambda r: r["samples_per_s"], default=None)
        fused = by_impl.get("fnn_fused")
        loop = by_impl.get("flax_loop")
        fused_s = fused["samples_per_s"] if fused else None
        paired = _paired_ratios(fused, best) if fused and best else []
        bound = fused.get("matmul_bound") if fused else None
        bound_paired = _paired_ratios(fused, bound) if bound else []
        rows.append(
            {
                "workload": workload,
                "batch_size": b,
                "mode": next(r["mode"] for r in recs if r["batch_size"] == b),
                "fnn_fused_samples_per_s": fused_s,
                "best_peer": best["implementation"] if best else None,
                "best_peer_samples_per_s": best["samples_per_s"] if best else None,
                "fnn_vs_best_peer": fused_s / best["samples_per_s"] if fused and best else None,
                "fnn_vs_best_peer_per_round": spread(paired),
                "fnn_vs_flax_loop": fused_s / loop["samples_per_s"] if fused and loop else None,
                "fnn_fraction_of_peak": fused.get("fraction_of_peak") if fused else None,
                "fnn_fraction_of_matmul_bound": (
                    fused.get("fraction_of_matmul_bound") if fused else None
                ),
                "fnn_vs_matmul_bound_per_round": spread(bound_paired),
                "matmul_bound_fraction_of_peak": bound.get("fraction_of_peak") if bound else None,
                **_nnx_fields(by_impl),
                **_variant_fields(by_impl),
            }
        )
    return rows


def _target(
    target_id: TargetId, text: str, threshold: float, measured: float | None, **extra: Any
) -> dict[str, Any]:
    """One target check: passed is None when ``measured`` is."""
    return {
        "id": target_id.value,
        "workload": TARGET_WORKLOAD,
        "target": text,
        "threshold": threshold,
        "measured": measured,
        "passed": None if measured is None else bool(measured >= threshold),
        **extra,
    }


def _targets(rows: list[dict[str, Any]], platform: str | None) -> list[dict[str, Any]]:
    """The checks of :class:`TargetId` on the throughput rows (none without the MLP)."""
    rows = [r for r in rows if r["workload"] == TARGET_WORKLOAD]
    if not rows:
        return []
    sgd = next((r for r in rows if r["mode"] == "sgd"), None)
    full = next((r for r in rows if r["mode"] == "full"), None)
    at = next((r for r in rows if r["batch_size"] == TARGET_ITERABLE_BATCH), None)
    on_cpu = platform in (None, "cpu")
    peer = [r for r in rows if r["fnn_vs_best_peer"] is not None]
    worst = min(peer, key=lambda r: r["fnn_vs_best_peer"], default=None)
    return [
        _target(
            TargetId.SGD_VS_HAND_LOOP,
            "batch 1: fnn fused >= 3x the hand-written Flax loop",
            TARGET_SGD_SPEEDUP,
            sgd["fnn_vs_flax_loop"] if sgd else None,
        ),
        _target(
            TargetId.VS_BEST_PEER,
            "every batch size: fnn fused >= 1.0x the best peer",
            TARGET_VS_BEST_PEER,
            worst["fnn_vs_best_peer"] if worst else None,
            worst_batch_size=worst["batch_size"] if worst else None,
            per_batch={str(r["batch_size"]): r["fnn_vs_best_peer"] for r in peer},
            per_batch_per_round={
                str(r["batch_size"]): r["fnn_vs_best_peer_per_round"] for r in peer
            },
        ),
        _target(
            TargetId.FULL_BATCH_PEAK,
            "full batch: fnn fused >= 70% of the measured matmul peak",
            TARGET_FULL_PEAK,
            full["fnn_fraction_of_peak"] if full else None,
        ),
        _target(
            TargetId.ITERABLE_VS_IN_MEMORY,
            f"batch {TARGET_ITERABLE_BATCH} on CPU: fnn fed by a Grain loader >= "
            f"{TARGET_ITERABLE_VS_IN_MEMORY}x fnn fused on in-memory arrays",
            TARGET_ITERABLE_VS_IN_MEMORY,
            at["fnn_iterable_vs_in_memory"] if at and on_cpu else None,
            batch_size=TARGET_ITERABLE_BATCH,
        ),
    ]


def _tta_best(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per workload x implementation: the batch size that reached the target accuracy first."""
    recs = where(results["records"], benchmark="time_to_accuracy", status="ok")
    out = []
    for (workload, impl), group in groups(recs, ("workload", "implementation")).items():
        reached = [r for r in group if r.get("time_to_target_s") is not None]
        best = min(reached, key=lambda r: r["time_to_target_s"], default=None)
        out.append(
            {
                "workload": workload,
                "implementation": impl,
                "target_accuracy": group[0].get("target_accuracy"),
                "best_batch_size": best["batch_size"] if best else None,
                "best_mode": best["mode"] if best else None,
                "time_to_target_s": best["time_to_target_s"] if best else None,
                "epochs_to_target": best["epochs_to_target"] if best else None,
            }
        )
    return out


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Derived numbers: fnn vs peers per batch size, the target checks, the fastest batch."""
    rows = _throughput_rows(results)
    platform = results.get("meta", {}).get("device", {}).get("platform")
    return {
        "throughput": rows,
        "targets": _targets(rows, platform),
        "time_to_accuracy": _tta_best(results),
        "noise_scale": [
            {
                "workload": n["workload"],
                "b_simple_at_target": n["b_simple_at_target"],
                "b_simple_exact_at_target": n["b_simple_exact_at_target"],
                "epoch_at_target": n["epoch_at_target"],
            }
            for n in results.get("noise_scale", [])
        ],
    }
