"""Fixtures for the fnn.data tests: no-network guards and TFDS mocking without TensorFlow."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from fnn.data import tfds as tfds_source


@pytest.fixture
def no_network(monkeypatch):
    """Makes every socket connection fail, as on a machine without network."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the no_network fixture")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def hanging_network(monkeypatch):
    """Makes connections hang (like a DNS lookup that never answers) for up to 30 s."""
    release = threading.Event()

    def hang(*args, **kwargs):
        release.wait(30)
        raise OSError("hung connection released")

    monkeypatch.setattr(socket, "create_connection", hang)
    yield
    release.set()


@pytest.fixture
def mock_tfds(monkeypatch):
    """Returns `mock(num_examples)`: a context in which TFDS serves generated examples.

    Real TFDS code (`tfds.builder`, `as_data_source`, `ArrayRecordDataSource`, feature
    decoding) runs on examples made by `tfds.testing.mock_data(policy=USE_CODE)`, which needs
    no metadata files and no TensorFlow. Inside it the data count as prepared.
    """
    tfds = pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.testing import mocking

    # tensorflow-datasets 4.9.10: mock_data assigns `__getitems__` to a MagicMock, which does not
    # bind it as a method (it is not one of the magic methods MagicMock supports), so the data
    # source calls it without `self`. Accept both call forms; `self` is unused unless
    # `serialized=True`.
    def getitems(*args, generator, serialized=False):
        assert not serialized
        return [generator[key] for key in args[-1]]

    monkeypatch.setattr(mocking, "_getitems", getitems)
    monkeypatch.setattr(tfds_source, "_is_prepared", lambda builder: True)

    @contextlib.contextmanager
    def mock(num_examples: int = 12):
        with tfds.testing.mock_data(
            num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE
        ):
            yield

    return mock
