"""Flax NNX modules through fit: the split state, train / eval mode, the step key as every RNG
stream, checkpoints, non-finite losses and data parallelism."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import fnn
from fnn.train import NnxModel
from fnn.train.model import as_model, model_facts
from fnn.train.plan import Plan, epoch_indices


class Net(nnx.Module):
    """64 -> hidden -> 10 with BatchNorm and (optionally) Dropout, the NNX way."""

    def __init__(self, hidden=64, dropout=0.1, *, rngs: nnx.Rngs):
        self.dense = nnx.Linear(64, hidden, rngs=rngs)
        self.norm = nnx.BatchNorm(hidden, momentum=0.9, rngs=rngs)
        self.drop = nnx.Dropout(dropout, rngs=rngs)
        self.out = nnx.Linear(hidden, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(nnx.relu(self.norm(self.dense(x)))))


@pytest.fixture(scope="module")
def digits():
    return fnn.data.load("digits", flatten=True)


def assert_trees_close(a, b, tol=1e-5):
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, tol, tol), a, b)


def assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def max_change(a, b) -> float:
    diffs = jax.tree_util.tree_map(lambda u, v: float(jnp.max(jnp.abs(u - v))), a, b)
    return max(jax.tree_util.tree_leaves(diffs))


FIT = dict(loss="cross_entropy", batch_size=32, verbose=0)
ADAM = optax.adam(3e-3)  # one object: equal models with it share their compiled programs


def trained(x, y, *, epochs, seed=0, **kwargs):
    state = fnn.TrainState.create(Net(rngs=nnx.Rngs(0)), ADAM, x[:1], seed=seed)
    return state, *fnn.fit(state, x, y, epochs=epochs, seed=seed, **FIT, **kwargs)


@pytest.fixture(scope="module")
def run(digits):
    (x, y), _ = digits
    return trained(x, y, epochs=8)


def test_the_state_is_split_into_pure_dicts_of_arrays(digits):
    (x, _), _ = digits
    state = fnn.TrainState.create(Net(rngs=nnx.Rngs(0)), optax.sgd(0.1), x[:1])
    assert isinstance(state.model, NnxModel) and repr(state.model) == "NnxModel(Net)"
    assert set(state.params) == {"dense", "norm", "out"}
    assert set(state.params["norm"]) == {"scale", "bias"}
    # BatchStat and the Dropout stream; the typed key is kept as raw key data.
    assert state.model_state["norm"].keys() == {"mean", "var"}
    rngs = state.model_state["drop"]["rngs"]
    assert rngs["key"].dtype == jnp.uint32 and rngs["count"].dtype == jnp.uint32
    leaves = jax.tree_util.tree_leaves((state.params, state.model_state))
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    jax.tree_util.tree_map(np.array, state)  # copies to NumPy, as callbacks do
    facts = model_facts(state.model, state.params, state.model_state, x[:1])
    assert facts.output_shape == (10,) and not facts.has_convolution
    with pytest.raises(AttributeError, match="only a linen model has one"):
        state.apply_fn  # noqa: B018


def test_equal_modules_give_equal_models_and_a_bad_example_names_the_class():
    a, b = as_model(Net(rngs=nnx.Rngs(0))), as_model(Net(rngs=nnx.Rngs(1)))
    assert a == b and hash(a) == hash(b)  # the graph decides, not the initial values
    assert as_model(Net(hidden=32, rngs=nnx.Rngs(0))) != a
    assert as_model(Net(dropout=0.5, rngs=nnx.Rngs(0))) != a
    assert as_model(a) is a
    with pytest.raises(TypeError, match=r"model: Net failed to initialise on example_input"):
        fnn.TrainState.create(Net(rngs=nnx.Rngs(0)), optax.sgd(0.1), jnp.ones((1, 3)))


def test_trains_to_95_percent_and_the_same_seed_gives_the_same_bits(digits, run):
    (x, y), (x_test, y_test) = digits
    _, state, history = run
    out = fnn.evaluate(state, x_test, y_test, loss="cross_entropy", metrics=["accuracy"])
    assert out["accuracy"] >= 0.95
    assert history.strategy == "fused"
    (_, first, _), (_, again, _) = trained(x, y, epochs=2), trained(x, y, epochs=2)
    assert_trees_equal(first.params, again.params)
    assert_trees_equal(first.model_state, again.model_state)
    # Another seed: other shuffles and other dropout masks.
    _, other, _ = trained(x, y, epochs=2, seed=1)
    assert max_change(first.params, other.params) > 1e-3


def test_dropout_draws_from_the_step_key(digits):
    (x, _), _ = digits
    state = fnn.TrainState.create(Net(dropout=0.5, rngs=nnx.Rngs(0)), optax.sgd(0.1), x[:1])
    apply = jax.jit(lambda s, key: state.model.apply(state.params, s, x[:8], train=True, key=key))
    a, sa = apply(state.model_state, jax.random.key(1))
    b, _ = apply(state.model_state, jax.random.key(1))
    c, _ = apply(state.model_state, jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert float(jnp.max(jnp.abs(a - c))) > 1e-3
    # The stream was reseeded from the key and drew once; eval mode draws nothing.
    assert int(sa["drop"]["rngs"]["count"]) == 1
    out, kept = state.model.apply(state.params, state.model_state, x[:8], train=False)
    assert kept is state.model_state
    np.testing.assert_array_equal(out, state.model.apply(state.params, kept, x[:8], train=False)[0])


class Noisy(nnx.Module):
    """A list of layers (integer keys in the state) and a stream of its own, drawn in call."""

    def __init__(self, rngs: nnx.Rngs):
        layers = [nnx.Linear(64, 16, rngs=rngs), nnx.relu, nnx.Dropout(0.2, rngs=rngs)]
        self.seq = nnx.Sequential(*layers, nnx.Linear(16, 10, rngs=rngs))
        self.rngs = rngs

    def __call__(self, x):
        return self.seq(x + 0.1 * jax.random.normal(self.rngs.noise(), x.shape))


def test_every_stream_is_reseeded_from_the_step_key_and_the_state_checkpoints(digits, tmp_path):
    (x, _), _ = digits
    module = Noisy(nnx.Rngs(params=0, noise=1, dropout=2))
    state = fnn.TrainState.create(module, optax.sgd(0.1), x[:1])
    assert set(state.params["seq"]["layers"]) == {0, 3}
    step = jax.jit(lambda s, key: state.model.apply(state.params, s, x[:8], train=True, key=key))
    out, new = step(state.model_state, jax.random.key(5))
    again, _ = step(new, jax.random.key(5))  # the stored keys do not matter in train mode
    np.testing.assert_array_equal(out, again)
    assert int(new["rngs"]["noise"]["count"]) == 1 and int(new["rngs"]["dropout"]["count"]) == 0
    assert int(new["seq"]["layers"][2]["rngs"]["count"]) == 1
    keys = [new["rngs"]["noise"]["key"], new["seq"]["layers"][2]["rngs"]["key"]]
    assert not np.array_equal(*keys)  # each stream its own bits
    # Integer keys and raw key data through Orbax and back into the same structure.
    store = fnn.train.checkpoint.CheckpointStore(tmp_path / "ckpt")
    saved = state.replace(model_state=new)
    store.save(1, saved, seed=0, history=fnn.History())
    restored, *_ = store.restore(state)
    assert_trees_equal(saved.params, restored.params)
    assert_trees_equal(saved.model_state, restored.model_state)
    store.close()


def test_batch_statistics_move_in_training_only_and_predict_is_the_eval_forward(digits, run):
    (_, _), (x_test, y_test) = digits
    start, state, _ = run
    assert max_change(start.model_state["norm"], state.model_state["norm"]) > 1e-3
    before = jax.tree_util.tree_map(np.array, state.model_state)
    fnn.evaluate(state, x_test, y_test, loss="cross_entropy", metrics=["accuracy"])
    logits = fnn.predict(state, x_test)
    assert_trees_equal(before, state.model_state)
    # By hand: merge the trained state into the module, eval mode, call it.
    module = nnx.merge(state.model.graphdef, state.params, state.model_state)
    module.eval()
    np.testing.assert_allclose(logits, module(jnp.asarray(x_test)), rtol=1e-5, atol=1e-5)
    merged = state.model.merge(state.params, state.model_state)  # keys rewrapped
    merged.eval()
    np.testing.assert_allclose(logits, merged(jnp.asarray(x_test)), rtol=1e-5, atol=1e-5)
    assert isinstance(state.model.module, Net)  # the module given, never changed by fit
    assert_trees_equal(nnx.to_pure_dict(nnx.state(state.model.module, nnx.Param)), start.params)


def test_matches_a_hand_written_nnx_loop_on_the_same_permutation(digits):
    (x, y), _ = digits
    x, y = x[:256], y[:256]
    module, tx = Net(dropout=0.0, rngs=nnx.Rngs(0)), optax.sgd(0.1, momentum=0.9)
    hand = nnx.clone(module)
    state = fnn.TrainState.create(module, tx, x[:1])
    trained_state, _ = fnn.fit(state, x, y, epochs=1, seed=3, **FIT)

    # The loop of Flax's NNX tutorial, on fnn's permutation of epoch 1.
    optimizer = nnx.Optimizer(hand, tx, wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, xb, yb):
        def loss_fn(model):
            logits = model(xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        grads = nnx.grad(loss_fn)(model)
        optimizer.update(model, grads)

    hand.train()
    plan = Plan.make(256, 32, drop_remainder=False, shuffle=True)
    idx, _ = epoch_indices(jax.random.key(3), np.int32(1), plan)
    for row in np.asarray(idx):
        train_step(hand, optimizer, x[row], y[row])
    assert_trees_close(trained_state.params, nnx.to_pure_dict(nnx.state(hand, nnx.Param)))
    assert_trees_close(
        trained_state.model_state["norm"], nnx.to_pure_dict(nnx.state(hand, nnx.BatchStat))["norm"]
    )
    assert max_change(state.params, trained_state.params) > 1e-3


def test_resume_from_a_checkpoint_ends_bit_for_bit_where_one_run_does(digits, tmp_path):
    (x, y), _ = digits
    x, y = x[:512], y[:512]
    state, full, _ = trained(x, y, epochs=4)
    ckpt = tmp_path / "ckpt"
    fnn.fit(state, x, y, epochs=2, callbacks=[fnn.Checkpoint(ckpt)], **FIT)
    fresh = fnn.TrainState.create(Net(rngs=nnx.Rngs(0)), ADAM, x[:1])
    resumed, history = fnn.fit(fresh, x, y, epochs=4, resume_from=str(ckpt),
                               resume_overrides=("epochs",), **FIT)  # fmt: skip
    assert len(history) == 4 and int(resumed.step) == int(full.step)
    assert_trees_equal(full.params, resumed.params)
    assert_trees_equal(full.model_state, resumed.model_state)
    assert_trees_equal(full.opt_state, resumed.opt_state)


def test_a_nan_raises_with_a_usable_state(digits):
    (x, y), _ = digits
    state = fnn.TrainState.create(Net(rngs=nnx.Rngs(0)), optax.sgd(1e30), x[:1])
    with pytest.raises(fnn.NonFiniteLossError) as info:
        fnn.fit(state, x[:256], y[:256], epochs=3, **FIT)
    good = info.value.state
    assert isinstance(good.model, NnxModel) and int(good.step) == info.value.global_step
    assert fnn.predict(good, x[:4]).shape == (4, 10)


PARALLEL = textwrap.dedent(
    """
    import json
    import jax
    import numpy as np
    import optax
    from flax import nnx
    import fnn

    assert jax.device_count() == 8, jax.devices()

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.dense = nnx.Linear(6, 16, rngs=rngs)
            self.norm = nnx.BatchNorm(16, rngs=rngs)
            self.drop = nnx.Dropout(0.1, rngs=rngs)
            self.out = nnx.Linear(16, 3, rngs=rngs)

        def __call__(self, x):
            return self.out(self.drop(nnx.relu(self.norm(self.dense(x)))))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)

    def train(devices):
        state = fnn.TrainState.create(Net(nnx.Rngs(0)), optax.sgd(0.1, momentum=0.9), x[:1])
        return fnn.fit(state, x, y, loss="cross_entropy", batch_size=32, epochs=3, verbose=0,
                       devices=devices)

    (many, h_many), (one, h_one) = train(None), train(jax.devices()[:1])
    diff = lambda a, b: max(float(np.max(np.abs(np.asarray(u) - np.asarray(v))))
                            for u, v in zip(jax.tree_util.tree_leaves(a),
                                            jax.tree_util.tree_leaves(b)))
    leaf = jax.tree_util.tree_leaves(many.params)[0]
    print("RESULT " + json.dumps(dict(
        params=diff(many.params, one.params), state=diff(many.model_state, one.model_state),
        devices=len(leaf.sharding.device_set), loss=[h_many["loss"], h_one["loss"]])))
    """
)


def test_data_parallel_on_eight_devices_matches_one(run_on_cpu_devices):
    result = run_on_cpu_devices(PARALLEL)
    assert result["devices"] == 8
    assert result["params"] < 1e-5 and result["state"] < 1e-5
    np.testing.assert_allclose(*result["loss"], rtol=1e-5)
