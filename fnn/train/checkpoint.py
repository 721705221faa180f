"""Orbax checkpoints of a training run: the state's arrays plus epoch, seed and history."""

import os
from typing import Any

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

    def save(self, epoch: int, state: TrainState, *, seed: int, history: History) -> None:
        """Saves the state after ``epoch`` epochs (counted from 1); blocks until written."""
        meta = {"epoch": epoch, "seed": seed, "history": history.to_dict()}
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
        epoch = self.latest_epoch() if epoch is None else epoch
        if epoch is None:
            raise FileNotFoundError(f"resume_from: no checkpoint in {self.directory}")
        abstract = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), _arrays(template)
        )
        restored = self.manager.restore(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
        arrays, meta = restored["state"], restored["meta"]
        state = template.replace(**arrays)
        return state, int(meta["epoch"]), int(meta["seed"]), History.from_dict(meta["history"])

    def close(self) -> None:
        self.manager.close()
