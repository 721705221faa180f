"""What the benchmark runs on: device, library versions, matmul peak, FLOP counts, memory.

The matmul peak is *measured* (a jitted ``jnp.dot`` of two large square f32 matrices, best of a
few repeats), not taken from a data sheet, so "fraction of peak" says how close a training mode
runs to what this machine actually delivers on its best-case kernel.

FLOPs are *model* FLOPs: the multiply-adds of every ``dot_general`` and ``conv_general_dilated``
in the jaxpr of one training step (forward, backward and update) of the reference Flax model,
times two. Scans are multiplied by their length (XLA's ``cost_analysis`` counts a loop body
once, which undercounts an LSTM by its sequence length). The same count is used for every
implementation of a workload, so FLOP/s compares useful work, not work done.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core

__all__ = [
    "count_flops",
    "current_rss_bytes",
    "detect_device",
    "matmul_peak",
    "peak_memory",
    "versions",
]

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "keras", "torch")


def versions() -> dict[str, str | None]:
    """Versions of Python and of the libraries benchmarked (None for one not installed).

    Read from package metadata, so nothing heavy (Keras, PyTorch) is imported.
    """
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def detect_device() -> dict[str, Any]:
    """The default JAX device: platform (cpu / gpu / tpu), kind, count, host CPU.

    Returns:
      ``{"platform", "device_kind", "device_count", "cpu_count", "cpu_model", "summary"}``;
      ``summary`` is one human-readable line.
    """
    devices = jax.devices()
    dev = devices[0]
    platform_name = dev.platform
    cpu_count = os.cpu_count() or 1
    cpu_model = _cpu_model()
    if platform_name == "cpu":
        summary = f"CPU: {cpu_model}, {cpu_count} cores"
    else:
        summary = f"{len(devices)} x {dev.device_kind} ({platform_name.upper()}); host {cpu_model}"
    return {
        "platform": platform_name,
        "device_kind": dev.device_kind,
        "device_count": len(devices),
        "cpu_count": cpu_count,
        "cpu_model": cpu_model,
        "summary": summary,
    }


def matmul_peak(
    n: int | None = None, *, repeats: int = 5, clock: Callable[[], float] = time.perf_counter
) -> dict[str, Any]:
    """Measures the f32 matmul throughput of the default device.

    Args:
      n: side of the square matrices; None picks 2048 on CPU and 8192 on accelerators.
      repeats: timed calls after one warm-up; the best is reported (the peak is a capability,
        so the least disturbed call is the right estimate).
      clock: time source.

    Returns:
      ``{"flops_per_s", "n", "dtype", "seconds"}`` with ``flops_per_s = 2 n^3 / best time``.
    """
    if n is None:
        n = 2048 if jax.default_backend() == "cpu" else 8192
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (n, n), jnp.float32)
    b = jax.random.normal(key_b, (n, n), jnp.float32)
    matmul = jax.jit(jnp.dot)
    matmul(a, b).block_until_ready()
    times = []
    for _ in range(max(1, repeats)):
        start = clock()
        matmul(a, b).block_until_ready()
        times.append(clock() - start)
    best = max(min(times), 1e-12)
    return {"flops_per_s": 2.0 * n**3 / best, "n": n, "dtype": "float32", "seconds": times}


# ----------------------------------------------------------------------------------------------
# FLOP counting on jaxprs
# ----------------------------------------------------------------------------------------------


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _dot_flops(eqn) -> int:
    lhs, rhs = (v.aval for v in eqn.invars[:2])
    (_, rhs_contract), (_, rhs_batch) = eqn.params["dimension_numbers"]
    rhs_free = _size(rhs.shape) // max(
        1, _size(tuple(rhs.shape[d] for d in (*rhs_contract, *rhs_batch)))
    )
    return 2 * _size(lhs.shape) * rhs_free


def _conv_flops(eqn) -> int:
    rhs = eqn.invars[1].aval
    out = eqn.outvars[0].aval
    rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out feature, in feature, spatial...)
    out_features = rhs.shape[rhs_spec[0]]
    batch_groups = eqn.params.get("batch_group_count", 1)
    per_output = _size(rhs.shape) // max(1, out_features) // max(1, batch_groups)
    return 2 * _size(out.shape) * per_output


def _jaxpr_flops(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "scan":
            total += eqn.params["length"] * _jaxpr_flops(eqn.params["jaxpr"].jaxpr)
        elif name == "cond":
            total += max((_jaxpr_flops(b.jaxpr) for b in eqn.params["branches"]), default=0)
        else:  # pjit, custom_jvp/vjp, remat, while (body counted once): recurse
            for sub in jex_core.jaxprs_in_params(eqn.params):
                total += _jaxpr_flops(sub)
    return total


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Matmul + convolution FLOPs of one call ``fn(*args, **kwargs)``.

    Args:
      fn: a JAX-traceable function (it is traced, not run).
      *args: example arguments (arrays or ``jax.ShapeDtypeStruct``).
      **kwargs: static keyword arguments.

    Returns:
      ``2 x`` the multiply-adds of every ``dot_general`` and ``conv_general_dilated``, with scans
      multiplied by their length.

    Example:
      >>> import jax.numpy as jnp
      >>> count_flops(jnp.dot, jnp.ones((8, 4)), jnp.ones((4, 2)))
      128
    """
    closed = jax.make_jaxpr(lambda *a: fn(*a, **kwargs))(*args)
    return int(_jaxpr_flops(closed.jaxpr))


# ----------------------------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------------------------


def current_rss_bytes() -> int | None:
    """Resident set size of this process now (Linux ``/proc/self/statm``), or None."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_memory() -> tuple[int | None, str]:
    """Peak memory so far: the device's ``peak_bytes_in_use`` if it reports one, else host RSS.

    Returns:
      ``(bytes, source)`` with source ``"device_peak_bytes_in_use"`` or ``"host_max_rss"``.
      Both are process-wide high-water marks since start.
    """
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # backends without memory stats raise various errors
        stats = None
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device_peak_bytes_in_use"
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return int(maxrss) * scale, "host_max_rss"
