"""Any Flax model and any Optax optimizer through fit: model state (BatchNorm), optimizers that
take extra arguments, gradient accumulation, mixed precision, EMA, per-example losses."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnn
from fnn import models, optim
from fnn.train import train_step
from fnn.train.plan import Plan, epoch_indices


@pytest.fixture(scope="module")
def digits():
    return fnn.data.load("digits", flatten=True)


def accuracy(state, x_test, y_test, **kwargs):
    out = fnn.evaluate(state, x_test, y_test, loss="cross_entropy", metrics=["accuracy"], **kwargs)
    return out["accuracy"]


def assert_trees_close(a, b, rtol=1e-5, atol=1e-5):
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, rtol, atol), a, b)


class BatchNormMLP(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool = False):
        x = nn.Dense(64)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        return nn.Dense(10)(nn.relu(x))


def test_batchnorm_statistics_match_a_hand_written_linen_loop(digits):
    (x, y), _ = digits
    x, y = x[:256], y[:256]
    module, tx = BatchNormMLP(), optax.sgd(0.1, momentum=0.9)
    state = fnn.TrainState.create(module, tx, x[:1], seed=0)
    assert set(state.model_state) == {"batch_stats"}
    trained, _ = fnn.fit(state, x, y, loss="cross_entropy", batch_size=32, epochs=1, verbose=0,
                         seed=3)  # fmt: skip

    # The loop a Flax user writes, on the same permutation.
    params, stats, opt_state = state.params, state.model_state["batch_stats"], tx.init(state.params)

    @jax.jit
    def step(params, stats, opt_state, xb, yb):
        def loss_fn(p):
            logits, updates = module.apply(
                {"params": p, "batch_stats": stats}, xb, train=True, mutable=["batch_stats"]
            )
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
            return loss, updates["batch_stats"]

        (_, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_stats, opt_state

    plan = Plan.make(256, 32, drop_remainder=False, shuffle=True)
    idx, _ = epoch_indices(jax.random.key(3), np.int32(1), plan)
    for row in np.asarray(idx):
        params, stats, opt_state = step(params, stats, opt_state, x[row], y[row])
    assert_trees_close(trained.params, params)
    assert_trees_close(trained.model_state["batch_stats"], stats)
    moved = jax.tree_util.tree_leaves(
        jax.tree_util.tree_map(
            lambda a, b: float(jnp.max(jnp.abs(a - b))), stats, state.model_state["batch_stats"]
        )  # fmt: skip
    )
    assert max(moved) > 1e-3, "training updated the running statistics"


def test_batchnorm_model_trains_evaluates_with_running_stats_and_resumes(digits, tmp_path):
    (x, y), (x_test, y_test) = digits
    state = fnn.TrainState.create(BatchNormMLP(), optim.adam(3e-3), x[:1], seed=1)
    kwargs = dict(loss="cross_entropy", batch_size=32, verbose=0)
    full, _ = fnn.fit(state, x, y, epochs=6, **kwargs)
    assert accuracy(full, x_test, y_test) >= 0.95
    before = jax.tree_util.tree_map(np.asarray, full.model_state)
    logits = fnn.predict(full, x_test)
    expected = full.apply_fn({"params": full.params, **full.model_state}, x_test, train=False)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    jax.tree_util.tree_map(np.testing.assert_array_equal, before, full.model_state)

    ckpt = tmp_path / "ckpt"
    fnn.fit(state, x, y, epochs=3, callbacks=[fnn.Checkpoint(ckpt)], **kwargs)
    resumed, history = fnn.fit(state, x, y, epochs=6, resume_from=str(ckpt),
                               resume_overrides=("epochs",), **kwargs)  # fmt: skip
    assert len(history) == 6
    jax.tree_util.tree_map(np.testing.assert_array_equal, full.params, resumed.params)
    jax.tree_util.tree_map(np.testing.assert_array_equal, full.model_state, resumed.model_state)


def test_reduce_on_plateau_receives_the_batch_loss(digits):
    (x, y), (x_test, y_test) = digits
    tx = optax.chain(
        optax.sgd(0.1, momentum=0.9),
        optax.contrib.reduce_on_plateau(factor=0.5, patience=2, accumulation_size=45),
    )
    state = fnn.TrainState.create(models.MLP((64,), 10), tx, x[:1])
    state, _ = fnn.fit(state, x, y, loss="cross_entropy", batch_size=32, epochs=8, verbose=0)
    assert accuracy(state, x_test, y_test) >= 0.95
    plateau = state.opt_state[1]
    # It saw the losses: its best (epoch-averaged) value is the training loss, not its +inf start.
    assert 0 < float(plateau.best_value) < 0.5 and float(plateau.scale) <= 1.0

    # The same steps by hand, passing value= the batch loss, give the same parameters.
    ref = fnn.TrainState.create(models.MLP((64,), 10), tx, x[:1])
    for i in range(0, 96, 32):
        ref, _ = jax.jit(train_step, static_argnames="loss_fn")(
            ref, (x[i : i + 32], y[i : i + 32]), "cross_entropy"
        )
    fitted, _ = fnn.fit(fnn.TrainState.create(models.MLP((64,), 10), tx, x[:1]), x[:96], y[:96],
                        loss="cross_entropy", batch_size=32, epochs=1, shuffle=False,
                        verbose=0)  # fmt: skip
    assert_trees_close(ref.params, fitted.params)


def test_gradient_accumulation_matches_a_four_times_larger_batch(digits):
    (x, y), _ = digits
    x, y = x[:256], y[:256]
    kwargs = dict(loss="cross_entropy", epochs=2, shuffle=False, verbose=0)
    model = models.MLP((32,), 10)
    accumulated, history = fnn.fit(
        fnn.TrainState.create(model, optax.MultiSteps(optax.sgd(0.1), every_k_schedule=4), x[:1]),
        x, y, batch_size=8, **kwargs,
    )  # fmt: skip
    large, _ = fnn.fit(fnn.TrainState.create(model, optax.sgd(0.1), x[:1]), x, y, batch_size=32,
                       **kwargs)  # fmt: skip
    assert_trees_close(accumulated.params, large.params)
    assert int(accumulated.step) == 64  # micro-steps
    assert history["optimizer_updates"] == [8, 16]
    assert int(accumulated.optimizer_updates()) == 16 == int(large.optimizer_updates())


def test_lbfgs_in_full_batch_mode(digits):
    (x, y), (x_test, y_test) = digits
    state = fnn.TrainState.create(models.LogisticRegression(10), optax.lbfgs(), x[:1])
    state, history = fnn.fit(
        state, x, y, loss="cross_entropy", batch_size="full", epochs=30, verbose=0
    )
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    assert accuracy(state, x_test, y_test) >= 0.95


@pytest.mark.parametrize("input_dtype", [np.float32, jnp.bfloat16, np.float16])
def test_bfloat16_compute_trains_with_float32_losses(digits, input_dtype):
    (x, y), (x_test, y_test) = digits
    model = models.MLP((128,), 10, dtype=jnp.bfloat16)
    x_in = x.astype(input_dtype)
    state = fnn.TrainState.create(model, optim.adam(3e-3), x_in[:1])
    assert jax.tree_util.tree_leaves(state.params)[0].dtype == jnp.float32  # param_dtype
    logits = fnn.predict(state, x_in[:4])
    assert logits.dtype == jnp.bfloat16
    state, history = fnn.fit(state, x_in, y, loss="cross_entropy", batch_size=32, epochs=10,
                             verbose=0)  # fmt: skip
    assert isinstance(history["loss"][-1], float)
    assert accuracy(state, x_test.astype(input_dtype), y_test) >= 0.95


@pytest.mark.parametrize(
    "model",
    [
        models.LinearRegression(2, dtype=jnp.bfloat16),
        models.LogisticRegression(3, dtype=jnp.bfloat16),
        models.CNN(3, channels=(2,), dense=(4,), dtype=jnp.bfloat16),
        models.LSTM(4, outputs=3, dtype=jnp.bfloat16),
        models.TextClassifier(20, 4, 4, 3, dtype=jnp.bfloat16),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_model_takes_a_compute_dtype(model):
    example = {
        "CNN": np.ones((2, 8, 8, 1), np.float32),
        "LSTM": np.ones((2, 5, 3), np.float32),
        "TextClassifier": np.ones((2, 5), np.int32),
    }.get(type(model).__name__, np.ones((2, 6), np.float32))
    variables = model.init(jax.random.key(0), example)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(variables))
    assert model.apply(variables, example).dtype == jnp.bfloat16


def test_exponential_moving_average_of_the_weights(digits, tmp_path):
    (x, y), (x_test, y_test) = digits
    make = lambda: fnn.TrainState.create(models.MLP((32,), 10), optax.sgd(0.05), x[:1],
                                         ema_decay=0.9)  # fmt: skip
    state = make()
    trained, _ = fnn.fit(state, x[:64], y[:64], loss="cross_entropy", batch_size=16, epochs=2,
                         shuffle=False, verbose=0)  # fmt: skip
    # By hand: the same 8 steps, the average updated after each.
    ref, ema = state, state.params
    step = jax.jit(train_step, static_argnames="loss_fn")
    for _ in range(2):
        for i in range(0, 64, 16):
            ref, _ = step(ref, (x[i : i + 16], y[i : i + 16]), "cross_entropy")
            ema = jax.tree_util.tree_map(lambda e, p: 0.9 * e + 0.1 * p, ema, ref.params)
    assert_trees_close(trained.params, ref.params)
    assert_trees_close(trained.ema_params, ema)
    plain, averaged = fnn.predict(trained, x_test), fnn.predict(trained, x_test, use_ema=True)
    assert not np.allclose(plain, averaged)
    np.testing.assert_allclose(
        averaged, trained.apply_fn({"params": trained.ema_params}, x_test), rtol=1e-5, atol=1e-5
    )
    assert 0 <= accuracy(trained, x_test, y_test, use_ema=True) <= 1
    with pytest.raises(ValueError, match="use_ema: this state keeps no moving average"):
        fnn.predict(fnn.TrainState.create(models.MLP((4,), 10), optax.sgd(0.1), x[:1]), x,
                    use_ema=True)  # fmt: skip
    with pytest.raises(ValueError, match=r"ema_decay: expected a number in \[0, 1\), got 1.5"):
        fnn.TrainState.create(models.MLP((4,), 10), optax.sgd(0.1), x[:1], ema_decay=1.5)
    # Checkpointed and resumed with the average.
    kwargs = dict(loss="cross_entropy", batch_size=16, verbose=0)
    full, _ = fnn.fit(make(), x[:64], y[:64], epochs=4, **kwargs)
    fnn.fit(make(), x[:64], y[:64], epochs=2, callbacks=[fnn.Checkpoint(tmp_path / "c")], **kwargs)
    resumed, _ = fnn.fit(make(), x[:64], y[:64], epochs=4, resume_from=str(tmp_path / "c"),
                         resume_overrides=("epochs",), **kwargs)  # fmt: skip
    jax.tree_util.tree_map(np.testing.assert_array_equal, full.ema_params, resumed.ema_params)


def mean_loss(predictions, targets):
    return fnn.losses.sparse_categorical_cross_entropy(predictions, targets).mean()


def unreduced_loss(predictions, targets):
    return (predictions - jax.nn.one_hot(targets, predictions.shape[-1])) ** 2


@pytest.mark.parametrize(
    ("loss", "match"),
    [
        (mean_loss, r"loss: mean_loss returned shape \(\) for 20 examples; expected one value per"),
        (unreduced_loss, r"loss: unreduced_loss returned shape \(20, 3\) for 20 examples"),
    ],
)
def test_a_loss_that_is_not_per_example_is_refused_before_training(loss, match, compiles):
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    y = np.arange(20, dtype=np.int32) % 3
    state = fnn.TrainState.create(models.MLP((8,), 3), optax.sgd(0.1), x[:1])
    before = compiles.count()
    with pytest.raises(ValueError, match=match):
        fnn.fit(state, x, y, loss=loss, batch_size=4, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=match):
        fnn.evaluate(state, x, y, loss=loss)
    assert compiles.count() == before


def test_fit_evaluate_predict_inside_jax_transformations_point_to_the_pure_steps():
    x = np.ones((4, 3), np.float32)
    y = np.zeros((4,), np.int32)
    state = fnn.TrainState.create(models.MLP((4,), 2), optax.sgd(0.1), x[:1])
    with pytest.raises(TypeError, match=r"x: fnn.predict was called inside a JAX transformation"
                                        r".*fnn.train.predict_step\(state, x\)"):  # fmt: skip
        jax.jit(lambda v: fnn.predict(state, v))(x)
    with pytest.raises(TypeError, match="state: fnn.evaluate was called inside a JAX"):
        jax.grad(
            lambda p: fnn.evaluate(state.replace(params=p), x, y, loss="cross_entropy")["loss"]
        )(state.params)
    with pytest.raises(TypeError, match="x: fnn.fit was called inside a JAX transformation"):
        jax.jit(lambda v: fnn.fit(state, v, y, loss="cross_entropy", batch_size=2, epochs=1))(x)
    # The pure step works there.
    out = jax.jit(lambda v: fnn.train.predict_step(state, v))(x)
    np.testing.assert_allclose(out, fnn.predict(state, x), rtol=1e-6)


PARALLEL_SCRIPT = """
import json
import flax.linen as nn
import jax
import numpy as np
import optax
import fnn

