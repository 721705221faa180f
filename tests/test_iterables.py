"""fit / evaluate / predict on iterables of batches: generators, lists, loaders."""

import jax
import numpy as np
import optax
import pytest

import fnn
from fnn import models, optim
from fnn.train.sources import BatchError, IterableBatches, is_batch_iterable


@pytest.fixture(scope="module")
def digits():
    return fnn.data.load("digits", flatten=True)


def batches_of(x, y, size):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def fresh(x, lr=0.1):
    return fnn.TrainState.create(models.MLP((64,), 10), optim.sgd(lr, momentum=0.9), x[:1])


def assert_trees_equal(a, b):
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def y_placeholder():
    return np.zeros((4,), np.int32)


def test_an_iterable_trains_exactly_like_the_same_batches_in_memory(digits):
    (x, y), (x_test, y_test) = digits
    batches = batches_of(x, y, 50)  # 1438 = 28 x 50 + 38: a ragged last batch
    kwargs = dict(loss="cross_entropy", epochs=4, verbose=0, metrics=["accuracy"])
    it_state, h_it = fnn.fit(fresh(x), batches, **kwargs)
    mem_state, h_mem = fnn.fit(fresh(x), x, y, batch_size=50, shuffle=False, **kwargs)
    assert h_it.strategy == "iterable" and h_it["steps"] == [29] * 4
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        it_state.params,
        mem_state.params,
    )
    np.testing.assert_allclose(h_it["loss"], h_mem["loss"], rtol=1e-5)
    result = fnn.evaluate(it_state, batches_of(x_test, y_test, 64), loss="cross_entropy",
                          metrics=["accuracy"])  # fmt: skip
    expected = fnn.evaluate(it_state, x_test, y_test, loss="cross_entropy", metrics=["accuracy"])
    assert result["accuracy"] == expected["accuracy"] >= 0.95
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    outputs = fnn.predict(it_state, (x_test[i : i + 64] for i in range(0, len(x_test), 64)))
    np.testing.assert_allclose(outputs, fnn.predict(it_state, x_test), rtol=1e-6, atol=1e-6)


def test_a_generator_with_steps_per_epoch_and_iterable_validation(digits):
    (x, y), (x_test, y_test) = digits

    def forever():
        rng = np.random.default_rng(0)
        while True:
            order = rng.permutation(len(x))
            for i in range(0, len(x) - 31, 32):
                rows = order[i : i + 32]
                yield x[rows], y[rows]

    state, history = fnn.fit(
        fresh(x), forever(), loss="cross_entropy", epochs=5, steps_per_epoch=44, verbose=0,
        metrics=["accuracy"], validation_data=batches_of(x_test, y_test, 100),
    )  # fmt: skip
    assert history["steps"] == [44] * 5 and int(state.step) == 220
    assert history["val_accuracy"][-1] >= 0.95
    # Each epoch continues the generator where the last one stopped (no batch seen twice).
    assert history["loss"][-1] < history["loss"][0]


def test_a_mask_from_the_pipeline_is_used_as_given(digits):
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    half = np.r_[np.ones(16), np.zeros(16)].astype(np.float32)
    masked, _ = fnn.fit(fresh(x), [(x[:32], y[:32], half), (x[32:], y[32:], half)],
                        loss="cross_entropy", epochs=1, verbose=0)  # fmt: skip
    real, _ = fnn.fit(fresh(x), [(x[:16], y[:16]), (x[32:48], y[32:48])], loss="cross_entropy",
                      epochs=1, verbose=0)  # fmt: skip
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        masked.params,
        real.params,
    )


def test_a_batch_that_changes_mid_stream_names_the_step_and_keeps_the_state(digits):
    (x, y), _ = digits
    good = batches_of(x[:320], y[:320], 32)  # 10 batches
    bad = good[:6] + [(x[:32, :10], y[:32])] + good[6:]
    match = (
        r"x: batch 6: has an array float32\[32, 10\] where the first batch had float32\['B', 64\]"
    )
    with pytest.raises(BatchError, match=match) as info:
        fnn.fit(fresh(x), bad, loss="cross_entropy", epochs=1, verbose=0)
    err = info.value
    assert err.epoch == 1 and err.index == 6 and int(err.state.step) == 6
    # The state is the one after the 6 good batches, nothing of the bad one applied.
    six, _ = fnn.fit(fresh(x), good[:6], loss="cross_entropy", epochs=1, verbose=0)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
        err.state.params,
        six.params,
    )


