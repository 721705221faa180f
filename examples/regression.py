"""Linear and logistic regression by gradient descent, checked against scikit-learn.

Three bundled datasets, each split once, standardized with the *training* statistics only, then
fitted twice on the same split: by ``fnn.fit`` (full-batch gradient descent with Adam) and by
scikit-learn's closed-form / L-BFGS solvers. Both test scores are printed side by side:

* ``diabetes``: ``fnn.models.LinearRegression``, mean squared error, R^2 (sklearn
  ``LinearRegression``). The target is standardized too; R^2 does not depend on that.
* ``breast_cancer``: ``fnn.models.LogisticRegression(2)`` (one logit), binary cross-entropy.
* ``iris``: ``fnn.models.LogisticRegression(3)`` (softmax), cross-entropy.

scikit-learn's ``LogisticRegression`` minimises ``C * sum(loss) + |w|^2 / 2`` (default
``C=1``); the same objective in fnn's mean-loss form is the mean loss plus an L2 term with
``weight_decay = 1 / (C * n_train)``, so both fits aim at (nearly: fnn also decays the bias)
the same optimum::

    python examples/regression.py --quick
    python examples/regression.py

Outputs in ``--out``: ``regression_<dataset>.png`` (loss / metric curves).
"""

import argparse
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import linear_model, metrics

import fnn

# ----------------------------------------------------------------------------------- defaults
CONFIG = dict(
    learning_rate=0.05,  # Adam, full batch
    epochs=500,
    sklearn_c=1.0,  # inverse L2 strength of sklearn's LogisticRegression (its default)
    test_size=0.2,
)
QUICK = dict(epochs=200)


def fit_fnn(model, x_train, y_train, x_test, y_test, *, loss, metric, weight_decay, config, args):
    """Full-batch GD on standardized data; returns ``(test metrics, history, state)``."""
    optimizer = fnn.optim.adam(config["learning_rate"], weight_decay=weight_decay)
    state = fnn.TrainState.create(model, optimizer, x_train[:1], seed=args.seed)
    state, history = fnn.fit(
        state,
        x_train,
        y_train,
        loss=loss,
        metrics=[metric],
        batch_size="full",
        epochs=config["epochs"],
        validation_data=(x_test, y_test),
        verbose=0,
    )
    return fnn.evaluate(state, x_test, y_test, loss=loss, metrics=[metric]), history, state


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Fits the three problems both ways; returns ``{dataset: {"fnn": s, "sklearn": s}}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs")
    parser.add_argument("--out", default="out", help="output directory (default ./out)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    config = {**CONFIG, **(QUICK if args.quick else {})}
    results: dict[str, dict[str, float]] = {}

    # ---- diabetes: linear regression --------------------------------------------------------
    (x_train, y_train), (x_test, y_test) = fnn.data.load(
        "diabetes", seed=args.seed, test_size=config["test_size"]
    )
    x_scaler = fnn.data.Standardizer.fit(x_train)  # statistics of the training split only
    y_scaler = fnn.data.Standardizer.fit(y_train[:, None])
    z_train, z_test = x_scaler(x_train), x_scaler(x_test)
    t_train, t_test = y_scaler(y_train[:, None])[:, 0], y_scaler(y_test[:, None])[:, 0]
    test, history, state = fit_fnn(
        fnn.models.LinearRegression(1),
        z_train,
        t_train,
        z_test,
        t_test,
        loss="mse",
        metric="r2",
        weight_decay=0.0,
        config=config,
        args=args,
    )
    prediction = y_scaler.inverse(fnn.predict(state, z_test))[:, 0]  # back to disease units
    reference = linear_model.LinearRegression().fit(z_train, y_train)
    results["diabetes"] = {
        "score": "R^2",
        "fnn": float(test["r2"]),
        "sklearn": float(metrics.r2_score(y_test, reference.predict(z_test))),
        "error": "RMSE",  # in the target's units
        "fnn_error": float(np.sqrt(np.mean((prediction - y_test) ** 2))),
        "sklearn_error": float(np.sqrt(np.mean((reference.predict(z_test) - y_test) ** 2))),
    }
    fnn.plot_history(history, os.path.join(args.out, "regression_diabetes.png"), title="diabetes")

    # ---- breast_cancer (2 classes) and iris (3 classes): logistic regression ----------------
    for name in ("breast_cancer", "iris"):
        (x_train, y_train), (x_test, y_test) = fnn.data.load(
            name, seed=args.seed, test_size=config["test_size"]
        )
        z_train, z_test = fnn.data.standardize(x_train, x_test)  # train statistics only
        classes = fnn.data.info(name).num_classes
        loss = "binary_cross_entropy" if classes == 2 else "cross_entropy"
        test, history, state = fit_fnn(
            fnn.models.LogisticRegression(classes),
            z_train,
            y_train,
            z_test,
            y_test,
            loss=loss,
            metric="accuracy",
            weight_decay=1.0 / (config["sklearn_c"] * z_train.shape[0]),
            config=config,
            args=args,
        )
        reference = linear_model.LogisticRegression(C=config["sklearn_c"], max_iter=1000)
        reference.fit(z_train, y_train)
        results[name] = {
            "score": "accuracy",
            "fnn": float(test["accuracy"]),
            "sklearn": float(reference.score(z_test, y_test)),
            "error": "log-loss",
            "fnn_error": float(test["loss"]),
            "sklearn_error": float(metrics.log_loss(y_test, reference.predict_proba(z_test))),
        }
        fnn.plot_history(history, os.path.join(args.out, f"regression_{name}.png"), title=name)

    print(f"{'dataset':<14} {'':<9} {'fnn':>8} {'sklearn':>8}   {'':<9} {'fnn':>8} {'sklearn':>8}")
    for name, r in results.items():
        print(
            f"{name:<14} {r['score']:<9} {r['fnn']:>8.4f} {r['sklearn']:>8.4f}   "
            f"{r['error']:<9} {r['fnn_error']:>8.4f} {r['sklearn_error']:>8.4f}"
        )
    print(f"wrote the training curves to {args.out}/regression_*.png")
    return results


if __name__ == "__main__":
    main()
