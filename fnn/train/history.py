"""Per-epoch training records, exportable to JSON and CSV."""

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class History:
    """What happened during ``fit``, one record per completed epoch.

    Each record holds ``epoch`` (counted from 1), the training ``loss`` and metrics,
    ``val_loss`` and ``val_<metric>`` when validation data was given, ``epoch_time`` (seconds
    running the epoch, compilation excluded), ``compile_time`` (seconds compiling during the
    epoch: non-zero only when a program was built), ``val_time``, ``steps`` (train steps in the
    epoch) and ``samples_per_s``; with gradient accumulation (``optax.MultiSteps``) also
    ``optimizer_updates``, the updates applied to the parameters so far; and ``learning_rate``,
    the rate of the epoch's last update, when the optimizer keeps it in its state (every
    ``fnn.optim`` optimizer, any ``optax.inject_hyperparams`` one: ``fnn.train.learning_rate``).

    ``history["loss"]`` is the list of one field over epochs; ``history.records`` the records.
    ``stop_reason`` says why training ended early (early stopping, non-finite loss), else None.
    ``strategy`` names how the epochs ran (``fnn.train.executors.Strategy``: ``"fused"``,
    ``"stepwise"``, ``"streamed"``, ``"streamed_stepwise"`` or ``"unfused"``) and
    ``strategy_reason`` why, with its settings (scan unrolling, batches per chunk).
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    strategy: str | None = None
    strategy_reason: str | None = None

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(dict(record))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, key: str) -> list[Any]:
        if not self.records or key not in self.records[-1]:
            raise KeyError(f"history has no field {key!r}; fields: {self.keys()}")
        return [r.get(key) for r in self.records]

    def keys(self) -> list[str]:
        names: list[str] = []
        for record in self.records:
            names.extend(k for k in record if k not in names)
        return names

    @property
    def epoch_time(self) -> list[float]:
        return self["epoch_time"]

    @property
    def compile_time(self) -> list[float]:
        return self["compile_time"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "stop_reason": self.stop_reason,
            "strategy": self.strategy,
            "strategy_reason": self.strategy_reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "History":
        return cls(
            records=[dict(r) for r in data["records"]],
            stop_reason=data.get("stop_reason"),
            strategy=data.get("strategy"),
            strategy_reason=data.get("strategy_reason"),
        )

    def to_json(self, path: str | os.PathLike) -> None:
        """Writes :meth:`to_dict` (records, stop reason, strategy) to ``path`` as JSON."""
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "History":
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def to_csv(self, path: str | os.PathLike) -> None:
        """Writes one row per epoch, one column per field (scalar fields only)."""
        columns = [
            k for k in self.keys() if all(isinstance(r.get(k), int | float | None) for r in self)
        ]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.records)
