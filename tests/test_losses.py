import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import losses


def np_softmax_ce(logits, labels):
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(labels)), labels]


def np_bce(logits, labels):
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_mse_batched_matches_numpy(rng):
    p = rng.normal(size=(7, 3)).astype(np.float32)
    t = rng.normal(size=(7, 3)).astype(np.float32)
    np.testing.assert_allclose(
        losses.mean_squared_error(p, t), ((p - t) ** 2).mean(axis=1), rtol=1e-6
    )


def test_mse_column_predictions_accept_flat_targets(rng):
    p = rng.normal(size=(5, 1)).astype(np.float32)
    t = rng.normal(size=(5,)).astype(np.float32)
    np.testing.assert_allclose(losses.mean_squared_error(p, t), (p[:, 0] - t) ** 2, rtol=1e-6)


def test_mse_single_example_scalar_output():
    out = losses.mean_squared_error(jnp.array([[2.0]]), jnp.array([[0.5]]))
    assert out.shape == (1,)
    assert float(out[0]) == pytest.approx(2.25)


def test_mse_shape_mismatch_names_argument():
    with pytest.raises(ValueError, match=r"targets: expected shape \(4, 3\) .*got shape \(4, 2\)"):
        losses.mean_squared_error(jnp.zeros((4, 3)), jnp.zeros((4, 2)))


def test_binary_cross_entropy_matches_numpy(rng):
    z = rng.normal(scale=3, size=(9, 1)).astype(np.float32)
    y = rng.integers(0, 2, size=9)
    np.testing.assert_allclose(losses.binary_cross_entropy(z, y), np_bce(z[:, 0], y), rtol=1e-5)


def test_binary_cross_entropy_soft_labels_and_multi_output(rng):
    z = rng.normal(size=(4, 3)).astype(np.float32)
    y = rng.uniform(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(
        losses.binary_cross_entropy(z, y), np_bce(z, y).mean(axis=1), rtol=1e-5
    )


def test_binary_cross_entropy_is_stable_for_huge_logits():
    out = losses.binary_cross_entropy(jnp.array([500.0, -500.0, 500.0]), jnp.array([1, 0, 0]))
    np.testing.assert_allclose(out, [0.0, 0.0, 500.0], atol=1e-6)
    g = jax.grad(lambda z: losses.binary_cross_entropy(z, jnp.array([0.0])).sum())(jnp.array([1e4]))
    assert np.isfinite(g).all()


def test_binary_cross_entropy_rejects_labels_outside_unit_interval():
    with pytest.raises(
        ValueError, match=r"labels: expected values in \[0, 1\], got range \[0.0, 2.0\]"
    ):
        losses.binary_cross_entropy(jnp.zeros((3,)), jnp.array([0.0, 1.0, 2.0]))


def test_sparse_cross_entropy_matches_numpy(rng):
    z = rng.normal(scale=2, size=(11, 5)).astype(np.float32)
    y = rng.integers(0, 5, size=11).astype(np.int32)
    np.testing.assert_allclose(
        losses.sparse_categorical_cross_entropy(z, y), np_softmax_ce(z, y), rtol=1e-5
    )


def test_sparse_cross_entropy_gradient_is_softmax_minus_one_hot(rng):
    z = rng.normal(size=(3, 4)).astype(np.float32)
    y = np.array([0, 3, 1], np.int32)
    g = jax.grad(lambda z: losses.sparse_categorical_cross_entropy(z, y).sum())(z)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(g, p - np.eye(4)[y], atol=1e-6)


@pytest.mark.parametrize("bad", [[0, 5, 1], [-1, 0, 1]])
def test_sparse_cross_entropy_rejects_out_of_range_labels(bad):
    with pytest.raises(ValueError, match=r"labels: expected class ids in \[0, 5\)"):
        losses.sparse_categorical_cross_entropy(jnp.zeros((3, 5)), jnp.array(bad))


def test_sparse_cross_entropy_rejects_float_labels_and_bad_shapes():
    with pytest.raises(TypeError, match="labels: expected integer"):
        losses.sparse_categorical_cross_entropy(jnp.zeros((2, 3)), jnp.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels: expected <int>\[2\]"):
        losses.sparse_categorical_cross_entropy(jnp.zeros((2, 3)), jnp.array([0, 1, 2]))
    with pytest.raises(ValueError, match="logits: expected"):
        losses.sparse_categorical_cross_entropy(jnp.zeros((2,)), jnp.array([0, 1]))


def test_l2_penalty_matches_numpy(rng):
    params = {"a": rng.normal(size=(3, 2)), "b": {"c": rng.normal(size=(4,))}}
    expected = 0.5 * ((params["a"] ** 2).sum() + (params["b"]["c"] ** 2).sum())
    assert float(losses.l2_penalty(params)) == pytest.approx(expected, rel=1e-5)


def test_get_loss_by_name_and_unknown():
    assert losses.get_loss("mse") is losses.mean_squared_error
    with pytest.raises(ValueError, match=r"loss: expected one of \[.*'mse'.*\], got 'hinge'"):
        losses.get_loss("hinge")
    with pytest.raises(TypeError, match="loss: expected a loss name or a callable, got int"):
        losses.get_loss(3)
