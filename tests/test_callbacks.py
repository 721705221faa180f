"""Checkpoints, resume, Ctrl-C, early stopping and the non-finite-loss guard."""

import jax
import numpy as np
import pytest

import fnn
from fnn import models, optim
from fnn.train import Callback
from fnn.train.checkpoint import CheckpointStore

SGD = optim.sgd(0.1, momentum=0.9)
MODEL = models.MLP((16,), 3, dropout=0.2)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
    return x, y


def fit(x, y, epochs, **kwargs):
    state = fnn.TrainState.create(MODEL, SGD, x[:1], seed=1)
    kwargs.setdefault("batch_size", 7)
    return fnn.fit(state, x, y, loss="cross_entropy", epochs=epochs, verbose=0, seed=2, **kwargs)


def assert_trees_equal(a, b):
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


@pytest.mark.parametrize("async_save", [True, False])
def test_asynchronous_and_blocking_saves_write_the_same_checkpoints(data, tmp_path, async_save):
    x, y = data
    ckpt = tmp_path / "ckpt"
    checkpoint = fnn.Checkpoint(ckpt, max_to_keep=None, async_save=async_save)
    _, history = fit(x, y, 3, callbacks=[checkpoint])
    assert checkpoint.store.async_save is async_save
    # Each epoch's checkpoint holds that epoch (its history ends there), though an
    # asynchronous write is serialized while later epochs train and append to the history.
    template = fnn.TrainState.create(MODEL, SGD, x[:1], seed=1)
    store = CheckpointStore(ckpt, create=False)
    try:
        for epoch in (1, 2, 3):
            restored = store.restore_run(template, epoch)
            assert restored.epoch == epoch and len(restored.history) == epoch
            assert restored.history["loss"] == history["loss"][:epoch]
    finally:
        store.close()
    assert sorted(p.name for p in ckpt.iterdir()) == ["1", "2", "3"]  # nothing half-written


class FailAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, run):
        if run.epoch == self.epoch:
            raise RuntimeError(f"failed at epoch {self.epoch}")


def test_fit_waits_for_asynchronous_saves_on_every_way_out(data, tmp_path, monkeypatch):
    x, y = data
    flushed = []
    original = fnn.Checkpoint.flush
    monkeypatch.setattr(fnn.Checkpoint, "flush", lambda self: (flushed.append(1), original(self)))
    ckpt = tmp_path / "ckpt"
    # A callback that raises after epoch 3 (before the Checkpoint sees it: it saves last).
    with pytest.raises(RuntimeError, match="failed at epoch 3"):
        fit(x, y, 5, callbacks=[fnn.Checkpoint(ckpt, max_to_keep=None), FailAt(3)])
    assert flushed
    assert sorted(p.name for p in ckpt.iterdir()) == ["1", "2"]  # written, none half-way
    resumed, _ = fit(x, y, 5, resume_from=ckpt, callbacks=[fnn.Checkpoint(ckpt)])
    full, _ = fit(x, y, 5)
    assert_trees_equal(resumed.params, full.params)


def test_resume_is_bit_identical_to_an_uninterrupted_run(data, tmp_path):
    x, y = data
    full, full_history = fit(x, y, 6, metrics=["accuracy"])
    ckpt = tmp_path / "run"
    fit(x, y, 3, metrics=["accuracy"], callbacks=[fnn.Checkpoint(ckpt)])
    assert CheckpointStore(ckpt).all_epochs() == [1, 2, 3]
    resumed, history = fit(
        x, y, 6, metrics=["accuracy"], resume_from=ckpt, callbacks=[fnn.Checkpoint(ckpt)],
        resume_overrides=("epochs",),  # the saved run planned 3 epochs
    )
    assert_trees_equal(full.params, resumed.params)
    assert_trees_equal(full.opt_state, resumed.opt_state)
    assert int(resumed.step) == int(full.step)
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]
    assert history["loss"] == full_history["loss"]
    assert CheckpointStore(ckpt).all_epochs() == [4, 5, 6]  # max_to_keep=3


