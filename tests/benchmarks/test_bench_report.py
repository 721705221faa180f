"""The report's derived numbers: ratios to the best peer, paired per round, and the verdicts."""

import pytest

from benchmarks.report import _shortfall_lines, summarize


def _record(impl, family, batch, repeats, *, mode="minibatch", fraction=None):
    return {
        "benchmark": "throughput",
        "workload": "mlp",
        "implementation": impl,
        "family": family,
        "batch_size": batch,
        "mode": mode,
        "status": "ok",
        "samples_per_s": sorted(repeats)[len(repeats) // 2],
        "samples_per_s_repeats": repeats,
        "fraction_of_peak": fraction,
        "step_time_us": 1e6 * batch / sorted(repeats)[len(repeats) // 2],
        "flops_per_example": 1e5,
    }


def _results(records):
    results = {"records": records, "meta": {"matmul_peak": {"flops_per_s": 1e11}}}
    results["summary"] = summarize(results)
    return results


def test_ratios_to_the_best_peer_are_paired_round_by_round():
    # Round by round fnn is ahead of the scan except in round 3, where the machine slowed both.
    fnn = [100.0, 104.0, 50.0, 98.0, 102.0]
    scan = [96.0, 100.0, 52.0, 100.0, 100.0]
    loop = [80.0, 80.0, 40.0, 79.0, 81.0]
    results = _results([
        _record("fnn_fused", "fnn", 32, fnn),
        _record("flax_scan", "flax", 32, scan),
        _record("flax_loop", "flax", 32, loop),
    ])  # fmt: skip
    (row,) = results["summary"]["throughput"]
    assert row["best_peer"] == "flax_scan"
    assert row["fnn_vs_best_peer"] == pytest.approx(100.0 / 100.0)
    assert row["fnn_vs_flax_loop"] == pytest.approx(100.0 / 80.0)
    per_round = sorted(a / b for a, b in zip(fnn, scan, strict=True))
    assert row["fnn_vs_best_peer_per_round"]["median"] == pytest.approx(per_round[2])
    assert row["fnn_vs_best_peer_per_round"]["min"] == pytest.approx(per_round[0])


@pytest.mark.parametrize(
    ("fnn", "verdict"),
    [
        ([97.0, 101.0, 99.0, 103.0, 95.0], "within the run-to-run noise"),
        ([90.0, 91.0, 89.0, 92.0, 90.0], "so the gap is real"),
    ],
)
def test_a_shortfall_says_whether_it_is_within_the_noise(fnn, verdict):
    scan = [100.0] * 5
    results = _results([
        _record("fnn_fused", "fnn", 32, fnn),
        _record("flax_scan", "flax", 32, scan),
        _record("flax_loop", "flax", 32, [50.0] * 5),
    ])  # fmt: skip
    target = next(t for t in results["summary"]["targets"] if "best peer" in t["target"])
    assert target["passed"] is False and target["worst_batch_size"] == 32
    (line,) = [line for line in _shortfall_lines(results) if "**batch 32**" in line]
    assert verdict in line


def test_targets_pass_and_fail_on_their_thresholds():
    results = _results([
        _record("fnn_fused", "fnn", 1, [30.0] * 5, mode="sgd"),
        _record("flax_loop", "flax", 1, [10.0] * 5, mode="sgd"),
        _record("fnn_fused", "fnn", 4096, [200.0] * 5, mode="full", fraction=0.69),
        _record("flax_loop", "flax", 4096, [190.0] * 5, mode="full"),
    ])  # fmt: skip
    verdicts = {t["target"].split(":")[0]: t["passed"] for t in results["summary"]["targets"]}
    assert verdicts == {"batch 1": True, "every batch size": True, "full batch": False}
