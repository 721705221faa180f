"""One runner per implementation, all with the :class:`Runner` interface.

| implementation | what it is                                                              |
|----------------|-------------------------------------------------------------------------|
| fnn_fused      | ``fnn.fit(..., fused=True)``: one compiled ``lax.scan`` program per epoch |
| fnn_unfused    | ``fnn.fit(..., fused=False)``: Python loop over fnn's jitted train step  |
| fnn_fused_nnx  | ``fnn.fit`` fused, on the same network written in Flax NNX (``NnxModel``) |
| fnn_fused_bf16 | ``fnn.fit`` fused, bfloat16 compute (``dtype=jnp.bfloat16``, f32 params)  |
| fnn_iterable   | ``fnn.fit`` on batches from ``fnn.data.grain_loader`` over the same arrays |
| flax_loop      | hand-written Flax + Optax: ``@jax.jit`` step, Python loop over NumPy batches |
| flax_scan      | hand-written ``lax.scan`` epoch (drops the last partial batch)          |
| nnx_loop       | hand-written Flax NNX: ``nnx.Optimizer``, ``@nnx.jit`` step, Python loop  |
| keras_spe1     | Keras 3, JAX backend, ``steps_per_execution=1``                          |
| keras_spe64    | Keras 3, JAX backend, ``steps_per_execution=64``                         |
| torch_eager    | PyTorch eager, ``torch.optim.SGD``                                       |
"""

from benchmarks.runners.base import Runner as Runner
from benchmarks.runners.base import Unavailable as Unavailable
from benchmarks.runners.fnn_variants import FnnFusedBf16Runner, FnnIterableRunner
from benchmarks.runners.jax_runners import (
    FlaxLoopRunner,
    FlaxScanRunner,
    FnnFusedRunner,
    FnnUnfusedRunner,
)
from benchmarks.runners.keras_peer import KerasRunner, KerasTunedRunner
from benchmarks.runners.nnx_runners import FnnFusedNnxRunner, NnxLoopRunner
from benchmarks.runners.torch_peer import TorchRunner
from benchmarks.workloads import Workload

RUNNERS: dict[str, type[Runner]] = {
    r.implementation: r
    for r in (
        FnnFusedRunner,
        FnnUnfusedRunner,
        FnnFusedNnxRunner,
        FnnFusedBf16Runner,
        FnnIterableRunner,
        FlaxLoopRunner,
        FlaxScanRunner,
        NnxLoopRunner,
        KerasRunner,
        KerasTunedRunner,
        TorchRunner,
    )
}
FAMILIES: tuple[str, ...] = ("fnn", "flax", "keras", "torch")
PEER_FAMILIES: tuple[str, ...] = ("flax", "keras", "torch")


def implementations(families: tuple[str, ...] | list[str]) -> list[str]:
    """Implementation names of the given families, in table order."""
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown families {unknown}; expected some of {list(FAMILIES)}")
    return [name for name, r in RUNNERS.items() if r.family in families]


def availability(name: str, workload: Workload | None = None) -> str | None:
    """None if implementation ``name`` can run here (on ``workload``, when given), else the
    reason it is skipped."""
    try:
        RUNNERS[name].check_available()
        if workload is not None:
            RUNNERS[name].check_workload(workload)
    except Unavailable as e:
        return str(e)
    return None


__all__ = [
    "FAMILIES",
    "PEER_FAMILIES",
    "RUNNERS",
    "Runner",
    "Unavailable",
    "availability",
    "implementations",
]