def test_resume_from_a_missing_directory_starts_fresh_only_when_asked(data, tmp_path):
    x, y = data
    with pytest.raises(FileNotFoundError, match=r"resume_from: .*nothing-yet does not exist; "
                       r".*resume_missing_ok=True"):  # fmt: skip
        fit(x, y, 2, resume_from=tmp_path / "nothing-yet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"resume_from: .*empty holds no checkpoint"):
        fit(x, y, 2, resume_from=tmp_path / "empty")
    a, _ = fit(x, y, 2)
    b, history = fit(x, y, 2, resume_from=tmp_path / "nothing-yet", resume_missing_ok=True)
    assert_trees_equal(a.params, b.params)
    assert len(history) == 2


def test_checkpoint_every_n_epochs_keeps_the_last_epoch(data, tmp_path):
    x, y = data
    fit(x, y, 5, callbacks=[fnn.Checkpoint(tmp_path, every=2, max_to_keep=None)])
    assert CheckpointStore(tmp_path).all_epochs() == [2, 4, 5]


class InterruptAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, run):
        if run.epoch == self.epoch:
            raise KeyboardInterrupt


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(data, tmp_path):
    x, y = data
    full, _ = fit(x, y, 4)
    ckpt = tmp_path / "ctrl-c"
    with pytest.raises(KeyboardInterrupt):
        fit(x, y, 4, callbacks=[fnn.Checkpoint(ckpt, every=10), InterruptAt(2)])
    assert CheckpointStore(ckpt).all_epochs() == [2]
    resumed, history = fit(x, y, 4, resume_from=ckpt)
    assert_trees_equal(full.params, resumed.params)
    assert history["epoch"] == [1, 2, 3, 4]


def diverging_optimizer():
    # A sane step size for 12 steps, then an absurd one: the loss overflows a few steps later.
    return optim.sgd(optim.step_decay(0.01, boundaries=[12], factor=1e12))


def test_non_finite_loss_stops_with_epoch_and_step_and_keeps_good_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 3.0])).astype(np.float32)
    state = fnn.TrainState.create(models.LinearRegression(), diverging_optimizer(), x[:1])
    ckpt = tmp_path / "nan"
    with pytest.raises(
        fnn.NonFiniteLossError, match=r"non-finite loss at epoch (\d+)/10, step (\d+)"
    ) as info:
        fnn.fit(
            state,
            x,
            y,
            loss="mse",
            batch_size=4,
            epochs=10,
            verbose=0,
            callbacks=[fnn.Checkpoint(ckpt, max_to_keep=None)],
        )
    err = info.value
    assert err.epoch >= 2 and 0 <= err.step < 10
    assert err.global_step == (err.epoch - 1) * 10 + err.step
    # The state handed back is the last good one: finite, and exactly global_step updates in.
    assert int(err.state.step) == err.global_step
    assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(err.state.params))
    # Checkpoints exist for every completed epoch before the bad one, and nothing after.
    store = CheckpointStore(ckpt)
    assert store.all_epochs() == list(range(1, err.epoch))
    restored, epoch, _, history = store.restore(state)
    assert epoch == err.epoch - 1 and len(history) == epoch
    assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(restored.params))


@pytest.mark.parametrize("fused", [True, False])
def test_non_finite_guard_in_both_loops(fused):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = x.sum(axis=1).astype(np.float32)
    state = fnn.TrainState.create(models.LinearRegression(), diverging_optimizer(), x[:1])
    with pytest.raises(fnn.NonFiniteLossError) as info:
        fnn.fit(state, x, y, loss="mse", batch_size=4, epochs=10, verbose=0, fused=fused)
    err = info.value
    assert err.global_step > 12 and err.epoch >= 2  # so the fused fit had run an epoch ahead
    assert "non-finite loss" in err.history.stop_reason
    # The epoch dispatched ahead of the bad one is dropped: the last good state comes back.
    assert int(err.state.step) == err.global_step == (err.epoch - 1) * 10 + err.step
    assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(err.state.params))
    assert len(err.history) == err.epoch - 1


def test_early_stopping_restores_the_best_state(data):
    x, y = data
    # "max" on the training loss: epoch 1 is the best, then it never improves; patience=2
    # (Keras's meaning) stops after 2 epochs without improvement.
    stop = fnn.EarlyStopping("loss", mode="max", patience=2)
    state, history = fit(x, y, 10, callbacks=[stop])
    assert len(history) == 3 and "early stopping" in history.stop_reason
    first, _ = fit(x, y, 1)
    assert_trees_equal(state.params, first.params)


