"""Flax linen models: pure ``init`` / ``apply``, all called as ``model.apply(v, x, train=...)``."""

from fnn.models.activations import get_activation as get_activation
from fnn.models.conv import CNN as CNN
from fnn.models.linear import LinearRegression as LinearRegression
from fnn.models.linear import LogisticRegression as LogisticRegression
from fnn.models.mlp import MLP as MLP
from fnn.models.recurrent import GRU as GRU
from fnn.models.recurrent import LSTM as LSTM
from fnn.models.recurrent import Recurrent as Recurrent
from fnn.models.recurrent import SimpleRNN as SimpleRNN
from fnn.models.recurrent import TextClassifier as TextClassifier

__all__ = [
    "CNN",
    "GRU",
    "LSTM",
    "MLP",
    "LinearRegression",
    "LogisticRegression",
    "Recurrent",
    "SimpleRNN",
    "TextClassifier",
    "get_activation",
]
