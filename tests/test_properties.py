"""Property-based tests (hypothesis) for the data path: decoding, tokenisers,
vocabularies, batchers, and the configuration round trip."""

from __future__ import annotations

import json
import tempfile
import tomllib
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rnnlab.config import Config, config_from_dict
from rnnlab.data.batching import StreamBatcher, WindowBatcher
from rnnlab.data.text import read_text
from rnnlab.data.vocab import EOS, UNK, Vocab, detokenize, tokenize
from rnnlab.errors import UserError

# The machine is shared: judge correctness, not speed.
settings.register_profile("rnnlab", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("rnnlab")

words = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=6)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


# ------------------------------------------------------------------ decoding

def read_bytes_as_corpus(raw: bytes) -> str:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "corpus.txt"
        path.write_bytes(raw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read_text(path)


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_give_a_clear_error(raw):
    try:
        text = read_bytes_as_corpus(raw)
    except UserError as e:
        assert "is empty" in str(e)
        return
    assert text.strip() and "\r\n" not in text and not text.startswith("\ufeff")


@given(texts, st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
def test_valid_text_decodes_exactly(text, encoding):
    assume(text.strip() and not text.startswith("\ufeff"))
    assert read_bytes_as_corpus(text.encode(encoding)) == text.replace("\r\n", "\n")


@given(texts, st.binary(min_size=1, max_size=5).filter(lambda b: not _valid_utf8(b)))
def test_invalid_utf8_is_replaced_and_counted(text, junk):
    assume(text.strip())
    raw = text.encode() + junk
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "corpus.txt"
        path.write_bytes(raw)
        with pytest.warns(UserWarning, match="invalid UTF-8 byte sequence") as record:
            decoded = read_text(path)
    expected = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
    assert decoded == expected
    n = expected.count("\ufffd") - text.count("\ufffd")
    assert f"{n} invalid UTF-8 byte sequence(s)" in str(record[0].message)


def _valid_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# ---------------------------------------------------------------- tokenisers

@given(texts)
def test_char_tokens_round_trip(text):
    assert detokenize(tokenize(text, "char"), "char") == text


@given(st.lists(st.lists(words, max_size=5), max_size=6), st.sampled_from([" ", "  ", "\t"]))
def test_word_tokens_round_trip_up_to_whitespace(lines, sep):
    lines = [[w for w in line if w != EOS] for line in lines]
    text = "\n".join(sep + sep.join(line) for line in lines)
    tokens = tokenize(text, "word")
    assert tokens.count(EOS) == sum(1 for line in lines if line)  # one <eos> per non-blank line
    assert detokenize(tokens, "word") == "".join(" ".join(line) + "\n" for line in lines if line)


# ------------------------------------------------------------- vocabularies

@given(st.lists(words, max_size=80), st.sampled_from(["char", "word"]), st.integers(1, 3), st.integers(0, 12),
       st.randoms(use_true_random=False))
def test_vocabulary_is_a_deterministic_bijection(tokens, level, min_count, max_vocab, rng):
    vocab = Vocab.build(tokens, level, min_count, max_vocab)
    shuffled = list(tokens)
    rng.shuffle(shuffled)
    assert Vocab.build(shuffled, level, min_count, max_vocab).itos == vocab.itos  # order of the text is irrelevant
    specials = [UNK] + ([EOS] if level == "word" else [])
    assert vocab.itos[: len(specials)] == specials and len(set(vocab.itos)) == len(vocab)
    counts = Counter(t for t in tokens if t not in specials)
    kept = vocab.itos[len(specials):]
    assert all(counts[t] >= min_count for t in kept)
    assert [counts[t] for t in kept] == sorted((counts[t] for t in kept), reverse=True)
    if max_vocab:
        assert len(vocab) <= max(max_vocab, len(specials))
    else:
        assert set(kept) == {t for t, c in counts.items() if c >= min_count}
    # Through JSON and back: the same ids.
    again = Vocab.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again.itos == vocab.itos and again.level == level
    ids = vocab.encode(tokens)
    assert [vocab.itos[i] if t in vocab.stoi else t for t, i in zip(tokens, ids)] == tokens
    assert all(ids[k] == vocab.unk for k, t in enumerate(tokens) if t not in vocab.stoi)


@given(texts)
def test_char_text_encodes_and_decodes_to_itself(text):
    vocab = Vocab.build(tokenize(text, "char"), "char")
    assert vocab.decode(vocab.encode(tokenize(text, "char"))) == text


# ------------------------------------------------------------------ batchers

@given(st.integers(2, 400), st.integers(1, 9), st.integers(1, 17))
def test_stream_batcher_covers_every_token_once_per_epoch(n_tokens, batch_size, seq_len):
    data = np.arange(n_tokens)  # token value = its position
    assume(n_tokens - 1 >= batch_size)
    batcher = StreamBatcher(data, batch_size, seq_len)
    batches = [batcher.batch(0, i) for i in range(batcher.steps_per_epoch)]
    inputs = np.concatenate([x.numpy() for x, _ in batches])  # [n, B]: stream b down column b
    targets = np.concatenate([y.numpy() for _, y in batches])
    assert all(x.shape == y.shape and x.shape[0] <= seq_len and x.shape[1] == batch_size for x, y in batches)
    assert sorted(inputs.ravel().tolist()) == list(range(inputs.size))  # each token exactly once...
    assert n_tokens - 1 - inputs.size < batch_size  # ...and fewer than B left over
    assert (targets == inputs + 1).all()  # targets are the inputs shifted by one
    for b in range(batch_size):  # each stream is contiguous, so carrying the state is right
        assert (np.diff(inputs[:, b]) == 1).all()
    assert batcher.batch(3, 0)[0].equal(batches[0][0])  # every epoch is the same pass


@given(st.integers(2, 400), st.integers(1, 9), st.integers(1, 17), st.integers(0, 2**32 - 1), st.integers(0, 5),
       st.integers(0, 50))
def test_window_batcher_windows_are_contiguous_shifted_and_reproducible(n_tokens, batch_size, seq_len, seed, epoch,
                                                                        index):
    assume(n_tokens >= seq_len + 1)
    data = np.arange(n_tokens)
    batcher = WindowBatcher(data, batch_size, seq_len, seed)
    x, y = batcher.batch(epoch, index)
    assert x.shape == y.shape == (seq_len, batch_size)
    assert (y == x + 1).all() and int(y.max()) < n_tokens and int(x.min()) >= 0
    assert (x.diff(dim=0) == 1).all()
    x2, y2 = WindowBatcher(data, batch_size, seq_len, seed).batch(epoch, index)  # a resumed run draws the same
    assert x.equal(x2) and y.equal(y2)


# ------------------------------------------------------------------- config

@given(st.integers(1, 4096), st.integers(1, 8), st.floats(0, 0.99), st.floats(1e-6, 10), st.booleans(),
       st.sampled_from(["rnn", "lstm", "gru", "phased_lstm"]),
       st.text(max_size=20).filter(lambda s: not any(c in s for c in "/\\\0")))  # separators are refused
def test_config_survives_the_run_directory_round_trip(hidden, layers, dropout, lr, nesterov, cell, name):
    cfg = Config()
    cfg.model.hidden, cfg.model.layers, cfg.model.dropout, cfg.model.cell = hidden, layers, dropout, cell
    cfg.train.lr, cfg.train.nesterov, cfg.name = lr, nesterov, name
    assert config_from_dict(tomllib.loads(cfg.to_toml())) == cfg
