"""Word-level tokenizer, vocabulary, padding / truncation and masks for text classification.

The pipeline is::

    (x_train, y_train), (x_test, y_test) = fnn.data.load("imdb_reviews")   # arrays of str
    vocab = Vocabulary.build(x_train, max_tokens=20_000)                   # train split only
    ids_train, len_train = vocab.encode(x_train, max_length=256)          # int32 [n, 256], [n]
    ids_test, len_test = vocab.encode(x_test, max_length=256)             # unseen words -> <unk>
    mask = padding_mask(len_train, 256)                                    # bool [n, 256]

Tokenization lowercases, turns HTML line breaks (`<br />`) into spaces, and keeps runs of
word characters (letters, digits, underscore) joined by inner apostrophes (`don't`), dropping
all other punctuation. Each text is handled by one compiled regular expression (C speed), and
encoding scatters all ids into the padded matrix with one NumPy assignment: there is no
per-character Python loop.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import re
from collections.abc import Iterable, Sequence

import numpy as np

from fnn._checks import check_int

__all__ = ["PAD", "PAD_ID", "UNK", "UNK_ID", "Vocabulary", "padding_mask", "tokenize"]

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_WORD = re.compile(r"\w+(?:'\w+)*")


def _as_str(text: str | bytes) -> str:
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text


def tokenize(text: str | bytes) -> list[str]:
    """Splits one text into lowercase word tokens.

    Args:
        text: the text; `bytes` are decoded as UTF-8.

    Returns:
        The tokens, in order.

    Example:
        >>> tokenize("Great film!<br /><br />I didn't  LIKE the end...")
        ['great', 'film', 'i', "didn't", 'like', 'the', 'end']
    """
    return _WORD.findall(_BREAK.sub(" ", _as_str(text)).lower())


def _check_texts(texts: Iterable[str | bytes], arg: str) -> list[str | bytes]:
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"{arg}: expected a sequence of strings, got a single {type(texts).__name__}"
        )
    return list(texts)


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Token <-> id table. Id 0 is `<pad>`, id 1 is `<unk>`, then words by falling frequency.

    Attributes:
        tokens: the token of each id; `tokens[0] == "<pad>"`, `tokens[1] == "<unk>"`.
    """

    tokens: tuple[str, ...]

    def __post_init__(self):
        if self.tokens[:2] != (PAD, UNK):
            raise ValueError(
                f"tokens: expected ({PAD!r}, {UNK!r}, ...) at the start, got {self.tokens[:2]}"
            )
        if len(set(self.tokens)) != len(self.tokens):
            repeated = sorted(t for t, c in collections.Counter(self.tokens).items() if c > 1)
            raise ValueError(f"tokens: expected unique tokens, got repeated {repeated[:5]}")

    @classmethod
    def build(
        cls,
        texts: Iterable[str | bytes],
        *,
        max_tokens: int | None = 20_000,
        min_count: int = 1,
    ) -> Vocabulary:
        """Builds the vocabulary from (training) texts.

        Words are ranked by count, ties broken alphabetically, so the result does not depend
        on the order of `texts`. Build it from the training split only; words that appear only
        in validation or test data then map to `<unk>`.

        Args:
            texts: the training texts.
            max_tokens: cap on the vocabulary size *including* `<pad>` and `<unk>` (>= 2);
                `None` keeps every word.
            min_count: words seen fewer times are left out (they map to `<unk>`).

        Returns:
            The vocabulary.

        Raises:
            TypeError: if `texts` is a single string, or `max_tokens` / `min_count` is not an
                integer.
            ValueError: if `max_tokens < 2` or `min_count < 1`.
        """
        if max_tokens is not None:
            max_tokens = check_int("max_tokens", max_tokens, minimum=2)  # <pad> and <unk>
        min_count = check_int("min_count", min_count, minimum=1)
        counts = collections.Counter(
            itertools.chain.from_iterable(map(tokenize, _check_texts(texts, "texts")))
        )
        for special in (PAD, UNK):  # cannot come out of `tokenize`, but keep the ids unique
            counts.pop(special, None)
        ranked = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        if max_tokens is not None:
            ranked = ranked[: max_tokens - 2]
        return cls(tokens=(PAD, UNK, *ranked))

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Token -> id."""
        return {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def lookup(self, tokens: Iterable[str]) -> np.ndarray:
        """Maps tokens to ids, unknown ones to `UNK_ID`: returns <int32>[len(tokens)]."""
        return np.fromiter(map(self.index.get, tokens, itertools.repeat(UNK_ID)), dtype=np.int32)

    def encode(
        self, texts: Sequence[str | bytes], max_length: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tokenizes, maps to ids, truncates and pads (at the end) to `max_length`.

        Args:
            texts: n texts.
            max_length: length of every row; longer texts keep their first `max_length`
                tokens. `None` pads to the longest text.

        Returns:
            `(ids, lengths)`: <int32>[n, max_length] ids with `PAD_ID` after the text, and
            <int32>[n] the number of real tokens per row (`min(len(tokens), max_length)`);
            `padding_mask(lengths, max_length)` marks the real positions.

        Raises:
            TypeError: if `texts` is a single string or `max_length` is not an integer.
            ValueError: if `max_length < 1`.
        """
        texts = _check_texts(texts, "texts")
        if max_length is not None:
            max_length = check_int("max_length", max_length, minimum=1)
        token_lists = [tokenize(t) for t in texts]
        if max_length is None:
            max_length = max(map(len, token_lists), default=0) or 1
        token_lists = [tokens[:max_length] for tokens in token_lists]
        lengths = np.fromiter(map(len, token_lists), dtype=np.int32, count=len(token_lists))
        tokens = list(itertools.chain.from_iterable(token_lists))
        # `map` over the dict's bound `get` runs the lookups without a Python frame per token.
        flat = np.fromiter(
            map(self.index.get, tokens, itertools.repeat(UNK_ID)), dtype=np.int32, count=len(tokens)
        )
        ids = np.full((len(token_lists), max_length), PAD_ID, dtype=np.int32)
        ids[padding_mask(lengths, max_length)] = flat  # row-major order = token order
        return ids, lengths

    def decode(self, ids: np.ndarray, lengths: np.ndarray | None = None) -> list[str] | str:
        """Maps id rows back to space-joined token strings.

        Args:
            ids: <int>[n, T] token ids (or <int>[T] for one text).
            lengths: <int>[n] real lengths (a scalar for 1-D `ids`); `None` drops every
                `PAD_ID` instead.

        Returns:
            n strings (one string for 1-D `ids`); `<unk>` stands for unknown words.

        Raises:
            ValueError: for ids outside the vocabulary.
        """
        ids = np.asarray(ids)
        single = ids.ndim == 1
        ids = np.atleast_2d(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(
                f"ids: expected values in [0, {len(self)}), got values in "
                f"[{ids.min()}, {ids.max()}]"
            )
        if lengths is None:
            keep = ids != PAD_ID
        else:
            keep = padding_mask(np.atleast_1d(lengths), ids.shape[1])
        table = np.asarray(self.tokens, dtype=object)
        out = [" ".join(table[row[k]]) for row, k in zip(ids, keep, strict=True)]
        return out[0] if single else out


def padding_mask(lengths: np.ndarray, max_length: int) -> np.ndarray:
    """Marks real (not padded) positions.

    Args:
        lengths: <int>[n] real lengths.
        max_length: padded length T.

    Returns:
        <bool>[n, T], True where position < length.

    Example:
        >>> padding_mask(np.array([1, 3]), 3).tolist()
        [[True, False, False], [True, True, True]]
    """
    return np.arange(max_length) < np.asarray(lengths)[:, None]
