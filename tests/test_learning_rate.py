"""The learning rate in the optimizer's state: fnn.optim's numerics unchanged by injecting it,
History's learning_rate field, and ReduceLROnPlateau."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnn
from fnn import models, optim
from fnn.train import learning_rate as lr_lib


def bare(rule, lr, *, clip_norm=None, weight_decay=0.0, decoupled=0.0):
    """The chain fnn.optim built before the learning rate was injected."""
    parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
    if weight_decay:
        parts.append(optax.add_decayed_weights(weight_decay))
    parts.append(rule)
    if decoupled:
        parts.append(optax.add_decayed_weights(decoupled))
    return optax.chain(*parts, optax.scale_by_learning_rate(lr))


SCHEDULE = optim.exponential_decay(0.05, decay_rate=0.5, decay_steps=3, staircase=True)
CASES = {
    "sgd_int_lr": (optim.sgd(1), bare(optax.identity(), 1)),
    "nesterov_clip_wd": (
        optim.sgd(0.05, momentum=0.9, nesterov=True, clip_norm=1.0, weight_decay=1e-3),
        bare(optax.trace(0.9, nesterov=True), 0.05, clip_norm=1.0, weight_decay=1e-3),
    ),
    "adamw": (
        optim.adam(3e-3, decoupled_weight_decay=1e-2),
        bare(optax.scale_by_adam(), 3e-3, decoupled=1e-2),
    ),
    "adam_schedule": (optim.adam(SCHEDULE), bare(optax.scale_by_adam(), SCHEDULE)),
    "sgd_cosine": (
        optim.sgd(optim.cosine_decay(0.1, decay_steps=10), momentum=0.5),
        bare(optax.trace(0.5), optim.cosine_decay(0.1, decay_steps=10)),
    ),
}


def trajectory(tx, dtype):
    params = {
        "w": jax.random.normal(jax.random.key(0), (12, 5)).astype(dtype),
        "b": jnp.zeros(5, dtype),
    }
    xs = jax.random.normal(jax.random.key(1), (8, 4, 12)).astype(dtype)  # 8 steps

    def loss(p, x):
        return jnp.sum(jnp.tanh(x @ p["w"] + p["b"][None]).astype(jnp.float32) ** 2)

    @jax.jit
    def run(p):
        def body(carry, x):
            p, s = carry
            u, s = tx.update(jax.grad(loss)(p, x), s, p)
            p = optax.apply_updates(p, u)
            return (p, s), p

        return jax.lax.scan(body, (p, tx.init(p)), xs)[1]

    return run(params)


@pytest.mark.parametrize(
    ("case", "dtype"),
    [(case, jnp.float32) for case in sorted(CASES)]
    + [(case, jnp.bfloat16) for case in ("nesterov_clip_wd", "adam_schedule", "sgd_cosine")],
)
def test_injecting_the_learning_rate_changes_no_bit(case, dtype):
    injected, before = CASES[case]
    jax.tree_util.tree_map(
        np.testing.assert_array_equal, trajectory(injected, dtype), trajectory(before, dtype)
    )


def test_fnn_optimizers_expose_their_learning_rate():
    params = {"w": jnp.ones(3)}
    assert lr_lib.read(optim.sgd(0.1, momentum=0.9).init(params)) == pytest.approx(0.1)
    assert lr_lib.read(optim.adam(SCHEDULE).init(params)) == pytest.approx(0.05)
    (state,) = lr_lib.find(optim.adam(SCHEDULE).init(params))
    assert lr_lib.is_scheduled(state)
    assert not lr_lib.is_scheduled(lr_lib.find(optim.sgd(0.1).init(params))[0])
    assert lr_lib.read(optax.adam(1e-3).init(params)) is None  # not in the state: unknown
    wrapped = optax.MultiSteps(optax.inject_hyperparams(optax.sgd)(learning_rate=0.2), 2)
    assert lr_lib.read(wrapped.init(params)) == pytest.approx(0.2)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    return x, y


def fit(optimizer, data, epochs=3, **kwargs):
    x, y = data
    state = fnn.TrainState.create(models.MLP((8,), 2), optimizer, x[:1], seed=0)
    return fnn.fit(state, x, y, loss="cross_entropy", batch_size=16, epochs=epochs, verbose=0,
                   **kwargs)  # fmt: skip


def test_history_records_the_learning_rate_of_each_epoch(data):
    _, history = fit(optim.sgd(0.1, momentum=0.9), data)
    assert history["learning_rate"] == [pytest.approx(0.1)] * 3
    # A schedule: the rate of each epoch's last update. 3 steps per epoch, so the last update of
    # epoch e is step 3e - 1: 0.05 * 0.5 ** floor((3e - 1) / 3) = 0.05, 0.025, 0.0125.
    schedule = optim.exponential_decay(0.05, decay_rate=0.5, decay_steps=3, staircase=True)
    _, history = fit(optim.sgd(schedule), data, metrics=["accuracy"])
    assert history["learning_rate"] == [np.float32(0.05 * 0.5**e) for e in range(3)]
    # With a callback (no epoch dispatched ahead) the same numbers.
    _, again = fit(optim.sgd(schedule), data, metrics=["accuracy"],
                   callbacks=[fnn.LambdaCallback()])  # fmt: skip
    assert again["learning_rate"] == history["learning_rate"]
    _, plain = fit(optax.sgd(0.1), data)
    assert "learning_rate" not in plain.keys()


def test_reduce_lr_on_plateau_follows_keras_rule_and_does_not_recompile(data, compiles):
    # The training loss watched in "max" mode: epoch 1 is the best, no later epoch improves.
    cb = fnn.ReduceLROnPlateau("loss", mode="max", factor=0.5, patience=2, cooldown=2,
                               min_lr=0.02)  # fmt: skip
    state, history = fit(optim.sgd(0.1, momentum=0.9), data, epochs=8, callbacks=[cb])
    # By hand (Keras's rule): epochs 2, 3 wait 1, 2 -> 0.05 after epoch 3, cooldown 2; epoch 4
    # in cooldown, epoch 5 ends it (wait 0, then 1); epoch 6 wait 2 -> 0.025 after epoch 6;
    # epoch 7 in cooldown, epoch 8 wait 1. Each epoch records the rate it trained with.
    expected = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025]
    assert history["learning_rate"] == [pytest.approx(v) for v in expected]
    assert cb.reductions == [(3, pytest.approx(0.05)), (6, pytest.approx(0.025))]
    (node,) = lr_lib.find(state.opt_state)
    assert node.hyperparams["learning_rate"].dtype == jnp.float32
    assert lr_lib.read(state.opt_state) == pytest.approx(0.025)
    assert compiles.count("fused_epoch") <= 1  # the new rate is an input, not a constant


def test_reduce_lr_on_plateau_stops_at_min_lr(data):
    cb = fnn.ReduceLROnPlateau("loss", mode="max", factor=0.1, patience=1, min_lr=0.005)
    _, history = fit(optim.sgd(0.1), data, epochs=5, callbacks=[cb])
    # Epoch 2 -> 0.01, epoch 3 -> max(0.001, 0.005), epoch 4: already at min_lr, unchanged.
    assert history["learning_rate"] == [pytest.approx(v) for v in (0.1, 0.1, 0.01, 0.005, 0.005)]
    assert [epoch for epoch, _ in cb.reductions] == [2, 3]


@pytest.mark.parametrize(
    ("optimizer", "match"),
    [
        (optax.sgd(0.1), r"ReduceLROnPlateau: the optimizer keeps no learning rate in its state"
                         r".*optax.inject_hyperparams"),  # fmt: skip
        (optim.sgd(optim.cosine_decay(0.1, decay_steps=10)), "learning rate is a schedule"),
    ],
)
def test_reduce_lr_on_plateau_needs_an_injected_constant_rate(data, optimizer, match, compiles):
    with pytest.raises(ValueError, match=match):
        fit(optimizer, data, callbacks=[fnn.ReduceLROnPlateau("loss")])
    assert compiles.count("fused_epoch") == 0  # refused before training


def test_reduce_lr_on_plateau_checks_its_monitor_before_training(data):
    with pytest.raises(ValueError, match=r"monitor: ReduceLROnPlateau watches 'val_loss'.*"
                                         r"val_\* fields need validation_data"):  # fmt: skip
        fit(optim.sgd(0.1), data, callbacks=[fnn.ReduceLROnPlateau()])
