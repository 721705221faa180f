"""What the benchmark runs on: device, library versions, matmul peak, FLOP counts, memory.

The matmul peak is *measured* (a jitted ``jnp.dot`` of two large square f32 matrices, best of a
few repeats), not taken from a data sheet, so "fraction of peak" says how close a training mode
runs to what this machine actually delivers on its best-case kernel.

FLOPs are *model* FLOPs: the multiply-adds of every ``dot_general`` and ``conv_general_dilated``
in the jaxpr of one training step (forward, backward and update) of the reference Flax model,
times two. Scans are multiplied by their length (XLA's ``cost_analysis`` counts a loop body
once, which undercounts an LSTM by its sequence length). The same count is used for every
implementation of a workload, so FLOP/s compares useful work, not work done.

The step's own matmul bound (:func:`matmul_program`) is the other yardstick: the matmuls and
convolutions of one training step, with the same shapes, run alone in one program on random
operands. The step's speed against that program says how much of the gap to the
square-matmul peak is in the rest of the step (the elementwise work, the update, the loop) and
how much is in the matmul kernels themselves at the step's shapes. It is a yardstick, not a
strict bound: in the program the matmuls do not depend on one another, so XLA may overlap
them, and the MLP's full-batch step has run at 102-105% of it on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
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
    "MatmulProgram",
    "detect_device",
    "matmul_peak",
    "matmul_program",
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


_MATMULS = ("dot_general", "conv_general_dilated")
_CONTROL_FLOW = ("scan", "while", "cond")


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


def _eqn_flops(eqn) -> int:
    return _dot_flops(eqn) if eqn.primitive.name == "dot_general" else _conv_flops(eqn)


def _jaxpr_flops(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name in _MATMULS:
            total += _eqn_flops(eqn)
        elif name == "scan":
            total += eqn.params["length"] * _jaxpr_flops(eqn.params["jaxpr"].jaxpr)
        elif name == "cond":
            total += max((_jaxpr_flops(b.jaxpr) for b in eqn.params["branches"]), default=0)
        else:  # pjit, custom_jvp/vjp, remat, while (body counted once): recurse
            for sub in _jaxprs_in_params(eqn.params):
                total += _jaxpr_flops(sub)
    return total


def _jaxprs_in_params(params):
    """The jaxprs among an equation's parameters, not recursively (what
    ``jax.extend.core.jaxprs_in_params`` gives, a name that jax 0.7 does not export)."""
    for param in params.values():
        for value in param if isinstance(param, tuple) else (param,):
            if isinstance(value, jex_core.Jaxpr):
                yield value
            elif isinstance(value, jex_core.ClosedJaxpr):
                yield value.jaxpr


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


def _matmul_eqns(jaxpr, out: list) -> bool:
    """Appends the matmul / convolution equations of ``jaxpr`` (nested calls included) to
    ``out``; False when a loop or branch holds some (they do not run once per call)."""
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name in _MATMULS:
            out.append(eqn)
            continue
        subs = list(_jaxprs_in_params(eqn.params))
        if name in _CONTROL_FLOW:
            if any(_jaxpr_flops(sub) for sub in subs):
                return False
        elif not all(_matmul_eqns(sub, out) for sub in subs):
            return False
    return True


@dataclasses.dataclass
class MatmulProgram:
    """The matmuls and convolutions of one call of a function, alone, compiled as one program.

    Calling it runs every one of them once on its own random operands (the same shapes and
    dtypes as in the function) and returns their results; nothing else is computed.

    Attributes:
      shapes: ``(lhs shape, rhs shape)`` of each matmul / convolution, in jaxpr order.
      operands: the ``(lhs, rhs)`` device arrays the program runs on.
      flops: ``2 x`` their multiply-adds (the same count as :func:`count_flops`).
    """

    shapes: list[tuple[tuple[int, ...], tuple[int, ...]]]
    operands: list[tuple[jax.Array, jax.Array]]
    flops: int
    executable: Any

    def __call__(self) -> list[jax.Array]:
        return self.executable(self.operands)

    def compiled_text(self) -> str:
        """The optimized HLO of the program."""
        return self.executable.as_text()


def matmul_program(fn: Callable[..., Any], *args: Any, seed: int = 0) -> MatmulProgram | None:
    """The matmuls and convolutions of one call ``fn(*args)``, as a program of their own.

    Args:
      fn: a JAX-traceable function (it is traced, not run).
      *args: example arguments (arrays or ``jax.ShapeDtypeStruct``).
      seed: seed of the random operands.

    Returns:
      A compiled :class:`MatmulProgram`, or None when ``fn`` has no matmul or has some inside
      a loop or a branch (a recurrent step over time), where one call does not run each once.
    """
    eqns: list = []
    closed = jax.make_jaxpr(fn)(*args)
    if not _matmul_eqns(closed.jaxpr, eqns) or not eqns:
        return None
    avals = [tuple(v.aval for v in eqn.invars[:2]) for eqn in eqns]
    rng = np.random.default_rng(seed)  # on the host: no program to compile per shape
    operands = [
        tuple(jax.device_put(rng.standard_normal(a.shape).astype(a.dtype)) for a in pair)
        for pair in avals
    ]

    def run(ops):
        return [
            eqn.primitive.bind(a, b, **eqn.params) for eqn, (a, b) in zip(eqns, ops, strict=True)
        ]

    return MatmulProgram(
        shapes=[tuple(tuple(a.shape) for a in pair) for pair in avals],
        operands=operands,
        flops=int(sum(_eqn_flops(eqn) for eqn in eqns)),
        executable=jax.jit(run).lower(operands).compile(),
    )


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
