"""Interleaved timing, medians and spread, time to target, on fake runners and a fake clock."""

import numpy as np
import pytest

from benchmarks.harness import interleaved_order, measure_throughput, spread, time_to_target


def _rounds(order, k):
    return [order[i : i + k] for i in range(0, len(order), k)]


def _within_round_followers(order, k):
    """Counts of (previous, next) pairs inside the rounds of ``order``."""
    counts = {}
    for r in _rounds(order, k):
        for a, b in zip(r, r[1:], strict=False):
            counts[a, b] = counts.get((a, b), 0) + 1
    return counts


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6, 7, 8])
def test_interleaved_order_is_balanced_for_carryover(k):
    names = [f"n{i}" for i in range(k)]
    cycle = k if k % 2 == 0 else 2 * k  # a Williams design's length
    order = interleaved_order(names, cycle)
    rounds = _rounds(order, k)
    assert len(rounds) == cycle
    assert all(sorted(r) == sorted(names) for r in rounds)  # each name once per round
    # Each name takes each place in the round equally often.
    for column in zip(*rounds, strict=True):
        assert all(column.count(n) == cycle // k for n in names)
    # Each name directly follows each other name equally often: the one measured just before
    # (whose threads, caches or clock state may linger) is not always the same one.
    counts = _within_round_followers(order, k)
    pairs = [(a, b) for a in names for b in names if a != b]
    assert {counts.get(p, 0) for p in pairs} == {cycle // k}
    assert interleaved_order(names, 2 * cycle) == order + order  # the design repeats


def test_interleaved_order_first_rounds_vary_the_predecessor():
    # The quick preset: 7 implementations, 5 rounds. A rotation by one (A B C, B C A, ...) put
    # the same implementation right before fnn in every round; a balanced design does not.
    names = [f"n{i}" for i in range(7)]
    order = interleaved_order(names, 5)
    before = [r[r.index("n0") - 1] for r in _rounds(order, 7) if r.index("n0") > 0]
    assert len(set(before)) >= 3
    assert [n for n in order[:7]] == ["n0", "n1", "n6", "n2", "n5", "n3", "n4"]


def test_interleaved_order_small_cases():
    assert interleaved_order(["A", "B", "C"], 3) == list("ABCACBCAB")
    assert interleaved_order(["A"], 2) == ["A", "A"]
    assert interleaved_order([], 5) == []


def test_spread_of_known_values():
    s = spread([5.0, 1.0, 3.0, 2.0, 4.0])
    assert s["median"] == 3.0 and s["min"] == 1.0 and s["max"] == 5.0
    assert s["p25"] == 2.0 and s["p75"] == 4.0
    assert s["rel_iqr"] == pytest.approx(2.0 / 3.0)
    assert spread([]) is None


def test_measure_throughput_interleaves_and_takes_medians(make_fake, fake_clock):
    # A: first (compiling) epoch 3 s, then 0.5 s, then repeats 1, 2, 4 s per epoch.
    a = make_fake("A", [3.0, 0.5, 1.0, 2.0, 4.0])
    b = make_fake("B", [1.0, 0.25, 0.5, 0.5, 0.5])
    c = make_fake("C", [2.0, 1.0, 1.0, 3.0, 2.0])
    res = measure_throughput({"A": a, "B": b, "C": c}, repeats=3, min_repeat_s=0.0,
                             clock=fake_clock)  # fmt: skip
    runs = [(name, what) for name, what, _ in make_fake.log]
    setup = [("A", "setup"), ("A", "run"), ("B", "setup"), ("B", "run"), ("C", "setup"),
             ("C", "run")]  # fmt: skip
    assert runs[:6] == setup
    assert [name for name, _ in runs[6:]] == ["A", "B", "C"] + list("ABCACBCAB")
    n = a.samples_per_epoch
    assert res["A"].first_epoch_s == 3.0 and res["A"].warm_epoch_s == 0.5
    assert res["A"].compile_s == pytest.approx(2.5)
    assert res["A"].samples_per_s == pytest.approx([n / 1.0, n / 2.0, n / 4.0])
    assert res["A"].stats["median"] == pytest.approx(n / 2.0)
    assert res["B"].stats["median"] == pytest.approx(n / 0.5)
    assert res["C"].stats["median"] == pytest.approx(n / 2.0)
    assert res["C"].stats["min"] == pytest.approx(n / 3.0)
    assert all(r.status == "ok" and len(r.repeat_s) == 3 for r in res.values())


def test_measure_throughput_groups_short_epochs(make_fake, fake_clock):
    a = make_fake("A", [1.0, 0.01, 0.01])
    res = measure_throughput({"A": a}, repeats=2, min_repeat_s=0.1, clock=fake_clock)
    assert res["A"].epochs_per_repeat == 10
    assert res["A"].samples_per_repeat == 10 * a.samples_per_epoch
    assert res["A"].stats["median"] == pytest.approx(a.samples_per_epoch / 0.01)


def test_measure_throughput_records_errors_and_continues(make_fake, fake_clock):
    bad = make_fake("bad", [1.0], fail_at=2)
    good = make_fake("good", [1.0])
    res = measure_throughput({"bad": bad, "good": good}, repeats=3, min_repeat_s=0.0,
                             clock=fake_clock)  # fmt: skip
    assert res["bad"].status == "error" and "boom" in res["bad"].reason
    assert res["good"].status == "ok" and len(res["good"].repeat_s) == 3


def test_measure_throughput_rejects_zero_repeats(make_fake):
    with pytest.raises(ValueError, match="repeats"):
        measure_throughput({"A": make_fake("A", [1.0])}, repeats=0, min_repeat_s=0.0)


def test_time_to_target(make_fake, fake_clock):
    # 2 s first epoch (compile), then 0.5 s per epoch; accuracy 0.1 per epoch -> 0.9 at epoch 9.
    r = make_fake("A", [2.0, 0.5], accuracy_per_epoch=0.1)
    res = time_to_target(r, target_accuracy=0.9, max_train_s=100.0, budget_epochs=12,
                         max_epochs=1000, clock=fake_clock)  # fmt: skip
    assert res["compile_s"] == pytest.approx(1.5)
    assert res["first_epoch_s"] == pytest.approx(2.0)
    assert res["epochs_to_target"] == 9
    assert res["time_to_target_s"] == pytest.approx(0.5 * 9)
    assert [p["epochs"] for p in res["curve"]] == list(range(13))  # evaluated every epoch
    assert res["final_loss_at_budget"] == pytest.approx(1.0 / 13)
    assert res["budget_examples"] == 12 * r.samples_per_epoch
    assert res["epochs"] == 12  # stops once target and budget are both reached
    assert np.all(np.diff([p["time_s"] for p in res["curve"]]) > 0)
    assert res["samples_per_s"] == pytest.approx(r.samples_per_epoch / 0.5)


def test_time_to_target_reached_after_one_epoch(make_fake, fake_clock):
    r = make_fake("A", [3.0, 1.0], accuracy_per_epoch=0.95)
    res = time_to_target(r, target_accuracy=0.9, max_train_s=100.0, budget_epochs=1,
                         max_epochs=10, clock=fake_clock)  # fmt: skip
    assert res["epochs_to_target"] == 1 and res["time_to_target_s"] == pytest.approx(1.0)
    assert res["final_loss_at_budget"] == pytest.approx(0.5)


def test_time_to_target_not_reached(make_fake, fake_clock):
    r = make_fake("A", [1.0, 1.0], accuracy_per_epoch=0.01)
    res = time_to_target(r, target_accuracy=0.99, max_train_s=5.0, budget_epochs=100,
                         max_epochs=1000, clock=fake_clock)  # fmt: skip
    assert res["time_to_target_s"] is None and res["epochs_to_target"] is None
    assert res["final_loss_at_budget"] is None
    assert res["train_s"] == pytest.approx(5.0) and res["epochs"] == 5
