"""Data parallelism over 8 virtual CPU devices, in a subprocess (the device count is fixed when
JAX starts)."""

import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json
    import jax
    import numpy as np
    import fnn
    from fnn.train import programs

    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)
    model = fnn.models.MLP((16,), 3, dropout=0.1)
    opt = fnn.optim.sgd(0.1, momentum=0.9)
    out = {}

    def train(devices, batch_size, fused=True):
        state = fnn.TrainState.create(model, opt, x[:1], seed=0)
        return fnn.fit(state, x, y, loss="cross_entropy", batch_size=batch_size, epochs=3,
                       metrics=["accuracy"], verbose=0, devices=devices, fused=fused)

    for batch_size in [32, 1, "full", 20]:
        programs.clear_cache()
        many, h_many = train(None, batch_size)
        texts = [exe.as_text() for exe in programs.cached_programs()]
        one, h_one = train(jax.devices()[:1], batch_size)
        diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(
            jax.tree_util.tree_leaves(many.params), jax.tree_util.tree_leaves(one.params)))
        leaf = jax.tree_util.tree_leaves(many.params)[0]
        out[str(batch_size)] = dict(
            diff=diff,
            loss_many=h_many["loss"], loss_one=h_one["loss"],
            devices=len(leaf.sharding.device_set),
            all_reduce=any("all-reduce" in t for t in texts),
        )
    # A state trained on one device, then on all eight: moved, not mistaken for placed.
    moved, _ = fnn.fit(one, jax.device_put(x, jax.devices()[0]), y, loss="cross_entropy",
                       batch_size=32, epochs=1, verbose=0)
    out["moved_devices"] = len(jax.tree_util.tree_leaves(moved.params)[0].sharding.device_set)
    unfused, _ = train(None, 32, fused=False)
    fused, _ = train(None, 32)
    out["unfused_diff"] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(
        jax.tree_util.tree_leaves(unfused.params), jax.tree_util.tree_leaves(fused.params)))
    ev_many = fnn.evaluate(fused, x, y, loss="cross_entropy", metrics=["accuracy"], batch_size=16)
    ev_one = fnn.evaluate(fused, x, y, loss="cross_entropy", metrics=["accuracy"],
                          batch_size=16, devices=jax.devices()[:1])
    out["eval"] = [ev_many["loss"], ev_one["loss"], ev_many["accuracy"], ev_one["accuracy"]]
    p_many = fnn.predict(fused, x, batch_size=16)
    p_one = fnn.predict(fused, x, batch_size=16, devices=jax.devices()[:1])
    out["predict_diff"] = float(np.max(np.abs(p_many - p_one)))
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def result(run_on_cpu_devices):
    return run_on_cpu_devices(SCRIPT)


@pytest.mark.parametrize("batch_size", ["32", "full"])
def test_split_batches_all_reduce_and_match_one_device(result, batch_size):
    r = result[batch_size]
    assert r["devices"] == 8
    assert r["all_reduce"], "the gradient of a split batch must be all-reduced"
    assert r["diff"] < 1e-5
    assert r["loss_many"] == pytest.approx(r["loss_one"], rel=1e-5)


@pytest.mark.parametrize("batch_size", ["1", "20"])
def test_batches_that_do_not_divide_run_replicated(result, batch_size):
    r = result[batch_size]
    assert r["devices"] == 8 and not r["all_reduce"]
    assert r["diff"] < 1e-5


def test_a_one_device_state_and_data_move_to_the_mesh(result):
    assert result["moved_devices"] == 8


def test_unfused_evaluate_and_predict_on_eight_devices(result):
    assert result["unfused_diff"] < 1e-4
    many_loss, one_loss, many_acc, one_acc = result["eval"]
    assert many_loss == pytest.approx(one_loss, rel=1e-5) and many_acc == one_acc
    assert result["predict_diff"] < 1e-5
