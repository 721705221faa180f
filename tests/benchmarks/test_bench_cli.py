"""Command-line parsing, presets, and one end-to-end --tiny run writing every output."""

import json
from pathlib import Path

import pytest

from benchmarks.cli import build_config, main, parser
from benchmarks.config import PRESETS, parse_batch_sizes
from benchmarks.records import RECORD_FIELDS

FNN = ("fnn_fused", "fnn_unfused", "fnn_fused_nnx", "fnn_fused_bf16", "fnn_iterable")


def _config(*argv):
    return build_config(parser().parse_args(list(argv)))


def test_defaults_to_quick():
    config = _config()
    assert config.preset == "quick"
    assert config == PRESETS["quick"].replace(implementations=config.implementations)
    assert config.repeats >= 5
    assert "torch_eager" in config.implementations and "keras_spe1" in config.implementations


def test_options_override_the_preset(tmp_path):
    config = _config("--full", "--workloads", "mlp,cnn", "--batch-sizes", "1,32,full",
                     "--peers", "keras", "--repeats", "7", "--out", str(tmp_path),
                     "--mnist", "synthetic", "--no-plots", "--seed", "3")  # fmt: skip
    assert config.preset == "full"
    assert config.workloads == ("mlp", "cnn") == config.tta_workloads
    assert config.batch_sizes == (1, 32, "full") == config.tta_batch_sizes
    assert config.implementations == (*FNN, "keras_spe1", "keras_spe64")
    assert "torch_eager" not in config.tta_implementations
    assert (config.repeats, config.out, config.mnist, config.plots, config.seed) == (
        7, tmp_path, "synthetic", False, 3)  # fmt: skip


def test_peers_none_and_all():
    none = _config("--peers", "none").implementations
    assert none == tuple(i for i in FNN if i != "fnn_unfused")  # --full measures it
    assert _config("--full", "--peers", "none").implementations == FNN
    tiny_all = _config("--tiny", "--peers", "all").implementations
    assert {"flax_loop", "flax_scan", "nnx_loop", "keras_spe1", "keras_spe64",
            "torch_eager"} <= set(tiny_all)  # fmt: skip
    # --peers keras drops the hand-written NNX loop (a flax peer), not fnn on NNX.
    assert _config("--tiny", "--peers", "keras").implementations[:2] == (
        "fnn_fused", "fnn_fused_nnx")  # fmt: skip


@pytest.mark.parametrize("argv", [["--workloads", "resnet"], ["--peers", "jax"],
                                  ["--repeats", "0"]])  # fmt: skip
def test_bad_options_exit(argv):
    with pytest.raises(SystemExit):
        _config(*argv)


def test_presets_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["--quick", "--full"])
    capsys.readouterr()


def test_parse_batch_sizes():
    assert parse_batch_sizes("1, 8,FULL") == (1, 8, "full")
    for bad in ("0", "x", ""):
        with pytest.raises(ValueError):
            parse_batch_sizes(bad)


