"""Training: state, pure steps, the fit / evaluate / predict driver, callbacks, checkpoints."""

from fnn.train.callbacks import Callback as Callback
from fnn.train.callbacks import Checkpoint as Checkpoint
from fnn.train.callbacks import EarlyStopping as EarlyStopping
from fnn.train.callbacks import Run as Run
from fnn.train.history import History as History
from fnn.train.loop import NonFiniteLossError as NonFiniteLossError
from fnn.train.loop import evaluate as evaluate
from fnn.train.loop import fit as fit
from fnn.train.loop import predict as predict
from fnn.train.state import TrainState as TrainState
from fnn.train.step import eval_step as eval_step
from fnn.train.step import predict_step as predict_step
from fnn.train.step import summarize as summarize
from fnn.train.step import train_step as train_step

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "History",
    "NonFiniteLossError",
    "Run",
    "TrainState",
    "eval_step",
    "evaluate",
    "fit",
    "predict",
    "predict_step",
    "summarize",
    "train_step",
]
