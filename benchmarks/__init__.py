"""fnn benchmark suite: which batch size reaches a given accuracy fastest on this hardware, and why.

Run ``python -m benchmarks`` (``--quick``, the default: under 3 minutes on a 2-core CPU) or
``python -m benchmarks --full``. Modules:

- :mod:`benchmarks.workloads`: models (logreg, MLP, CNN, LSTM) and data (MNIST-shaped, digits).
- :mod:`benchmarks.runners`: one runner per implementation (fnn fused / unfused, hand-written
  Flax loops, Keras 3 on JAX, PyTorch eager) behind one interface.
- :mod:`benchmarks.harness`: interleaved timing, medians and spread, time to accuracy.
- :mod:`benchmarks.hardware`: device, versions, measured matmul peak, FLOP counting, memory.
- :mod:`benchmarks.noise_scale`: the gradient noise scale (McCandlish et al., 2018).
- :mod:`benchmarks.records`: the result record (its fields) and queries over records.
- :mod:`benchmarks.summary`: derived numbers and the targets (each by a :class:`TargetId`).
- :mod:`benchmarks.tables` / :mod:`benchmarks.narrative`: the tables, and the prose that
  assembles them into report.md and the console text.
- :mod:`benchmarks.outputs` / :mod:`benchmarks.plots`: results.json, report.md, PNGs.
"""

from benchmarks.config import PRESETS as PRESETS
from benchmarks.config import Config as Config

__all__ = ["PRESETS", "Config"]
