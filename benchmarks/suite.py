"""Runs a :class:`~benchmarks.config.Config`: throughput, time to accuracy, noise scale.

The result is one JSON-serialisable dict (``results.json``)::

    {"meta": {...}, "records": [...], "noise_scale": [...], "summary": {...}}

with one record per workload x implementation x batch size (a
:class:`~benchmarks.records.Record`).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import optax

from benchmarks import hardware
from benchmarks.config import Config, mode_of, resolve_batch
from benchmarks.harness import measure_throughput, time_to_target
from benchmarks.noise_scale import exact_noise_scale, simple_noise_scale
from benchmarks.records import Record, make_record
from benchmarks.runners import RUNNERS, availability
from benchmarks.runners.jax_runners import (
    FlaxScanRunner,
    MatmulBoundRunner,
    step_matmul_program,
    train_step_flops,
)
from benchmarks.summary import summarize
from benchmarks.workloads import (
    Dataset,
    Workload,
    digits_data,
    get_workload,
    mnist_like_data,
    mnist_source,
)

__all__ = ["run"]

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Progress:
    """A tqdm bar on stderr (or nothing), counting timed units."""

    def __init__(self, total: int, enabled: bool):
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc="benchmarks", unit="run", file=sys.stderr)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(text, refresh=True)

    def tick(self, _name: str = "") -> None:
        if self._bar is not None:
            self._bar.update(1)

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            _stderr(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _record(
    benchmark: str,
    workload: Workload,
    data: Dataset,
    batch_size: int,
    implementation: str,
    **fields: Any,
) -> Record:
    """Every record of the run: what was measured (``fields``: status "ok" unless given) on
    which group; the device fields are filled in at the end of the run (see ``run``)."""
    runner_cls = RUNNERS[implementation]
    n = data.num_train
    group = {
        "benchmark": benchmark,
        "workload": workload.name,
        "model": workload.description,
        "dataset": data.name,
        "data_source": data.source,
        "implementation": implementation,
        "label": runner_cls.label,
        "family": runner_cls.family,
        "batch_size": batch_size,
        "mode": mode_of(batch_size, n),
        "n_train": n,
        "learning_rate": workload.learning_rate(batch_size),
        "status": "ok",
    }
    return make_record(**{**group, **fields})


def _measured_fields(
    runner, b: int, samples_per_s: float | None, flops_per_example: float | None
) -> dict[str, Any]:
    """The fields every measured record has: epoch size, speed, FLOPs and memory so far."""
    return {
        "steps_per_epoch": runner.steps_per_epoch,
        "samples_per_epoch": runner.samples_per_epoch,
        "samples_per_s": samples_per_s,
        "step_time_us": 1e6 * b / samples_per_s if samples_per_s else None,
        **_flops_fields(flops_per_example, samples_per_s),
        **_memory_fields(),
    }


def _flops_fields(flops_per_example: float | None, samples_per_s: float | None) -> dict[str, Any]:
    """FLOP fields; ``fraction_of_peak`` is filled in at the end of the run (see ``run``)."""
    flops_per_s = None
    if flops_per_example is not None and samples_per_s is not None:
        flops_per_s = flops_per_example * samples_per_s
    return {
        "flops_per_example": flops_per_example,
        "flops_per_s": flops_per_s,
        "fraction_of_peak": None,
    }


def _flops_per_example(workload: Workload, data: Dataset, b: int, log: Log) -> float | None:
    try:
        return train_step_flops(workload, data, b) / b
    except Exception as e:  # FLOP counting must never sink a run
        log(f"FLOP count failed for {workload.name} at batch {b}: {e}")
        return None


def _bound_program(workload: Workload, data: Dataset, b: int, log: Log):
    try:
        return step_matmul_program(workload, data, b)
    except Exception as e:  # the bound is an extra; it must never sink a run
        log(f"step matmul program failed for {workload.name} at batch {b}: {e}")
        return None


def _bound_fields(res, program, b: int) -> dict[str, Any] | None:
    """The ``matmul_bound`` field of a full-batch group (``fraction_of_peak`` filled in at the
    end of the run, with the others)."""
    stats = res.stats if res.status == "ok" else None
    if not stats:
        return None
    return {
        "samples_per_s": stats["median"],
        "samples_per_s_spread": stats,
        "samples_per_s_repeats": res.samples_per_s,
        "flops_per_s": program.flops / b * stats["median"],
        "fraction_of_peak": None,
        "shapes": [list(map(list, pair)) for pair in program.shapes],
    }


def _diagnostics(runner, log: Log) -> dict[str, Any]:
    """The runner's extra fields (:meth:`Runner.diagnostics`), measured after its repeats."""
    try:
        return runner.diagnostics()
    except Exception as e:  # diagnostics are extras; they must never sink a run
        log(f"diagnostics of {runner.implementation} failed: {type(e).__name__}: {e}")
        return {}


