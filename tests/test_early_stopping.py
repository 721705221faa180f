"""EarlyStopping with Keras's meaning of patience, min_delta, baseline and start_from_epoch;
callbacks' state carried through checkpoints: a resumed run stops (or lowers its learning
rate) where an uninterrupted one does."""

import jax
import numpy as np
import pytest

import fnn
from fnn import models, optim
from fnn.train import Callback, Run
from fnn.train.callbacks import callbacks_state, load_callbacks_state
from fnn.train.checkpoint import CheckpointStore
from fnn.train.history import History


def feed(stop, values, monitor="val_loss"):
    """Runs ``stop`` over the monitored ``values`` of successive epochs; the epochs it saw."""
    run = Run(state=None, history=History(), epoch=0, epochs=len(values), seed=0,
              fields=("epoch", monitor))  # fmt: skip
    stop.on_train_begin(run)
    for epoch, value in enumerate(values, start=1):
        run.history.append({"epoch": epoch, monitor: value})
        run.epoch = epoch
        stop.on_epoch_end(run)
        if run.stop_reason:
            break
    return run.epoch, run.stop_reason


@pytest.mark.parametrize(
    ("options", "values", "stopped_after", "best_epoch"),
    [
        # best at 2, epochs 3 and 4 do not improve: patience=2 stops after epoch 4
        (dict(patience=2), [1.0, 0.8, 0.85, 0.9, 0.7], 4, 2),
        # patience=0: the first epoch without improvement stops
        (dict(patience=0), [1.0, 0.9, 0.95, 0.5], 3, 2),
        # min_delta=0.1: 0.95 is not below 1.0 - 0.1, 0.85 is (and resets the count)
        (dict(patience=2, min_delta=0.1), [1.0, 0.95, 0.85, 0.8, 0.78], 5, 3),
        # baseline 0.5: nothing improves until a value is below it, so 2 epochs stop it
        (dict(patience=2, baseline=0.5), [0.9, 0.6, 0.4], 2, None),
        (dict(patience=2, baseline=0.5), [0.9, 0.45, 0.6, 0.7], 4, 2),
        # start_from_epoch=2: epochs 1 and 2 are not watched; epoch 3 is the first best
        (dict(patience=1, start_from_epoch=2), [0.1, 0.2, 0.5, 0.6], 4, 3),
        (dict(patience=1), [0.1, 0.2, 0.5, 0.6], 2, 1),
    ],
)
def test_keras_meaning_of_the_options(options, values, stopped_after, best_epoch):
    stop = fnn.EarlyStopping(restore_best=False, **options)
    epoch, reason = feed(stop, values)
    assert (epoch, stop.best_epoch, stop.stopped_epoch) == (stopped_after, best_epoch, epoch)
    assert reason == (
        f"early stopping: val_loss did not improve for {stop.wait} epochs "
        f"(best {stop.best:.6g} at epoch {best_epoch})"
    )
    assert stop.wait == max(options["patience"], 1)


def test_accuracy_like_monitors_are_maximised():
    stop = fnn.EarlyStopping("val_accuracy", patience=1, restore_best=False)
    assert stop.mode == "max"
    assert feed(stop, [0.5, 0.7, 0.6], "val_accuracy")[0] == 3 and stop.best == 0.7


def test_a_reused_callback_starts_afresh_and_its_state_round_trips():
    stop = fnn.EarlyStopping(patience=3, restore_best=False)
    feed(stop, [1.0, 0.5, 0.6])
    saved = callbacks_state([stop, fnn.LambdaCallback(), fnn.EarlyStopping("loss")])
    assert saved["EarlyStopping_0"] == {"monitor": "val_loss", "mode": "min", "best": 0.5,
                                        "best_epoch": 2, "wait": 1, "stopped_epoch": None}
    assert saved["EarlyStopping_1"]["best"] is None  # inf is saved as None (JSON)
    feed(stop, [2.0])
    assert (stop.best, stop.best_epoch, stop.wait) == (2.0, 1, 0)  # on_train_begin resets
    again = fnn.EarlyStopping(patience=3, restore_best=False)
    load_callbacks_state([again], saved)
    assert (again.best, again.best_epoch, again.wait) == (0.5, 2, 1)
    with pytest.warns(UserWarning, match="watched 'val_loss' .* this one watches 'loss'"):
        other = fnn.EarlyStopping("loss")
        load_callbacks_state([other], saved)
    assert other.best_epoch is None


