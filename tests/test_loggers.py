"""CSVLogger, TensorBoard and ProfilerTrace files read back; verbose=2 lines; the progress bar's
compile phase and ETA; LambdaCallback; every new callback's options checked."""

import csv
import glob
import io
import os
import re
import sys

import jax
import numpy as np
import pytest

import fnn
from fnn import models, optim
from fnn.train import Callback, loop

MODEL = models.MLP((16,), 3)
SGD = optim.sgd(0.1, momentum=0.9)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
    return x, y


def fit(data, epochs, *, model=MODEL, validate=True, **kwargs):
    x, y = data
    state = fnn.TrainState.create(model, SGD, x[:1], seed=1)
    kwargs.setdefault("verbose", 0)
    if validate:
        kwargs["validation_data"] = (x[:20], y[:20])
    return fnn.fit(state, x, y, loss="cross_entropy", batch_size=10, epochs=epochs, seed=2,
                   metrics=["accuracy"], **kwargs)  # fmt: skip


def read_csv(path, delimiter=","):
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=delimiter))
    return rows[0], rows[1:]


def assert_rows_are_records(header, rows, records):
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        assert set(record) <= set(header)
        for name, cell in zip(header, row, strict=True):
            want = record[name]
            assert (int(cell) if isinstance(want, int) else float(cell)) == want, name


class InterruptAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, run):
        if run.epoch == self.epoch:
            raise KeyboardInterrupt


def test_csv_logger_writes_the_history(data, tmp_path):
    path = tmp_path / "logs" / "history.csv"
    _, history = fit(data, 3, callbacks=[fnn.CSVLogger(path, separator=";")])
    header, rows = read_csv(path, delimiter=";")
    assert header == list(history.records[0])  # the run's fields, in order
    assert header[:3] == ["epoch", "loss", "accuracy"] and "val_loss" in header
    assert "learning_rate" in header
    assert_rows_are_records(header, rows, history.records)  # every number exactly


def test_csv_logger_across_an_interrupt_and_resume(data, tmp_path):
    path, ckpt = tmp_path / "h.csv", tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        fit(data, 4, callbacks=[fnn.CSVLogger(path, append=True), fnn.Checkpoint(ckpt),
                                InterruptAt(2)])  # fmt: skip
    header, rows = read_csv(path)
    assert [r[0] for r in rows] == ["1", "2"]  # flushed each epoch, closed on Ctrl-C
    callbacks = [fnn.CSVLogger(path, append=True), fnn.Checkpoint(ckpt)]
    _, history = fit(data, 4, resume_from=ckpt, callbacks=callbacks)
    header, rows = read_csv(path)
    assert_rows_are_records(header, rows, history.records)  # epochs 1-4, each once
    # append=False rewrites the file with every record of the history (here: a resume at the
    # last epoch, nothing left to train).
    path.write_text("garbage\n")
    _, again = fit(data, 4, resume_from=ckpt, callbacks=[fnn.CSVLogger(path)])
    header, rows = read_csv(path)
    assert_rows_are_records(header, rows, again.records)
    assert len(rows) == 4


def test_csv_logger_refuses_to_append_to_another_runs_file(data, tmp_path, compiles):
    path = tmp_path / "other.csv"
    path.write_text("epoch,loss\n1,0.5\n")
    with pytest.raises(ValueError, match=r"append: .*other.csv has the columns \['epoch', 'los"):
        fit(data, 2, callbacks=[fnn.CSVLogger(path, append=True)])
    assert path.read_text() == "epoch,loss\n1,0.5\n"
    assert compiles.count("fused_epoch") == 0  # refused before training


def test_tensorboard_scalars_read_back(data, tmp_path):
    pytest.importorskip("tensorboardX")
    reading = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    _, history = fit(data, 3, callbacks=[fnn.TensorBoard(tmp_path / "tb")])
    reader = reading.EventAccumulator(str(tmp_path / "tb"))
    reader.Reload()
    numeric = [k for k in history.records[0] if k != "epoch"]
    assert sorted(reader.Tags()["scalars"]) == sorted(numeric)
    for tag in numeric:
        got = [(e.step, e.value) for e in reader.Scalars(tag)]
        want = [(r["epoch"], float(np.float32(r[tag]))) for r in history.records]
        assert got == want, tag
    assert [e.value for e in reader.Scalars("learning_rate")] == [pytest.approx(0.1)] * 3


def test_tensorboard_without_tensorboardx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails
    with pytest.raises(ImportError, match=r"TensorBoard needs the tensorboardX package .*"
                                          r"pip install 'fnn\[log\]'"):  # fmt: skip
        fnn.TensorBoard("tb")


