"""PyTorch eager: ``nn.Sequential`` + ``torch.optim.SGD``, the textbook training loop.

Thread count is left at PyTorch's default; OpenMP workers wait passively (see
:func:`import_torch`). Images are converted to NCHW once, in ``setup``. On a GPU host (JAX on
GPU and a CUDA build of PyTorch) the model and data live on the GPU.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import jax
import numpy as np

from benchmarks.runners.base import Runner, Unavailable, logits_metrics
from benchmarks.workloads import MOMENTUM

__all__ = ["TorchRunner", "build_torch_model"]


def import_torch() -> Any:
    """Imports PyTorch; raises :class:`Unavailable` if it is not installed.

    ``OMP_WAIT_POLICY=PASSIVE`` is set first (unless set already): PyTorch's OpenMP workers
    otherwise spin after every parallel region and fight XLA's thread pool in the same process,
    which made PyTorch up to 10x slower here than in a process of its own.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError as e:
        raise Unavailable(f"torch not installed ({e}); add the CPU build, see the README") from None
    return torch


def build_torch_model(torch: Any, workload_name: str, input_shape, num_classes: int):
    """The workload's model in PyTorch modules (same shapes as the Flax reference).

    ``input_shape`` is the Flax layout (``[H, W, C]`` for images, ``[T, F]`` for sequences).
    """
    nn = torch.nn
    if workload_name == "logreg":
        return nn.Sequential(nn.Linear(input_shape[-1], num_classes))
    if workload_name == "mlp":
        return nn.Sequential(
            nn.Linear(input_shape[-1], 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, num_classes),
        )
    if workload_name == "cnn":
        h, w, c = input_shape
        for _ in range(2):  # SAME 2x2 pooling: ceil(size / 2)
            h, w = -(-h // 2), -(-w // 2)
        return nn.Sequential(
            nn.Conv2d(c, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Flatten(),
            nn.Linear(32 * h * w, 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )
    if workload_name == "lstm":

        class LastStepLSTM(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(input_shape[-1], 128, batch_first=True)
                self.head = nn.Linear(128, num_classes)

            def forward(self, x):
                out, _ = self.lstm(x)  # [B, T, H]
                return self.head(out[:, -1])

        return LastStepLSTM()
    raise ValueError(f"no PyTorch model for workload {workload_name!r}")


class TorchRunner(Runner):
    """``for idx in randperm(n).split(b): zero_grad; loss(model(x[idx])).backward(); step``."""

    implementation = "torch_eager"
    label = "PyTorch eager"
    family = "torch"

    @classmethod
    def check_available(cls) -> None:
        import_torch()

    def _to_torch(self, x: np.ndarray):
        t = self._torch.from_numpy(np.ascontiguousarray(x))
        if t.ndim == 4:  # NHWC -> NCHW
            t = t.permute(0, 3, 1, 2).contiguous()
        return t.to(self.device)

    def setup(self) -> None:
        torch = self._torch = import_torch()
        # Same device as JAX: CUDA when JAX runs on a GPU and this PyTorch build has CUDA.
        gpu = jax.default_backend() == "gpu" and torch.cuda.is_available()
        self.device = torch.device("cuda" if gpu else "cpu")
        torch.manual_seed(self.seed)
        self._generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.model = build_torch_model(
            torch, self.workload.name, self.data.input_shape, self.data.num_classes
        ).to(self.device)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=self.learning_rate, momentum=MOMENTUM
        )
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self._x = self._to_torch(self.data.x_train)
        self._y = torch.from_numpy(self.data.y_train.astype(np.int64)).to(self.device)

    def run_epochs(self, epochs: int) -> None:
        torch, model, opt = self._torch, self.model, self.optimizer
        model.train()
        n = self._x.shape[0]
        for _ in range(epochs):
            perm = torch.randperm(n, generator=self._generator, device=self.device)
            for idx in perm.split(self.batch_size):
                opt.zero_grad(set_to_none=True)
                loss = self.loss_fn(model(self._x[idx]), self._y[idx])
                loss.backward()
                opt.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.epochs_done += epochs

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        torch = self._torch
        self.model.eval()
        with torch.no_grad():
            xt = self._to_torch(x)
            logits = torch.cat([self.model(xt[i : i + 1024]) for i in range(0, len(xt), 1024)])
        return logits_metrics(logits.cpu().numpy(), y)

    def close(self) -> None:
        self.model = self.optimizer = self._x = self._y = None
