"""Continuing a state, resuming the right run only, and damaged checkpoints.

Every resumed run here is compared bit for bit with an uninterrupted one.
"""

import os
import pathlib
import signal
import time
import warnings

import jax
import numpy as np
import pytest

import fnn
from fnn import (  # the public names users catch
    DamagedCheckpointError,
    RunMismatchError,
    models,
    optim,
)
from fnn.train.checkpoint import CheckpointStore

MODEL = models.MLP((16,), 3, dropout=0.2)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
    return x, y


def new_state(x, model=MODEL, optimizer=None, seed=1):
    return fnn.TrainState.create(model, optimizer or optim.sgd(0.1, momentum=0.9), x[:1],
                                 seed=seed)  # fmt: skip


def fit(state, x, y, epochs, **kwargs):
    kwargs.setdefault("batch_size", 7)
    kwargs.setdefault("seed", 2)
    return fnn.fit(state, x, y, loss="cross_entropy", epochs=epochs, verbose=0,
                   metrics=["accuracy"], **kwargs)  # fmt: skip


def assert_same_run(a, b):
    for name in ("params", "opt_state", "model_state", "step", "epoch", "key_data"):
        jax.tree_util.tree_map(np.testing.assert_array_equal, getattr(a, name), getattr(b, name))


# ------------------------------------------------------------------------ continuing a state


@pytest.mark.parametrize("strategy", ["fused", "stepwise", "unfused"])
def test_five_one_epoch_calls_equal_one_five_epoch_call(data, strategy):
    x, y = data
    once, history = fit(new_state(x), x, y, 5, strategy=strategy)
    state, losses, numbers = new_state(x), [], []
    for _ in range(5):
        state, h = fit(state, x, y, 1, strategy=strategy)
        losses += h["loss"]
        numbers += h["epoch"]
    assert_same_run(once, state)
    assert int(state.epoch) == 5 and numbers == [1, 2, 3, 4, 5]
    assert losses == history["loss"]


def test_a_continued_state_draws_a_new_permutation_each_call(data):
    x, y = data
    # Were the epochs numbered from 1 in each call, the two calls would see the same batches
    # and the second would differ from the second epoch of one run.
    a, _ = fit(new_state(x), x, y, 1)
    b, _ = fit(a, x, y, 1)
    two, _ = fit(new_state(x), x, y, 2)
    assert_same_run(b, two)
    same_order, _ = fit(a, x, y, 1, shuffle=False)
    assert not np.array_equal(same_order.params["Dense_0"]["kernel"], b.params["Dense_0"]["kernel"])


# ------------------------------------------------------------------------- the wrong run


@pytest.fixture
def saved(data, tmp_path):
    """A 4-epoch run that checkpointed epochs 2, 3 and 4, and the uninterrupted 6-epoch run."""
    x, y = data
    ckpt = tmp_path / "ckpt"
    fit(new_state(x), x, y, 4, callbacks=[fnn.Checkpoint(ckpt)])
    return ckpt


def test_resume_refuses_a_different_model_and_lists_what_differs(data, saved):
    x, y = data
    wider = new_state(x, model=models.MLP((32,), 3, dropout=0.2))
    with pytest.raises(RunMismatchError, match=r"(?s)saved by a different run:.*"
                       r"params: \['Dense_0'\]\['bias'\]: saved float32\[16\], this run "
                       r"float32\[32\].*cannot continue from it") as info:  # fmt: skip
        fit(wider, x, y, 4, resume_from=saved)
    assert set(info.value.differences) == {"model", "params", "optimizer"}


def test_resume_refuses_another_optimizer_feature_count_batch_and_seed(data, saved):
    x, y = data
    cases = [
        (dict(state=new_state(x, optimizer=optim.adam(1e-3))), {"optimizer"}),
        (dict(batch_size=8), {"batch_size"}),
        (dict(seed=3), {"seed"}),
        (dict(x=np.concatenate([x, x[:, :1]], 1), state=new_state(np.zeros((1, 6), np.float32))),
         {"inputs", "params", "optimizer"}),
    ]
    for change, fields in cases:
        kwargs = {"state": new_state(x), "x": x, **change}
        with pytest.raises(RunMismatchError) as info:
            fit(kwargs.pop("state"), kwargs.pop("x"), y, 4, resume_from=saved, **kwargs)
        assert set(info.value.differences) == fields, change