def test_tiny_run_writes_every_output(tmp_path, block_imports, capsys):
    block_imports("keras", "torch")  # peers "not installed"
    out = tmp_path / "out"
    assert main(["--tiny", "--out", str(out), "--quiet", "--peers", "keras,torch"]) == 0
    printed = capsys.readouterr().out
    assert "Throughput" in printed and "Targets" in printed

    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"meta", "records", "noise_scale", "summary"}
    assert results["meta"]["device"]["platform"] in ("cpu", "gpu", "tpu")
    assert results["meta"]["matmul_peak"]["flops_per_s"] > 0
    records = results["records"]
    for rec in records:
        assert set(RECORD_FIELDS) <= set(rec), set(RECORD_FIELDS) - set(rec)

    throughput = [r for r in records if r["benchmark"] == "throughput"]
    assert {(r["implementation"], r["batch_size"]) for r in throughput} == {
        (i, b) for i in ("fnn_fused", "fnn_fused_nnx", "fnn_fused_bf16", "fnn_iterable",
                         "keras_spe1", "keras_spe64", "torch_eager")
        for b in (32, 256)}  # fmt: skip
    for r in throughput:
        if r["family"] in ("keras", "torch"):
            assert r["status"] == "skipped" and "not installed" in r["reason"]
        elif r["status"] == "ok":
            assert r["samples_per_s"] > 0 and r["repeats"] == 2
            assert len(r["samples_per_s_repeats"]) == 2
            assert r["flops_per_s"] > 0 and r["fraction_of_peak"] > 0
            assert r["mode"] == ("full" if r["batch_size"] == 256 else "minibatch")
            assert r["data_source"] == "synthetic" and r["device"] == "cpu"
    # At full batch the step's matmuls alone were timed in the same rounds as fnn.
    (full,) = [r for r in throughput if r["implementation"] == "fnn_fused" and r["mode"] == "full"]
    bound = full["matmul_bound"]
    assert len(bound["samples_per_s_repeats"]) == 2 and bound["samples_per_s"] > 0
    assert 0 < bound["fraction_of_peak"] and len(bound["shapes"]) == 8
    assert bound["flops_per_s"] == pytest.approx(full["flops_per_example"] * bound["samples_per_s"])
    assert full["fraction_of_matmul_bound"] == pytest.approx(
        full["samples_per_s"] / bound["samples_per_s"]
    )
    assert all(r["matmul_bound"] is None for r in throughput if r["mode"] != "full")
    assert "the step's matmuls alone run at" in printed
    # fnn on the NNX network, against fnn on linen, paired round by round; never a peer.
    for row in results["summary"]["throughput"]:
        assert row["fnn_nnx_vs_linen"] > 0 and row["fnn_nnx_vs_linen_per_round"]["median"] > 0
        assert row["best_peer"] != "fnn_fused_nnx"
    assert "fnn fused on the same network written in Flax NNX" in printed
    # bf16 compute and a Grain loader, each against fnn fused, paired; where Grain's time goes.
    for row in results["summary"]["throughput"]:
        assert row["fnn_bf16_vs_f32_per_round"]["median"] > 0
        assert row["fnn_iterable_vs_in_memory_per_round"]["median"] > 0
        assert row["fnn_iterable_breakdown"]["read_s"] > 0
        assert row["best_peer"] not in ("fnn_fused_bf16", "fnn_iterable")
    (grain,) = [
        r for r in throughput if r["implementation"] == "fnn_iterable" and r["mode"] == "full"
    ]
    assert grain["input_read_epoch_s"] > 0 and grain["input_copy_epoch_s"] > 0
    assert all(r["input_read_epoch_s"] is None for r in throughput if r["family"] != "fnn")
    assert "bf16 compute is" in printed and "from the Grain loader alone takes" in printed
    (target,) = [t for t in results["summary"]["targets"] if t["id"] == "iterable_vs_in_memory"]
    at_256 = next(r for r in results["summary"]["throughput"] if r["batch_size"] == 256)
    assert target["measured"] == at_256["fnn_iterable_vs_in_memory"]  # --tiny: 256 is full

    tta = [r for r in records if r["benchmark"] == "time_to_accuracy"]
    assert tta and all(r["dataset"] == "digits" and r["curve"] for r in tta if r["status"] == "ok")
    assert results["noise_scale"][0]["points"]

    report = (out / "report.md").read_text()
    assert "## Targets" in report and "skipped" in report
    assert "## fnn on Flax NNX modules" in report and "fnn NNX/linen" in report
    assert "fnn bf16/f32" in report and "fnn Grain/in-memory" in report
    assert "## fnn with bf16 compute, and fed by a Grain loader" in report
    for png in ("throughput_mlp.png", "accuracy_vs_time_mlp.png", "noise_scale.png"):
        data = Path(out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_device_check_records_ratios_the_batch_1_bound_bf16_and_the_peak(tmp_path, capsys):
    out = tmp_path / "check"
    argv = ["--tiny", "--device-check", "--batch-sizes", "1,full", "--peers", "flax",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    check = json.loads((out / "device_check.json").read_text())
    assert check["device"]["platform"] in ("cpu", "gpu", "tpu")
    assert check["matmul_peak_flops_per_s"] > 0 and check["loop_floor_us"] > 0
    # Every batch size of the preset, fused against the hand loop and the best peer.
    assert {r["batch_size"] for r in check["ratios"]} == {1, 256}
    for r in check["ratios"]:
        assert r["fnn_fused_samples_per_s"] > 0
        assert r["fnn_vs_flax_loop"] > 0 and r["fnn_vs_best_peer"] > 0
        assert r["best_peer"] in ("flax_loop", "flax_scan", "nnx_loop")
    # Batch 1: the fused step against an empty scan iteration, and what bounds it.
    (b1,) = check["batch_1"]
    assert b1["fused_step_us"] > 0 and b1["loop_floor_us"] == check["loop_floor_us"]
    assert b1["bound_by"] == (
        "loop control" if b1["fused_step_us"] <= 1.5 * b1["loop_floor_us"] else "device compute"
    )
    assert {b["batch_size"] for b in check["bf16_vs_f32"]} == {1, 256}
    assert all(b["ratio"] > 0 for b in check["bf16_vs_f32"])
    (full,) = check["full_batch_fraction_of_peak"]
    assert 0 < full["fraction"] and full["fraction_of_own_matmuls"] > 0
    # Time to accuracy and the noise scale are not part of the check; nothing into the checkout.
    text = (out / "device_check.md").read_text()
    assert text.startswith("# Device check: ") and "bound by" in text
    assert "| mlp | 1 |" in text and "fraction of the matmul peak" in text
    assert text in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["device_check.json", "device_check.md"]


def test_quick_measures_every_workload_with_its_own_settings_and_options_override_them():
    quick = _config()
    assert quick.workloads == ("mlp", "logreg", "cnn", "lstm")
    assert quick.for_workload("mlp").batch_sizes == (1, 32, 256, "full")
    for name in ("logreg", "cnn", "lstm"):
        settings = quick.for_workload(name)
        assert settings.batch_sizes == (1, 32, "full") and settings.repeats >= 5
        assert {"fnn_fused", "flax_loop", "keras_spe64", "torch_eager"} <= set(
            settings.implementations
        )
    assert "flax_scan" not in quick.for_workload("cnn").implementations
    forced = _config("--batch-sizes", "8,full", "--repeats", "3")
    for name in forced.workloads:
        assert forced.for_workload(name).batch_sizes == (8, "full")
        assert forced.for_workload(name).repeats == 3
