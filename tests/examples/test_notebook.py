"""Executes the Colab quickstart notebook's Python cells on CPU with ``QUICK = True``.

Shell lines (``!pip ...``, ``!python -m benchmarks``) are skipped: installing is the
environment's job, and the benchmark suite has its own tests.
"""

import json
import pathlib

import matplotlib
import pytest

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "examples" / "colab_quickstart.ipynb"


def code_cells() -> list[str]:
    """The source of every code cell, without shell (``!``) and magic (``%``) lines."""
    notebook = json.loads(NOTEBOOK.read_text())
    assert notebook["nbformat"] == 4
    cells = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).splitlines()
        cells.append("\n".join(ln for ln in lines if not ln.lstrip().startswith(("!", "%"))))
    return cells


def test_notebook_is_valid_and_modern():
    notebook = json.loads(NOTEBOOK.read_text())
    assert notebook["nbformat"] == 4 and notebook["nbformat_minor"] >= 4
    assert all(c["cell_type"] in ("code", "markdown") for c in notebook["cells"])
    source = "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    for deprecated in ("colab_tpu", "setup_tpu", "pmap", "jax.tree_map"):
        assert deprecated not in source
    assert "jax.devices()" in source
    assert "!pip install -q -e" in source
    assert "python -m benchmarks --quick" in source
    assert code_cells()[0].lstrip().startswith("QUICK = True")


def test_notebook_runs_on_cpu(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)  # the notebook writes its plot to the working directory
    namespace: dict = {}
    try:
        for i, source in enumerate(code_cells()):
            if i == 0:
                source = source.replace("QUICK = False", "QUICK = True")
            exec(compile(source, f"{NOTEBOOK.name}[code cell {i}]", "exec"), namespace)
    finally:
        plt.close("all")
    assert namespace["QUICK"] is True
    results = namespace["results"]
    assert len(results) == 3
    for name, r in results.items():
        assert r["test_accuracy"] >= 0.93, (name, r)
    assert (tmp_path / "quickstart_history.png").stat().st_size > 0


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
