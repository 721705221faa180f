"""Orbax checkpoints of a training run that can be trusted on resume.

Each saved epoch holds the state's arrays (Orbax ``StandardSave``, written atomically) and a
JSON record: the epoch, the shuffling seed, the history so far, the input pipeline's position,
the run's configuration (:func:`run_config`) and a SHA-256 checksum of every array as it was
saved.

Restoring (:meth:`CheckpointStore.restore_run`) trusts nothing it has not checked:

* the saved configuration is compared with this run's first; a different run (another model,
  optimizer, data shape, batch size, seed or number of epochs) raises :class:`RunMismatchError`
  listing every field that differs, unless the field is named in ``overrides``;
* the arrays are read back and their checksums compared with the saved ones;
* a damaged epoch (unreadable or missing metadata, a truncated or missing array file, a
  checksum that does not match, an empty directory) is **skipped**: the newest intact epoch is
  restored with a warning that names each damaged one and what is wrong with it, and the
  damaged directories are renamed ``<epoch>.damaged`` so that the resumed run can save those
  epochs again. With no intact epoch left, :class:`DamagedCheckpointError` lists them all.
"""

import contextlib
import dataclasses
import gc
import hashlib
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from fnn.train import data_tree
from fnn.train.history import History
from fnn.train.state import TrainState

# Fields of run_config that a resume may be told to accept changed (``overrides``); the others
# (params, optimizer) fix the shapes of the saved arrays, so a run that changes them cannot
# continue from the checkpoint at all.
OVERRIDABLE = ("model", "inputs", "targets", "loss", "metrics", "batch_size", "seed", "epochs")
STRUCTURAL = ("params", "optimizer")


class DamagedCheckpointError(ValueError):
    """No intact checkpoint left to resume from; ``damaged`` maps each epoch to its damage."""

    def __init__(self, message: str, damaged: dict[int, str]):
        super().__init__(message)
        self.damaged = damaged


class RunMismatchError(ValueError):
    """The checkpoint was saved by a different run; ``differences`` maps field -> (saved, now)."""

    def __init__(self, message: str, differences: dict[str, tuple[Any, Any]]):
        super().__init__(message)
        self.differences = differences


def _arrays(state: TrainState) -> dict[str, Any]:
    arrays = {
        "step": state.step,
        "epoch": state.epoch,
        "params": state.params,
        "model_state": state.model_state,
        "opt_state": state.opt_state,
        "key_data": state.key_data,
    }
    if state.ema_params is not None:
        arrays["ema_params"] = state.ema_params
    return arrays


def checksums(arrays: Any) -> dict[str, str]:
    """SHA-256 of each leaf's dtype, shape and bytes, keyed by the leaf's path."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(arrays):
        value = np.ascontiguousarray(np.asarray(leaf))
        digest = hashlib.sha256(f"{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
        out[jax.tree_util.keystr(path)] = digest.hexdigest()
    return out


def _tree_signature(tree: Any) -> dict[str, str]:
    """``{path: "float32[64, 128]"}`` for every leaf of ``tree``."""
    return {
        jax.tree_util.keystr(path): f"{np.dtype(leaf.dtype)}{list(np.shape(leaf))}"
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


def _model_description(state: TrainState) -> str:
    """``MLP(hidden=(16,), outputs=3, ...)``: a linen module's class and fields; an NNX
    module's class (its repr holds its arrays)."""
    model = state.model
    module = getattr(model, "module", model)
    if type(model).__name__ == "LinenModel" and dataclasses.is_dataclass(module):
        fields = [
            f"{f.name}={getattr(module, f.name)!r}"
            for f in dataclasses.fields(module)
            if f.name not in ("parent", "name") and hasattr(module, f.name)
        ]
        text = f"{type(module).__qualname__}({', '.join(fields)})"
    else:
        text = type(module).__qualname__
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)  # function reprs carry addresses
    return " ".join(text.split())


