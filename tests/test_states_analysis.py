"""What is computed from a recording: text features, the unit search (on a network built by hand
whose units are known to track a feature), LSTMVis matches, gate saturation and surprise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.data.vocab import Vocab
from rnnlab.models import build_model
from rnnlab.states.command import excerpt
from rnnlab.states.features import char_features, word_features
from rnnlab.states.record import Recording, record_model
from rnnlab.states.saturation import plot_saturation, saturation
from rnnlab.states.surprise import kneser_ney_nats, render_ansi, render_html, summary, surprise_rows
from rnnlab.states.units import correlations, matches, strongest_units, top_contexts, unit_feature_table, units_on

pytestmark = pytest.mark.usefixtures("one_thread")

QUOTED = ("The Fox said ‘Go home now’ and the Wolf said ‘Stay here’ again.\n"
          "Then Snow White ran to the wood, and ‘Who is there’ called the Dwarf.\n") * 3


def test_char_features_of_a_known_text():
    text = list("He said ‘it’s (so) fine’ now.\nA b")
    f = char_features(text)
    # from the opening mark to the closing one (excluded); the apostrophe of it’s does not close it
    assert "".join("1" if v else "0" for v in f["in_quotes"]) == "0" * 8 + "1" * 15 + "0" * 10
    assert "".join("1" if v else "0" for v in f["in_brackets"]) == "0" * 14 + "111" + "0" * 16
    assert f["since_space"][:4].tolist() == [1, 2, 0, 1] and f["since_newline"][-3:].tolist() == [1, 2, 3]
    assert f["line_position"][0] == 0 and f["line_position"][text.index("\n")] == 1
    assert f["line_position"][-1] == 1 and f["line_position"][-3] == 0
    assert [t for t, v in enumerate(f["capital"]) if v] == [0, len(text) - 3]
    assert [text[t] for t, v in enumerate(f["word_start"]) if v] == list("Hsisfn") + ["A", "b"]
    assert [text[t] for t, v in enumerate(f["punctuation"]) if v] == list("‘’()’.")


def test_word_features_of_a_known_text():
    tokens = "The king said , 1000 times . Then <eos> he left <eos>".split()
    f = word_features(tokens)
    assert f["sentence_position"].tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 1, 0, 1, 2]
    assert [tokens[t] for t, v in enumerate(f["after_sentence_end"]) if v] == ["The", "Then", "he"]
    assert [tokens[t] for t, v in enumerate(f["capitalised"]) if v] == ["The", "Then"]
    assert [tokens[t] for t, v in enumerate(f["number"]) if v] == ["1000"]
    assert [tokens[t] for t, v in enumerate(f["punctuation"]) if v] == [",", "."]
    assert f["end_of_line"].sum() == 2


def test_correlations_are_pearsons():
    rng = np.random.default_rng(0)
    a, f = rng.normal(size=(50, 4)), rng.normal(size=50)
    a[:, 2] = 3.0  # constant: no correlation
    r = correlations(a, f)
    for j in (0, 1, 3):
        assert r[j] == pytest.approx(np.corrcoef(a[:, j], f)[0, 1], abs=1e-12)
    assert np.isnan(r[2])


def hand_built_network() -> tuple[torch.nn.Module, Vocab]:
    """A tanh RNN of 4 units reading one-hot characters (embedding = identity):

        unit 0: capital detector     h0 = tanh(5 [x is upper-case] − 2.5)
        unit 1: the same, negated    h1 = tanh(−5 [x is upper-case] + 2.5)
        unit 2: quote latch          h2 = tanh(3 h2 + 6 [x = ‘] − 6 [x = ’] − 1): −1 outside, +1 inside
        unit 3: the latch, negated   h3 = tanh(3 h3 − 6 [x = ‘] + 6 [x = ’] + 1)
    """
    vocab = Vocab(["<unk>", *sorted(set(QUOTED))], "char")
    V = len(vocab)
    model = build_model(ModelConfig(cell="rnn", hidden=4, embed=V, layers=1, dropout=0.0), V).eval()
    layer = model.rnn.layers[0]
    capitals = [vocab.stoi[c] for c in vocab.itos if len(c) == 1 and c.isupper()]
    with torch.no_grad():
        model.embedding.weight.copy_(torch.eye(V))
        for p in (layer.weight_ih, layer.weight_hh, layer.bias_ih, layer.bias_hh):
            p.zero_()
        layer.weight_ih[0, capitals], layer.bias_ih[0] = 5.0, -2.5
        layer.weight_ih[1, capitals], layer.bias_ih[1] = -5.0, 2.5
        for unit, sign in ((2, 1.0), (3, -1.0)):
            layer.weight_hh[unit, unit] = 3.0
            layer.weight_ih[unit, vocab.stoi["‘"]] = 6.0 * sign
            layer.weight_ih[unit, vocab.stoi["’"]] = -6.0 * sign
            layer.bias_ih[unit] = -1.0 * sign
    return model, vocab


def test_the_unit_search_finds_the_units_built_to_track_a_feature_with_their_sign():
    model, vocab = hand_built_network()
    rec = record_model(model, vocab, QUOTED)
    table = unit_feature_table(rec, char_features(rec.tokens))
    assert {row["feature"] for row in table} >= {"capital", "in_quotes", "since_space"}
    best = strongest_units(table, per_feature=2)
    capital = {(row["unit"], np.sign(row["r"])) for row in best["capital"]}
    assert capital == {(0, 1), (1, -1)} and min(abs(row["r"]) for row in best["capital"]) > 0.95
    quotes = {(row["unit"], np.sign(row["r"])) for row in best["in_quotes"]}
    assert quotes == {(2, 1), (3, -1)} and min(abs(row["r"]) for row in best["in_quotes"]) > 0.95
    assert all(row["signal"] == "h" and row["layer"] == 0 for rows in best.values() for row in rows)
    top = top_contexts(rec, 0, "h", 0, k=3)
    assert all(c["context"].split("[")[1][0].isupper() and c["value"] > 0.9 for c in top)


def test_units_on_and_matches_find_the_other_quotations():
    model, vocab = hand_built_network()
    rec = record_model(model, vocab, QUOTED)
    start = QUOTED.index("‘") + 1
    assert units_on(rec, 0, "h", start, start + 5, threshold=0.5) == [2]
    spans = matches(rec, 0, "h", [2], threshold=0.5, min_len=3)
    quotations = [(m, QUOTED.index("’", m)) for m in range(len(QUOTED)) if QUOTED[m] == "‘"]
    assert spans == quotations  # [the opening mark, the closing mark): exactly the quotes, all 9
    assert matches(rec, 0, "h", [2], threshold=0.5, min_len=12) == [s for s in quotations if s[1] - s[0] >= 12]
    assert matches(rec, 0, "h", [], 0.5) == []


def hand_made_recording() -> Recording:
    T = 10
    gate = np.empty((T, 3), np.float32)
    gate[:, 0] = 0.05  # always shut: left 1
    gate[:, 1] = [0.95, 0.5] * 5  # open half the time: right 0.5
    gate[:, 2] = [0.02, 0.97, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]  # left 0.1, right 0.1
    tanh = np.full((T, 3), 0.0, np.float32)
    tanh[:3, 0] = -0.9  # left 0.3
    tanh[:, 1] = 0.85  # right 1 (beyond 0.8 on the [−1, 1] scale)
    layer = {"h": tanh, "c": np.full((T, 3), 5.0, np.float32), "f": gate}
    return Recording(list("abcdefghij"), "char", [layer, dict(layer)], np.r_[np.nan, np.full(T - 1, 2.0)],
                     [[("a", 0.5)]] * T, kinds={"h": "tanh", "c": "free", "f": "gate"})


def test_saturation_fractions_of_a_hand_made_recording(tmp_path):
    rec = hand_made_recording()
    rows = saturation(rec)
    assert [(row["layer"], row["signal"]) for row in rows] == [(0, "h"), (0, "f"), (1, "h"), (1, "f")]  # c: free
    f = rows[1]
    assert (f["low"], f["high"]) == (0.1, 0.9)
    np.testing.assert_allclose(f["left"], [1.0, 0.0, 0.1])
    np.testing.assert_allclose(f["right"], [0.0, 0.5, 0.1])
    h = rows[0]
    assert (h["low"], h["high"]) == (-0.8, 0.8)
    np.testing.assert_allclose(h["left"], [0.3, 0.0, 0.0])
    np.testing.assert_allclose(h["right"], [0.0, 1.0, 0.0])
    out = plot_saturation(rec, tmp_path / "sub" / "saturation.png", rows)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_surprise_rows_summary_and_renderings():
    rec = hand_made_recording()
    rec.loss[4] = 8 * np.log(2)  # 8 bits
    rows = surprise_rows(rec)
    assert rows[0]["bits"] is None and rows[0]["expected"] is None
    assert rows[1]["bits"] == pytest.approx(2 / np.log(2)) and rows[1]["p"] == pytest.approx(np.exp(-2))
    assert rows[1]["expected"] == [["a", 0.5]]
    s = summary(rec, worst=2)
    assert s["tokens"] == 9 and s["worst"][0]["position"] == 4 and s["worst"][0]["bits"] == pytest.approx(8)
    assert s["bits"] == pytest.approx((8 * 2 + 8 * np.log(2)) / 9 / np.log(2))
    ansi = render_ansi(rec)
    assert "\x1b[48;5;203m\x1b[30me\x1b[0m" in ansi and ansi.startswith("a")
    page = render_html(rec)
    assert page.startswith("<!doctype html>") and "8.00 bits" in page


def test_the_kneser_ney_reference_scores_the_recorded_tokens():
    from rnnlab.ngram.kneser_ney import KneserNey

    vocab = Vocab.build("the cat sat on the mat <eos>".split() * 3, "word")
    train = vocab.encode("the cat sat on the mat <eos> the mat sat <eos>".split() * 5)
    rec = hand_made_recording()
    rec.tokens = "the cat sat on the mat <eos> the dog sat".split()
    nats = kneser_ney_nats(rec, vocab, train)
    direct = KneserNey(len(vocab)).fit(train).token_logprobs(vocab.encode(rec.tokens))
    assert np.isnan(nats[0]) and np.allclose(nats[1:], -direct)
    s = summary(rec, reference=nats)
    assert s["kn_bits"] == pytest.approx(-direct.mean() / np.log(2))
    assert s["network_better"] == pytest.approx(np.mean(rec.loss[1:] < nats[1:]))
    assert surprise_rows(rec, nats)[3]["kn_bits"] == pytest.approx(nats[3] / np.log(2))


def test_an_excerpt_is_the_first_tokens_and_whole_lines_for_words():
    assert excerpt("abcdef", "char", 4) == ("abcd", True) and excerpt("abc", "char", 4) == ("abc", False)
    text = "a b c\nd e\nf g h i\n"
    assert excerpt(text, "word", 7) == ("a b c\nd e", True)  # 4 + 3 tokens with <eos>; the third line would not fit
    assert excerpt(text, "word", 100) == (text, False) and excerpt(text, "word", 12) == (text, False)
    assert excerpt("one two three four five\nsix", "word", 3) == ("one two", True)  # a first line longer than that