def test_profiler_trace_writes_a_trace_of_the_window(data, tmp_path):
    trace = fnn.ProfilerTrace(tmp_path / "prof", start_epoch=2, epochs=1)
    fit(data, 3, callbacks=[trace])
    assert trace.traced == [2]
    files = glob.glob(str(tmp_path / "prof" / "plugins" / "profile" / "*" / "*"))
    assert any(f.endswith(".xplane.pb") and os.path.getsize(f) > 0 for f in files), files


def test_verbose_2_prints_one_line_per_epoch(data, capsys):
    _, history = fit(data, 2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line, r in zip(lines, history.records, strict=True):
        took = rf"{r['epoch_time']:.2f}s" + (
            rf" \(\+{r['compile_time']:.2f}s compiling\)" if r["compile_time"] else ""
        )
        assert re.fullmatch(
            rf"Epoch {r['epoch']}/2 - {took} - loss: {r['loss']:.4f} - accuracy: "
            rf"{r['accuracy']:.4f} - val_loss: {r['val_loss']:.4f} - val_accuracy: "
            rf"{r['val_accuracy']:.4f} - learning_rate: 0\.1000",
            line,
        ), line


def test_progress_bar_shows_compiling_and_its_eta_leaves_compilation_out(data, monkeypatch):
    seen = []

    class Bar(loop.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, file=io.StringIO(), mininterval=0, **kwargs)

        def set_postfix_str(self, s="", refresh=True):
            seen.append(("postfix", s))
            super().set_postfix_str(s, refresh)

        def update(self, n=1):
            super().update(n)
            seen.append(("update", self.format_dict["rate"], self.format_dict["elapsed"]))

    monkeypatch.setattr(loop, "tqdm", Bar)
    # A model of its own, so that its first epoch compiles (nothing in the cache).
    _, history = fit(data, 3, model=models.MLP((13,), 3), verbose=1, validate=False)
    compile_time = history["compile_time"][0]
    assert compile_time > 0.05
    assert seen[0] == ("postfix", "compiling")
    assert [s for s in seen if s == ("postfix", "compiling")] == [seen[0]]  # epoch 1 only
    updates = [s for s in seen if s[0] == "update"]
    assert len(updates) == 3
    for _, rate, elapsed in updates:  # seconds per epoch as the ETA sees them: run time only
        assert 1 / rate < compile_time and elapsed < compile_time


@pytest.mark.parametrize(("n", "batch_size", "strategy"),
                         [(60, 1, "fused"), (59, 1, "fused"), (60, 7, "fused"),
                          (59, 1, "stepwise"), (60, 7, "stepwise")])  # fmt: skip
def test_a_long_epoch_advances_the_bar_within_it_and_trains_bit_for_bit_as_one_program(
    data, monkeypatch, n, batch_size, strategy
):
    # 60 steps (20 equal segments), 59 (prime: a shorter last segment), 9 with a masked last
    # batch; every epoch counts as long, and is cut into as many segments as allowed.
    monkeypatch.setattr(loop, "SPLIT_EPOCH_S", 0.0)
    monkeypatch.setattr(loop, "SEGMENT_S", 1e-9)
    positions = []

    class Bar(loop.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, file=io.StringIO(), mininterval=0, **kwargs)

        def refresh(self, *args, **kwargs):
            positions.append(self.n)
            return super().refresh(*args, **kwargs)

    monkeypatch.setattr(loop, "tqdm", Bar)
    x, y = data[0][:n], data[1][:n]

    def train(verbose):
        state = fnn.TrainState.create(MODEL, SGD, x[:1], seed=1)
        return fnn.fit(state, x, y, loss="cross_entropy", batch_size=batch_size, epochs=3,
                       seed=2, metrics=["accuracy"], verbose=verbose,
                       strategy=strategy)  # fmt: skip

    whole_state, whole = train(0)
    split_state, split = train(1)
    assert split.strategy == whole.strategy == strategy
    for a, b in zip(jax.tree_util.tree_leaves(whole_state), jax.tree_util.tree_leaves(split_state),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for field in ("loss", "accuracy", "steps"):
        assert whole[field] == split[field], field
    # Epoch 1 ran as one program and showed no fraction; epochs 2 and 3 moved the bar in steps.
    assert positions == sorted(positions)
    for epoch in (2, 3):
        inside = [p for p in positions if epoch - 1 < p < epoch]
        assert len(set(inside)) >= 2, (epoch, inside)  # one per segment but the last
    assert not [p for p in positions if 0 < p < 1]
    assert split["compile_time"][2] == 0  # the segments compiled in epoch 2, not again


def test_lambda_callback_calls_its_functions(data):
    calls = []
    cb = fnn.LambdaCallback(
        on_train_begin=lambda run: calls.append(("begin", run.epoch)),
        on_epoch_end=lambda run: calls.append(("epoch", run.epoch)),
        on_train_end=lambda run: calls.append(("end", run.epoch, run.history.stop_reason)),
    )
    stop = fnn.LambdaCallback(on_epoch_end=lambda run: setattr(run, "stop_reason", "enough"))
    _, history = fit(data, 5, callbacks=[cb, stop])
    assert calls == [("begin", 0), ("epoch", 1), ("end", 1, "enough")]
    assert len(history) == 1


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: fnn.CSVLogger(3), TypeError, "path: expected a file path, got int"),
        (lambda: fnn.CSVLogger("a.csv", append="yes"), TypeError, "append: expected True or"),
        (lambda: fnn.CSVLogger("a.csv", separator=1), TypeError, "separator: expected a one-"),
        (lambda: fnn.CSVLogger("a.csv", separator=";;"), ValueError, "separator: expected one"),
        (lambda: fnn.CSVLogger("a.csv", separator='"'), ValueError, "separator: expected one"),
        (lambda: fnn.TensorBoard(None), TypeError, "log_dir: expected a directory path"),
        (lambda: fnn.ProfilerTrace(None), TypeError, "log_dir: expected a directory path"),
        (lambda: fnn.ProfilerTrace("p", start_epoch=0), ValueError, "start_epoch: expected an"),
        (lambda: fnn.ProfilerTrace("p", start_epoch=1.0), TypeError, "start_epoch: expected an"),
        (lambda: fnn.ProfilerTrace("p", epochs="2"), TypeError, "epochs: expected an integer"),
        (lambda: fnn.LambdaCallback(on_epoch_end=3), TypeError, "on_epoch_end: expected a func"),
        (lambda: fnn.LambdaCallback(print), TypeError, "positional argument"),
        (lambda: fnn.ReduceLROnPlateau(factor=1.0), ValueError, r"factor: expected a number in "
                                                                r"\(0, 1\), got 1.0"),  # fmt: skip
        (lambda: fnn.ReduceLROnPlateau(factor=0), ValueError, "factor: expected a number in"),
        (lambda: fnn.ReduceLROnPlateau(factor="0.5"), TypeError, "factor: expected a number"),
        (lambda: fnn.ReduceLROnPlateau(patience=-1), ValueError, "patience: expected an integ"),
        (lambda: fnn.ReduceLROnPlateau(patience=2.5), TypeError, "patience: expected an integ"),
        (lambda: fnn.ReduceLROnPlateau(cooldown=-1), ValueError, "cooldown: expected an integ"),
        (lambda: fnn.ReduceLROnPlateau(min_lr=-1e-3), ValueError, "min_lr: expected a number"),
        (lambda: fnn.ReduceLROnPlateau(min_lr=float("nan")), ValueError, "min_lr: expected a"),
        (lambda: fnn.ReduceLROnPlateau(min_delta=-1), ValueError, "min_delta: expected a num"),
        (lambda: fnn.ReduceLROnPlateau(mode="up"), ValueError, "mode: expected one of"),
        (lambda: fnn.ReduceLROnPlateau(["loss"]), TypeError, "monitor: expected a history"),
        (lambda: fnn.EarlyStopping(baseline="1"), TypeError, "baseline: expected a number"),
        (lambda: fnn.EarlyStopping(baseline=float("nan")), ValueError, "baseline: expected a"),
        (lambda: fnn.EarlyStopping(start_from_epoch=-1), ValueError, "start_from_epoch: expec"),
        (lambda: fnn.EarlyStopping(start_from_epoch=True), TypeError, "start_from_epoch: expe"),
    ],
)
def test_new_callback_options_are_checked_when_built(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    ("callback", "match"),
    [
        (lambda tmp: fnn.CSVLogger(tmp), r"path: .* is a directory; expected a CSV file path"),
        (lambda tmp: fnn.TensorBoard(tmp / "f"), r"log_dir: .*f is a file; expected a directory"),
        (lambda tmp: fnn.ProfilerTrace(tmp / "f"), r"log_dir: .*f is a file; expected a direc"),
        (lambda tmp: fnn.ReduceLROnPlateau("val_acc"), "monitor: ReduceLROnPlateau watches"),
    ],
)
def test_new_callbacks_check_the_run_before_the_first_epoch(data, tmp_path, callback, match,
                                                            compiles):  # fmt: skip
    (tmp_path / "f").write_text("a file")
    before = compiles.count("fused_epoch")
    with pytest.raises(ValueError, match=match):
        fit(data, 2, callbacks=[callback(tmp_path)])
    assert compiles.count("fused_epoch") == before  # nothing trained
