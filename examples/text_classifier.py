"""Sentiment classification of movie reviews: vocabulary, padding, Embedding + LSTM.

Uses IMDB reviews when they are prepared for TFDS (``python -m fnn.data prepare imdb_reviews``
on a machine with internet), else the offline ``synthetic_reviews`` stand-in (IMDB-like text
with a few sentiment words); ``--quick`` always uses a small synthetic set.

The pipeline: ``fnn.data.Vocabulary.build`` on the *training* texts only (test words it has
not seen become ``<unk>``), ``encode`` to right-padded ``<int32>[n, max_length]`` ids,
``fnn.models.TextClassifier`` (embedding -> LSTM over the real tokens -> one logit), trained
with ``binary_cross_entropy`` and reported with accuracy and F1::

    python examples/text_classifier.py --quick
    python examples/text_classifier.py

Outputs in ``--out``: ``text_classifier.png`` (loss / accuracy / F1 curves).
"""

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import fnn

# ----------------------------------------------------------------------------------- defaults
CONFIG = dict(
    max_tokens=20_000,  # vocabulary size, including <pad> and <unk>
    max_length=256,  # tokens kept per review (longer ones are truncated)
    embed_dim=64,
    hidden=64,
    cell="lstm",  # or "gru", "simple"
    learning_rate=2e-3,  # Adam, with gradient clipping (recurrent nets like it)
    clip_norm=1.0,
    batch_size=64,
    epochs=5,
    val_fraction=0.1,
    n_train=25_000,  # synthetic stand-in only
    n_test=25_000,
)
QUICK = dict(
    max_length=64,
    embed_dim=16,
    hidden=16,
    learning_rate=1e-2,
    batch_size=32,
    epochs=4,
    n_train=2_000,
    n_test=1_000,
)


def load_data(quick: bool, config: dict[str, Any], seed: int) -> tuple[str, Any, Any]:
    """IMDB when prepared (and not ``quick``), else ``synthetic_reviews``: arrays of ``str``."""
    if not quick and fnn.data.is_available("imdb_reviews"):
        train, test = fnn.data.load("imdb_reviews")
        return "imdb_reviews (TFDS)", train, test
    why = "--quick" if quick else "IMDB is not prepared: python -m fnn.data prepare imdb_reviews"
    sizes = dict(n_train=config["n_train"], n_test=config["n_test"])
    if quick:
        sizes.update(min_words=20, max_words=config["max_length"])
    train, test = fnn.data.load("synthetic_reviews", seed=seed, **sizes)
    return f"synthetic_reviews, the offline stand-in ({why})", train, test


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Builds the vocabulary, trains the classifier; returns the test metrics."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small synthetic set (seconds)")
    parser.add_argument("--out", default="out", help="output directory (default ./out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1), help="progress bar")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    config = {**CONFIG, **(QUICK if args.quick else {})}

    source, (text_train, y_train), (text_test, y_test) = load_data(args.quick, config, args.seed)
    (text_train, y_train), (text_val, y_val) = fnn.data.train_val_split(
        text_train, y_train, val_fraction=config["val_fraction"], seed=args.seed
    )
    vocab = fnn.data.Vocabulary.build(text_train, max_tokens=config["max_tokens"])  # train only
    x_train, len_train = vocab.encode(text_train, max_length=config["max_length"])
    x_val, _ = vocab.encode(text_val, max_length=config["max_length"])
    x_test, len_test = vocab.encode(text_test, max_length=config["max_length"])
    print(
        f"data: {source}; {len(text_train)} train, {len(text_val)} validation, "
        f"{len(text_test)} test reviews"
    )
    print(
        f"vocabulary: {len(vocab)} tokens from the training split; median length "
        f"{int(np.median(len_train))} tokens (kept up to {config['max_length']}); "
        f"{np.mean(x_test[x_test > 0] == fnn.data.UNK_ID):.2%} of test tokens are <unk>"
    )
    print(f"example: {text_train[0][:100]!r}...\n  ids: {x_train[0, :12].tolist()}...")

    model = fnn.models.TextClassifier(
        vocab_size=len(vocab),
        embed_dim=config["embed_dim"],
        hidden=config["hidden"],
        outputs=1,  # one logit: P(positive) = sigmoid(logit)
        cell=config["cell"],
        pad_id=fnn.data.PAD_ID,
    )
    optimizer = fnn.optim.adam(config["learning_rate"], clip_norm=config["clip_norm"])
    state = fnn.TrainState.create(model, optimizer, x_train[:1], seed=args.seed)
    start = time.perf_counter()
    state, history = fnn.fit(
        state,
        x_train,
        y_train,
        loss="binary_cross_entropy",
        metrics=["accuracy", "f1"],
        batch_size=config["batch_size"],
        epochs=config["epochs"],
        validation_data=(x_val, y_val),
        seed=args.seed,
        verbose=args.verbose,
    )
    wall = time.perf_counter() - start
    test = fnn.evaluate(
        state, x_test, y_test, loss="binary_cross_entropy", metrics=["accuracy", "f1"]
    )
    for record in history:
        print(
            f"epoch {record['epoch']}: loss {record['loss']:.4f}  val_loss "
            f"{record['val_loss']:.4f}  val_accuracy {record['val_accuracy']:.4f}  "
            f"val_f1 {record['val_f1']:.4f}  ({record['samples_per_s']:.0f} samples/s)"
        )
    print(
        f"test accuracy {test['accuracy']:.4f}, test F1 {test['f1']:.4f}, test loss "
        f"{test['loss']:.4f}; fit took {wall:.1f}s including compilation"
    )

    reviews = ["A wonderful, moving film with a superb cast.", "Boring, predictable and a mess."]
    ids, _ = vocab.encode(reviews, max_length=config["max_length"])
    probability = 1 / (1 + np.exp(-fnn.predict(state, ids)[:, 0]))
    for review, p in zip(reviews, probability, strict=True):
        print(f"P(positive) = {p:.3f}  {review!r}")

    plot = fnn.plot_history(
        history, os.path.join(args.out, "text_classifier.png"), title="review sentiment"
    )
    print(f"wrote {plot}")
    return {
        "data": source,
        "vocab_size": len(vocab),
        "test_accuracy": float(test["accuracy"]),
        "test_f1": float(test["f1"]),
        "test_loss": float(test["loss"]),
        "wall_seconds": wall,
        "plot": plot,
    }


if __name__ == "__main__":
    main()
