"""The strategy choice, the runners' one interface, the model and data seams, the program cache."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import models, optim
from fnn.train import programs
from fnn.train.executors import (
    IN_MEMORY,
    EpochResult,
    Strategy,
    choose_strategy,
    make_runner,
)
from fnn.train.model import LinenModel, model_facts
from fnn.train.plan import Plan
from fnn.train.sources import HostArrays, prefetch

SGD = optim.sgd(0.1, momentum=0.9)


def small_problem(n=40, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = rng.integers(0, classes, size=n).astype(np.int32)
    return x, y


@pytest.fixture(scope="module")
def small_state():
    return fnn.TrainState.create(models.MLP((8,), 3), SGD, small_problem()[0][:1])


def facts_of(model, example):
    state = fnn.TrainState.create(model, SGD, example)
    spec = jax.ShapeDtypeStruct(example.shape, example.dtype)
    return model_facts(state.model, state.params, state.model_state, spec)


def test_model_facts_see_convolutions_and_loops():
    mlp = facts_of(models.MLP((8,), 3), np.zeros((1, 5), np.float32))
    cnn = facts_of(models.CNN(3, channels=(2,), dense=(4,)), np.zeros((1, 8, 8, 1), np.float32))
    lstm = facts_of(models.LSTM(hidden=4, outputs=2), np.zeros((1, 6, 3), np.float32))
    assert mlp.output_shape == (3,) and not mlp.has_convolution and not mlp.has_loop
    assert cnn.output_shape == (3,) and cnn.has_convolution and not cnn.has_loop
    assert lstm.output_shape == (2,) and lstm.has_loop and not lstm.has_convolution


@pytest.mark.parametrize(
    ("model", "shape", "backend", "data_bytes", "kwargs", "expected", "unroll"),
    [
        ("mlp", (1, 5), "cpu", 1000, {}, Strategy.FUSED, 2),
        ("mlp", (1, 5), "cpu", 10**6, dict(max_device_bytes=10**5), Strategy.STREAMED, 2),
        ("mlp", (1, 5), "cpu", 1000, dict(steps_per_chunk=3), Strategy.STREAMED, 2),
        ("cnn", (1, 8, 8, 1), "cpu", 1000, {}, Strategy.STEPWISE, 1),
        ("cnn", (1, 8, 8, 1), "gpu", 1000, {}, Strategy.FUSED, 2),
        (
            "cnn",
            (1, 8, 8, 1),
            "cpu",
            10**6,
            dict(max_device_bytes=1),
            Strategy.STREAMED_STEPWISE,
            1,
        ),
        ("lstm", (1, 6, 3), "cpu", 1000, {}, Strategy.FUSED, 1),
        ("cnn", (1, 8, 8, 1), "cpu", 1000, dict(strategy=Strategy.FUSED), Strategy.FUSED, 2),
        ("mlp", (1, 5), "cpu", 1000, dict(unroll=4), Strategy.FUSED, 4),
    ],
)
def test_choose_strategy(model, shape, backend, data_bytes, kwargs, expected, unroll):
    module = {
        "mlp": models.MLP((8,), 3),
        "cnn": models.CNN(3, channels=(2,), dense=(4,)),
        "lstm": models.LSTM(hidden=4, outputs=2),
    }[model]
    facts = facts_of(module, np.zeros(shape, np.float32))
    plan = Plan.make(40, 8, drop_remainder=False, shuffle=True)
    choice = choose_strategy(facts, plan, data_bytes, backend=backend, **kwargs)
    assert choice.strategy is expected, choice
    assert choice.unroll == unroll, choice
    assert choice.reason  # says why
    if expected in (Strategy.STREAMED, Strategy.STREAMED_STEPWISE):
        assert 1 <= choice.steps_per_chunk <= plan.steps


def test_choose_strategy_refuses_what_cannot_run():
    facts = facts_of(models.MLP((8,), 3), np.zeros((1, 5), np.float32))
    full = Plan.make(40, 40, drop_remainder=False, shuffle=True)
    with pytest.raises(ValueError, match="batch_size: a full batch of 1000 bytes cannot be"):
        choose_strategy(facts, full, 1000, backend="cpu", max_device_bytes=10)
    plan = Plan.make(40, 8, drop_remainder=False, shuffle=True)
    with pytest.raises(ValueError, match="steps_per_chunk: applies only to the streamed"):
        choose_strategy(facts, plan, 1000, backend="cpu", strategy=Strategy.FUSED,
                        steps_per_chunk=2)  # fmt: skip


@pytest.mark.parametrize("strategy", sorted(s.value for s in IN_MEMORY))
def test_every_strategy_can_be_forced_is_recorded_and_agrees(strategy):
    x, y = small_problem(n=23)
    kwargs = dict(loss="cross_entropy", batch_size=5, epochs=2, verbose=0, metrics=["accuracy"])
    model = models.MLP((16,), 3, dropout=0.1)
    ref, h_ref = fnn.fit(fnn.TrainState.create(model, SGD, x[:1]), x, y, **kwargs)
    assert h_ref.strategy == "fused" and "fits on the device" in h_ref.strategy_reason
    got, h = fnn.fit(fnn.TrainState.create(model, SGD, x[:1]), x, y, strategy=strategy, **kwargs)
    assert h.strategy == strategy and h.strategy_reason.startswith("forced")
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), ref.params, got.params
    )
    assert h["accuracy"] == h_ref["accuracy"] and int(got.step) == int(ref.step) == 10


def test_strategy_survives_the_history_round_trip(tmp_path):
    x, y = small_problem()
    _, history = fnn.fit(
        fnn.TrainState.create(models.MLP((8,), 3), SGD, x[:1]), x, y, loss="cross_entropy",
        batch_size=8, epochs=1, verbose=0, fused=False,
    )  # fmt: skip
    assert history.strategy == "unfused" and "forced" in history.strategy_reason
    history.to_json(tmp_path / "h.json")
    again = fnn.History.from_json(tmp_path / "h.json")
    assert (again.strategy, again.strategy_reason) == (history.strategy, history.strategy_reason)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(strategy="scan"), ValueError, r"strategy: expected one of \['fused', 'stepwise'"),
        (dict(strategy=2), TypeError, r"strategy: expected one of \['fused'.*got 2"),
        (dict(strategy="fused", fused=False), ValueError, "fused, strategy: fused=False asks"),
        (dict(fused="no"), TypeError, "fused: expected True or False, got 'no'"),
        (dict(shuffle="False"), TypeError, "shuffle: expected True or False, got 'False'"),
        (dict(unroll=2.5), TypeError, "unroll: expected an integer"),
        (dict(unroll=0), ValueError, "unroll: expected an integer >= 1, got 0"),
        (dict(steps_per_chunk=0), ValueError, "steps_per_chunk: expected an integer >= 1"),
        (dict(max_device_bytes="1GB"), TypeError, "max_device_bytes: expected an integer"),
        (dict(epochs=1.5), TypeError, "epochs: expected an integer"),
        (dict(callbacks="es"), TypeError, "callbacks: expected a list of fnn.Callback"),
        (dict(callbacks=[fnn.EarlyStopping("loss"), 3]), TypeError,
         r"callbacks\[1\]: expected an fnn.Callback, got int"),  # fmt: skip
        (dict(devices="cpu"), TypeError, "devices: expected a sequence of jax.Device"),
        (dict(devices=[]), ValueError, "devices: expected at least one device"),
        (dict(verbose=3), ValueError, r"verbose: expected one of \[0, 1, 2\], got 3"),
        (dict(resume_from=123), TypeError, "resume_from: expected a directory, got int"),
    ],
)
def test_fit_options_are_checked_before_compiling(small_state, kwargs, error, match, compiles):
    x, y = small_problem()
    state = small_state
    base = dict(loss="cross_entropy", batch_size=8, epochs=1, verbose=0)
    with pytest.raises(error, match=match):
        fnn.fit(state, x, y, **{**base, **kwargs})
    assert compiles.count() == 0, compiles.names()


def test_callbacks_may_be_none_or_a_single_callback_but_not_one_object_twice(small_state):
    x, y = small_problem()
    base = dict(loss="cross_entropy", batch_size=8, epochs=3, verbose=0)
    _, history = fnn.fit(small_state, x, y, callbacks=None, **base)
    assert len(history) == 3
    stop = fnn.LambdaCallback(on_epoch_end=lambda run: setattr(run, "stop_reason", "enough"))
    _, history = fnn.fit(small_state, x, y, callbacks=stop, **base)
    assert len(history) == 1 and history.stop_reason == "enough"
    with pytest.raises(ValueError, match=r"callbacks\[1\]: the same LambdaCallback object is "):
        fnn.fit(small_state, x, y, callbacks=[stop, stop], **base)


def test_runners_share_one_interface():
    x, y = small_problem(n=20)
    state = fnn.TrainState.create(models.MLP((8,), 3), SGD, x[:1])
    plan = Plan.make(20, 4, drop_remainder=False, shuffle=True)
    facts = facts_of(models.MLP((8,), 3), x[:1])
    place = fnn.parallel.placement(jax.devices()[:1])
    key = jax.random.key(0)
    results = {}
    for strategy in IN_MEMORY:
        choice = choose_strategy(facts, plan, x.nbytes + y.nbytes, backend="cpu",
                                 strategy=strategy)  # fmt: skip
        runner = make_runner(choice, x, y, plan, key, fnn.losses.get_loss("cross_entropy"), (),
                             place)  # fmt: skip
        full = runner.run(state, 1)
        part = runner.run(state, 1, stop_after=2)
        assert isinstance(full, EpochResult) and isinstance(part, EpochResult)
        assert int(full.state.step) == 5 and int(part.state.step) == 2
        assert float(full.sums["loss"]["count"]) == 20 and float(part.sums["loss"]["count"]) == 8
        assert int(full.first_bad_step) == -1 and full.compile_seconds >= 0
        results[strategy] = full.state.params
    for params in results.values():
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
            params,
            results[Strategy.FUSED],
        )


def test_host_chunks_follow_the_epoch_permutation():
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10, dtype=np.int32)
    plan = Plan.make(10, 3, drop_remainder=False, shuffle=True)
    source = HostArrays(x, y, plan, jax.random.key(7))
    idx, mask = source.indices(2)
    chunks = list(source.chunks(2, size=3))
    assert [c[0].shape[:2] for c in chunks] == [(3, 3), (1, 3)]  # 4 batches: 3 + 1
    ys = np.concatenate([c[1] for c in chunks])
    np.testing.assert_array_equal(ys, idx)
    np.testing.assert_array_equal(np.concatenate([c[2] for c in chunks]), mask)
    assert sorted(idx[mask > 0].tolist()) == list(range(10))
    assert len(list(source.chunks(2, size=3, stop_after=2))) == 1


def test_prefetch_puts_each_item_once_in_order():
    put = []
    got = list(prefetch(iter([1, 2, 3]), lambda v: put.append(v) or v * 10))
    assert got == [10, 20, 30] and put == [1, 2, 3]
    assert list(prefetch([], lambda v: v)) == []


class HandLinear:
    """A model that is not a Flax module: ``x @ w + b`` behind the model seam."""

    def __init__(self, outputs: int):
        self.outputs = outputs

    def init(self, key, example):
        w = jax.random.normal(key, (example.shape[-1], self.outputs)) * 0.1
        return {"w": w, "b": jnp.zeros((self.outputs,))}, {}

    def apply(self, params, model_state, x, *, train, key=None):
        del train, key
        return x @ params["w"] + params["b"][None], model_state

    def __hash__(self):
        return hash(self.outputs)

    def __eq__(self, other):
        return isinstance(other, HandLinear) and other.outputs == self.outputs


def test_any_object_with_init_and_apply_trains_through_the_model_seam():
    x, y = small_problem(n=60, classes=2)
    y = (x[:, 0] > 0).astype(np.int32)
    state = fnn.TrainState.create(HandLinear(2), optim.sgd(0.5), x[:1])
    state, history = fnn.fit(
        state, x, y, loss="cross_entropy", batch_size=10, epochs=20, verbose=0,
        metrics=["accuracy"],
    )  # fmt: skip
    assert history["accuracy"][-1] >= 0.95
    logits = fnn.predict(state, x)
    np.testing.assert_allclose(logits, x @ state.params["w"] + state.params["b"][None], rtol=1e-5,
                               atol=1e-5)  # fmt: skip
    with pytest.raises(AttributeError, match="apply_fn: only a linen model has one"):
        state.apply_fn  # noqa: B018


def test_linen_model_keeps_its_other_collections_as_model_state():
    class Counting(nn.Module):
        @nn.compact
        def __call__(self, x, *, train=False):
            seen = self.variable("counts", "seen", jnp.zeros, (), jnp.float32)
            if train:
                seen.value = seen.value + x.shape[0]
            return nn.Dense(2)(x)

    model = LinenModel(Counting())
    params, model_state = model.init(jax.random.key(0), jnp.ones((1, 3)))
    assert set(params) == {"Dense_0"} and float(model_state["counts"]["seen"]) == 0
    _, after = model.apply(params, model_state, jnp.ones((4, 3)), train=True, key=None)
    assert float(after["counts"]["seen"]) == 4
    _, same = model.apply(params, after, jnp.ones((4, 3)), train=False)
    assert float(same["counts"]["seen"]) == 4  # eval mode reads, never writes


def test_the_program_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(programs, "CACHE_SIZE", 2)
    programs.clear_cache()
    fn = lambda a: a * 2  # noqa: E731

    for n in (1, 2, 3):
        programs.compiled(fn, (jnp.ones((n,)),), {})
    assert len(programs.cached_programs()) == 2
    before = programs.compile_seconds()
    programs.compiled(fn, (jnp.ones((3,)),), {})  # still cached
    assert programs.compile_seconds() == before
    programs.compiled(fn, (jnp.ones((1,)),), {})  # evicted first: compiled again
    assert programs.compile_seconds() > before
    programs.clear_cache()


def test_callback_is_exported_at_the_top_level():
    assert fnn.Callback is fnn.train.Callback
    assert "Callback" in fnn.__all__ and "Strategy" in fnn.__all__
    # The errors a user catches around fit are public where fit is.
    from fnn.train import checkpoint, loop

    assert fnn.RunMismatchError is checkpoint.RunMismatchError
    assert fnn.DamagedCheckpointError is checkpoint.DamagedCheckpointError
    assert fnn.train.Preempted is loop.Preempted
    assert issubclass(fnn.train.Preempted, KeyboardInterrupt)
    for name in ("RunMismatchError", "DamagedCheckpointError", "NonFiniteLossError"):
        assert name in fnn.__all__ and name in fnn.train.__all__


class NoTrainKeyword(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(10)(nn.relu(nn.Dense(32)(x)))


class Deterministic(nn.Module):
    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        return nn.Dense(10)(nn.Dropout(0.2, deterministic=deterministic)(nn.Dense(32)(x)))


def test_modules_without_a_train_keyword_train_and_take_their_mode_as_flax_does():
    from fnn.train.model import mode_argument

    assert mode_argument(NoTrainKeyword()) is None
    assert mode_argument(Deterministic()) == "deterministic"
    assert mode_argument(models.MLP((4,), 3)) == "train"
    assert mode_argument(nn.Sequential([nn.Dense(3)])) is None
    (x, y), (x_test, y_test) = fnn.data.load("digits", flatten=True)
    for module in (NoTrainKeyword(), Deterministic(), nn.Sequential([nn.Dense(32), nn.relu,
                                                                      nn.Dense(10)])):  # fmt: skip
        state = fnn.TrainState.create(module, optim.adam(1e-2), x[:1])
        state, _ = fnn.fit(state, x, y, loss="cross_entropy", batch_size=64, epochs=10, verbose=0)
        result = fnn.evaluate(state, x_test, y_test, loss="cross_entropy", metrics=["accuracy"])
        assert result["accuracy"] >= 0.9, (type(module).__name__, result)
    # Dropout is on in train mode only: the same inputs give other outputs in train mode.
    model = LinenModel(Deterministic())
    params, model_state = model.init(jax.random.key(0), jnp.ones((1, 8)))
    x8 = jnp.ones((4, 8))
    eval_a, _ = model.apply(params, model_state, x8, train=False)
    eval_b, _ = model.apply(params, model_state, x8, train=False)
    train_out, _ = model.apply(params, model_state, x8, train=True, key=jax.random.key(1))
    np.testing.assert_array_equal(eval_a, eval_b)
    assert not np.allclose(eval_a, train_out)


def test_a_model_that_fails_on_its_example_is_named_not_the_data():
    match = r"model: CNN failed to initialise on example_input of shape \(1, 5\) and dtype float32"
    with pytest.raises(ValueError, match=match + ": ValueError: x: "):
        fnn.TrainState.create(models.CNN(3), SGD, np.ones((1, 5), np.float32))
