import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from fnn import models, optim
from fnn.train import TrainState, eval_step, predict_step, summarize, train_step

jit_train = jax.jit(train_step, static_argnames=("loss_fn", "metrics"), donate_argnames="state")
jit_eval = jax.jit(eval_step, static_argnames=("loss_fn", "metrics"))
jit_step = jax.jit(train_step, static_argnames=("loss_fn", "metrics"))


def iris():
    x, y = load_iris(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x.astype(np.float32), y.astype(np.int32), test_size=0.3, stratify=y, random_state=0
    )
    mean, std = x_tr.mean(0), x_tr.std(0)
    return ((x_tr - mean) / std, y_tr), ((x_te - mean) / std, y_te)


def test_logistic_regression_on_iris_with_train_step_alone():
    (x_tr, y_tr), (x_te, y_te) = iris()
    state = TrainState.create(models.LogisticRegression(3), optim.sgd(0.5), x_tr[:1], seed=0)
    for _ in range(300):
        state, _ = jit_train(state, (x_tr, y_tr), loss_fn="cross_entropy")
    result = summarize(jit_eval(state, (x_te, y_te), "cross_entropy", ("accuracy",)), ("accuracy",))
    assert result["accuracy"] >= 0.93
    assert int(state.step) == 300


def test_step_does_not_recompile(compiles):
    x = jnp.ones((8, 4))
    y = jnp.zeros((8,), jnp.int32)
    step = jax.jit(train_step, static_argnames=("loss_fn", "metrics"), donate_argnames="state")
    state = TrainState.create(models.MLP((8,), 3), optim.adam(1e-2), x)
    state, _ = step(state, (x, y), loss_fn="cross_entropy", metrics=("accuracy",))
    assert compiles.count("train_step") == 1
    for _ in range(3):
        state, _ = step(state, (x + 1, y), loss_fn="cross_entropy", metrics=("accuracy",))
    assert compiles.count("train_step") == 1, compiles.names()


@pytest.mark.parametrize(
    "model,x",
    [
        (models.MLP((6,), 3, dropout=0.2), jnp.ones((4, 5))),
        (models.CNN(3, channels=(2, 3), dense=(4,)), jnp.ones((4, 8, 8, 1))),
        (models.LSTM(4, outputs=3), jnp.ones((4, 6, 2))),
        (models.TextClassifier(20, 4, 5, 3, cell="gru"), jnp.ones((4, 6), jnp.int32)),
    ],
    ids=["mlp", "cnn", "lstm", "text"],
)
def test_every_parameter_changes_after_one_step(model, x):
    y = jnp.array([0, 1, 2, 1])
    state = TrainState.create(model, optim.sgd(0.1), x)
    before = jax.tree_util.tree_map(np.array, state.params)
    new, sums = jit_step(state, (x, y), "cross_entropy")
    changed = jax.tree_util.tree_map(lambda a, b: not np.allclose(a, b), before, new.params)
    assert all(jax.tree_util.tree_leaves(changed)), changed
    assert float(sums["loss"]["count"]) == 4


def test_masked_batch_equals_the_unpadded_batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=5).astype(np.int32)
    state = TrainState.create(models.MLP((8,), 3), optim.sgd(0.3, momentum=0.9), x)
    real, real_sums = jit_step(state, (x, y), "cross_entropy", ("accuracy",))
    pad_x = np.concatenate([x, rng.normal(size=(3, 4)).astype(np.float32) * 100])
    pad_y = np.concatenate([y, [2, 2, 2]]).astype(np.int32)
    mask = np.array([1] * 5 + [0] * 3, np.float32)
    padded, pad_sums = jit_step(state, (pad_x, pad_y, mask), "cross_entropy", ("accuracy",))
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
        real.params,
        padded.params,
    )
    a, b = summarize(real_sums, ("accuracy",)), summarize(pad_sums, ("accuracy",))
    assert a == pytest.approx(b)


def test_eval_loss_matches_numpy_cross_entropy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=6).astype(np.int32)
    state = TrainState.create(models.LogisticRegression(3), optim.sgd(0.1), x)
    logits = np.asarray(predict_step(state, x), np.float64)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -logp[np.arange(6), y].mean()
    got = summarize(jit_eval(state, (x, y), "cross_entropy"))["loss"]
    assert got == pytest.approx(expected, rel=1e-5)


def test_dropout_keys_follow_the_step_and_seed():
    x = jnp.ones((16, 8))
    y = jnp.zeros((16,), jnp.int32)
    model = models.MLP((32,), 2, dropout=0.5)
    a = TrainState.create(model, optim.sgd(0.1), x, seed=3)
    b = TrainState.create(model, optim.sgd(0.1), x, seed=3)
    a1, _ = jit_step(a, (x, y), "cross_entropy")
    b1, _ = jit_step(b, (x, y), "cross_entropy")
    jax.tree_util.tree_map(np.testing.assert_array_equal, a1.params, b1.params)
    assert not jnp.array_equal(a.step_key(), a1.step_key())
    expected = jax.random.fold_in(jax.random.wrap_key_data(a.key_data), 1)
    assert jnp.array_equal(jax.random.key_data(a1.step_key()), jax.random.key_data(expected))


def test_create_rejects_wrong_types():
    with pytest.raises(
        TypeError,
        match="model: expected a flax.linen.Module or an object with init.*, got function",
    ):
        TrainState.create(lambda x: x, optim.sgd(0.1), jnp.ones((1, 2)))
    with pytest.raises(TypeError, match="optimizer: expected an optax.GradientTransformation"):
        TrainState.create(models.MLP((2,), 2), 0.1, jnp.ones((1, 2)))


def test_state_is_a_pytree_that_jit_and_optax_accept():
    state = TrainState.create(models.MLP((2,), 2), optax.adam(1e-3), jnp.ones((1, 3)))
    leaves = jax.tree_util.tree_leaves(state)
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    assert state.num_params() == 3 * 2 + 2 + 2 * 2 + 2