@pytest.mark.parametrize(
    ("data", "kwargs", "error", "match"),
    [
        (lambda x, y: iter([]), {}, ValueError, "x: the iterable yielded no batches"),
        (
            lambda x, y: (b for b in batches_of(x, y, 32)),
            dict(epochs=2),
            ValueError,
            "steps_per_epoch: x is a generator, which yields its batches once",
        ),
        (lambda x, y: [x[:4]] * 3, {}, TypeError, "y: expected the targets of x"),
        (
            lambda x, y: batches_of(x, y, 32),
            dict(batch_size=32),
            ValueError,
            "batch_size: an iterable x sets its own batch size",
        ),
        (
            lambda x, y: batches_of(x, y, 32),
            dict(y=y_placeholder()),
            TypeError,
            "y: an iterable x yields",
        ),
        (
            lambda x, y: [(x[:4], y[:3])],
            {},
            ValueError,
            "x: batch 0 x, x: batch 0 y: different numbers of examples",
        ),
        (
            lambda x, y: [(x[:4], y[:4] + 20)],
            {},
            ValueError,
            r"x: batch 0 y: labels must lie in \[0, 10\)",
        ),
        (
            lambda x, y: [(x[:4], y[:4]), (x[:8], y[:8])],
            {},
            BatchError,
            "x: batch 1: has 8 examples, more than the first batch's 4",
        ),
        (
            lambda x, y: [(x[:4], y[:4]), (x[:4], {"y": y[:4]})],
            {},
            BatchError,
            "x: batch 1: its structure",
        ),
        (
            lambda x, y: [(x[:4], y[:4]), (np.full_like(x[:4], np.nan), y[:4])],
            {},
            ValueError,
            r"x: batch 1 x: contains 256 NaN/Inf",
        ),
        (
            lambda x, y: ({"image": x[i], "label": y[i]} for i in range(4)),
            {},
            BatchError,
            r"x: batch 0: expected a tuple \(x, y\) or \(x, y, mask\), got dict; this looks like "
            r"one example.*fnn.data.grain_loader",
        ),
        (
            lambda x, y: batches_of(x, y, 32),
            dict(strategy="fused"),
            ValueError,
            "strategy: 'fused' needs x in memory",
        ),
        (
            lambda x, y: batches_of(x, y, 32),
            dict(drop_remainder=True),
            ValueError,
            "drop_remainder: an iterable x's ragged last batch is always masked",
        ),
    ],
)
def test_bad_iterables_get_clear_errors(digits, data, kwargs, error, match):
    (x, y), _ = digits
    kwargs = {"loss": "cross_entropy", "epochs": 1, "verbose": 0, **kwargs}
    target = kwargs.pop("y", None)
    with pytest.raises(error, match=match):
        fnn.fit(fresh(x), data(x, y), target, **kwargs)


def test_a_non_finite_loss_in_an_iterable_keeps_the_last_good_state(digits):
    (x, y), _ = digits
    targets = y.astype(np.float32)[:, None]
    batches = batches_of(x[:960], targets[:960], 32)  # 30 batches
    # Regression with a far too large step: the loss grows ~100x a step, then overflows.
    state = fnn.TrainState.create(models.LinearRegression(1), optax.sgd(100.0), x[:1])
    with pytest.raises(fnn.NonFiniteLossError, match="epoch 1/1, step") as info:
        fnn.fit(state, batches, loss="mse", epochs=1, verbose=0, steps_per_chunk=4)
    step = info.value.step
    assert 4 < step < 30 and int(info.value.state.step) == step
    good, history = fnn.fit(state, batches[:step], loss="mse", epochs=1, verbose=0)
    assert np.isfinite(history["loss"][0])
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
        info.value.state.params,
        good.params,
    )


def test_what_counts_as_an_iterable_of_batches():
    x = np.ones((4, 2), np.float32)
    assert is_batch_iterable([(x, x)]) and is_batch_iterable(iter([(x, x)]))
    assert is_batch_iterable(b for b in [(x, x)])
    assert not is_batch_iterable(x) and not is_batch_iterable({"a": x})
    assert not is_batch_iterable((x, x)) and not is_batch_iterable([x, x])
    assert not is_batch_iterable([[1.0, 2.0], [3.0, 4.0]])
    source = IterableBatches([(x, x[:, 0]), (x[:3], x[:3, 0])], steps_per_epoch=None)
    (chunk,) = list(source.chunks(1, size=4))
    assert chunk[0].shape == (2, 4, 2) and chunk[2].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]