class BatchNormMLP(nn.Module):
    @nn.compact
    def __call__(self, x, *, train=False):
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(nn.Dense(16)(x))
        return nn.Dense(3)(nn.relu(x))

assert jax.device_count() == 8
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 5)).astype(np.float32) * np.arange(1, 6, dtype=np.float32)
y = rng.integers(0, 3, 64).astype(np.int32)
out = {}
for name, devices in [("many", None), ("one", jax.devices()[:1])]:
    state = fnn.TrainState.create(BatchNormMLP(), optax.sgd(0.1), x[:1])
    state, _ = fnn.fit(state, x, y, loss="cross_entropy", batch_size=16, epochs=2, verbose=0,
                       devices=devices)
    out[name] = jax.tree_util.tree_map(lambda a: np.asarray(a).tolist(),
                                       {"params": state.params, "stats": state.model_state})
    leaf = jax.tree_util.tree_leaves(state.model_state)[0]
    out[name + "_devices"] = len(leaf.sharding.device_set)
print("RESULT " + json.dumps(out))
"""


def test_batchnorm_statistics_over_the_global_batch_on_eight_devices(run_on_cpu_devices):
    out = run_on_cpu_devices(PARALLEL_SCRIPT)
    assert out["many_devices"] == 8 and out["one_devices"] == 1
    # Each device sees 2 of a batch's 16 rows: per-device statistics would differ from the one
    # device's; statistics over the global batch agree.
    assert_trees_close(out["many"], out["one"], rtol=1e-5, atol=1e-5)


def test_pytree_inputs_train_through_every_strategy():
    class TwoInputs(nn.Module):
        @nn.compact
        def __call__(self, x, *, train=False):
            return nn.Dense(3)(nn.relu(nn.Dense(16)(x["image"].reshape(x["image"].shape[0], -1)))
                               + nn.Dense(16)(x["extra"]))  # fmt: skip

    rng = np.random.default_rng(0)
    x = {"image": rng.normal(size=(45, 4, 4)).astype(np.float32),
         "extra": rng.normal(size=(45, 2)).astype(np.float64)}  # fmt: skip
    y = rng.integers(0, 3, 45).astype(np.int32)
    state = fnn.TrainState.create(TwoInputs(), optax.sgd(0.1, momentum=0.9),
                                  {k: v[:1] for k, v in x.items()})  # fmt: skip
    kwargs = dict(loss="cross_entropy", batch_size=8, epochs=2, verbose=0, metrics=["accuracy"])
    ref, h_ref = fnn.fit(state, x, y, **kwargs)
    for strategy in ("unfused", "stepwise", "streamed"):
        got, h = fnn.fit(state, x, y, strategy=strategy, **kwargs)
        assert_trees_close(ref.params, got.params)
        assert h["accuracy"] == h_ref["accuracy"]
    # One epoch by hand on the same rows of every leaf (the last batch: its 5 real rows).
    one, _ = fnn.fit(state, x, y, **{**kwargs, "epochs": 1})
    plan = Plan.make(45, 8, drop_remainder=False, shuffle=True)
    idx, mask = map(np.asarray, epoch_indices(jax.random.key(0), np.int32(1), plan))
    hand, step = state, jax.jit(train_step, static_argnames="loss_fn")
    for row, row_mask in zip(idx, mask, strict=True):
        rows = row[row_mask > 0]
        batch = ({k: v[rows].astype(np.float32) for k, v in x.items()}, y[rows])
        hand, _ = step(hand, batch, "cross_entropy")
    assert_trees_close(one.params, hand.params)
    logits = fnn.predict(ref, x, batch_size=7)
    assert logits.shape == (45, 3)
    out = fnn.evaluate(ref, x, y, loss="cross_entropy", metrics=["accuracy"])
    assert out["accuracy"] == pytest.approx(float(np.mean(np.argmax(logits, 1) == y)))


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (
            {"a": np.ones((10, 2), np.float32), "b": np.ones((9, 2), np.float32)},
            r"x: its arrays have different numbers of examples \(x\['a'\] has 10, x\['b'\] has 9\)",
        ),
        (
            {"a": np.ones((10, 2), np.float32), "b": np.array([["s"] * 2] * 10)},
            r"x\['b'\]: expected a numeric array, got dtype <U1",
        ),
        (
            {"a": np.ones((10, 2), np.float32), "b": np.full((10, 2), np.nan, np.float32)},
            r"x\['b'\]: contains 20 NaN/Inf value\(s\)",
        ),
        ({}, "x: expected an array or a pytree of arrays, got an empty dict"),
    ],
)
def test_bad_pytree_inputs_name_the_leaf(x, match):
    y = np.zeros((10,), np.int32)
    state = fnn.TrainState.create(models.MLP((4,), 3), optax.sgd(0.1), np.ones((1, 2), np.float32))
    with pytest.raises((ValueError, TypeError), match=match):
        fnn.fit(state, x, y, loss="cross_entropy", batch_size=2, epochs=1, verbose=0)


def test_recurrent_models_take_lengths_through_fit():
    rng = np.random.default_rng(0)
    n, t = 64, 6
    lengths = rng.integers(1, t + 1, n).astype(np.int32)
    series = rng.normal(size=(n, t, 1)).astype(np.float32)
    series[np.arange(t)[None, :] >= lengths[:, None]] = 0.0  # right padding
    # Class: whether the last *real* step is positive (padding hides it from x[:, -1]).
    y = (series[np.arange(n), lengths - 1, 0] > 0).astype(np.int32)
    x = {"x": series, "lengths": lengths}
    state = fnn.TrainState.create(models.LSTM(16, outputs=2), optim.adam(1e-2),
                                  {"x": series[:1], "lengths": lengths[:1]})  # fmt: skip
    state, _ = fnn.fit(state, x, y, loss="cross_entropy", batch_size=16, epochs=30, verbose=0)
    assert accuracy(state, x, y) >= 0.95
    padded_more = {"x": np.concatenate([series, np.zeros((n, 3, 1), np.float32)], 1),
                   "lengths": lengths}  # fmt: skip
    np.testing.assert_allclose(fnn.predict(state, padded_more), fnn.predict(state, x),
                               rtol=1e-5, atol=1e-5)  # fmt: skip