def test_resume_overrides_allow_a_deliberate_change(data, saved, tmp_path):
    x, y = data
    with pytest.raises(RunMismatchError, match=r"(?s)epochs: saved 4, this run 6.*"
                       r"resume_overrides=\('epochs',\)"):  # fmt: skip
        fit(new_state(x), x, y, 6, resume_from=saved)
    resumed, history = fit(new_state(x), x, y, 6, resume_from=saved, resume_overrides=("epochs",))
    full, full_history = fit(new_state(x), x, y, 6)
    assert_same_run(resumed, full)
    assert history["epoch"] == list(range(1, 7)) and history["loss"] == full_history["loss"]


def test_epochs_before_the_saved_epoch_is_an_error(data, saved):
    x, y = data
    with pytest.raises(ValueError, match=r"epochs: the checkpoint in .* is at epoch 4, past "
                       r"epoch 2 at which this run ends \(epochs=2\); expected epochs >= 4"):
        fit(new_state(x), x, y, 2, resume_from=saved, resume_overrides=("epochs",))


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        ("epochs", TypeError, r"resume_overrides: expected a tuple of field names"),
        (("params",), ValueError, r"resume_overrides: 'params' cannot be overridden"),
        (("epoch",), ValueError, r"resume_overrides: expected some of \('model'"),
    ],
)
def test_bad_resume_overrides(data, saved, overrides, error, match):
    x, y = data
    with pytest.raises(error, match=match):
        fit(new_state(x), x, y, 4, resume_from=saved, resume_overrides=overrides)


def test_a_finished_run_resumes_to_itself(data, saved):
    x, y = data
    full, full_history = fit(new_state(x), x, y, 4)
    resumed, history = fit(new_state(x), x, y, 4, resume_from=saved)
    assert_same_run(resumed, full)
    assert history["loss"] == full_history["loss"]


# --------------------------------------------------------------------- damaged checkpoints


def array_file(step_dir: pathlib.Path) -> pathlib.Path:
    """The largest file holding the saved arrays' data: Orbax merges each process's OCDBT
    store into ``state/d/`` (the ``ocdbt.process_*`` copies are not read back)."""
    files = [p for p in (step_dir / "state" / "d").glob("*") if p.is_file()]
    assert files, sorted(step_dir.rglob("*"))
    return max(files, key=lambda p: p.stat().st_size)


def flip_a_bit(step_dir: pathlib.Path):
    target = array_file(step_dir)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x10
    target.write_bytes(bytes(data))


def truncate_arrays(step_dir):
    target = array_file(step_dir)
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 3])


def remove(relative):
    return lambda step_dir: os.remove(step_dir / relative)


def truncate_meta(step_dir):
    path = step_dir / "meta" / "metadata"
    path.write_bytes(path.read_bytes()[:20])


