"""fnn.data.load / info / list_datasets / is_available, the CLI, and the import rules."""

import ast
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import fnn.data
from fnn.data.__main__ import main

DATA_DIR = pathlib.Path(fnn.data.__file__).parent

# Loaders whose defaults are large get small sizes here; info() describes the defaults.
SMALL = {
    "synthetic_mnist": {"n_train": 64, "n_test": 16},
    "synthetic_reviews": {"n_train": 64, "n_test": 16},
}


def test_list_datasets():
    names = fnn.data.list_datasets()
    assert names == tuple(sorted(names))
    assert set(fnn.data.list_datasets("tfds")) == {
        "mnist", "fashion_mnist", "cifar10", "imdb_reviews",
    }  # fmt: skip
    assert {"linear_regression", "blobs", "xor", "sine", "synthetic_mnist"} <= set(
        fnn.data.list_datasets("synthetic")
    )
    assert set(names) == {
        n for s in ("bundled", "synthetic", "tfds") for n in fnn.data.list_datasets(s)
    }
    with pytest.raises(ValueError, match=r"source: expected one of \[None, 'bundled'.*got 'web'"):
        fnn.data.list_datasets("web")
    with pytest.raises(TypeError, match=r"source: expected one of \[None, 'bundled'.*got 3"):
        fnn.data.list_datasets(3)


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in fnn.data.list_datasets()
        if n not in {"mnist", "fashion_mnist", "cifar10", "imdb_reviews"}
    ],
)
def test_info_matches_load(name):
    info = fnn.data.info(name)
    (x_train, y_train), (x_test, y_test) = fnn.data.load(name, **SMALL.get(name, {}))
    assert x_train.shape[1:] == x_test.shape[1:] == info.input_shape
    if name not in SMALL:
        assert (x_train.shape[0], x_test.shape[0]) == (info.num_train, info.num_test)
    assert y_train.shape == (x_train.shape[0],) and y_test.shape == (x_test.shape[0],)
    assert x_train.dtype == (object if info.input_dtype == "str" else np.float32)
    if info.task == "classification":
        assert y_train.dtype == np.int32 and y_train.max() < info.num_classes
    else:
        assert y_train.dtype == np.float32 and info.num_classes is None
    assert info.stand_in is None and info.description


def test_info_tfds():
    info = fnn.data.info("mnist")
    assert (info.source, info.input_shape, info.num_classes) == ("tfds", (28, 28, 1), 10)
    assert (info.num_train, info.num_test) == (60_000, 10_000)
    assert info.stand_in == "synthetic_mnist"
    stand_in = fnn.data.info(info.stand_in)
    assert (stand_in.input_shape, stand_in.num_classes) == (info.input_shape, info.num_classes)
    assert fnn.data.info("imdb_reviews").stand_in == "synthetic_reviews"
    assert set(info.options) == {"download", "split", "flatten"}


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match=r"name: expected one of \[.*'iris'.*\], got 'irises'"):
        fnn.data.load("irises")
    with pytest.raises(ValueError, match="got 'nope'"):
        fnn.data.info("nope")
    with pytest.raises(ValueError, match="got 'nope'"):
        fnn.data.is_available("nope")


def test_unknown_option_is_named():
    with pytest.raises(
        ValueError,
        match=r"options: expected options of load\('iris'\) among \['test_size'\].*"
        r"got unknown \['n_train'\]",
    ):
        fnn.data.load("iris", n_train=10)


def test_data_dir_is_ignored_by_offline_sources(tmp_path):
    (a, _), _ = fnn.data.load("iris", data_dir=tmp_path)
    (b, _), _ = fnn.data.load("iris")
    np.testing.assert_array_equal(a, b)


def test_cli_list(capsys, tmp_path):
    assert main(["list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "iris" in out and "offline: yes" in out
    assert any(line.startswith("mnist") and "prepare it" in line for line in out.splitlines())


def test_cli_prepare_rejects_offline_datasets(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "iris"])
    assert exit_info.value.code == 2
    assert "need no preparing" in capsys.readouterr().err


def test_cli_prepare_offline_fails_clearly(capsys, tmp_path, no_network):
    pytest.importorskip("tensorflow_datasets")
    assert main(["prepare", "mnist", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "storage.googleapis.com:443 is unreachable" in err and str(tmp_path) in err


def test_cli_prepare_with_mocked_tfds(capsys, tmp_path, mock_tfds, monkeypatch):
    from fnn.data import tfds as tfds_source

    monkeypatch.setattr(tfds_source, "_reachable", lambda url, timeout=1.0: True)
    with mock_tfds():
        assert main(["prepare", "mnist", "cifar10", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mnist: prepared in" in out and "cifar10: prepared in" in out


def test_module_runs_as_script_and_import_is_light():
    """`python -m fnn.data --help` works, and importing fnn.data does not import TFDS / TF."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['fnn.data', '--help']\n"
        "try:\n"
        "    runpy.run_module('fnn.data', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print('heavy:', [m for m in ('tensorflow_datasets', 'tensorflow') if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=DATA_DIR.parent.parent,
    )
    assert result.returncode == 0, result.stderr
    assert "prepare" in result.stdout and "heavy: []" in result.stdout


def test_data_imports_nothing_from_train_or_models():
    for path in DATA_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                modules = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                assert not module.startswith(("fnn.train", "fnn.models")), (path.name, module)
                assert not module.startswith("tensorflow."), (path.name, module)
