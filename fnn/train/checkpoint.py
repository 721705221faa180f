"""Orbax checkpoints of a training run: the state's arrays plus epoch, seed and history."""

import os
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from fnn.train.history import History
from fnn.train.state import TrainState


def _arrays(state: TrainState) -> dict[str, Any]:
    arrays = {
        "step": state.step,
        "params": state.params,
        "model_state": state.model_state,
        "opt_state": state.opt_state,
        "key_data": state.key_data,
    }
    if state.ema_params is not None:
        arrays["ema_params"] = state.ema_params
    return arrays


class Restored(NamedTuple):
    """A run read back from a checkpoint."""

    state: TrainState
    epoch: int
    seed: int
    history: History
    data_state: Any  # the input pipeline's position, or None


class CheckpointStore:
    """An Orbax ``CheckpointManager`` keyed by epoch (atomic writes, ``max_to_keep``).

    Each checkpoint holds the state's arrays (``StandardSave``) and a JSON record with the
    epoch, the shuffling seed and the history so far, so ``fit(..., resume_from=directory)``
    continues exactly where the run stopped.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int | None = 3):
        self.directory = os.path.abspath(os.fspath(directory))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "meta")
        )

    def save(
        self, epoch: int, state: TrainState, *, seed: int, history: History, data_state=None
    ) -> None:
        """Saves the state after ``epoch`` epochs (counted from 1); blocks until written.

        ``data_state`` is the JSON-able position of the input pipeline (a Grain iterator's
        ``get_state()``), so a resumed run reads the batches an uninterrupted one would.
        """
        meta = {"epoch": epoch, "seed": seed, "history": history.to_dict()}
        if data_state is not None:
            meta["data_state"] = data_state
        self.manager.save(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_arrays(state)), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        self.manager.wait_until_finished()

    def latest_epoch(self) -> int | None:
        return self.manager.latest_step()

    def all_epochs(self) -> list[int]:
        return list(self.manager.all_steps())

    def restore(
        self, template: TrainState, epoch: int | None = None
    ) -> tuple[TrainState, int, int, History]:
        """Restores ``(state, epoch, seed, history)`` into the structure of ``template``."""
        return self.restore_run(template, epoch)[:4]

    def restore_run(self, template: TrainState, epoch: int | None = None) -> "Restored":
        """Restores everything saved: :class:`Restored`."""
        epoch = self.latest_epoch() if epoch is None else epoch
        if epoch is None:
            raise FileNotFoundError(f"resume_from: no checkpoint in {self.directory}")
        abstract = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), _arrays(template)
        )
        try:
            restored = self.manager.restore(
                epoch,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
                ),
            )
        except Exception as err:
            others = [e for e in self.all_epochs() if e != epoch]
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(
                f"resume_from: the checkpoint of epoch {epoch} in {self.directory} cannot be "
                f"restored into this run's state: either the run differs (another model, "
                f"feature count or optimizer than the one saved) or the checkpoint is damaged "
                f"(other epochs saved there: {others or 'none'}). {type(err).__name__}: {first}"
            ) from err
        arrays, meta = restored["state"], restored["meta"]
        state = template.replace(**arrays)
        return Restored(
            state,
            int(meta["epoch"]),
            int(meta["seed"]),
            History.from_dict(meta["history"]),
            meta.get("data_state"),
        )

    def close(self) -> None:
        self.manager.close()
