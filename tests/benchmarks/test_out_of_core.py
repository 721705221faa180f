"""benchmarks.out_of_core: fit streams a np.memmap from disk, its peak memory flat in the size."""

import json

import pytest

from benchmarks import out_of_core

SMALL, BIG = 4 * 2**20, 68 * 2**20  # bytes of features on disk: 4 MiB and 68 MiB


def _run(out, data, steps_per_chunk: int) -> dict:
    """Both sizes, each trained for one epoch in its own process, streamed in chunks."""
    argv = ["--sizes", "4MiB,68MiB", "--out", str(out), "--data-dir", str(data),
            "--max-device-mb", "1", "--steps-per-chunk", str(steps_per_chunk)]  # fmt: skip
    assert out_of_core.main(argv) == 0
    assert not list(data.iterdir()), "the data files are deleted after each size"
    return json.loads((out / "out_of_core.json").read_text())


def _growth(records) -> tuple[float, float]:
    """MiB that the peak RssAnon grew from the small size to the big one, and MiB of data."""
    small, big = records
    growth = big["peak_RssAnon_mb"] - small["peak_RssAnon_mb"]
    return growth, (big["size_bytes"] - small["size_bytes"]) / 2**20


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Chunks of 2 batches (512 KiB)."""
    out, data = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("data")
    return _run(out, data, steps_per_chunk=2), out


def test_writes_the_json_and_the_plot(results):
    got, out = results
    assert (out / "out_of_core.png").stat().st_size > 0
    assert got["meta"]["batch_size"] == 256 and got["meta"]["max_device_mb"] == 1
    small, big = got["records"]
    for r, size in ((small, SMALL), (big, BIG)):
        assert r["status"] == "ok"
        assert r["size_bytes"] == size and r["examples"] == size // (256 * 4)
        assert r["examples_trained"] == r["examples"] and r["steps"] == r["examples"] // 256
        assert r["x_is_memmap"]
        for field in ("peak_RssAnon_mb", "peak_RssFile_mb", "baseline_RssAnon_mb",
                      "samples_per_s", "fit_s", "loss"):  # fmt: skip
            assert isinstance(r[field], float) and r[field] > 0, field
        assert r["peak"]["VmHWM"] >= r["peak"]["RssAnon"] >= r["baseline"]["RssAnon"]
        assert r["samples"] >= 2  # the sampler thread ran


def test_streams_and_learns(results):
    for r in results[0]["records"]:
        assert r["strategy"] == "streamed", r["strategy_reason"]
        assert "2 batches per chunk" in r["strategy_reason"]
    big = results[0]["records"][1]
    assert big["head_loss_after"] < 0.5 * big["head_loss_before"]


def test_peak_anonymous_memory_does_not_grow_with_the_data(results):
    growth, difference = _growth(results[0]["records"])
    # A JAX process holds ~200 MiB of anonymous memory and two runs of it differ by ~10-20 MiB,
    # so the margin is the size difference itself: holding the data in memory would add at
    # least that much.
    assert growth < difference, (growth, difference)


@pytest.mark.slow
def test_chunks_dispatched_ahead_are_bounded(tmp_path):
    """Chunks of 32 batches (8 MiB): a queue of them grows with the data."""
    got = _run(tmp_path / "out", tmp_path / "data", steps_per_chunk=32)
    assert all(r["strategy"] == "streamed" for r in got["records"])
    growth, difference = _growth(got["records"])
    assert growth < difference, (growth, difference)
