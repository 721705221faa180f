"""fnn: functional neural networks on JAX.

Flax models, Optax optimizers, pure losses and metrics, and a training driver whose epochs run
as single XLA programs::

    import fnn
    state = fnn.TrainState.create(fnn.models.MLP((64,), 10), fnn.optim.adam(1e-3), x[:1])
    state, history = fnn.fit(state, x, y, loss="cross_entropy", batch_size=32, epochs=10)
"""

from fnn import data as data
from fnn import losses as losses
from fnn import metrics as metrics
from fnn import models as models
from fnn import optim as optim
from fnn.plot import plot_history as plot_history
from fnn.train import BatchError as BatchError
from fnn.train import Callback as Callback
from fnn.train import Checkpoint as Checkpoint
from fnn.train import CSVLogger as CSVLogger
from fnn.train import DamagedCheckpointError as DamagedCheckpointError
from fnn.train import EarlyStopping as EarlyStopping
from fnn.train import History as History
from fnn.train import LambdaCallback as LambdaCallback
from fnn.train import NonFiniteLossError as NonFiniteLossError
from fnn.train import ProfilerTrace as ProfilerTrace
from fnn.train import ReduceLROnPlateau as ReduceLROnPlateau
from fnn.train import RunMismatchError as RunMismatchError
from fnn.train import Strategy as Strategy
from fnn.train import TensorBoard as TensorBoard
from fnn.train import TrainState as TrainState
from fnn.train import evaluate as evaluate
from fnn.train import fit as fit
from fnn.train import predict as predict

__version__ = "0.1.0"

__all__ = [
    "BatchError",
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "DamagedCheckpointError",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "NonFiniteLossError",
    "ProfilerTrace",
    "ReduceLROnPlateau",
    "RunMismatchError",
    "Strategy",
    "TensorBoard",
    "TrainState",
    "data",
    "evaluate",
    "fit",
    "losses",
    "metrics",
    "models",
    "optim",
    "plot_history",
    "predict",
]
