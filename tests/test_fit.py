"""fit / evaluate / predict: accuracy on real data, determinism, remainders, streaming."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import models, optim
from fnn.train import train_step
from fnn.train.plan import Plan, epoch_indices

jit_step = jax.jit(train_step, static_argnames=("loss_fn", "metrics"))


@pytest.fixture(scope="module")
def digits():
    return fnn.data.load("digits", flatten=True)


def assert_trees_equal(a, b):
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, rtol, atol), a, b)


def small_problem(n=50, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = rng.integers(0, classes, size=n).astype(np.int32)
    return x, y


# One optimizer object for the small tests: equal configurations then share compiled programs.
SGD = optim.sgd(0.1, momentum=0.9)


def fresh(x, model=None, optimizer=None, seed=0):
    model = model or models.MLP((16,), 3)
    return fnn.TrainState.create(model, optimizer or SGD, x[:1], seed=seed)


# Learning rates and epochs per mode, chosen on seeds 0-3 (test accuracy 0.97-0.98 each).
STEPS = 1438  # digits training examples
MODES = {
    "full_batch": ("full", lambda: optim.adam(0.01), 150),
    "sgd_batch_1": (1, lambda: optim.sgd(optim.cosine_decay(0.05, decay_steps=8 * STEPS)), 8),
    "minibatch_32": (32, lambda: optim.sgd(0.1, momentum=0.9), 15),
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_mlp_reaches_96_percent_on_digits(digits, mode):
    (x, y), (x_test, y_test) = digits
    batch_size, make_optimizer, epochs = MODES[mode]
    state = fresh(x, models.MLP((128,), 10), make_optimizer())
    state, history = fnn.fit(
        state, x, y, loss="cross_entropy", batch_size=batch_size, epochs=epochs, verbose=0
    )
    result = fnn.evaluate(state, x_test, y_test, loss="cross_entropy", metrics=["accuracy"])
    assert result["accuracy"] >= 0.96, result
    assert len(history) == epochs
    assert history["loss"][-1] < history["loss"][0]


def test_cnn_reaches_97_percent_on_digits():
    (x, y), (x_test, y_test) = fnn.data.load("digits")
    assert x.shape[1:] == (8, 8, 1)
    state = fresh(x, models.CNN(10, channels=(16, 32), dense=(64,)), optim.adam(3e-3))
    state, _ = fnn.fit(state, x, y, loss="cross_entropy", batch_size=32, epochs=12, verbose=0)
    result = fnn.evaluate(state, x_test, y_test, loss="cross_entropy", metrics=["accuracy"])
    assert result["accuracy"] >= 0.97, result


def run(x, y, **kwargs):
    kwargs.setdefault("loss", "cross_entropy")
    kwargs.setdefault("batch_size", 8)
    kwargs.setdefault("epochs", 3)
    kwargs.setdefault("verbose", 0)
    model = kwargs.pop("model", models.MLP((16,), 3, dropout=0.1))
    return fnn.fit(fresh(x, model), x, y, **kwargs)


def test_same_seed_gives_identical_parameters():
    x, y = small_problem()
    a, ha = run(x, y, seed=4)
    b, hb = run(x, y, seed=4)
    assert_trees_equal(a.params, b.params)
    assert ha["loss"] == hb["loss"]
    c, _ = run(x, y, seed=5)
    assert not np.array_equal(a.params["Dense_0"]["kernel"], c.params["Dense_0"]["kernel"])


def test_short_epochs_are_dispatched_one_ahead_with_the_same_result(monkeypatch):
    from fnn.train import executors, loop

    dispatched, finished = [], []
    real_run, real_finish = executors.FusedRunner.run, loop._finish_epoch

    def call(self, state, epoch, **kwargs):
        dispatched.append(int(epoch))
        return real_run(self, state, epoch, **kwargs)

    def finish(current, *args):
        finished.append((current.epoch, len(dispatched)))
        return real_finish(current, *args)

    monkeypatch.setattr(executors.FusedRunner, "run", call)
    monkeypatch.setattr(loop, "_finish_epoch", finish)
    x, y = small_problem()
    ahead, h_ahead = run(x, y, epochs=4, seed=2)
    # Epoch 1 (compiling) is waited for alone; from then on epoch e + 1 is on its way to the
    # device before epoch e is waited for.
    assert dispatched == [1, 2, 3, 4]
    assert finished == [(1, 1), (2, 3), (3, 4), (4, 4)]

    dispatched.clear()
    finished.clear()
    monkeypatch.setattr(loop, "RUN_AHEAD_MAX_EPOCH_S", 0.0)  # never run ahead
    in_step, h_step = run(x, y, epochs=4, seed=2)
    assert finished == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert_trees_equal(ahead.params, in_step.params)
    assert h_ahead["loss"] == h_step["loss"]
    assert all(t > 0 for t in h_ahead["epoch_time"])

    # A callback may stop training or replace the state: then nothing runs ahead.
    dispatched.clear()
    finished.clear()
    monkeypatch.setattr(loop, "RUN_AHEAD_MAX_EPOCH_S", math.inf)
    run(x, y, epochs=3, callbacks=[fnn.EarlyStopping("loss", patience=5)])
    assert finished == [(1, 1), (2, 2), (3, 3)]


@pytest.mark.parametrize("seed", [0, 5, 2**31 - 1, -1, -(2**31), 2**31, 2**40 + 3, -(2**35)])
def test_shuffle_key_is_the_key_of_the_seed(seed):
    from fnn.train.loop import _shuffle_key_data

    expected = jax.random.key_data(jax.random.key(seed))
    np.testing.assert_array_equal(_shuffle_key_data(seed), expected)


def test_later_epochs_skip_the_program_lookup(monkeypatch):
    from fnn.train import programs

    lookups = []
    real = programs.signature
    monkeypatch.setattr(programs, "signature", lambda args: lookups.append(1) or real(args))
    x, y = small_problem()
    state, history = run(x, y, epochs=5)
    # Epoch 1 looks up the program for the given state, epoch 2 the one for its outputs; the
    # outputs of that program always match it, so epochs 3-5 reuse it.
    assert len(lookups) == 2
    again, _ = run(x, y, epochs=5)
    assert_trees_equal(state.params, again.params)


def test_a_second_fit_on_device_data_copies_nothing(monkeypatch):
    import fnn.parallel

    x, y = small_problem()
    xd, yd = jax.device_put(x), jax.device_put(y)
    state, _ = run(xd, yd, epochs=1)
    puts = []
    real_put = jax.device_put

    def counting_put(tree, *args, **kwargs):
        puts.append(len(jax.tree_util.tree_leaves(tree)))
        return real_put(tree, *args, **kwargs)

    monkeypatch.setattr(fnn.parallel.jax, "device_put", counting_put)
    again, _ = fnn.fit(state, xd, yd, loss="cross_entropy", batch_size=8, epochs=1, verbose=0)
    assert puts == [], "the state and the data were already on the device"
    assert int(again.step) == 2 * int(state.step)
    fnn.fit(state, x, y, loss="cross_entropy", batch_size=8, epochs=1, verbose=0)
    assert puts == [2], "NumPy data is copied to the device (x and y, in one call)"


@pytest.mark.parametrize("batch_size", [1, 7, "full"])
def test_fused_and_unfused_agree(batch_size):
    x, y = small_problem(n=23)
    fused, hf = run(x, y, batch_size=batch_size, metrics=["accuracy"])
    unfused, hu = run(x, y, batch_size=batch_size, metrics=["accuracy"], fused=False)
    # Up to 69 steps with momentum: rounding differences between programs grow a little.
    assert_trees_close(fused.params, unfused.params, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(hf["loss"], hu["loss"], rtol=1e-4)
    assert int(fused.step) == int(unfused.step)


def test_streamed_chunks_match_in_memory():
    x, y = small_problem(n=45)
    memory, hm = run(x, y, batch_size=4, metrics=["accuracy"])
    streamed, hs = run(x, y, batch_size=4, metrics=["accuracy"], steps_per_chunk=5)
    # Same batches, same order, same keys; only XLA's fusion of the gather differs (last bits).
    assert_trees_close(memory.params, streamed.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hm["loss"], hs["loss"], rtol=1e-5)
    assert hm["accuracy"] == hs["accuracy"] and int(memory.step) == int(streamed.step)
    # A device budget smaller than the data switches to streaming by itself.
    small, _ = run(x, y, batch_size=4, metrics=["accuracy"], max_device_bytes=256)
    assert_trees_close(memory.params, small.params, rtol=1e-5, atol=1e-6)


def test_masked_remainder_is_exactly_the_mean_of_the_real_examples():
    x, y = small_problem(n=10)
    model = models.MLP((8,), 3)
    state, history = fnn.fit(
        fresh(x, model), x, y, loss="cross_entropy", batch_size=4, epochs=1, verbose=0, seed=3
    )
    assert history["steps"] == [3]  # 4 + 4 + 2 real examples
    plan = Plan.make(10, 4, drop_remainder=False, shuffle=True)
    key = jax.random.key(3)  # seed 3, epoch 1
    idx, mask = map(np.asarray, epoch_indices(key, np.int32(1), plan))
    assert mask.sum(axis=1).tolist() == [4, 4, 2]
    reference = fresh(x, model)
    for row, row_mask in zip(idx, mask, strict=True):
        real = row[row_mask > 0]  # the unpadded batch: 4, 4, then 2 examples
        reference, _ = jit_step(reference, (x[real], y[real]), "cross_entropy")
    assert_trees_close(state.params, reference.params)


def test_drop_remainder_skips_the_partial_batch():
    x, y = small_problem(n=10)
    state, history = run(x, y, batch_size=4, epochs=2, drop_remainder=True)
    assert history["steps"] == [2, 2]
    assert int(state.step) == 4
    kept, h2 = run(x, y, batch_size=4, epochs=2)
    assert int(kept.step) == 6 and h2["steps"] == [3, 3]


def test_no_recompilation_after_the_first_epoch(compiles):
    x, y = small_problem()
    state = fresh(x)
    state, history = fnn.fit(
        state, x, y, loss="cross_entropy", batch_size=8, epochs=4, metrics=["accuracy"], verbose=0
    )
    assert compiles.count("fused_epoch") == 1, compiles.names()
    assert history.compile_time[0] > 0 and history.compile_time[1:] == [0.0, 0.0, 0.0]
    # A second fit with the same configuration compiles nothing at all.
    before = compiles.count()
    fnn.fit(
        state, x, y, loss="cross_entropy", batch_size=8, epochs=2, metrics=["accuracy"], verbose=0
    )
    assert compiles.count() == before, compiles.names()


def test_unfused_loop_compiles_its_step_once(compiles):
    x, y = small_problem(n=20)
    run(x, y, batch_size=6, epochs=3, fused=False)  # 3 full batches and a padded one
    assert compiles.count("single_step") == 1, compiles.names()


def test_history_fields_and_exports(tmp_path):
    x, y = small_problem()
    _, history = run(
        x, y, epochs=2, metrics=["accuracy", "confusion_matrix"], validation_data=(x[:20], y[:20])
    )
    for key in [
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "epoch_time",
        "compile_time",
        "val_time",
        "samples_per_s",
        "steps",
    ]:
        assert len(history[key]) == 2, key
    assert history["epoch"] == [1, 2]
    assert np.asarray(history["confusion_matrix"][0]).sum() == 50
    history.to_json(tmp_path / "h.json")
    again = fnn.History.from_json(tmp_path / "h.json")
    assert again.records == history.records
    history.to_csv(tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert len(lines) == 3 and "val_accuracy" in lines[0] and "confusion_matrix" not in lines[0]
    out = fnn.plot_history(history, tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000 and out.endswith("h.png")


def test_evaluate_and_predict_do_not_depend_on_batch_size():
    x, y = small_problem(n=37)
    state, _ = run(x, y)
    logits = fnn.predict(state, x, batch_size=5)
    direct = state.apply_fn({"params": state.params}, jnp.asarray(x))
    np.testing.assert_allclose(logits, direct, rtol=1e-5, atol=1e-6)
    a = fnn.evaluate(state, x, y, loss="cross_entropy", metrics=["accuracy"], batch_size=4)
    b = fnn.evaluate(state, x, y, loss="cross_entropy", metrics=["accuracy"], batch_size="full")
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["accuracy"] == b["accuracy"]
    assert a["accuracy"] == pytest.approx(float(np.mean(np.argmax(direct, 1) == y)))


def test_regression_with_mse_and_r2():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (x @ np.array([1.5, -2.0, 0.5]) + 0.3).astype(np.float32)
    state = fresh(x, models.LinearRegression(), optim.sgd(0.1))
    state, history = fnn.fit(
        state, x, y, loss="mse", batch_size=16, epochs=20, metrics=["r2", "mae"], verbose=0
    )
    assert history["r2"][-1] > 0.999
    np.testing.assert_allclose(state.params["Dense_0"]["kernel"][:, 0], [1.5, -2.0, 0.5], atol=1e-2)


def test_progress_bar_only_when_verbose(capsys):
    x, y = small_problem()
    run(x, y, epochs=2, verbose=1)
    assert "epoch" in capsys.readouterr().err
    run(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().err == ""


def test_convolutions_on_cpu_dispatch_one_step_per_batch(compiles):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(24, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=24).astype(np.int32)
    model = models.CNN(3, channels=(2,), dense=(4,))
    fused, hf = fnn.fit(
        fresh(x, model), x, y, loss="cross_entropy", batch_size=5, epochs=2, verbose=0
    )
    assert compiles.count("indexed_step") == 1 and compiles.count("fused_epoch") == 0
    unfused, hu = fnn.fit(
        fresh(x, model), x, y, loss="cross_entropy", batch_size=5, epochs=2, verbose=0, fused=False
    )
    assert_trees_close(fused.params, unfused.params)
    assert hf["steps"] == hu["steps"] == [5, 5]


def test_streamed_convolutions_on_cpu_dispatch_one_step_per_batch(compiles):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(24, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=24).astype(np.int32)
    model = models.CNN(3, channels=(2,), dense=(4,))
    kwargs = dict(loss="cross_entropy", batch_size=4, epochs=2, verbose=0)
    streamed, hs = fnn.fit(fresh(x, model), x, y, steps_per_chunk=3, **kwargs)  # 2 chunks of 3
    assert compiles.count("chunk_step") == 1 and compiles.count("jit(chunk)") == 0
    in_memory, hm = fnn.fit(fresh(x, model), x, y, **kwargs)
    assert_trees_close(streamed.params, in_memory.params)
    np.testing.assert_allclose(hs["loss"], hm["loss"], rtol=1e-5)
