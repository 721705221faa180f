"""Shared test configuration: strict JAX numerics and a fresh-key fixture."""

import itertools

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def getkey():
    """Returns a function that hands out a new PRNG key on every call."""
    counter = itertools.count()
    root = jax.random.key(0)
    return lambda: jax.random.fold_in(root, next(counter))


class CompileCounter:
    """Counts XLA compilations logged while active (``jax.log_compiles``)."""

    def __init__(self, caplog):
        self._caplog = caplog

    def count(self, name: str = "") -> int:
        """Compilations so far of functions whose name contains ``name``."""
        return sum(
            1
            for r in self._caplog.records
            if r.getMessage().startswith("Finished XLA compilation") and name in r.getMessage()
        )

    def names(self) -> list[str]:
        return [r.getMessage() for r in self._caplog.records if "XLA compilation" in r.getMessage()]


@pytest.fixture
def compiles(caplog):
    """Yields a CompileCounter; everything compiled inside the test is logged and counted."""
    caplog.set_level("WARNING")
    with jax.log_compiles():
        yield CompileCounter(caplog)


@pytest.fixture(scope="session")
def run_on_cpu_devices():
    """A function that runs a script on virtual CPU devices (see :func:`_run_on_cpu_devices`)."""
    return _run_on_cpu_devices


def _run_on_cpu_devices(script: str, devices: int = 8, timeout: float = 600) -> dict:
    """Runs ``script`` in a fresh Python with ``devices`` virtual CPU devices (the device count
    is fixed when JAX starts) and returns the JSON it printed on its last ``RESULT`` line."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, JAX_NUM_CPU_DEVICES=str(devices), JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [row for row in proc.stdout.splitlines() if row.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])
