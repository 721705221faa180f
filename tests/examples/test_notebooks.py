"""The notebooks in ``examples/notebooks``: checked as files, then executed top to bottom.

Each notebook runs unmodified in a fresh Jupyter kernel (nbclient, on this interpreter, on the
CPU) with ``FNN_NOTEBOOK_QUICK=1``, the switch its first cell reads to shrink every setting, and
``FNN_NOTEBOOK_OUT`` pointing at a temporary folder; its working directory is another temporary
folder, which must stay empty. Each must write its figures and a ``summary.json`` whose numbers
are checked here.
"""

import json
import pathlib
import re
import sys

import nbformat
import pytest

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[2] / "examples" / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
REPOSITORY = "fnn-dev/fnn"  # the placeholder owner/name the badges and install cells use

# What each notebook must write into its output folder, besides summary.json.
OUTPUTS = {
    "quickstart": ["quickstart_history.png", "quickstart_history.json"],
    "gd_modes": ["gd_modes.png"],
    "cnn_mnist": ["cnn_history.png", "cnn_predictions.png"],
    "text_lstm": ["text_lstm_history.png"],
    "benchmark": [
        "benchmarks/results.json",
        "benchmarks/report.md",
        "benchmarks/throughput_mlp.png",
        "benchmarks/accuracy_vs_time_mlp.png",
    ],
}
DEPRECATED = ("pmap", "jax.tree_map", "setup_tpu", "colab_tpu", "jax_utils.replicate")
WRITES = re.compile(r"savefig\(|plot_history\(|write_text\(|to_json\(|\bopen\(|--out")


def code_cells(notebook) -> list[str]:
    return [c.source for c in notebook.cells if c.cell_type == "code"]