def test_a_grain_loader_trains_through_fit(digits):
    (x, y), (x_test, y_test) = digits
    loader = fnn.data.grain_loader("digits", batch_size=32, num_epochs=None, seed=1, flatten=True)
    state, history = fnn.fit(fresh(x), loader, loss="cross_entropy", epochs=6,
                             steps_per_epoch=len(x) // 32, verbose=0)  # fmt: skip
    assert history.strategy == "iterable" and history["steps"] == [len(x) // 32] * 6
    result = fnn.evaluate(state, fnn.data.grain_loader("digits", split="test", batch_size=100,
                                                       shuffle=False, flatten=True),
                          loss="cross_entropy", metrics=["accuracy"])  # fmt: skip
    expected = fnn.evaluate(state, x_test, y_test, loss="cross_entropy", metrics=["accuracy"])
    assert result["accuracy"] == pytest.approx(expected["accuracy"]) and result["accuracy"] >= 0.95


def test_a_grain_pipeline_resumes_bit_for_bit_from_a_checkpoint(digits, tmp_path):
    (x, _), _ = digits

    def loader():
        return fnn.data.grain_loader("digits", batch_size=64, num_epochs=None, seed=4,
                                     flatten=True)  # fmt: skip

    kwargs = dict(loss="cross_entropy", steps_per_epoch=7, verbose=0)
    full, h_full = fnn.fit(fresh(x), loader(), epochs=4, **kwargs)
    ckpt = tmp_path / "ckpt"
    fnn.fit(fresh(x), loader(), epochs=2, callbacks=[fnn.Checkpoint(ckpt)], **kwargs)
    resumed, h_res = fnn.fit(fresh(x), loader(), epochs=4, resume_from=str(ckpt),
                             resume_overrides=("epochs",), **kwargs)  # fmt: skip
    assert h_res["loss"] == h_full["loss"]
    assert_trees_equal(full.params, resumed.params)
    # Without the saved position the resumed run would read epoch 1's batches again.
    restarted, _ = fnn.fit(fresh(x), loader(), epochs=2, **kwargs)
    assert not np.array_equal(
        restarted.params["Dense_0"]["kernel"], full.params["Dense_0"]["kernel"]
    )


def test_resuming_with_in_memory_data_from_a_pipeline_checkpoint_is_refused(digits, tmp_path):
    (x, y), _ = digits
    loader = fnn.data.grain_loader("digits", batch_size=64, num_epochs=None, flatten=True)
    ckpt = tmp_path / "ckpt"
    fnn.fit(fresh(x), loader, loss="cross_entropy", epochs=1, steps_per_epoch=3, verbose=0,
            callbacks=[fnn.Checkpoint(ckpt)])  # fmt: skip
    with pytest.raises(ValueError, match="resume_from: the checkpoint holds the position of an"):
        fnn.fit(fresh(x), x, y, loss="cross_entropy", batch_size=64, epochs=2, verbose=0,
                resume_from=str(ckpt), resume_overrides=("inputs", "targets", "batch_size",
                                                         "epochs"))  # fmt: skip


def test_a_memmap_larger_than_the_device_budget_streams_from_disk(tmp_path, monkeypatch):
    from fnn.train import data_tree

    rng = np.random.default_rng(0)
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32,
                                  shape=(600, 64))  # fmt: skip
    x[:] = rng.normal(size=(600, 64))
    y = (np.asarray(x[:, 0]) > 0).astype(np.int32)
    x.flush()
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    monkeypatch.setattr(data_tree, "CHECK_CHUNK_BYTES", 4096)  # check 16 rows at a time
    kwargs = dict(loss="cross_entropy", batch_size=32, epochs=2, verbose=0)
    model = models.MLP((16,), 2)
    state = fnn.TrainState.create(model, optax.sgd(0.1), np.asarray(mapped[:1]))
    streamed, history = fnn.fit(state, mapped, y, max_device_bytes=50_000, **kwargs)
    assert history.strategy == "streamed"
    in_memory, _ = fnn.fit(state, np.array(mapped), y, **kwargs)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        streamed.params,
        in_memory.params,
    )
    # A NaN deep in the file is found by the chunked check; a dtype change is refused.
    bad = np.lib.format.open_memmap(tmp_path / "bad.npy", mode="w+", dtype=np.float32,
                                    shape=(600, 64))  # fmt: skip
    bad[:] = 0.0
    bad[537, 3] = np.nan
    with pytest.raises(
        ValueError, match=r"x: contains 1 NaN/Inf value\(s\) \(first in example 537"
    ):
        fnn.fit(state, bad, y, **kwargs)
    wide = np.lib.format.open_memmap(tmp_path / "f64.npy", mode="w+", dtype=np.float64,
                                     shape=(600, 64))  # fmt: skip
    with pytest.raises(TypeError, match="x: a np.memmap of dtype float64 would be copied whole"):
        fnn.fit(state, wide, y, **kwargs)
