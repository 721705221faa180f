"""``python -m benchmarks``: command-line options and presets."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.config import PRESETS, Config, parse_batch_sizes
from benchmarks.workloads import WORKLOADS

__all__ = ["build_config", "main", "parser"]

PEER_CHOICES = ("flax", "keras", "torch")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parser() -> argparse.ArgumentParser:
    """The argument parser (documented in ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Batch vs stochastic vs mini-batch gradient descent: throughput, time to accuracy "
            "and gradient noise scale of fnn (fused / unfused) against a hand-written Flax loop, "
            "Keras 3 (JAX backend) and PyTorch, measured side by side in one run."
        ),
    )
    preset = p.add_mutually_exclusive_group()
    preset.add_argument(
        "--quick",
        dest="preset",
        action="store_const",
        const="quick",
        help="default: throughput of the MLP at batch 1/32/256/full with every implementation "
        "and of logreg, cnn and lstm (small data) at 1/32/full against the peers that can be "
        "the fastest; "
        "time to accuracy on digits with fnn, noise scale (< 3 min on 2 CPU cores)",
    )
    preset.add_argument(
        "--full",
        dest="preset",
        action="store_const",
        const="full",
        help="all workloads (logreg, mlp, cnn, lstm), batch 1/8/32/128/512/full, "
        "time to accuracy for fnn and peers (tens of minutes on CPU)",
    )
    preset.add_argument(
        "--tiny",
        dest="preset",
        action="store_const",
        const="tiny",
        help="a few seconds: tiny data, 2 repeats, no Keras/PyTorch (used by the tests)",
    )
    p.set_defaults(preset="quick")
    p.add_argument(
        "--workloads",
        type=_csv,
        help=f"comma-separated, some of {','.join(WORKLOADS)} (throughput and time to accuracy)",
    )
    p.add_argument(
        "--batch-sizes",
        type=parse_batch_sizes,
        help="comma-separated batch sizes, 'full' for full-batch GD, e.g. 1,8,32,128,512,full",
    )
    p.add_argument(
        "--peers",
        type=_csv,
        help="peer families to compare with fnn: some of flax,keras,torch, or 'all' / 'none' "
        "(default: the preset's; peers that are not installed are reported as skipped)",
    )
    p.add_argument("--repeats", type=int, help="interleaved timed repeats (default 5 quick)")
    p.add_argument("--out", type=Path, help="output directory (default benchmarks/results)")
    p.add_argument(
        "--mnist",
        choices=("auto", "real", "synthetic"),
        help="MNIST-shaped data: real MNIST when prepared (auto; --full), real, or synthetic "
        "(--quick)",
    )
    p.add_argument("--no-tta", action="store_true", help="skip time to accuracy")
    p.add_argument("--no-noise-scale", action="store_true", help="skip the noise-scale estimate")
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--seed", type=int, help="seed of data, initialisation and shuffling")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--device-check",
        action="store_true",
        help="the device check (< 4 min on a GPU or TPU): the preset's fused / hand-loop / "
        "best-peer ratios, whether the fused batch-1 scan is bound by loop control or the "
        "device, bf16 vs f32, the fraction of the matmul peak; writes device_check.json and "
        "device_check.md into --out (default benchmarks/results/device_check)",
    )
    return p


def _families(peers: list[str] | None) -> set[str] | None:
    """The implementation families ``--peers`` allows (fnn always), or None for the preset's."""
    if peers is None:
        return None
    if peers == ["all"]:
        peers = list(PEER_CHOICES)
    elif peers == ["none"]:
        peers = []
    unknown = sorted(set(peers) - set(PEER_CHOICES))
    if unknown:
        raise SystemExit(f"--peers: unknown {unknown}; choose from {list(PEER_CHOICES)}")
    return {"fnn", *peers}


def _filter(impls: Sequence[str], families: set[str] | None, *, widen: bool) -> tuple[str, ...]:
    """``impls`` restricted to ``families``; with ``widen``, peers of those families are added."""
    from benchmarks.config import ALL_IMPLEMENTATIONS
    from benchmarks.runners import RUNNERS

    if families is None:
        return tuple(impls)
    extra = [i for i in ALL_IMPLEMENTATIONS if widen and RUNNERS[i].family != "fnn"]
    pool = list(dict.fromkeys([*impls, *extra]))
    return tuple(i for i in pool if RUNNERS[i].family in families)


def build_config(args: argparse.Namespace) -> Config:
    """The preset with the command-line overrides applied."""
    config = PRESETS[args.preset]
    changes: dict = {}
    if args.workloads is not None:
        unknown = sorted(set(args.workloads) - set(WORKLOADS))
        if unknown or not args.workloads:
            raise SystemExit(f"--workloads: unknown {unknown}; choose from {list(WORKLOADS)}")
        changes["workloads"] = tuple(args.workloads)
        changes["tta_workloads"] = tuple(args.workloads)
    if args.batch_sizes is not None:
        changes["batch_sizes"] = args.batch_sizes
        changes["tta_batch_sizes"] = args.batch_sizes
    families = _families(args.peers)
    # --peers selects the peers measured for throughput; time to accuracy keeps the preset's
    # list (fnn only in --quick), restricted to the families named.
    changes["implementations"] = _filter(config.implementations, families, widen=True)
    changes["tta_implementations"] = _filter(config.tta_implementations, families, widen=False)
    per_workload = {}
    for name, settings in config.per_workload.items():
        if settings.implementations is not None:
            impls = _filter(settings.implementations, families, widen=True)
            settings = dataclasses.replace(settings, implementations=impls)
        if args.repeats is not None:
            settings = dataclasses.replace(settings, repeats=None)  # --repeats: everywhere
        if args.batch_sizes is not None:
            settings = dataclasses.replace(settings, batch_sizes=None)  # so is --batch-sizes
        per_workload[name] = settings
    changes["per_workload"] = per_workload
    if args.repeats is not None:
        if args.repeats < 1:
            raise SystemExit("--repeats must be >= 1")
        changes["repeats"] = args.repeats
    if args.out is not None:
        changes["out"] = args.out
    if args.mnist is not None:
        changes["mnist"] = args.mnist
    if args.no_tta:
        changes["tta_workloads"] = ()
    if args.no_noise_scale:
        changes["noise_scale"] = False
    if args.no_plots:
        changes["plots"] = False
    if args.seed is not None:
        changes["seed"] = args.seed
    return config.replace(**changes)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark; prints the tables; writes results.json, report.md and plots."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    config = build_config(args)
    start = time.perf_counter()
    if args.device_check:
        from benchmarks.device_check import main as device_check

        return device_check(config, argv=argv, out=args.out, progress=not args.quiet)
    from benchmarks.narrative import console_report
    from benchmarks.outputs import write_outputs
    from benchmarks.suite import run

    results = run(config, argv=argv, progress=not args.quiet)
    written = write_outputs(results, config.out, plots=config.plots)
    print(console_report(results))
    print()
    print(f"wrote {written['json']}")
    print(f"wrote {written['markdown']}")
    for path in written["plots"]:
        print(f"wrote {path}")
    if written["plot_error"]:
        print(written["plot_error"])
    print(f"total wall time {time.perf_counter() - start:.0f} s")
    return 0