def test_early_stopping_on_validation_accuracy(data):
    x, y = data
    stop = fnn.EarlyStopping("val_accuracy", patience=2)
    _, history = fit(
        x, y, 40, metrics=["accuracy"], validation_data=(x[:30], y[:30]), callbacks=[stop]
    )
    best = max(history["val_accuracy"])
    assert stop.best == best and stop.mode == "max"
    if history.stop_reason:
        assert len(history) == stop.best_epoch + 2  # patience=2


def test_early_stopping_unknown_monitor(data):
    x, y = data
    with pytest.raises(ValueError, match="monitor: EarlyStopping watches 'val_loss'"):
        fit(x, y, 2, callbacks=[fnn.EarlyStopping()])


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: fnn.EarlyStopping(patience="3"), TypeError, "patience: expected an integer >= 0"),
        (lambda: fnn.EarlyStopping(patience=-1), ValueError, "patience: expected an integer >= 0"),
        (lambda: fnn.EarlyStopping(min_delta=-0.1), ValueError, "min_delta: expected a number"),
        (lambda: fnn.EarlyStopping(mode="up"), ValueError, "mode: expected one of"),
        (lambda: fnn.EarlyStopping(7), TypeError, "monitor: expected a history field name"),
        (lambda: fnn.EarlyStopping(restore_best=1), TypeError, "restore_best: expected True"),
        (lambda: fnn.Checkpoint("d", every="2"), TypeError, "every: expected an integer >= 1"),
        (lambda: fnn.Checkpoint("d", every=1.5), TypeError, "every: expected an integer >= 1"),
        (lambda: fnn.Checkpoint("d", every=0), ValueError, "every: expected an integer >= 1"),
        (lambda: fnn.Checkpoint("d", max_to_keep=0), ValueError, "max_to_keep: expected an"),
        (lambda: fnn.Checkpoint(None), TypeError, "directory: expected a directory path"),
        (lambda: fnn.Checkpoint("d", async_save="no"), TypeError, "async_save: expected True"),
    ],
)
def test_callback_options_are_checked_when_built(make, error, match):
    with pytest.raises(error, match=match):
        make()


def a_file(directory):
    (directory / "f").write_text("not a directory")
    return directory / "f"


@pytest.mark.parametrize(
    ("callback", "match"),
    [
        (
            lambda tmp: fnn.EarlyStopping("val_loss"),
            r"monitor: EarlyStopping watches 'val_loss', which this run's history will not have.*"
            r"\(val_\* fields need validation_data\)",
        ),
        (lambda tmp: fnn.EarlyStopping("val_los"), "monitor: EarlyStopping watches 'val_los'"),
        (
            lambda tmp: fnn.Checkpoint(a_file(tmp)),
            "directory: .* is a file; expected a directory",
        ),
    ],
)
def test_callbacks_check_the_run_before_the_first_epoch(data, tmp_path, callback, match,
                                                         compiles):  # fmt: skip
    x, y = data
    state = fnn.TrainState.create(models.MLP((8,), 3), optim.sgd(0.1), x[:1])
    before = compiles.count("fused_epoch")
    with pytest.raises(ValueError, match=match):
        fnn.fit(state, x, y, loss="cross_entropy", batch_size=8, epochs=2, verbose=0,
                callbacks=[callback(tmp_path)])  # fmt: skip
    assert compiles.count("fused_epoch") == before  # nothing trained


def test_resuming_a_different_run_names_the_checkpoint(data, tmp_path):
    x, y = data
    ckpt = tmp_path / "ckpt"
    fit(x, y, 2, callbacks=[fnn.Checkpoint(ckpt)])
    wider = fnn.TrainState.create(models.MLP((32,), 3), optim.sgd(0.1), x[:1])
    with pytest.raises(ValueError, match=r"resume_from: the checkpoint of epoch 2 in .* was saved "
                                         r"by a different run"):  # fmt: skip
        fnn.fit(wider, x, y, loss="cross_entropy", batch_size=8, epochs=3, verbose=0,
                resume_from=str(ckpt))  # fmt: skip
