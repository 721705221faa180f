"""Every implementation trains the same model on tiny data; missing peers are skipped."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import runners
from benchmarks.runners import RUNNERS, availability
from benchmarks.suite import _workload_skips
from benchmarks.workloads import get_workload, to_inputs

FNN_RUNNERS = ["fnn_fused", "fnn_unfused", "fnn_fused_nnx", "fnn_fused_bf16", "fnn_iterable"]
JAX_RUNNERS = [*FNN_RUNNERS, "flax_loop", "flax_scan", "nnx_loop"]


def _available_or_skip(name):
    reason = availability(name)
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.parametrize("name", JAX_RUNNERS)
def test_jax_runners_train_and_evaluate(name, mlp, tiny_data):
    _available_or_skip(name)
    runner = RUNNERS[name](mlp, tiny_data, 16, seed=0)
    runner.setup()
    before = runner.evaluate(tiny_data.x_train, tiny_data.y_train)
    runner.run_epochs(3)
    after = runner.evaluate(tiny_data.x_train, tiny_data.y_train)
    assert runner.epochs_done == 3
    assert after["loss"] < before["loss"]
    assert 0.0 <= after["accuracy"] <= 1.0
    assert runner.samples_per_epoch == 64 and runner.steps_per_epoch == 4
    runner.close()


def test_remainder_accounting(mlp, tiny_data):
    scan = RUNNERS["flax_scan"](mlp, tiny_data, 24)
    loop = RUNNERS["flax_loop"](mlp, tiny_data, 24)
    assert (scan.steps_per_epoch, scan.samples_per_epoch) == (2, 48)
    assert (loop.steps_per_epoch, loop.samples_per_epoch) == (3, 64)
    with pytest.raises(ValueError, match="batch_size"):
        RUNNERS["flax_loop"](mlp, tiny_data, 65)


def _flax_param_count(workload, input_shape):
    import jax

    model = workload.build(10)
    x = jax.ShapeDtypeStruct((1, *input_shape), np.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
    return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))


SHAPES = [("logreg", (64,)), ("mlp", (64,)), ("cnn", (8, 8, 1)), ("lstm", (8, 8))]


@pytest.mark.parametrize("workload,input_shape", SHAPES)
def test_peer_models_have_the_reference_parameter_count(workload, input_shape):
    import jax

    w = get_workload(workload)
    expected = _flax_param_count(w, input_shape)
    if availability("torch_eager") is None:
        from benchmarks.runners.torch_peer import build_torch_model, import_torch

        model = build_torch_model(import_torch(), workload, input_shape, 10)
        n = sum(p.numel() for p in model.parameters())
        # PyTorch's LSTM has two bias vectors (b_ih, b_hh) where Flax has one: 4 * hidden more.
        assert n == expected + (4 * 128 if workload == "lstm" else 0)
    if availability("keras_spe1") is None and workload in ("mlp", "lstm"):  # Keras builds slowly
        from benchmarks.runners.keras_peer import build_keras_model, import_keras

        with jax.numpy_rank_promotion("allow"):  # Keras broadcasts biases implicitly
            model = build_keras_model(import_keras(), workload, input_shape, 10)
        assert model.count_params() == expected


@pytest.mark.parametrize("workload", ["logreg", "mlp"])
def test_the_nnx_network_has_the_reference_parameter_count(workload):
    from flax import nnx

    from benchmarks.runners.nnx_runners import build_nnx_model

    w = get_workload(workload)
    model = build_nnx_model(w, (64,), 10, seed=0)
    params = nnx.state(model, nnx.Param)
    n = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
    assert n == _flax_param_count(w, (64,))


def test_nnx_runners_start_alike_and_skip_workloads_without_an_nnx_network(mlp, tiny_data):
    fnn_nnx, loop = (RUNNERS[n](mlp, tiny_data, 16, seed=0) for n in ("fnn_fused_nnx", "nnx_loop"))
    fnn_nnx.setup()
    loop.setup()
    jax.tree_util.tree_map(np.testing.assert_array_equal, fnn_nnx.params, loop.params)
    assert RUNNERS["fnn_fused_nnx"].family == "fnn" and RUNNERS["nnx_loop"].family == "flax"
    for name in ("fnn_fused_nnx", "nnx_loop"):
        assert availability(name, mlp) is None
        for other in ("cnn", "lstm"):
            assert "no NNX model" in availability(name, get_workload(other))
    assert availability("fnn_fused", get_workload("lstm")) is None
    skips = _workload_skips(get_workload("cnn"), ["fnn_fused", "nnx_loop"], {"keras_spe1": "x"})
    assert set(skips) == {"keras_spe1", "nnx_loop"}


def test_bf16_runner_computes_in_bf16_on_float32_parameters(mlp, tiny_data):
    _available_or_skip("fnn_fused_bf16")
    runner = RUNNERS["fnn_fused_bf16"](mlp, tiny_data, 16, seed=0)
    runner.setup()
    logits = runner.build_model().apply({"params": runner.params}, tiny_data.x_train[:2])
    assert logits.dtype == jnp.bfloat16
    assert {p.dtype for p in jax.tree_util.tree_leaves(runner.params)} == {jnp.dtype("float32")}
    # The same initial parameters as fnn fused in float32 (only the compute dtype differs).
    f32 = RUNNERS["fnn_fused"](mlp, tiny_data, 16, seed=0)
    f32.setup()
    jax.tree_util.tree_map(np.testing.assert_array_equal, runner.params, f32.params)


def test_iterable_runner_reads_whole_batches_and_times_its_loader(mlp, tiny_data):
    _available_or_skip("fnn_iterable")
    runner = RUNNERS["fnn_iterable"](mlp, tiny_data, 24, seed=0)  # 64 = 2 x 24 + 16
    assert (runner.steps_per_epoch, runner.samples_per_epoch) == (2, 48)
    runner.setup()
    runner.run_epochs(2)
    runner.run_epochs(1)  # the same iterator continues
    assert runner.epochs_done == 3
    extra = runner.diagnostics()
    assert set(extra) == {"input_call_s", "input_read_epoch_s", "input_source_epoch_s",
                          "input_copy_epoch_s"}  # fmt: skip
    assert all(v >= 0 for v in extra.values()) and extra["input_read_epoch_s"] > 0
    runner.close()


@pytest.mark.parametrize("name", ["fnn_fused_bf16", "fnn_iterable"])
def test_fnn_variants_run_the_dense_workloads_only(name):
    assert RUNNERS[name].family == "fnn"
    for workload in ("logreg", "mlp"):
        assert availability(name, get_workload(workload)) is None
    for workload in ("cnn", "lstm"):
        reason = availability(name, get_workload(workload))
        assert reason is not None and "only dense workloads" in reason


def test_torch_runner_smoke(mlp, tiny_data):
    _available_or_skip("torch_eager")
    runner = RUNNERS["torch_eager"](mlp, tiny_data, 16, seed=0)
    runner.setup()
    before = runner.evaluate(tiny_data.x_train, tiny_data.y_train)
    runner.run_epochs(3)
    after = runner.evaluate(tiny_data.x_train, tiny_data.y_train)
    assert after["loss"] < before["loss"]


def test_keras_runner_smoke(mlp, tiny_data):
    _available_or_skip("keras_spe64")
    runner = RUNNERS["keras_spe64"](mlp, tiny_data, 16, seed=0)
    runner.setup()
    runner.run_epochs(2)
    out = runner.evaluate(tiny_data.x_test, tiny_data.y_test)
    assert np.isfinite(out["loss"]) and 0.0 <= out["accuracy"] <= 1.0


def test_missing_peers_are_reported_unavailable(block_imports):
    block_imports("keras", "torch")
    for name in ("keras_spe1", "keras_spe64", "torch_eager"):
        reason = availability(name)
        assert reason is not None and "not installed" in reason
    assert availability("flax_loop") is None


def test_implementations_by_family():
    assert runners.implementations(["fnn"]) == FNN_RUNNERS
    assert "nnx_loop" in runners.implementations(["flax"])
    assert set(runners.implementations(["keras"])) == {"keras_spe1", "keras_spe64"}
    with pytest.raises(ValueError):
        runners.implementations(["jax"])


def test_input_layouts():
    images = np.zeros((5, 28, 28, 1), np.float32)
    assert to_inputs(images, "flat").shape == (5, 784)
    assert to_inputs(images, "flat8").shape == (5, 64)
    assert to_inputs(images, "image").shape == (5, 28, 28, 1)
    assert to_inputs(images, "sequence").shape == (5, 28, 28)
    ones = np.ones((2, 28, 28, 1), np.float32)
    np.testing.assert_allclose(to_inputs(ones, "flat8"), 1.0)
