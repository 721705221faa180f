"""Several processes (``jax.distributed``): 2 local processes x 2 CPU devices each against one
process with 4 devices, all in subprocesses (the device count is fixed when JAX starts)."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    process, processes, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if processes > 1:
        jax.distributed.initialize(f"localhost:{port}", num_processes=processes,
                                   process_id=process)
    import numpy as np
    import fnn

    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)
    model = fnn.models.MLP((16,), 3, dropout=0.1)
    state = fnn.TrainState.create(model, fnn.optim.sgd(0.05, momentum=0.9), x[:1], seed=0)
    out = {"process": process, "processes": jax.process_count()}
    for batch_size in (32, 1, "full"):
        trained, history = fnn.fit(state, x, y, loss="cross_entropy", batch_size=batch_size,
                                   epochs=3, metrics=["accuracy"], verbose=1,
                                   validation_data=(x[:40], y[:40]))
        out[str(batch_size)] = history["loss"] + history["val_loss"]
    out["eval"] = fnn.evaluate(trained, x, y, loss="cross_entropy", batch_size=16)["loss"]
    # Each process holds only its half of the data (one process: all of it).
    local = slice(48 * process, 48 * (process + 1)) if processes > 1 else slice(None)
    for batch_size in (32, "full"):
        _, h_local = fnn.fit(state, x[local], y[local], loss="cross_entropy",
                             batch_size=batch_size, epochs=3, verbose=0, process_local=True)
        out["local_" + str(batch_size)] = h_local["loss"]
    # The same with each process's own iterable of batches: 16 of every global batch of 32.
    rows = np.arange(96).reshape(3, 2, 16)[:, process].reshape(-1) if processes > 1 else None
    if processes > 1:
        batches = [(x[rows[i : i + 16]], y[rows[i : i + 16]]) for i in range(0, 48, 16)]
    else:
        batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 96, 32)]
    _, h_iter = fnn.fit(state, batches, loss="cross_entropy", epochs=3, verbose=0,
                        process_local=True)
    out["local_iterable"] = h_iter["loss"]
    _, h_ordered = fnn.fit(state, x, y, loss="cross_entropy", batch_size=32, epochs=3,
                           verbose=0, shuffle=False)
    out["ordered_32"] = h_ordered["loss"]
    if processes > 1:
        try:
            fnn.fit(state, x[: 48 + 2 * process], y[: 48 + 2 * process], loss="cross_entropy",
                    batch_size=8, epochs=1, verbose=0, process_local=True)
        except ValueError as err:
            out["local_mismatch"] = str(err)
    out["predict"] = fnn.predict(trained, x, batch_size=16).tolist()
    leaf = jax.tree_util.tree_leaves(trained.params)[0]
    out["devices"] = len(leaf.sharding.device_set)
    if processes > 1:  # checkpoints written by both processes, then resumed by both
        ckpt = sys.argv[4]
        fnn.fit(state, x, y, loss="cross_entropy", batch_size=32, epochs=2, verbose=0,
                callbacks=[fnn.Checkpoint(ckpt)])
        resumed, h_resumed = fnn.fit(state, x, y, loss="cross_entropy", batch_size=32,
                                     epochs=4, verbose=0, resume_from=ckpt,
                                     resume_overrides=("epochs",))
        straight, h_straight = fnn.fit(state, x, y, loss="cross_entropy", batch_size=32,
                                       epochs=4, verbose=0)
        out["resume_equal"] = h_resumed["loss"] == h_straight["loss"] and all(
            np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(
                jax.tree_util.tree_leaves(resumed.params),
                jax.tree_util.tree_leaves(straight.params)))
    if processes > 1:  # the processes disagree about the data
        try:
            fnn.fit(state, x + process, y, loss="cross_entropy", batch_size=8, epochs=1,
                    verbose=0)
        except ValueError as err:
            out["mismatch"] = str(err)
    print("RESULT " + json.dumps(out), flush=True)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start(process: int, processes: int, port: int, devices: int, ckpt: str = ""):
    env = dict(os.environ, JAX_NUM_CPU_DEVICES=str(devices), JAX_PLATFORMS="cpu")
    args = [sys.executable, "-c", SCRIPT, str(process), str(processes), str(port), ckpt]
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _result(proc) -> tuple[dict, str]:
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    line = [row for row in stdout.splitlines() if row.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :]), stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    port = _free_port()
    ckpt = str(tmp_path_factory.mktemp("multiprocess") / "ckpt")
    procs = [_start(p, 2, port, devices=2, ckpt=ckpt) for p in range(2)]
    procs.append(_start(0, 1, 0, devices=4))
    try:
        return [_result(p) for p in procs]
    finally:
        for p in procs:
            p.kill()


def test_two_processes_train_like_one_process_with_as_many_devices(runs):
    (first, _), (second, _), (single, _) = runs
    assert first["processes"] == second["processes"] == 2 and single["processes"] == 1
    assert first["devices"] == single["devices"] == 4  # the state spans every device
    for key in ("32", "1", "full"):  # training and validation losses, epoch by epoch
        assert first[key] == second[key]  # one SPMD program: the same bits on both processes
        assert first[key] == pytest.approx(single[key], rel=1e-5)
    assert first["eval"] == pytest.approx(single["eval"], rel=1e-5)
    assert first["predict"] == second["predict"]
    np.testing.assert_allclose(first["predict"], single["predict"], rtol=1e-5, atol=1e-6)


def test_processes_holding_only_their_own_half_train_like_one_process_holding_all(runs):
    (first, _), (second, _), (single, _) = runs
    for key in ("local_32", "local_full"):
        assert first[key] == second[key]
        assert first[key] == pytest.approx(single[key], rel=1e-5)
    # With the whole set on one process, process_local changes nothing.
    assert single["local_32"] == pytest.approx(single["32"][:3], rel=1e-5)
    # Each process's iterable holds its half of every batch: the batches in order, as a whole.
    assert first["local_iterable"] == second["local_iterable"]
    assert first["local_iterable"] == pytest.approx(single["ordered_32"], rel=1e-5)
    assert single["local_iterable"] == pytest.approx(single["ordered_32"], rel=1e-5)
    for out in (first, second):
        assert out["local_mismatch"] == (
            "x: with process_local=True every process must hold as many examples; they hold "
            "[48, 50]"
        )


def test_only_process_zero_shows_progress(runs):
    (_, first_err), (_, second_err), _ = runs
    assert "epoch" in first_err
    assert "epoch" not in second_err


def test_checkpoints_written_by_two_processes_resume_bit_for_bit(runs):
    (first, _), (second, _), _ = runs
    assert first["resume_equal"] and second["resume_equal"]


def test_processes_with_different_data_get_a_clear_error(runs):
    (first, _), (second, _), _ = runs
    for out in (first, second):
        assert out["mismatch"].startswith("x: differs between processes (process 0 and ")
        assert "every process must pass the same x" in out["mismatch"]
