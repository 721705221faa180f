"""The gradient noise scale, which predicts the critical batch size.

For a loss ``L(w) = E_i[l_i(w)]`` with true gradient ``G = E_i[grad l_i]`` and per-example
gradient covariance ``Sigma``, the mini-batch gradient ``G_B`` of ``B`` examples drawn with
replacement satisfies

    E |G_B|^2 = |G|^2 + tr(Sigma) / B.

The *simple noise scale* ``B_simple = tr(Sigma) / |G|^2`` is the batch size at which the noise
in ``G_B`` is as large as the signal. McCandlish et al. show that the critical batch size --
above which a larger batch stops cutting the number of steps almost linearly and starts costing
examples instead -- is approximately ``B_simple``: to reach a given loss,

    steps    S = S_min (1 + B_noise / B),      examples  E = E_min (1 + B / B_noise).

Appendix A's estimator, implemented by :func:`estimate_from_norms`, measures ``|G_B|^2`` at a
small and a big batch size and solves the two equations above for unbiased estimates of
``|G|^2`` and ``tr(Sigma)``; each is averaged over draws before taking the ratio.

References:
  McCandlish, Kaplan, Amodei and the OpenAI Dota Team, "An Empirical Model of Large-Batch
  Training", arXiv:1812.06162, 2018.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["NoiseScale", "estimate_from_norms", "exact_noise_scale", "simple_noise_scale"]

GradFn = Callable[[Any, jax.Array, jax.Array], Any]  # (params, x[B, ...], y[B]) -> mean grad


@dataclasses.dataclass(frozen=True)
class NoiseScale:
    """An estimate of ``B_simple = tr(Sigma) / |G|^2``.

    Attributes:
      b_simple: the noise scale (examples); ``inf`` when ``|G|^2`` is estimated <= 0 (at a
        minimum the gradient is all noise).
      grad_sq: estimate of ``|G|^2``.
      trace_sigma: estimate of ``tr(Sigma)``.
      b_small: small batch size used (0 for the exact computation).
      b_big: big batch size used (0 for the exact computation).
      draws: number of (small, big) pairs averaged.
    """

    b_simple: float
    grad_sq: float
    trace_sigma: float
    b_small: int
    b_big: int
    draws: int

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def _ratio(trace_sigma: float, grad_sq: float) -> float:
    return float(trace_sigma / grad_sq) if grad_sq > 0 else float("inf")


def estimate_from_norms(
    sq_small: np.ndarray, sq_big: np.ndarray, b_small: int, b_big: int
) -> NoiseScale:
    """McCandlish et al. Appendix A: ``B_simple`` from squared gradient norms at two batch sizes.

    Args:
      sq_small: ``<float>[draws]`` values of ``|G_{B_small}|^2``.
      sq_big: ``<float>[draws]`` values of ``|G_{B_big}|^2``.
      b_small: the small batch size.
      b_big: the big batch size (> b_small).

    Returns:
      The :class:`NoiseScale`, with ``|G|^2`` and ``tr(Sigma)`` each averaged over draws
      before the ratio (the ratio of means is far less biased than the mean of ratios).
    """
    if not 1 <= b_small < b_big:
        raise ValueError(f"need 1 <= b_small < b_big, got {b_small}, {b_big}")
    sq_small = np.asarray(sq_small, np.float64)
    sq_big = np.asarray(sq_big, np.float64)
    grad_sq = (b_big * sq_big - b_small * sq_small) / (b_big - b_small)
    trace_sigma = (sq_small - sq_big) / (1.0 / b_small - 1.0 / b_big)
    g, s = float(grad_sq.mean()), float(trace_sigma.mean())
    return NoiseScale(_ratio(s, g), g, s, int(b_small), int(b_big), int(sq_small.shape[0]))


def _sq_norm(tree: Any) -> jax.Array:
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(tree))


def simple_noise_scale(
    grad_fn: GradFn,
    params: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    b_small: int,
    b_big: int,
    draws: int,
    seed: int = 0,
) -> NoiseScale:
    """Estimates ``B_simple`` at ``params`` on the data set ``(x, y)``.

    Batches are drawn with replacement, so ``Sigma`` is the covariance of the per-example
    gradients over the data set itself.

    Args:
      grad_fn: ``(params, x_batch, y_batch) -> gradient`` of the *mean* loss over the batch.
      params: where to measure.
      x: ``[n, ...]`` inputs.
      y: ``[n]`` labels.
      b_small: small batch size.
      b_big: big batch size.
      draws: independent (small, big) batch pairs.
      seed: seed of the batch draws.
    """
    rng = np.random.default_rng(seed)
    sq = _batch_sq_norm_fn(grad_fn)
    n = x.shape[0]
    small, big = [], []
    for _ in range(draws):
        i = rng.integers(0, n, b_small)
        j = rng.integers(0, n, b_big)
        small.append(sq(params, x[i], y[i]))
        big.append(sq(params, x[j], y[j]))
    return estimate_from_norms(
        np.asarray(jax.device_get(small)), np.asarray(jax.device_get(big)), b_small, b_big
    )


def exact_noise_scale(
    grad_fn: GradFn, params: Any, x: np.ndarray, y: np.ndarray, *, chunk: int = 128
) -> NoiseScale:
    """``B_simple`` from every per-example gradient of the data set (exact, for checking).

    ``G = mean_i g_i`` and ``tr(Sigma) = mean_i |g_i|^2 - |G|^2``, with per-example gradients
    from ``jax.vmap`` over chunks of ``chunk`` examples.
    """
    fn = _per_example_sums_fn(grad_fn)
    n = x.shape[0]
    chunk = min(chunk, n)
    pad = -n % chunk  # pad the last chunk with weight-0 copies: one compiled shape
    weights = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    x = np.concatenate([x, np.repeat(x[:1], pad, axis=0)])
    y = np.concatenate([y, np.repeat(y[:1], pad, axis=0)])
    total, total_sq = None, 0.0
    for start in range(0, n + pad, chunk):
        part = slice(start, start + chunk)
        g_sum, sq_sum = fn(params, x[part], y[part], weights[part])
        total = g_sum if total is None else jax.tree_util.tree_map(jnp.add, total, g_sum)
        total_sq += float(sq_sum)
    mean = jax.tree_util.tree_map(lambda a: a / n, total)
    grad_sq = float(_sq_norm(mean))
    trace_sigma = total_sq / n - grad_sq
    return NoiseScale(_ratio(trace_sigma, grad_sq), grad_sq, trace_sigma, 0, 0, n)


@functools.lru_cache(maxsize=16)
def _batch_sq_norm_fn(grad_fn: GradFn):
    """Jitted ``|grad_fn(params, x, y)|^2`` (cached per ``grad_fn``: compiled once per shape)."""
    return jax.jit(lambda p, xb, yb: _sq_norm(grad_fn(p, xb, yb)))


@functools.lru_cache(maxsize=16)
def _per_example_sums_fn(grad_fn: GradFn):
    """Jitted ``(sum_i w_i g_i, sum_i w_i |g_i|^2)`` over a chunk (per-example grads by vmap)."""

    def per_example(p, xb, yb, wb):
        g = jax.vmap(lambda xi, yi: grad_fn(p, xi[None], yi[None]))(xb, yb)
        g_sum = jax.tree_util.tree_map(lambda a: jnp.tensordot(wb, a, axes=1), g)
        return g_sum, jnp.sum(wb * _per_row_sq(g))

    return jax.jit(per_example)


def _per_row_sq(tree: Any) -> jax.Array:
    """``<float>[B]`` squared norms of a pytree of stacked per-example gradients."""
    leaves = jax.tree_util.tree_leaves(tree)
    return sum(jnp.sum(jnp.square(a).reshape(a.shape[0], -1), axis=1) for a in leaves)