SGD = optim.sgd(0.1, momentum=0.9)
MODEL = models.MLP((16,), 3)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
    return x, y


def fit(data, epochs=8, **kwargs):
    x, y = data
    state = fnn.TrainState.create(MODEL, SGD, x[:1], seed=1)
    return fnn.fit(state, x, y, loss="cross_entropy", batch_size=10, epochs=epochs, verbose=0,
                   seed=2, metrics=["accuracy"], validation_data=(x[:20], y[:20]),
                   **kwargs)  # fmt: skip


class InterruptAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, run):
        if run.epoch == self.epoch:
            raise KeyboardInterrupt


def stopping():
    # The training loss watched in "max" mode: epoch 1 is the best and no later epoch beats
    # it, so patience=3 stops after epoch 4 whatever the numbers. A fresh EarlyStopping in the
    # resumed run would take epoch 3 as its best and stop after epoch 6.
    return fnn.EarlyStopping("loss", mode="max", patience=3)


def assert_same_run(a_state, a_history, b_state, b_history):
    jax.tree_util.tree_map(np.testing.assert_array_equal, a_state.params, b_state.params)
    timing = ("epoch_time", "compile_time", "samples_per_s", "val_time")
    strip = [{k: v for k, v in r.items() if k not in timing} for r in a_history.records]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in b_history.records]
    assert a_history.stop_reason == b_history.stop_reason


@pytest.mark.parametrize("order", ["stop_first", "checkpoint_first"])
def test_a_resumed_run_stops_where_an_uninterrupted_one_does(data, tmp_path, order):
    full_state, full = fit(data, callbacks=[stopping()])
    assert len(full) == 4 and full.stop_reason.startswith("early stopping: loss")
    first, _ = fit(data, epochs=1)
    jax.tree_util.tree_map(np.testing.assert_array_equal, full_state.params, first.params)

    ckpt = tmp_path / "ckpt"
    callbacks = [stopping(), fnn.Checkpoint(ckpt), InterruptAt(2)]
    if order == "checkpoint_first":  # the checkpoint is saved after the others all the same
        callbacks = callbacks[1:2] + callbacks[:1] + callbacks[2:]
    with pytest.raises(KeyboardInterrupt):
        fit(data, callbacks=callbacks)
    assert CheckpointStore(ckpt).all_epochs() == [1, 2]
    state, history = fit(data, resume_from=ckpt, callbacks=[stopping(), fnn.Checkpoint(ckpt)])
    assert_same_run(full_state, full, state, history)  # epoch 1's state restored from disk
    # The stopping epoch is checkpointed too (though not a multiple of every).
    assert CheckpointStore(ckpt).latest_epoch() == 4


def test_restore_best_after_a_resume_without_the_best_checkpoint(data, tmp_path):
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        fit(data, callbacks=[stopping(), fnn.Checkpoint(ckpt, max_to_keep=1), InterruptAt(2)])
    assert CheckpointStore(ckpt).all_epochs() == [2]  # epoch 1, the best, is gone
    with pytest.warns(UserWarning, match=r"the state of epoch 1, the best so far .* is in no "
                                         r"checkpoint of this run"):  # fmt: skip
        state, history = fit(data, resume_from=ckpt, callbacks=[stopping(), fnn.Checkpoint(ckpt)])
    assert len(history) == 4  # it still stops where the uninterrupted run does
    # The best state seen since the resume: epochs 3 and 4, the larger loss ("max" mode).
    best = 3 if history["loss"][2] > history["loss"][3] else 4
    expected, _ = fit(data, epochs=best)
    jax.tree_util.tree_map(np.testing.assert_array_equal, state.params, expected.params)


def test_a_resumed_run_lowers_the_learning_rate_where_an_uninterrupted_one_does(data, tmp_path):
    def plateau():  # epoch 1 is the best ("max" on the loss): lowered after epochs 3 and 5
        return fnn.ReduceLROnPlateau("loss", mode="max", factor=0.5, patience=2)

    full_state, full = fit(data, epochs=6, callbacks=[plateau()])
    assert full["learning_rate"] == [pytest.approx(v) for v in (0.1,) * 3 + (0.05,) * 2 + (0.025,)]
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        fit(data, epochs=6, callbacks=[plateau(), fnn.Checkpoint(ckpt), InterruptAt(4)])
    state, history = fit(data, epochs=6, resume_from=ckpt,
                         callbacks=[plateau(), fnn.Checkpoint(ckpt)])  # fmt: skip
    assert_same_run(full_state, full, state, history)
