"""Fixtures for the example tests: import a script from ``examples/`` as a module."""

import importlib.util
import pathlib
import sys
from types import ModuleType

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def load_example():
    """Returns ``load(name) -> module`` for ``examples/<name>.py`` (imported once per session)."""

    def load(name: str) -> ModuleType:
        module_name = f"fnn_example_{name}"
        if module_name not in sys.modules:
            spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        return sys.modules[module_name]

    return load


@pytest.fixture(autouse=True)
def no_global_numpy_state():
    """An example must not change NumPy's global print options: later tests (the doctests)
    compare printed arrays."""
    import numpy as np

    before = np.get_printoptions()
    yield
    assert np.get_printoptions() == before, "an example changed NumPy's print options"
