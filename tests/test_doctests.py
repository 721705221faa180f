"""The Example sections of the public docstrings run as written."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "fnn.losses",
        "fnn.optim",
        "fnn.metrics",
        "fnn.data",
        "fnn.data.catalog",
        "benchmarks.harness",
        "benchmarks.hardware",
    ],
)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
