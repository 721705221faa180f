"""The noise-scale estimator recovers a known B_simple."""

import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.noise_scale import estimate_from_norms, exact_noise_scale, simple_noise_scale


def test_estimate_from_exact_expectations():
    grad_sq, trace = 4.0, 40.0  # B_simple = 10
    b_small, b_big = 8, 128
    sq_small = np.full(3, grad_sq + trace / b_small)
    sq_big = np.full(3, grad_sq + trace / b_big)
    est = estimate_from_norms(sq_small, sq_big, b_small, b_big)
    assert est.grad_sq == pytest.approx(grad_sq)
    assert est.trace_sigma == pytest.approx(trace)
    assert est.b_simple == pytest.approx(10.0)


def test_estimate_rejects_bad_batch_sizes():
    with pytest.raises(ValueError):
        estimate_from_norms(np.ones(2), np.ones(2), 64, 8)


def _linear_problem(n=4000, d=8, seed=0):
    """Per-example gradient of l_i(w) = w . x_i is x_i: G = mean(x), Sigma = cov(x)."""
    rng = np.random.default_rng(seed)
    mu = np.linspace(0.2, 0.6, d).astype(np.float32)
    sigma = np.linspace(0.5, 1.5, d).astype(np.float32)
    x = (mu + sigma * rng.standard_normal((n, d))).astype(np.float32)
    y = np.zeros(n, np.int32)
    mean = x.mean(0, dtype=np.float64)
    truth = float(x.var(0, dtype=np.float64).sum() / (mean @ mean))

    def grad_fn(params, xb, yb):
        del params, yb
        return {"w": jnp.mean(xb, axis=0)}

    return grad_fn, {"w": jnp.zeros(d)}, x, y, truth


def test_two_batch_estimator_recovers_known_noise_scale():
    grad_fn, params, x, y, truth = _linear_problem()
    est = simple_noise_scale(grad_fn, params, x, y, b_small=4, b_big=256, draws=400, seed=1)
    assert est.b_simple == pytest.approx(truth, rel=0.15)
    assert est.draws == 400 and est.b_small == 4 and est.b_big == 256


def test_exact_noise_scale_matches_population_value():
    grad_fn, params, x, y, truth = _linear_problem(n=1000)
    exact = exact_noise_scale(grad_fn, params, x, y, chunk=128)  # 1000 = 7 * 128 + 104: padded
    assert exact.b_simple == pytest.approx(truth, rel=1e-3)