DAMAGES = {
    "bit flip in an array file": flip_a_bit,
    "truncated array file": truncate_arrays,
    "missing _METADATA": remove("state/_METADATA"),
    "truncated metadata JSON": truncate_meta,
    "missing metadata JSON": remove("meta/metadata"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_latest_epoch_is_skipped_and_the_run_still_ends_bit_for_bit(
    data, saved, damage
):
    x, y = data
    DAMAGES[damage](saved / "4")
    full, full_history = fit(new_state(x), x, y, 4)
    with pytest.warns(UserWarning, match=r"resume_from: skipped damaged checkpoint\(s\) in .*: "
                      r"epoch 4: .*; resuming from epoch 3"):  # fmt: skip
        resumed, history = fit(new_state(x), x, y, 4, resume_from=saved,
                               callbacks=[fnn.Checkpoint(saved)])  # fmt: skip
    assert_same_run(resumed, full)
    assert history["loss"] == full_history["loss"]
    assert (saved / "4.damaged").is_dir()  # set aside, not deleted
    assert CheckpointStore(saved).all_epochs() == [2, 3, 4]  # epoch 4 saved again, intact
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again, _ = fit(new_state(x), x, y, 4, resume_from=saved)
    assert_same_run(again, full)


def test_a_bit_flip_is_named_as_a_checksum_mismatch(data, saved):
    x, y = data
    flip_a_bit(saved / "4")
    with pytest.warns(UserWarning, match=r"epoch 4: (the checksum of .* does not match the "
                      r"saved one|its arrays cannot be read)"):  # fmt: skip
        fit(new_state(x), x, y, 4, resume_from=saved)


def test_an_empty_newer_epoch_directory_is_skipped(data, saved):
    x, y = data
    (saved / "5").mkdir()
    full, _ = fit(new_state(x), x, y, 4)
    with pytest.warns(UserWarning, match=r"epoch 5: its metadata cannot be read"):
        resumed, _ = fit(new_state(x), x, y, 4, resume_from=saved)
    assert_same_run(resumed, full)


def test_no_intact_epoch_left_is_an_error_that_lists_every_damage(data, saved):
    x, y = data
    for epoch in (2, 3, 4):
        truncate_meta(saved / str(epoch))
    with pytest.raises(DamagedCheckpointError, match=r"no intact checkpoint in .*: epoch 4: its "
                       r"metadata cannot be read .*; epoch 3: .*; epoch 2: ") as info:  # fmt: skip
        fit(new_state(x), x, y, 4, resume_from=saved)
    assert sorted(info.value.damaged) == [2, 3, 4]


# -------------------------------------------------------------- the guard checks the state


def overflowing(x):
    """Linear regression ``0.05 * x`` on targets 0, trained by SGD with learning rate 1.

    On one example ``x = 2.45e20`` in a batch of ``B <= 8`` the loss, ``(0.05 x)^2 = 1.5e38``,
    is finite in float32, but the mean gradient, ``2 * 0.05 x * x / B >= 7.5e38``, is not:
    the update overflows the weights.
    """
    state = fnn.TrainState.create(models.LinearRegression(), optim.sgd(1.0), x[:1], seed=0)
    params = {"Dense_0": {"kernel": np.full((1, 1), 0.05, np.float32),
                          "bias": np.zeros((1,), np.float32)}}  # fmt: skip
    return state.replace(params=jax.tree_util.tree_map(jax.numpy.asarray, params))


@pytest.mark.parametrize("strategy", ["fused", "stepwise", "unfused"])
@pytest.mark.parametrize("batch_size", [2, "full"])
def test_an_update_that_overflows_keeps_the_last_finite_state(batch_size, strategy):
    x, y = np.zeros((8, 1), np.float32), np.zeros((8,), np.float32)
    x[0] = 2.45e20  # in the first batch
    state = overflowing(x)
    with pytest.raises(fnn.NonFiniteLossError, match=r"non-finite (loss|parameters \(an update "
                       r"overflowed\)) at epoch 1/3, step 0 of") as info:  # fmt: skip
        fnn.fit(state, x, y, loss="mse", batch_size=batch_size, epochs=3, verbose=0,
                strategy=strategy, shuffle=False)  # fmt: skip
    kept = info.value.state
    assert int(kept.step) == 0 and info.value.global_step == 0
    for leaf in jax.tree_util.tree_leaves(kept.params):
        assert np.isfinite(np.asarray(leaf)).all()
    assert "an update overflowed" in str(info.value)  # the first loss was finite


def test_an_overflow_late_in_an_epoch_is_found_by_bisection():
    x = np.zeros((40, 1), np.float32)
    x[29] = 2.45e20  # the update of the step that draws example 29 overflows, not its loss
    y = np.zeros((40,), np.float32)
    state = overflowing(x)
    with pytest.raises(fnn.NonFiniteLossError) as info:
        fnn.fit(state, x, y, loss="mse", batch_size=1, epochs=2, verbose=0, shuffle=False)
    assert info.value.step == 29 and int(info.value.state.step) == 29
    leaves = jax.tree_util.tree_leaves(info.value.state.params)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in leaves)


# ------------------------------------------------------------------------------- preemption


class SigtermAt(fnn.Callback):
    """Sends this process SIGTERM after epoch ``epoch``, as a preemption would."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, run):
        if run.epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises here, as soon as the signal is delivered


def test_sigterm_saves_the_run_exits_143_and_resumes_bit_for_bit(data, tmp_path, capsys):
    x, y = data
    ckpt = tmp_path / "preempted"
    with pytest.raises(SystemExit) as info:
        fit(new_state(x), x, y, 5, callbacks=[fnn.Checkpoint(ckpt, every=10), SigtermAt(2)])
    assert info.value.code == 128 + signal.SIGTERM
    assert "fnn.fit: received SIGTERM; stopped after epoch 2" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back
    assert CheckpointStore(ckpt).all_epochs() == [2]
    resumed, history = fit(new_state(x), x, y, 5, resume_from=ckpt)
    full, full_history = fit(new_state(x), x, y, 5)
    assert_same_run(resumed, full)
    assert history["loss"] == full_history["loss"]


def test_a_sigterm_handler_of_the_users_own_is_left_alone(data):
    x, y = data
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        _, history = fit(new_state(x), x, y, 3, callbacks=[SigtermAt(1)])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIGTERM] and len(history) == 3