def _memory_fields() -> dict[str, Any]:
    peak, source = hardware.peak_memory()
    return {"peak_memory_bytes": peak, "memory_source": source}


def _throughput(
    config: Config,
    workload: Workload,
    data: Dataset,
    spec,
    impls: list[str],
    skipped: dict[str, str],
    progress: _Progress,
) -> list[Record]:
    b = resolve_batch(spec, data.num_train)
    cap = config.max_steps_per_epoch
    if cap is not None and b * cap < data.num_train:
        data = dataclasses.replace(
            data, x_train=data.x_train[: b * cap], y_train=data.y_train[: b * cap]
        )
    progress.describe(f"{workload.name} b={b}")
    runnable = [i for i in impls if i not in skipped]
    runners = {i: RUNNERS[i](workload, data, b, seed=config.seed) for i in runnable}
    # At full batch an epoch is one step: its matmuls alone are timed in the same rounds.
    bound = MatmulBoundRunner.implementation
    program = _bound_program(workload, data, b, progress.write) if b == data.num_train else None
    if program is not None and runners:
        runners[bound] = MatmulBoundRunner(workload, data, b, program=program)

    def tick(name: str) -> None:  # the progress total counts implementations only
        if name != bound:
            progress.tick(name)

    results = measure_throughput(
        runners, repeats=config.repeats, min_repeat_s=config.min_repeat_s, tick=tick
    )
    bound_fields = _bound_fields(results[bound], program, b) if bound in results else None
    fpe = _flops_per_example(workload, data, b, progress.write)
    record = functools.partial(_record, "throughput", workload, data, b)
    records = []
    for impl in impls:
        if impl in skipped:
            records.append(record(impl, status="skipped", reason=skipped[impl]))
            continue
        res, runner = results[impl], runners[impl]
        stats = res.stats
        median = stats["median"] if stats else None
        extra = _diagnostics(runner, progress.write) if res.status == "ok" else {}
        rec = record(
            impl,
            status=res.status,
            reason=res.reason,
            **_measured_fields(runner, b, median, fpe),
            samples_per_s_spread=stats,
            samples_per_s_repeats=res.samples_per_s,
            repeats=len(res.repeat_s),
            epochs_per_repeat=res.epochs_per_repeat,
            first_epoch_s=res.first_epoch_s,
            compile_s=res.compile_s,
            memory_delta_bytes=res.memory_delta_bytes,
            matmul_bound=bound_fields,
            fraction_of_matmul_bound=(
                median / bound_fields["samples_per_s"] if median and bound_fields else None
            ),
            **extra,
        )
        records.append(rec)
        runner.close()
    if bound in runners:
        runners[bound].close()
    return records


def _over_budget(
    workload: Workload, data: Dataset, spec, impls: list[str], reason: str
) -> list[Record]:
    """The records of a throughput group left out because the run's time budget was spent."""
    b = resolve_batch(spec, data.num_train)
    return [
        _record("throughput", workload, data, b, impl, status="skipped", reason=reason)
        for impl in impls
    ]


def _tta(
    config: Config,
    workload: Workload,
    data: Dataset,
    spec,
    impl: str,
    skipped: dict[str, str],
    progress: _Progress,
) -> Record:
    b = resolve_batch(spec, data.num_train)
    record = functools.partial(
        _record,
        "time_to_accuracy",
        workload,
        data,
        b,
        impl,
        target_accuracy=workload.target_accuracy,
    )
    if impl in skipped:
        progress.tick()
        return record(status="skipped", reason=skipped[impl])
    progress.describe(f"{workload.name} digits b={b} {impl}")
    runner = RUNNERS[impl](workload, data, b, seed=config.seed)
    try:
        res = time_to_target(
            runner,
            target_accuracy=workload.target_accuracy,
            max_train_s=config.tta_max_train_s,
            budget_epochs=config.tta_budget_epochs,
            max_epochs=config.tta_max_epochs,
        )
    except Exception as e:
        progress.tick()
        return record(status="error", reason=f"{type(e).__name__}: {e}"[:500])
    finally:
        runner.close()
    fpe = _flops_per_example(workload, data, b, progress.write)
    rec = record(
        **_measured_fields(runner, b, res["samples_per_s"], fpe),
        repeats=1,
        first_epoch_s=res["first_epoch_s"],
        compile_s=res["compile_s"],
        time_to_target_s=res["time_to_target_s"],
        epochs_to_target=res["epochs_to_target"],
        final_loss_at_budget=res["final_loss_at_budget"],
        final_accuracy_at_budget=res["final_accuracy_at_budget"],
        budget_examples=res["budget_examples"],
        final_test_accuracy=res["final_test_accuracy"],
        train_s=res["train_s"],
        epochs=res["epochs"],
        curve=res["curve"],
    )
    progress.tick()
    return rec


