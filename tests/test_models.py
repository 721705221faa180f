import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from fnn import models

# jax.enable_x64 is absent in jax 0.7 (there: jax.experimental.enable_x64, gone in jax 0.10)
_enable_x64 = getattr(jax, "enable_x64", None)
if _enable_x64 is None:
    from jax.experimental import enable_x64 as _enable_x64


def count(variables):
    return sum(x.size for x in jax.tree_util.tree_leaves(variables["params"]))


def init_apply(model, x, key=None):
    # Jitted: one compilation per model instead of one per operation in eager mode.
    variables = jax.jit(model.init)(key if key is not None else jax.random.key(0), x)
    return variables, jax.jit(model.apply)(variables, x)


def test_linear_regression_shape_count_and_affine_map():
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    v, y = init_apply(models.LinearRegression(outputs=2), x)
    assert y.shape == (6, 2) and count(v) == 4 * 2 + 2
    k, b = v["params"]["Dense_0"]["kernel"], v["params"]["Dense_0"]["bias"]
    np.testing.assert_allclose(y, x @ np.asarray(k) + np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("classes,width", [(2, 1), (3, 3), (10, 10)])
def test_logistic_regression_logits(classes, width):
    v, y = init_apply(models.LogisticRegression(classes), jnp.ones((5, 2, 3)))
    assert y.shape == (5, width) and count(v) == 6 * width + width


def test_logistic_regression_rejects_one_class():
    with pytest.raises(ValueError, match="classes: expected an integer >= 2, got 1"):
        init_apply(models.LogisticRegression(1), jnp.ones((2, 3)))
    with pytest.raises(TypeError, match="classes: expected an integer >= 2, got 2.0"):
        init_apply(models.LogisticRegression(2.0), jnp.ones((2, 3)))


def test_mlp_shape_and_parameter_count():
    v, y = init_apply(models.MLP((5, 7), 3, activation="tanh"), jnp.ones((2, 4)))
    assert y.shape == (2, 3)
    assert count(v) == (4 * 5 + 5) + (5 * 7 + 7) + (7 * 3 + 3)


def test_mlp_matches_numpy_forward():
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    v, y = init_apply(models.MLP((5,), 2, activation="sigmoid"), x)
    p = jax.tree_util.tree_map(np.asarray, v["params"])
    h = 1 / (1 + np.exp(-(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])))
    np.testing.assert_allclose(y, h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"], rtol=1e-5)


def test_mlp_dropout_only_in_training(getkey):
    model = models.MLP((64,), 2, dropout=0.5)
    x = jnp.ones((4, 8))
    v = model.init(getkey(), x)
    assert jnp.array_equal(model.apply(v, x), model.apply(v, x))
    a = model.apply(v, x, train=True, rngs={"dropout": getkey()})
    b = model.apply(v, x, train=True, rngs={"dropout": getkey()})
    assert not jnp.allclose(a, b)


@pytest.mark.parametrize("model", [models.MLP((4,), 2, dropout=1.0), models.CNN(2, dropout=-0.1)])
def test_dropout_outside_the_unit_interval_is_refused(model, getkey):
    x = jnp.ones((1, 8, 8, 1)) if isinstance(model, models.CNN) else jnp.ones((1, 3))
    with pytest.raises(ValueError, match=r"dropout: expected a number in \[0, 1\), got"):
        model.init(getkey(), x)


def test_dropout_of_the_wrong_type_is_refused(getkey):
    with pytest.raises(TypeError, match=r"dropout: expected a number in \[0, 1\), got '0.5'"):
        models.MLP((4,), 2, dropout="0.5").init(getkey(), jnp.ones((1, 3)))


def test_activation_lookup():
    x = jnp.linspace(-2, 2, 5)
    np.testing.assert_allclose(models.get_activation("relu")(x), np.maximum(x, 0))
    np.testing.assert_allclose(models.get_activation("TANH")(x), np.tanh(x), rtol=1e-6)
    assert models.get_activation(jnp.sin) is jnp.sin
    with pytest.raises(
        ValueError, match=r"activation: expected one of \[.*'relu'.*\], got 'swishy'"
    ):
        models.get_activation("swishy")
    with pytest.raises(TypeError, match="activation: expected a name or a callable, got int"):
        models.get_activation(3)


@pytest.mark.parametrize(
    "shape,flat",
    [((8, 8, 1), 2 * 2 * 8), ((28, 28, 1), 7 * 7 * 8), ((32, 32, 3), 8 * 8 * 8)],
    ids=["digits", "mnist", "cifar"],
)
def test_cnn_shapes_and_counts(shape, flat):
    model = models.CNN(10, channels=(4, 8), dense=(16,), kernel_size=3)
    v, y = init_apply(model, jnp.ones((2, *shape)))
    c = shape[-1]
    expected = (9 * c * 4 + 4) + (9 * 4 * 8 + 8) + (flat * 16 + 16) + (16 * 10 + 10)
    assert y.shape == (2, 10) and count(v) == expected


@pytest.mark.parametrize("size", [8, 7, 28, 5])
def test_max_pool_2x2_matches_flax_values_and_gradients(size, getkey):
    import flax.linen as nn

    from fnn.models.conv import max_pool_2x2

    x = jax.random.normal(getkey(), (3, size, size + 1, 4))  # odd and even sides, no ties

    def flax_pool(v):
        return nn.max_pool(v, (2, 2), strides=(2, 2), padding="SAME")

    np.testing.assert_array_equal(max_pool_2x2(x), flax_pool(x))
    cotangent = jax.random.normal(getkey(), flax_pool(x).shape)
    grads = [
        jax.grad(lambda v, f=f: jnp.sum(f(v) * cotangent))(x) for f in (max_pool_2x2, flax_pool)
    ]
    np.testing.assert_array_equal(grads[0], grads[1])


def test_max_pool_2x2_of_relu_features_trains_like_flax(getkey):
    # ReLU features tie at 0; the tied units get no gradient through the ReLU either way.
    import flax.linen as nn

    from fnn.models.conv import max_pool_2x2

    x, w = jax.random.normal(getkey(), (2, 6, 6, 3)), jax.random.normal(getkey(), (3, 3))

    def loss(w, pool):
        return jnp.sum(pool(jax.nn.relu(x @ w)) ** 2)

    flax_pool = lambda v: nn.max_pool(v, (2, 2), strides=(2, 2), padding="SAME")  # noqa: E731
    np.testing.assert_allclose(
        jax.grad(loss)(w, max_pool_2x2), jax.grad(loss)(w, flax_pool), rtol=1e-6
    )


def test_cnn_rejects_flat_input():
    with pytest.raises(
        ValueError,
        match=r"x: expected <float>\[batch, height, width, channels\] .*got shape \(2, 64\)",
    ):
        init_apply(models.CNN(10), jnp.ones((2, 64)))


RNN_COUNTS = {
    models.SimpleRNN: lambda f, h: f * h + h + h * h,
    models.LSTM: lambda f, h: 4 * (f * h + h * h + h),
    models.GRU: lambda f, h: 3 * (f * h + h) + 3 * h * h + h,
}


@pytest.mark.parametrize("cls", list(RNN_COUNTS), ids=lambda c: c.__name__)
def test_recurrent_shapes_and_counts(cls):
    f, h, t = 3, 5, 7
    v, y = init_apply(cls(h, outputs=2), jnp.ones((4, t, f)))
    assert y.shape == (4, 2) and count(v) == RNN_COUNTS[cls](f, h) + h * 2 + 2
    _, seq = init_apply(cls(h, return_sequences=True), jnp.ones((4, t, f)))
    assert seq.shape == (4, t, h)
    v, y = init_apply(cls((h, 6)), jnp.ones((4, t, f)))
    assert y.shape == (4, 6) and count(v) == RNN_COUNTS[cls](f, h) + RNN_COUNTS[cls](h, 6)


def test_simple_rnn_matches_numpy_recurrence():
    x = np.random.default_rng(2).normal(size=(2, 6, 3)).astype(np.float32)
    v, y = init_apply(models.SimpleRNN(4, return_sequences=True), x)
    p = jax.tree_util.tree_map(np.asarray, v["params"])
    cell = p["SimpleCell_0"]
    h = np.zeros((2, 4), np.float32)
    outs = []
    for step in range(6):
        h = np.tanh(x[:, step] @ cell["i"]["kernel"] + cell["i"]["bias"] + h @ cell["h"]["kernel"])
        outs.append(h)
    np.testing.assert_allclose(y, np.stack(outs, axis=1), rtol=1e-5, atol=1e-6)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_lstm_matches_numpy_recurrence():
    x = np.random.default_rng(6).normal(size=(3, 6, 4)).astype(np.float32)
    v, y = init_apply(models.LSTM(5, return_sequences=True), x)
    p = jax.tree_util.tree_map(np.asarray, v["params"]["LSTMCell_0"])
    c = h = np.zeros((3, 5), np.float32)
    outs = []
    for step in range(6):
        z = {g: x[:, step] @ p[f"i{g}"]["kernel"] + h @ p[f"h{g}"]["kernel"] + p[f"h{g}"]["bias"]
             for g in "ifgo"}  # fmt: skip
        c = _sigmoid(z["f"]) * c + _sigmoid(z["i"]) * np.tanh(z["g"])
        h = _sigmoid(z["o"]) * np.tanh(c)
        outs.append(h)
    np.testing.assert_allclose(y, np.stack(outs, axis=1), rtol=1e-5, atol=1e-6)


class _LSTMCellStack(nn.Module):
    """The LSTM as it was built before the fused cell: nn.LSTMCell layers under nn.RNN."""

    widths: tuple[int, ...]
    outputs: int

    @nn.compact
    def __call__(self, x):
        for width in self.widths:
            x = nn.RNN(nn.LSTMCell(width))(x)
        return nn.Dense(self.outputs)(x[:, -1])


def test_lstm_has_the_parameters_and_outputs_of_nn_lstm_cells():
    # The fused cell keeps nn.LSTMCell's parameter tree (names, shapes, initial values), so
    # checkpoints written before it load; outputs and gradients agree to float32 rounding.
    x = jnp.asarray(np.random.default_rng(7).normal(size=(4, 9, 3)).astype(np.float32))
    model, old = models.LSTM((5, 6), outputs=2), _LSTMCellStack((5, 6), 2)
    v = jax.jit(model.init)(jax.random.key(1), x)
    v_old = jax.jit(old.init)(jax.random.key(1), x)
    assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(v_old)
    assert sorted(v["params"]) == ["Dense_0", "LSTMCell_0", "LSTMCell_1"]
    assert sorted(v["params"]["LSTMCell_0"]) == ["hf", "hg", "hi", "ho", "if", "ig", "ii", "io"]
    for a, b in zip(jax.tree_util.tree_leaves(v), jax.tree_util.tree_leaves(v_old), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(model.apply(v, x), old.apply(v, x), rtol=1e-5, atol=1e-6)

    def grads(m):
        return jax.grad(lambda p: jnp.sum(m.apply(p, x) ** 2))(v)

    for a, b in zip(jax.tree_util.tree_leaves(grads(model)),
                    jax.tree_util.tree_leaves(grads(old)), strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", list(RNN_COUNTS), ids=lambda c: c.__name__)
def test_recurrent_gradients_match_finite_differences(cls):
    rng = np.random.default_rng(3)
    with _enable_x64(True):
        x = jnp.asarray(rng.normal(size=(2, 5, 3)))
        lengths = jnp.array([5, 3])
        model = cls(4, outputs=2, param_dtype=jnp.float64)
        params = model.init(jax.random.key(0), x)["params"]
        w = jnp.asarray(rng.normal(size=(2, 2)))

        def f(p):
            return jnp.sum(model.apply({"params": p}, x, lengths=lengths) * w)

        g = jax.grad(f)(params)
        flat, unravel = jax.flatten_util.ravel_pytree(params)
        gflat, _ = jax.flatten_util.ravel_pytree(g)
        eps = 1e-6
        for _ in range(4):
            d = jnp.asarray(rng.normal(size=flat.shape))
            fd = (f(unravel(flat + eps * d)) - f(unravel(flat - eps * d))) / (2 * eps)
            np.testing.assert_allclose(float(gflat @ d), float(fd), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
def test_recurrent_padding_does_not_change_result(cell):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    padded = np.concatenate([x, rng.normal(size=(2, 5, 3)).astype(np.float32)], axis=1)
    model = models.Recurrent(6, outputs=2, cell=cell)
    v = model.init(jax.random.key(0), x)
    a = model.apply(v, x)
    b = model.apply(v, padded, lengths=jnp.array([4, 4]))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_recurrent_rejects_unknown_cell_and_bad_rank():
    cells = r"\['gru', 'lstm', 'rnn', 'simple'\]"
    with pytest.raises(ValueError, match=rf"cell: expected one of {cells}, got 'transformer'"):
        init_apply(models.Recurrent(4, cell="transformer"), jnp.ones((1, 2, 3)))
    with pytest.raises(TypeError, match="cell: expected a cell name, got int"):
        init_apply(models.Recurrent(4, cell=3), jnp.ones((1, 2, 3)))
    with pytest.raises(
        ValueError, match=r"x: expected <float>\[batch, time, features\] .*got shape \(2, 3\)"
    ):
        init_apply(models.LSTM(4), jnp.ones((2, 3)))


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple"])
def test_text_classifier_padding_invariance(cell):
    rng = np.random.default_rng(5)
    model = models.TextClassifier(vocab_size=30, embed_dim=8, hidden=6, outputs=3, cell=cell)
    ids = np.zeros((3, 7), np.int32)
    for row, length in enumerate([7, 4, 1]):
        ids[row, :length] = rng.integers(1, 30, size=length)
    v = model.init(jax.random.key(0), ids)
    base = model.apply(v, ids)
    assert base.shape == (3, 3)
    longer = np.concatenate([ids, np.zeros((3, 9), np.int32)], axis=1)
    np.testing.assert_allclose(model.apply(v, longer), base, rtol=1e-5, atol=1e-6)
    # Each row alone, trimmed to its own length, gives the same logits as in the padded batch.
    for row, length in enumerate([7, 4, 1]):
        alone = model.apply(v, ids[row : row + 1, :length])
        np.testing.assert_allclose(alone[0], base[row], rtol=1e-5, atol=1e-6)


def test_text_classifier_rejects_float_ids():
    model = models.TextClassifier(10, 4, 4, 1)
    expected = r"ids: expected <int>\[batch, time\] token ids, got"
    with pytest.raises(TypeError, match=rf"{expected} float32\[2, 3\]"):
        model.init(jax.random.key(0), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=rf"{expected} int32\[6\]"):
        model.init(jax.random.key(0), jnp.ones(6, jnp.int32))