def _optimizer_description(opt_state: Any) -> str:
    """The optimizer's state tree, e.g. ``TraceState > EmptyState, 4 arrays [3f2a9c1e]``: its
    node types, leaf count and a digest of its structure and shapes. Not its hyperparameters,
    which live in the code: a resumed run uses the learning rate it is given."""
    treedef = str(jax.tree_util.tree_structure(opt_state))
    leaves = jax.tree_util.tree_leaves(opt_state)
    shapes = [f"{np.dtype(x.dtype)}{list(np.shape(x))}" for x in leaves]
    names = re.findall(r"namedtuple\[(\w+)\]", treedef) or [type(opt_state).__name__]
    digest = hashlib.sha256(f"{treedef}{shapes}".encode()).hexdigest()[:8]
    return f"{' > '.join(names)}, {len(leaves)} arrays [{digest}]"


def run_config(
    state: TrainState, *, x_example: Any, y_example: Any, batch_size: int | None, seed: int,
    epochs: int, loss_fn: Any, metrics: Sequence[Any],
) -> dict[str, Any]:  # fmt: skip
    """What defines a run, as JSON-able values: a checkpoint records it, and a resume compares.

    Args:
      state: the state the run starts from (its model, parameter shapes, optimizer state).
      x_example, y_example: one example of the inputs and targets (``[1, ...]``), or None.
      batch_size: the batch size (None for an iterable's own batches).
      seed: the shuffling seed.
      epochs: the epoch the run ends at (counted from the state's first epoch).
      loss_fn: the per-example loss; metrics: the metrics recorded.
    """
    return {
        "model": _model_description(state),
        "params": _tree_signature(state.params),
        "optimizer": _optimizer_description(state.opt_state),
        "inputs": None if x_example is None else data_tree.describe(x_example),
        "targets": None if y_example is None else data_tree.describe(y_example),
        "loss": getattr(loss_fn, "__name__", type(loss_fn).__name__),
        "metrics": [getattr(m, "name", str(m)) for m in metrics],
        "batch_size": batch_size,
        "seed": seed,
        "epochs": epochs,
    }


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tree_difference(saved: dict[str, str], now: dict[str, str]) -> str:
    """The first few leaves that differ between two tree signatures, in words."""
    parts = []
    for path in sorted(set(saved) | set(now)):
        a, b = saved.get(path, "absent"), now.get(path, "absent")
        if a != b:
            parts.append(f"{path or '<root>'}: saved {a}, this run {b}")
    more = f" (and {len(parts) - 3} more)" if len(parts) > 3 else ""
    return "; ".join(parts[:3]) + more


def compare_configs(
    saved: dict[str, Any] | None, now: dict[str, Any], overrides: Sequence[str] = ()
) -> dict[str, tuple[Any, Any]]:
    """The fields of ``now`` that differ from ``saved`` and are not in ``overrides``."""
    if not saved:
        return {}
    out = {}
    for field, value in now.items():
        if field in saved and saved[field] != value and field not in overrides:
            out[field] = (saved[field], value)
    return out


def mismatch_message(directory: str, epoch: int, differences: dict[str, tuple[Any, Any]]) -> str:
    lines = []
    for field, (saved, now) in differences.items():
        if field == "params":
            lines.append(f"  params: {_tree_difference(saved, now)}")
        else:
            lines.append(f"  {field}: saved {_short(saved)}, this run {_short(now)}")
    structural = [f for f in differences if f in STRUCTURAL]
    changeable = [f for f in differences if f not in STRUCTURAL]
    advice = []
    if changeable:
        advice.append(
            f"to continue it with {', '.join(changeable)} changed on purpose, pass "
            f"resume_overrides={tuple(changeable)!r}"
        )
    if structural:
        advice.append(
            f"{' and '.join(structural)} fix the shapes of the saved arrays, so this run cannot "
            f"continue from it: resume with the model and optimizer it was saved with, or "
            f"start fresh in another directory"
        )
    return (
        f"resume_from: the checkpoint of epoch {epoch} in {directory} was saved by a different "
        f"run:\n" + "\n".join(lines) + "\n" + "; ".join(advice)
    )


class Restored(NamedTuple):
    """A run read back from a checkpoint."""

    state: TrainState
    epoch: int
    seed: int
    history: History
    data_state: Any  # the input pipeline's position, or None
    config: dict[str, Any] | None = None  # the saved run's configuration
    callbacks_state: Any = None  # what callbacks saved (JSON-able), or None


