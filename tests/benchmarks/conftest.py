"""Fixtures for the benchmark-harness tests: tiny data, fake runners, a fake clock."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from benchmarks.runners.base import Runner
from benchmarks.workloads import Dataset, get_workload


@pytest.fixture
def mlp():
    return get_workload("mlp")


@pytest.fixture
def tiny_data() -> Dataset:
    """64 train / 32 test examples, 64 features, 10 classes (digits-shaped)."""
    rng = np.random.default_rng(0)
    x = rng.random((96, 64), dtype=np.float32)
    y = rng.integers(0, 10, 96).astype(np.int32)
    return Dataset("fake", "synthetic", x[:64], y[:64], x[64:], y[64:], 10)


class FakeClock:
    """A clock that only moves when a fake runner 'works'."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeRunner(Runner):
    """Takes ``epoch_s[i]`` seconds (on a FakeClock) for its i-th run_epochs call (per epoch).

    Every call is logged into a shared list as ``(name, method, epochs)``.
    """

    implementation = "fake"
    family = "flax"
    label = "fake"

    def __init__(self, name, workload, data, batch_size, *, clock, log, call_s,
                 accuracy_per_epoch=0.1, fail_at=None):  # fmt: skip
        super().__init__(workload, data, batch_size)
        self.name, self.clock, self.log = name, clock, log
        self.call_s = list(call_s)  # seconds per epoch, per call
        self.accuracy_per_epoch = accuracy_per_epoch
        self.fail_at = fail_at
        self.calls = 0

    def setup(self):
        self.log.append((self.name, "setup", 0))

    def run_epochs(self, epochs):
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("boom")
        per_epoch = self.call_s[min(self.calls, len(self.call_s) - 1)]
        self.clock.now += per_epoch * epochs
        self.calls += 1
        self.epochs_done += epochs
        self.log.append((self.name, "run", epochs))

    def evaluate(self, x, y):
        acc = min(1.0, self.accuracy_per_epoch * self.epochs_done)
        return {"loss": 1.0 / (1 + self.epochs_done), "accuracy": acc}


@pytest.fixture
def fake_clock():
    return FakeClock()


@pytest.fixture
def make_fake(mlp, tiny_data, fake_clock):
    log: list = []

    def make(name, call_s, batch_size=8, **kwargs):
        return FakeRunner(name, mlp, tiny_data, batch_size, clock=fake_clock, log=log,
                          call_s=call_s, **kwargs)  # fmt: skip

    make.log = log
    return make


class _BlockFinder:
    """A ``sys.meta_path`` finder that makes importing some top-level packages fail."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise ImportError(f"No module named {fullname!r} (blocked by the test)")
        return None


@pytest.fixture
def block_imports(monkeypatch):
    """``block_imports("keras", "torch")``: those packages behave as not installed."""

    def block(*names):
        for mod in list(sys.modules):
            if mod.split(".")[0] in names:
                monkeypatch.delitem(sys.modules, mod)
        monkeypatch.setattr(sys, "meta_path", [_BlockFinder(names), *sys.meta_path])

    return block
