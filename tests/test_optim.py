"""Each optimizer's trajectory against a NumPy re-statement of the textbook update."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn import optim

A = np.array([[3.0, 0.5, 0.0], [0.5, 2.0, -0.3], [0.0, -0.3, 1.0]])
B = np.array([1.0, -2.0, 0.5])
W0 = np.array([0.7, -1.2, 2.5])
STEPS = 6


def grad(w):
    """Gradient of 0.5 w'Aw - b'w + 0.1 sum(w^4): varied magnitudes, so clipping bites."""
    return A @ w - B + 0.4 * w**3


def run_optax(tx, steps=STEPS):
    params = jnp.asarray(W0, jnp.float32)
    state = tx.init(params)
    out = []
    for _ in range(steps):
        g = jnp.asarray(grad(np.asarray(params, np.float64)), jnp.float32)
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.asarray(params))
    return np.stack(out)


def run_numpy(
    lr,
    *,
    momentum=0.0,
    nesterov=False,
    clip_value=None,
    clip_norm=None,
    weight_decay=0.0,
    decoupled=0.0,
    adam=None,
    steps=STEPS,
):
    w = W0.copy()
    v = np.zeros(3)
    m = np.zeros(3)
    s = np.zeros(3)
    out = []
    for t in range(steps):
        g = grad(w)
        if clip_value is not None:
            g = np.clip(g, -clip_value, clip_value)
        if clip_norm is not None:
            norm = np.linalg.norm(g)
            if norm > clip_norm:
                g = g * clip_norm / norm
        g = g + weight_decay * w
        if adam is not None:
            b1, b2, eps = adam
            m = b1 * m + (1 - b1) * g
            s = b2 * s + (1 - b2) * g**2
            u = (m / (1 - b1 ** (t + 1))) / (np.sqrt(s / (1 - b2 ** (t + 1))) + eps)
        elif momentum:
            v = momentum * v + g
            u = g + momentum * v if nesterov else v
        else:
            u = g
        u = u + decoupled * w
        rate = lr(t) if callable(lr) else lr
        w = w - rate * u
        out.append(w.copy())
    return np.stack(out)


CASES = {
    "sgd": (dict(), dict()),
    "momentum": (dict(momentum=0.9), dict(momentum=0.9)),
    "nesterov": (dict(momentum=0.8, nesterov=True), dict(momentum=0.8, nesterov=True)),
    "clip_value": (dict(clip_value=0.5), dict(clip_value=0.5)),
    "clip_norm": (dict(clip_norm=1.0, momentum=0.5), dict(clip_norm=1.0, momentum=0.5)),
    "l2_coupled": (dict(weight_decay=0.3, momentum=0.9), dict(weight_decay=0.3, momentum=0.9)),
    "decoupled": (
        dict(decoupled_weight_decay=0.3, momentum=0.9),
        dict(decoupled=0.3, momentum=0.9),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_sgd_family_matches_numpy(case):
    kwargs, np_kwargs = CASES[case]
    np.testing.assert_allclose(
        run_optax(optim.sgd(0.05, **kwargs)), run_numpy(0.05, **np_kwargs), rtol=2e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs,np_kwargs",
    [
        (dict(), dict()),
        (dict(b1=0.5, b2=0.9, eps=1e-3), dict(adam=(0.5, 0.9, 1e-3))),
        (dict(decoupled_weight_decay=0.1), dict(decoupled=0.1)),
        (dict(weight_decay=0.1, clip_norm=2.0), dict(weight_decay=0.1, clip_norm=2.0)),
    ],
)
def test_adam_matches_numpy(kwargs, np_kwargs):
    np_kwargs.setdefault("adam", (0.9, 0.999, 1e-8))
    np.testing.assert_allclose(
        run_optax(optim.adam(0.1, **kwargs)), run_numpy(0.1, **np_kwargs), rtol=2e-5, atol=1e-6
    )


def test_schedule_drives_the_step_size():
    schedule = optim.exponential_decay(0.1, decay_rate=0.5, decay_steps=2, staircase=True)
    np.testing.assert_allclose(
        run_optax(optim.sgd(schedule, momentum=0.9)),
        run_numpy(lambda t: 0.1 * 0.5 ** (t // 2), momentum=0.9),
        rtol=2e-5,
        atol=1e-6,
    )


STEPS_TO_CHECK = np.array([0, 1, 5, 10, 37, 99, 100, 150, 250])


@pytest.mark.parametrize(
    "schedule,expected",
    [
        (optim.constant(0.3), lambda t: 0.3 + 0 * t),
        (
            optim.exponential_decay(0.2, decay_rate=0.9, decay_steps=10),
            lambda t: 0.2 * 0.9 ** (t / 10),
        ),
        (
            optim.exponential_decay(0.2, decay_rate=0.9, decay_steps=10, staircase=True),
            lambda t: 0.2 * 0.9 ** np.floor(t / 10),
        ),
        (
            optim.step_decay(1.0, boundaries=[10, 100], factor=0.5),
            lambda t: 1.0 * 0.5 ** ((t >= 10).astype(int) + (t >= 100).astype(int)),
        ),
        (
            optim.cosine_decay(0.5, decay_steps=200, alpha=0.1),
            lambda t: 0.5 * (0.9 * 0.5 * (1 + np.cos(np.pi * np.minimum(t, 200) / 200)) + 0.1),
        ),
        (
            optim.warmup_cosine_decay(1.0, warmup_steps=10, decay_steps=210, end_value=0.0),
            lambda t: np.where(
                t < 10,
                t / 10,
                0.5 * (1 + np.cos(np.pi * np.minimum(t - 10, 200) / 200)),
            ),
        ),
    ],
    ids=["constant", "exponential", "staircase", "step", "cosine", "warmup_cosine"],
)
def test_schedule_values(schedule, expected):
    got = np.array([float(schedule(int(t))) for t in STEPS_TO_CHECK])
    np.testing.assert_allclose(got, expected(STEPS_TO_CHECK), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: optim.sgd(-0.1), ValueError, "learning_rate: expected a number >= 0, got -0.1"),
        (
            lambda: optim.sgd("fast"),
            TypeError,
            "learning_rate: expected a float or a schedule, got str",
        ),
        (lambda: optim.sgd(True), TypeError, "learning_rate: expected a number >= 0, got True"),
        (
            lambda: optim.sgd(0.1, momentum=1.0),
            ValueError,
            r"momentum: expected a number in \[0, 1\), got 1.0",
        ),
        (lambda: optim.sgd(0.1, momentum=-0.1), ValueError, "momentum"),
        (
            lambda: optim.sgd(0.1, nesterov=True),
            ValueError,
            r"nesterov: expected False with momentum=0 \(.*momentum > 0\), got True",
        ),
        (
            lambda: optim.sgd(0.1, momentum=0.9, nesterov="yes"),
            TypeError,
            "nesterov: expected True or False, got 'yes'",
        ),
        (
            lambda: optim.sgd(0.1, clip_norm=0.0),
            ValueError,
            "clip_norm: expected a number > 0, got 0.0",
        ),
        (lambda: optim.adam(0.1, clip_value=-1.0), ValueError, "clip_value: expected a number > 0"),
        (
            lambda: optim.adam(0.1, weight_decay=-1e-4),
            ValueError,
            "weight_decay: expected a number >= 0",
        ),
        (lambda: optim.adam(0.1, b2=1.0), ValueError, r"b2: expected a number in \[0, 1\)"),
        (lambda: optim.adam(0.1, eps=0.0), ValueError, "eps: expected a number > 0"),
        (lambda: optim.adam(0.1, eps="0"), TypeError, "eps: expected a number > 0, got '0'"),
        (
            lambda: optim.exponential_decay(0.1, decay_rate=0.5, decay_steps=0),
            ValueError,
            "decay_steps: expected an integer >= 1, got 0",
        ),
        (
            lambda: optim.exponential_decay(0.1, decay_rate=0.5, decay_steps=2.5),
            TypeError,
            "decay_steps: expected an integer >= 1, got 2.5",
        ),
        (
            lambda: optim.step_decay(0.1, boundaries=[10, 5]),
            ValueError,
            "boundaries: expected strictly",
        ),
        (
            lambda: optim.step_decay(0.1, boundaries=[10, 20.0]),
            TypeError,
            r"boundaries\[1\]: expected an integer >= 1, got 20.0",
        ),
        (
            lambda: optim.cosine_decay(0.1, decay_steps=10, alpha=1.5),
            ValueError,
            r"alpha: expected a number in \[0, 1\], got 1.5",
        ),
        (
            lambda: optim.warmup_cosine_decay(1.0, warmup_steps=10, decay_steps=10),
            ValueError,
            "decay_steps: expected an integer > warmup_steps=10, got 10",
        ),
    ],
)
def test_invalid_hyperparameters_raise_at_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()