def test_every_notebook_is_covered():
    assert {p.stem for p in NOTEBOOKS} == set(OUTPUTS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_colab_ready(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4 and notebook.nbformat_minor >= 4
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    # An "Open in Colab" badge pointing at this very file, in the first cell.
    url = (
        f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/examples/notebooks/"
        f"{path.name}"
    )
    assert notebook.cells[0].cell_type == "markdown"
    assert (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"
        in (notebook.cells[0].source)
    )
    # The first code cell installs fnn only when it cannot be imported, and never touches jax.
    setup, *rest = code_cells(notebook)
    assert re.search(r"try:\n\s+import fnn\nexcept ImportError:", setup)
    assert f'"fnn @ git+https://github.com/{REPOSITORY}"' in setup
    for needed in (
        "jax.__version__",
        "jax.devices()",
        "jax.default_backend()",
        "FNN_NOTEBOOK_QUICK",
        "FNN_NOTEBOOK_OUT",
        'jnp.bfloat16 if jax.default_backend() == "tpu" else jnp.float32',
    ):
        assert needed in setup, needed
    source = "\n".join([setup, *rest])
    assert source.count("%pip") == 2 and "!pip" not in source  # the checkout, or GitHub
    code = "\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith("#"))
    for upgrade in ("--upgrade", " -U ", "jax[", "libtpu", "pip install jax"):
        assert upgrade not in code, upgrade
    for deprecated in DEPRECATED:
        assert deprecated not in source, deprecated
    # Every model computes in DTYPE (bfloat16 on TPU).
    for model in re.findall(r"fnn\.models\.\w+\(", source):
        assert "dtype=DTYPE" in source.split(model, 1)[1].split("\n)", 1)[0], model
    # Nothing is written into the checkout: every file written lies under OUT.
    assert "benchmarks/results" not in source and '".."' not in source and "../" not in source
    for line in source.splitlines():
        if WRITES.search(line) and not line.lstrip().startswith("#"):
            assert "OUT" in line, line
    # Committed without outputs, so diffs stay readable and nothing stale is shown.
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.fixture
def kernel_name(tmp_path, monkeypatch) -> str:
    """``python3``, run by this interpreter.

    The ``python3`` kernelspec comes from ipykernel, installed with the ``dev`` extra under
    ``sys.prefix``; jupyter_client runs its ``python`` as ``sys.executable``. A user-level
    ``python3`` kernelspec (``~/.local/share/jupyter``) for another interpreter would take
    precedence, so then a spec for this interpreter is put first on ``JUPYTER_PATH``.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        command = KernelSpecManager().get_kernel_spec("python3").argv[0]
    except NoSuchKernel:
        command = None
    if command not in ("python", "python3", sys.executable):
        spec = tmp_path / "jupyter" / "kernels" / "python3"
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
        )
        monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "python3"


def check_summary(name: str, summary: dict, out: pathlib.Path) -> None:
    """The numbers each notebook reached in quick mode (noted next to each bar)."""
    if name == "quickstart":
        assert summary["test_accuracy"] >= 0.85  # quick: ~0.95
    elif name == "gd_modes":
        assert set(summary) == {"full batch", "mini-batch 32", "stochastic (batch 1)"}
        for mode, curve in summary.items():
            assert curve["loss"][-1] < curve["loss"][0], (mode, curve["loss"])
            assert curve["seconds"][-1] > 0
        assert summary["full batch"]["steps"] == 4  # one step per epoch
        assert summary["stochastic (batch 1)"]["steps"] == 4 * 512  # one per example
        # per epoch, more steps make more progress (quick: 0.3 / 1.1 / 2.0 from 2.3)
        final = {mode: curve["loss"][-1] for mode, curve in summary.items()}
        assert final["stochastic (batch 1)"] < final["mini-batch 32"] < final["full batch"]
    elif name == "cnn_mnist":
        assert "stand-in" in summary["data"] and "not prepared" in summary["data"]
        assert summary["test_accuracy"] >= 0.5  # quick: ~0.8; chance 0.1
    elif name == "text_lstm":
        assert "stand-in" in summary["data"] and "not prepared" in summary["data"]
        assert summary["test_accuracy"] >= 0.55  # quick: ~0.7; chance 0.5
    elif name == "benchmark":
        assert summary["plots"] >= 2 and summary["preset"] == "--tiny"
        results = json.loads((out / "benchmarks" / "results.json").read_text())
        assert results["meta"]["device"]["platform"] == "cpu"
        assert any(r["status"] == "ok" for r in results["records"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_cpu(path, tmp_path, monkeypatch, kernel_name):
    from nbclient import NotebookClient

    out, cwd = tmp_path / "out", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("FNN_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("FNN_NOTEBOOK_OUT", str(out))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=kernel_name,
        timeout=240,
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()

    first = next(c for c in notebook.cells if c.cell_type == "code")
    printed = "".join(o.get("text", "") for o in first.outputs if o.output_type == "stream")
    assert "devices: [CpuDevice(id=0)]" in printed and "backend: cpu" in printed, printed
    assert "QUICK = True" in printed and f"outputs in {out}" in printed
    for name in OUTPUTS[path.stem]:
        assert (out / name).stat().st_size > 0, name
    check_summary(path.stem, json.loads((out / "summary.json").read_text()), out)
    assert list(cwd.iterdir()) == []  # nothing written to the working directory


class _FakeIPython:
    """Records the line magics a cell runs; ``%pip install`` makes ``fnn`` importable again."""

    def __init__(self, blocked_fnn, monkeypatch):
        self.magics, self._blocked, self._monkeypatch = [], blocked_fnn, monkeypatch

    def run_line_magic(self, name, line, _stack_depth=1):
        # IPython expands {variables} of the calling namespace in a magic's line.
        self.magics.append((name, line.format_map(sys._getframe(1).f_locals)))
        for module, value in self._blocked.items():
            self._monkeypatch.setitem(sys.modules, module, value)


@pytest.mark.parametrize("where", ["inside the checkout", "a fresh runtime"])
def test_the_setup_cell_installs_fnn_when_it_cannot_be_imported(where, tmp_path, monkeypatch):
    from IPython.core.inputtransformer2 import TransformerManager

    import fnn  # noqa: F401 - loaded, so that the fake %pip can make it importable again

    notebook = nbformat.read(NOTEBOOK_DIR / "quickstart.ipynb", as_version=4)
    python = TransformerManager().transform_cell(code_cells(notebook)[0])
    assert "get_ipython().run_line_magic('pip'" in python
    # fnn cannot be imported until the cell's %pip has run.
    saved = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] == "fnn"}
    for name in saved:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fnn", None)
    ipython = _FakeIPython(saved, monkeypatch)
    monkeypatch.chdir(NOTEBOOK_DIR if where == "inside the checkout" else tmp_path)
    monkeypatch.setenv("FNN_NOTEBOOK_OUT", str(tmp_path / "out"))
    namespace = {"get_ipython": lambda: ipython}
    exec(compile(python, "setup-cell", "exec"), namespace)  # noqa: S102
    ((magic, line),) = ipython.magics
    assert magic == "pip"
    if where == "inside the checkout":
        assert line == f'install -q -e "{NOTEBOOK_DIR.parents[1]}"'
        assert sys.path[0] == str(NOTEBOOK_DIR.parents[1])
        sys.path.remove(str(NOTEBOOK_DIR.parents[1]))
    else:
        assert line == f'install -q "fnn @ git+https://github.com/{REPOSITORY}"'
    assert namespace["fnn"] is saved["fnn"] and namespace["DTYPE"] is not None