def noise_scale_trajectory(config: Config, workload: Workload, data: Dataset) -> dict[str, Any]:
    """``B_simple`` along one training run (hand lax.scan, batch 32) of ``workload`` on ``data``.

    At each epoch of ``config.noise_epochs`` the two-batch estimate (McCandlish et al.,
    Appendix A) and the exact value from all per-example gradients are recorded, with the
    test accuracy and training loss there.
    """
    b_train = min(32, data.num_train)
    runner = FlaxScanRunner(workload, data, b_train, seed=config.seed)
    runner.setup()
    apply_fn = runner.state.apply_fn

    def grad_fn(params, xb, yb):
        def loss(p):
            logits = apply_fn({"params": p}, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        return jax.grad(loss)(params)

    b_small, b_big = config.noise_batch_sizes
    b_big = min(b_big, data.num_train)
    b_small = min(b_small, b_big - 1)
    points = []
    for epoch in sorted(set(config.noise_epochs)):
        if epoch > runner.epochs_done:
            runner.run_epochs(epoch - runner.epochs_done)
        params = runner.params
        est = simple_noise_scale(
            grad_fn,
            params,
            data.x_train,
            data.y_train,
            b_small=b_small,
            b_big=b_big,
            draws=config.noise_draws,
            seed=config.seed + epoch,
        )
        exact = exact_noise_scale(grad_fn, params, data.x_train, data.y_train)
        test = runner.evaluate(data.x_test, data.y_test)
        train = runner.evaluate(data.x_train, data.y_train)
        points.append(
            {
                "epoch": epoch,
                "test_accuracy": test["accuracy"],
                "train_loss": train["loss"],
                "b_simple": est.b_simple,
                "grad_sq": est.grad_sq,
                "trace_sigma": est.trace_sigma,
                "b_simple_exact": exact.b_simple,
            }
        )
    runner.close()
    at_target = next(
        (p for p in points if p["test_accuracy"] >= workload.target_accuracy), points[-1]
    )
    return {
        "workload": workload.name,
        "dataset": data.name,
        "trained_with": f"hand lax.scan, batch {b_train}, lr {workload.learning_rate(b_train):g}",
        "b_small": b_small,
        "b_big": b_big,
        "draws": config.noise_draws,
        "target_accuracy": workload.target_accuracy,
        "points": points,
        "b_simple_at_target": at_target["b_simple"],
        "b_simple_exact_at_target": at_target["b_simple_exact"],
        "epoch_at_target": at_target["epoch"],
    }


def _meta(config: Config, argv: list[str] | None, peak: dict, source: str) -> dict[str, Any]:
    return {
        "preset": config.preset,
        "command": "python -m benchmarks " + " ".join(argv or []),
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": hardware.detect_device(),
        "versions": hardware.versions(),
        "matmul_peak": peak,
        "mnist_source": source,
        "config": {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in config.__dict__.items()
            if k not in ("out", "per_workload")
        }
        | {"per_workload": {k: dataclasses.asdict(v) for k, v in config.per_workload.items()}},
    }


def _workload_skips(workload: Workload, impls: list[str], skipped: dict[str, str]):
    """``skipped`` plus the implementations in ``impls`` that have no version of ``workload``."""
    out = dict(skipped)
    for impl in dict.fromkeys(impls):
        if impl not in out and (reason := availability(impl, workload)) is not None:
            out[impl] = reason
    return out


def run(
    config: Config, *, argv: list[str] | None = None, progress: bool = True, log: Log = _stderr
) -> dict[str, Any]:
    """Runs every measurement of ``config``; returns the results dict (nothing is written).

    Args:
      config: what to measure.
      argv: the command-line arguments, recorded in ``meta.command``.
      progress: show a tqdm bar on stderr.
      log: where one-line notes go.
    """
    wall_start = time.perf_counter()
    throughput_impls = {name: list(config.for_workload(name).implementations)
                        for name in config.workloads}  # fmt: skip
    all_impls = [i for impls in throughput_impls.values() for i in impls]
    tta_impls = list(config.tta_implementations)
    skipped = {}
    for impl in dict.fromkeys(all_impls + tta_impls):
        reason = availability(impl)
        if reason is not None:
            skipped[impl] = reason
            log(f"skipping {impl}: {reason}")
    source = mnist_source(config.mnist) if config.workloads else "synthetic"
    peaks = [hardware.matmul_peak(config.peak_n)]

    def sample_peak() -> None:  # between workloads: the peak is the best seen during the run
        peaks.append(hardware.matmul_peak(config.peak_n, repeats=3))

    log(f"device: {hardware.detect_device()['summary']}; f32 matmul peak "
        f"{peaks[0]['flops_per_s'] / 1e9:.1f} GFLOP/s (n={peaks[0]['n']}), re-measured "
        f"between workloads")  # fmt: skip
    meta = _meta(config, argv, peaks[0], source)
    # Per workload, also those with no version of it (e.g. no NNX LSTM).
    skips = {
        name: _workload_skips(get_workload(name), throughput_impls.get(name, []) + tta_impls,
                              skipped)
        for name in dict.fromkeys(config.workloads + config.tta_workloads)
    }  # fmt: skip
    total = sum(
        len(config.for_workload(name).batch_sizes)
        * len([i for i in throughput_impls[name] if i not in skips[name]])
        * (1 + config.for_workload(name).repeats)
        for name in config.workloads
    )
    total += len(config.tta_workloads) * len(config.tta_batch_sizes) * len(tta_impls)
    bar = _Progress(total, progress)
    records: list[Record] = []
    noise: list[dict[str, Any]] = []
    phases = {"throughput_s": 0.0, "time_to_accuracy_s": 0.0, "noise_scale_s": 0.0}
    try:
        t0 = time.perf_counter()
        for name in config.workloads:
            workload = get_workload(name)
            wconfig = config.for_workload(name)
            impls = throughput_impls[name]
            data = mnist_like_data(
                workload, wconfig.n_train, wconfig.n_test, source=source, seed=config.seed
            )
            for spec in wconfig.batch_sizes:
                elapsed = time.perf_counter() - t0
                if config.max_throughput_s is not None and elapsed > config.max_throughput_s:
                    reason = (f"not measured: the run's throughput time budget "
                              f"({config.max_throughput_s:.0f} s) was spent")  # fmt: skip
                    records += _over_budget(workload, data, spec, impls, reason)
                    continue
                records += _throughput(wconfig, workload, data, spec, impls, skips[name], bar)
            sample_peak()
        phases["throughput_s"] = time.perf_counter() - t0
        for name in config.tta_workloads:
            workload = get_workload(name)
            data = digits_data(workload, seed=config.seed, n_train=config.tta_n_train)
            t0 = time.perf_counter()
            for spec in config.tta_batch_sizes:
                for impl in tta_impls:
                    records.append(_tta(config, workload, data, spec, impl, skips[name], bar))
            phases["time_to_accuracy_s"] += time.perf_counter() - t0
            if config.noise_scale:
                bar.describe(f"{name} noise scale")
                t0 = time.perf_counter()
                noise.append(noise_scale_trajectory(config, workload, data))
                phases["noise_scale_s"] += time.perf_counter() - t0
    finally:
        bar.close()
    if not config.workloads:
        sample_peak()
    best = max(peaks, key=lambda p: p["flops_per_s"])
    meta["matmul_peak"] = {
        "flops_per_s": best["flops_per_s"],
        "n": best["n"],
        "dtype": best["dtype"],
        "seconds": best["seconds"],
        "samples_flops_per_s": [p["flops_per_s"] for p in peaks],
    }
    for rec in records:
        if rec.get("flops_per_s") is not None:
            rec["fraction_of_peak"] = rec["flops_per_s"] / best["flops_per_s"]
        if rec.get("matmul_bound"):
            rec["matmul_bound"]["fraction_of_peak"] = (
                rec["matmul_bound"]["flops_per_s"] / best["flops_per_s"]
            )
    device = meta["device"]
    for rec in records:
        rec["device"] = device["platform"]
        rec["device_kind"] = device["device_kind"]
        rec["versions"] = meta["versions"]
    meta["wall_s"] = time.perf_counter() - wall_start
    meta["phases"] = phases

    results = {"meta": meta, "records": records, "noise_scale": noise}
    results["summary"] = summarize(results)
    return results
