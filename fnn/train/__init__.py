"""Training: state, pure steps."""

from fnn.train.state import TrainState as TrainState
from fnn.train.step import eval_step as eval_step
from fnn.train.step import predict_step as predict_step
from fnn.train.step import summarize as summarize
from fnn.train.step import train_step as train_step

__all__ = ["TrainState", "eval_step", "predict_step", "summarize", "train_step"]
