"""Types shared by the data modules (their argument checks are in `fnn._checks`)."""

from __future__ import annotations

import numpy as np

# `(x_train, y_train), (x_test, y_test)` as NumPy arrays.
Splits = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
