"""Recurrent networks (SimpleRNN, LSTM, GRU) and an Embedding + recurrent text classifier.

All recurrences run through Flax's ``nn.RNN`` (a ``lax.scan`` over time), never a Python loop.
Sequences are batch-major: ``x: <float>[batch, time, features]``.

The LSTM runs Flax's ``nn.OptimizedLSTMCell``: the same equations and the same parameters as
``nn.LSTMCell`` (``ii``, ``if``, ``ig``, ``io`` input kernels; ``hi``, ``hf``, ``hg``, ``ho``
recurrent kernels with biases), but the four gates' kernels are concatenated, so a step does
two matmuls instead of eight. Each layer keeps the name ``nn.LSTMCell`` gave it
(``LSTMCell_0``, ``LSTMCell_1``, ...), so the parameter tree, its initial values and the
checkpoints written with ``nn.LSTMCell`` are unchanged; outputs agree to float32 rounding.
Measured in the benchmark's LSTM(128) over 28 steps on a 2-core CPU, a training step at batch 1
ran 1.5x faster (see the README).
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from fnn._checks import check_choice, check_type, describe

CELLS = {
    "simple": nn.SimpleCell,
    "rnn": nn.SimpleCell,
    "lstm": nn.OptimizedLSTMCell,
    "gru": nn.GRUCell,
}
# The name each layer's parameters live under, where it is not the cell class's own: the fused
# LSTM cell keeps nn.LSTMCell's names, so its parameter tree is nn.LSTMCell's.
PARAM_PREFIX = {nn.OptimizedLSTMCell: "LSTMCell"}


def _cell_class(cell: str) -> type[nn.RNNCellBase]:
    check_type("cell", cell, str, "a cell name")
    return CELLS[check_choice("cell", cell.lower(), sorted(CELLS))]


def last_valid(outputs: jax.Array, lengths: jax.Array | None) -> jax.Array:
    """Selects each sequence's output at its last real step.

    Args:
      outputs: ``<float>[batch, time, hidden]``.
      lengths: ``<int>[batch]`` true lengths (>= 1), or None when no sequence is padded.

    Returns:
      ``<float>[batch, hidden]``.
    """
    if lengths is None:
        return outputs[:, -1]
    index = jnp.clip(lengths - 1, 0, outputs.shape[1] - 1)
    return jnp.take_along_axis(outputs, index[:, None, None], axis=1)[:, 0]


class Recurrent(nn.Module):
    """A stack of recurrent layers with an optional dense head.

    Attributes:
      hidden: width of the recurrent state; a sequence stacks several layers.
      outputs: width of a dense layer applied to the result (None: no head).
      return_sequences: return every step ``[batch, time, ...]`` instead of the last real step
        ``[batch, ...]``. Padded steps (``t >= lengths``) are zeroed.
      cell: ``"simple"`` (Elman), ``"lstm"`` or ``"gru"``.
      dtype: computation dtype (None: inferred from inputs and parameters).
      param_dtype: dtype of parameters and of the initial state.

    Call with ``x: <float>[batch, time, features]`` and optional ``lengths: <int>[batch]``, or
    with one dict ``{"x": x, "lengths": lengths}`` (which is how ``fnn.fit`` passes lengths: give
    it that dict as its ``x``); padding must be at the end of each sequence. Steps past a
    sequence's length never change its result.
    """

    hidden: int | Sequence[int]
    outputs: int | None = None
    return_sequences: bool = False
    cell: str = "lstm"
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self, x: jax.Array | dict, *, lengths: jax.Array | None = None, train: bool = False
    ) -> jax.Array:
        del train
        if isinstance(x, dict):  # {"x": [B, T, F], "lengths": [B]}: how fit passes lengths
            if set(x) != {"x", "lengths"}:
                raise ValueError(
                    f"x: expected a dict with keys 'x' and 'lengths', got keys {sorted(x)}"
                )
            if lengths is not None:
                raise ValueError("lengths: given twice, as an argument and in the dict x")
            x, lengths = x["x"], x["lengths"]
        if x.ndim != 3:
            raise ValueError(
                f"x: expected <float>[batch, time, features] for a recurrent model, got shape "
                f"{x.shape}"
            )
        cell_class = _cell_class(self.cell)
        widths = (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)
        prefix = PARAM_PREFIX.get(cell_class)
        for layer, width in enumerate(widths):
            name = None if prefix is None else f"{prefix}_{layer}"  # None: linen names it
            cell = cell_class(width, dtype=self.dtype, param_dtype=self.param_dtype, name=name)
            x = nn.RNN(cell)(x, seq_lengths=lengths)
        if self.return_sequences:
            if lengths is not None:
                mask = jnp.arange(x.shape[1])[None, :] < lengths[:, None]  # [B, T]
                x = jnp.where(mask[:, :, None], x, 0.0)
        else:
            x = last_valid(x, lengths)
        if self.outputs is not None:
            x = nn.Dense(self.outputs, dtype=self.dtype, param_dtype=self.param_dtype)(x)
        return x


class SimpleRNN(Recurrent):
    """Elman RNN, ``h_t = tanh(W x_t + U h_{t-1} + b)``; see :class:`Recurrent`."""

    cell: str = "simple"


class LSTM(Recurrent):
    """Long short-term memory (Hochreiter & Schmidhuber, 1997); see :class:`Recurrent`.

    Each layer is ``nn.OptimizedLSTMCell`` under ``nn.RNN``, its parameters named as
    ``nn.LSTMCell``'s (``LSTMCell_0/ii/kernel``, ..., ``LSTMCell_0/hi/bias``, ...).
    """

    cell: str = "lstm"


class GRU(Recurrent):
    """Gated recurrent unit (Cho et al., arXiv:1406.1078, 2014); see :class:`Recurrent`."""

    cell: str = "gru"


class TextClassifier(nn.Module):
    """Token ids -> embedding -> recurrent layers -> logits.

    Attributes:
      vocab_size: number of token ids; id 0 is padding.
      embed_dim: embedding width.
      hidden: recurrent width (or widths, stacked).
      outputs: number of logits (1 for binary classification with ``binary_cross_entropy``).
      cell: ``"simple"``, ``"lstm"`` or ``"gru"``.
      pad_id: the padding token id.
      dtype: compute dtype, e.g. ``jnp.bfloat16`` for mixed precision (None: from the inputs
        and parameters); fit computes losses and metrics in float32 whatever it is.
      param_dtype: dtype of the parameters (float32 by default).

    Input ``ids: <int>[batch, time]``, right-padded with ``pad_id``; the true lengths are the
    number of non-pad tokens, so appending more padding never changes the result. Output
    ``<float32>[batch, outputs]``.
    """

    vocab_size: int
    embed_dim: int
    hidden: int | Sequence[int]
    outputs: int
    cell: str = "lstm"
    pad_id: int = 0
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, ids: jax.Array, *, train: bool = False) -> jax.Array:
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise TypeError(f"ids: expected <int>[batch, time] token ids, got {describe(ids)}")
        if ids.ndim != 2:
            raise ValueError(f"ids: expected <int>[batch, time] token ids, got {describe(ids)}")
        lengths = jnp.maximum(jnp.sum(ids != self.pad_id, axis=1), 1)  # [B]
        types = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = nn.Embed(self.vocab_size, self.embed_dim, **types)(ids)  # [B, T, E]
        x = Recurrent(self.hidden, cell=self.cell, **types)(x, lengths=lengths, train=train)
        return nn.Dense(self.outputs, **types)(x)
