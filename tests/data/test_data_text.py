"""Tests for fnn.data.text: tokenizer, vocabulary from train only, padding and masks."""

import numpy as np
import pytest

from fnn.data import PAD_ID, UNK_ID, Vocabulary, padding_mask, tokenize

TRAIN = [
    "A great movie. Great acting!<br /><br />I didn't like the END, though.",
    "A terrible movie: the acting was terrible, the plot was worse...",
    "great great plot",
]
TEST = ["An unseen ZEBRA watched the great movie.", ""]


def test_tokenize():
    assert tokenize("Great film!<br /><br />I didn't  LIKE the end...") == [
        "great", "film", "i", "didn't", "like", "the", "end",
    ]  # fmt: skip
    assert tokenize(b"Bytes, too<br/>ok") == ["bytes", "too", "ok"]
    assert tokenize("   ") == []
    assert tokenize("rock'n'roll 9/10 'quoted'") == ["rock'n'roll", "9", "10", "quoted"]


def test_vocabulary_layout_and_order():
    vocab = Vocabulary.build(TRAIN)
    assert vocab.tokens[:2] == ("<pad>", "<unk>")
    assert vocab.index["<pad>"] == PAD_ID == 0 and vocab.index["<unk>"] == UNK_ID == 1
    # By count: great (4), the (4), then a / acting / movie / plot / terrible / was (2)...
    assert vocab.tokens[2:4] == ("great", "the")
    assert vocab.tokens[4:10] == ("a", "acting", "movie", "plot", "terrible", "was")
    assert Vocabulary.build(TRAIN[::-1]) == vocab  # independent of text order


def test_vocabulary_comes_from_train_only():
    vocab = Vocabulary.build(TRAIN)
    train_words = {w for t in TRAIN for w in tokenize(t)}
    assert set(vocab.tokens[2:]) == train_words
    assert "zebra" not in vocab.index and "unseen" not in vocab.index
    ids, lengths = vocab.encode(TEST, max_length=8)
    words = tokenize(TEST[0])
    expected = [vocab.index.get(w, UNK_ID) for w in words]
    np.testing.assert_array_equal(ids[0, : len(words)], expected)
    assert ids[0, 2] == UNK_ID  # zebra
    assert vocab.decode(ids[0], lengths[0]) == "<unk> <unk> <unk> <unk> the great movie"
    np.testing.assert_array_equal(lengths, [7, 0])
    np.testing.assert_array_equal(ids[1], np.zeros(8))


def test_encode_decode_round_trip():
    vocab = Vocabulary.build(TRAIN)
    ids, lengths = vocab.encode(TRAIN, max_length=20)
    assert ids.dtype == lengths.dtype == np.int32 and ids.shape == (3, 20)
    assert vocab.decode(ids, lengths) == [" ".join(tokenize(t)) for t in TRAIN]
    assert vocab.decode(ids) == vocab.decode(ids, lengths)  # pads dropped without lengths


def test_padding_and_truncation_are_masked():
    vocab = Vocabulary.build(TRAIN)
    ids, lengths = vocab.encode(TRAIN, max_length=5)
    np.testing.assert_array_equal(lengths, [5, 5, 3])  # 11 and 11 tokens truncated to 5
    assert vocab.decode(ids[0], lengths[0]) == "a great movie great acting"
    mask = padding_mask(lengths, 5)
    assert mask.dtype == bool and mask.shape == (3, 5)
    assert np.all(ids[~mask] == PAD_ID) and np.all(ids[mask] != PAD_ID)
    np.testing.assert_array_equal(mask.sum(1), lengths)
    ids, lengths = vocab.encode(TRAIN)  # max_length=None: longest text
    assert ids.shape == (3, 11) and lengths.tolist() == [11, 11, 3]


def test_max_tokens_and_min_count():
    vocab = Vocabulary.build(TRAIN, max_tokens=4)
    assert vocab.tokens == ("<pad>", "<unk>", "great", "the") and len(vocab) == 4
    ids, _ = vocab.encode(["great acting"], max_length=2)
    np.testing.assert_array_equal(ids, [[2, UNK_ID]])
    assert set(Vocabulary.build(TRAIN, min_count=3).tokens[2:]) == {"great", "the"}


def test_errors():
    with pytest.raises(ValueError, match="max_tokens: expected an integer >= 2, got 1"):
        Vocabulary.build(TRAIN, max_tokens=1)
    with pytest.raises(TypeError, match="texts: expected a sequence of strings, got a single str"):
        Vocabulary.build("one text")
    vocab = Vocabulary.build(TRAIN)
    with pytest.raises(ValueError, match="max_length: expected an integer >= 1, got 0"):
        vocab.encode(TRAIN, max_length=0)
    with pytest.raises(ValueError, match=r"ids: expected values in \[0, "):
        vocab.decode(np.array([[len(vocab)]]))
    with pytest.raises(
        ValueError, match=r"tokens: expected \('<pad>', '<unk>', ...\) at the start"
    ):
        Vocabulary(tokens=("a", "b"))
    with pytest.raises(ValueError, match=r"tokens: expected unique tokens, got repeated \['a'\]"):
        Vocabulary(tokens=("<pad>", "<unk>", "a", "a"))
    with pytest.raises(TypeError, match="min_count: expected an integer >= 1, got 1.5"):
        Vocabulary.build(TRAIN, min_count=1.5)
