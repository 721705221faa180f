"""Training: the state, pure steps, the fit / evaluate / predict driver, callbacks, checkpoints.

Modules, each with one job: ``state`` (TrainState), ``model`` (the model seam), ``data_tree``
(data as pytrees of arrays, checked), ``step`` (pure train / eval / predict steps), ``plan``
(batches of an epoch), ``programs`` (the compiled
bodies and their cache), ``sources`` (the data seam), ``executors`` (strategies and epoch
runners), ``inference`` (evaluate, predict), ``loop`` (fit), ``validate`` (input checks),
``callbacks``, ``loggers`` (CSV, TensorBoard, profiler traces), ``learning_rate`` (the
rate in the optimizer's state), ``checkpoint`` (Orbax), ``history``.
"""

from fnn.train.callbacks import Callback as Callback
from fnn.train.callbacks import Checkpoint as Checkpoint
from fnn.train.callbacks import EarlyStopping as EarlyStopping
from fnn.train.callbacks import LambdaCallback as LambdaCallback
from fnn.train.callbacks import ReduceLROnPlateau as ReduceLROnPlateau
from fnn.train.callbacks import Run as Run
from fnn.train.checkpoint import DamagedCheckpointError as DamagedCheckpointError
from fnn.train.checkpoint import RunMismatchError as RunMismatchError
from fnn.train.executors import Strategy as Strategy
from fnn.train.history import History as History
from fnn.train.inference import evaluate as evaluate
from fnn.train.inference import predict as predict
from fnn.train.loggers import CSVLogger as CSVLogger
from fnn.train.loggers import ProfilerTrace as ProfilerTrace
from fnn.train.loggers import TensorBoard as TensorBoard
from fnn.train.loop import NonFiniteLossError as NonFiniteLossError
from fnn.train.loop import Preempted as Preempted
from fnn.train.loop import fit as fit
from fnn.train.model import LinenModel as LinenModel
from fnn.train.model import Model as Model
from fnn.train.model import NnxModel as NnxModel
from fnn.train.sources import BatchError as BatchError
from fnn.train.state import TrainState as TrainState
from fnn.train.step import eval_step as eval_step
from fnn.train.step import predict_step as predict_step
from fnn.train.step import summarize as summarize
from fnn.train.step import train_step as train_step

__all__ = [
    "BatchError",
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "DamagedCheckpointError",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LinenModel",
    "Model",
    "NnxModel",
    "NonFiniteLossError",
    "Preempted",
    "ProfilerTrace",
    "ReduceLROnPlateau",
    "Run",
    "RunMismatchError",
    "Strategy",
    "TensorBoard",
    "TrainState",
    "eval_step",
    "evaluate",
    "fit",
    "predict",
    "predict_step",
    "summarize",
    "train_step",
]