class CheckpointStore:
    """An Orbax ``CheckpointManager`` keyed by epoch (atomic writes, ``max_to_keep``).

    Each checkpoint holds the state's arrays and a JSON record (see the module docstring), so
    ``fit(..., resume_from=directory)`` continues exactly where the run stopped, or refuses to.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int | None = 3,
                 create: bool = True, async_save: bool = False):  # fmt: skip
        """``async_save``: :meth:`save` returns once the arrays are on the host and checksummed;
        Orbax writes them to disk in a background thread (still into a temporary directory
        renamed when complete). Every read, the next save and :meth:`close` wait for it."""
        self.directory = os.path.abspath(os.fspath(directory))
        self.async_save = bool(async_save)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=create, enable_async_checkpointing=self.async_save
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "meta")
        )

    def save(
        self, epoch: int, state: TrainState, *, seed: int, history: History, data_state=None,
        config: dict[str, Any] | None = None, callbacks_state: Any = None,
    ) -> None:  # fmt: skip
        """Saves the state after ``epoch`` epochs (counted from 1); blocks until written, or
        (``async_save``) until the arrays are copied to the host.

        ``data_state`` is the JSON-able position of the input pipeline (a Grain iterator's
        ``get_state()``), so a resumed run reads the batches an uninterrupted one would;
        ``config`` is :func:`run_config` of the run; ``callbacks_state`` what its callbacks
        need to continue (JSON-able).
        """
        arrays = jax.tree_util.tree_map(np.asarray, _arrays(state))  # what is written
        meta = {
            "epoch": epoch,
            "seed": seed,
            "history": history.to_dict(),
            "checksums": checksums(arrays),
        }
        if data_state is not None:
            meta["data_state"] = data_state
        if config is not None:
            meta["config"] = config
        if callbacks_state is not None:
            meta["callbacks_state"] = callbacks_state
        # A copy: an asynchronous save serializes it in the background, while the run goes on
        # appending to the history it came from.
        meta = json.loads(json.dumps(meta))
        self.manager.save(
            epoch,
            args=ocp.args.Composite(
                # The host copies just checksummed: what is written is what was summed, and
                # the device buffers are free to be donated to the next epoch.
                state=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        if not self.async_save:
            self.manager.wait_until_finished()

    def wait(self) -> None:
        """Blocks until every save started is on disk (a no-op without ``async_save``)."""
        self.manager.wait_until_finished()

    def latest_epoch(self) -> int | None:
        self.wait()
        return self.manager.latest_step()

    def all_epochs(self) -> list[int]:
        self.wait()
        return sorted(self.manager.all_steps())

    def restore(
        self, template: TrainState, epoch: int | None = None
    ) -> tuple[TrainState, int, int, History]:
        """Restores ``(state, epoch, seed, history)`` into the structure of ``template``."""
        return self.restore_run(template, epoch)[:4]

    # ------------------------------------------------------------------------------ reading

    def _meta(self, epoch: int) -> dict[str, Any]:
        restored = self.manager.restore(
            epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
        )
        meta = restored["meta"]
        if not isinstance(meta, dict) or "epoch" not in meta or "checksums" not in meta:
            raise ValueError("its JSON record lacks the epoch or the checksums")
        return meta

    def _arrays(self, template: TrainState, epoch: int) -> dict[str, Any]:
        abstract = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), _arrays(template)
        )
        with _settled_reads():
            restored = self.manager.restore(
                epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            )
        return restored["state"]

    def _read(self, template: TrainState, epoch: int, config, overrides) -> Restored:
        """Epoch ``epoch``, checked; raises RunMismatchError, or ``_Damage`` with the damage."""
        try:
            meta = self._meta(epoch)
        except Exception as err:  # noqa: BLE001 - any failure to read it is damage
            raise _Damage(f"its metadata cannot be read ({_reason(err)})") from err
        if config is not None:
            differences = compare_configs(meta.get("config"), config, overrides)
            if differences:
                raise RunMismatchError(
                    mismatch_message(self.directory, epoch, differences), differences
                )
        try:
            arrays = self._arrays(template, epoch)
        except Exception as err:  # noqa: BLE001
            raise _Damage(f"its arrays cannot be read ({_reason(err)})") from err
        got = checksums(arrays)
        wrong = [p for p, digest in meta["checksums"].items() if got.get(p) != digest]
        if wrong or set(got) != set(meta["checksums"]):
            names = ", ".join(wrong[:3]) + (f" and {len(wrong) - 3} more" if len(wrong) > 3 else "")
            raise _Damage(
                f"the checksum of {names or 'its array tree'} does not match the saved one"
            )
        state = template.replace(**arrays)
        return Restored(
            state,
            int(meta["epoch"]),
            int(meta["seed"]),
            History.from_dict(meta["history"]),
            meta.get("data_state"),
            meta.get("config"),
            meta.get("callbacks_state"),
        )

    def _step_dirs(self) -> list[int]:
        """Every epoch directory on disk, including ones Orbax does not list (empty ones)."""
        found = set(self.all_epochs())
        if os.path.isdir(self.directory):
            found |= {int(n) for n in os.listdir(self.directory) if n.isdigit()}
        return sorted(found)

    def restore_run(
        self,
        template: TrainState,
        epoch: int | None = None,
        *,
        config: dict[str, Any] | None = None,
        overrides: Sequence[str] = (),
    ) -> Restored:
        """Restores the newest intact epoch (or exactly ``epoch``): :class:`Restored`.

        Args:
          template: a state of this run; the arrays are restored into its structure.
          epoch: the epoch to restore (it must be intact); None: the newest intact one.
          config: this run's :func:`run_config`, compared with the saved one (None: not).
          overrides: fields of the config allowed to differ.

        Raises:
          FileNotFoundError: no checkpoint in the directory.
          RunMismatchError: the checkpoint belongs to a different run.
          DamagedCheckpointError: no intact checkpoint (or ``epoch`` is damaged).
        """
        self.wait()
        candidates = self._step_dirs() if epoch is None else [epoch]
        if not candidates:
            raise FileNotFoundError(f"resume_from: no checkpoint in {self.directory}")
        damaged: dict[int, str] = {}
        for e in reversed(candidates):
            try:
                restored = self._read(template, e, config, overrides)
            except _Damage as damage:
                damaged[e] = str(damage)
                continue
            if damaged:
                self._set_aside(damaged)
                warnings.warn(
                    f"resume_from: skipped damaged checkpoint(s) in {self.directory}: "
                    f"{_listing(damaged)}; resuming from epoch {e}, the newest intact one (the "
                    f"damaged directories are renamed <epoch>.damaged)",
                    stacklevel=3,
                )
            return restored
        raise DamagedCheckpointError(
            f"resume_from: no intact checkpoint in {self.directory}: {_listing(damaged)}. "
            f"Remove or rename the directory to start fresh.",
            damaged,
        )

    def _set_aside(self, damaged: dict[int, str]) -> None:
        """Renames damaged epoch directories so that the resumed run can save those epochs."""
        if jax.process_index() != 0:
            return
        for e in damaged:
            path = os.path.join(self.directory, str(e))
            target, n = f"{path}.damaged", 1
            while os.path.exists(target):
                target, n = f"{path}.damaged{n}", n + 1
            if os.path.exists(path):
                os.rename(path, target)
        self.manager.reload()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


@contextlib.contextmanager
def _settled_reads(grace_seconds: float = 0.25):
    """Quiets the aftermath of a failed Orbax read.

    When one array of a damaged checkpoint fails to read, Orbax closes its event loop while
    the reads of the other arrays are still in flight; as each finishes, TensorStore reports
    to the closed loop and Python prints "Exception ignored ... Event loop is closed". Those
    reports are dropped while reading, and for ``grace_seconds`` after a failure (local reads
    finish within milliseconds); any other unraisable exception passes through.
    """
    previous = sys.unraisablehook

    def hook(info):
        if isinstance(info.exc_value, RuntimeError) and "Event loop is closed" in str(
            info.exc_value
        ):
            return
        previous(info)

    sys.unraisablehook = hook
    try:
        yield
    except BaseException:
        time.sleep(grace_seconds)
        gc.collect()
        raise
    finally:
        sys.unraisablehook = previous


class _Damage(Exception):
    """One epoch's checkpoint is damaged (internal: collected by ``restore_run``)."""


def _reason(err: BaseException) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {first[:200]}" if first else type(err).__name__


def _listing(damaged: dict[int, str]) -> str:
    return "; ".join(f"epoch {e}: {why}" for e, why in sorted(damaged.items(), reverse=True))
