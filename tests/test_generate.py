"""Sampling: determinism, filtering, state carrying, word-level stopping."""

import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.data.vocab import Vocab
from rnnlab.errors import UserError
from rnnlab.generate import filter_logits, generate
from rnnlab.models import build_model


@pytest.fixture
def char_model():
    torch.manual_seed(0)
    vocab = Vocab.build(list("hello world\n"), "char")
    return build_model(ModelConfig(hidden=16, layers=2, embed=8), len(vocab)), vocab


def test_temperature_zero_is_deterministic(char_model):
    model, vocab = char_model
    a = generate(model, vocab, "hel", 50, temperature=0, seed=1)
    b = generate(model, vocab, "hel", 50, temperature=0, seed=2)
    assert a == b and len(a[0]) == 50


def test_seed_makes_sampling_reproducible(char_model):
    model, vocab = char_model
    a = generate(model, vocab, "hel", 40, temperature=1.0, num=3, seed=7)
    assert a == generate(model, vocab, "hel", 40, temperature=1.0, num=3, seed=7)
    assert a != generate(model, vocab, "hel", 40, temperature=1.0, num=3, seed=8)


def test_carrying_state_equals_rerunning_the_prefix(char_model):
    """Greedy generation with carried state gives what re-running the whole
    prefix at every step would give."""
    model, vocab = char_model
    fast = generate(model, vocab, "he", 20, temperature=0)[0]
    text = "he"
    for _ in range(20):
        logits, _ = model(torch.as_tensor(vocab.encode(list(text)))[:, None])
        text += vocab.itos[logits[-1, 0].argmax().item()]
    assert fast == text[2:]


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(filter_logits(logits, top_k=2))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(filter_logits(logits, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(filter_logits(logits, top_p=0.1))
    assert kept.tolist() == [[True, False, False, False]]


def test_top_k_one_equals_greedy(char_model):
    model, vocab = char_model
    assert generate(model, vocab, "wor", 30, temperature=1.5, top_k=1, seed=3) == \
        generate(model, vocab, "wor", 30, temperature=0)


def test_unknown_characters_are_refused(char_model):
    model, vocab = char_model
    with pytest.raises(UserError, match="never seen"):
        generate(model, vocab, "héllo", 5)


def test_word_model_stops_at_eos():
    torch.manual_seed(0)
    vocab = Vocab.build("a b c <eos>".split(), "word")
    model = build_model(ModelConfig(hidden=8, layers=1), len(vocab))
    with torch.no_grad():  # make <eos> overwhelmingly likely
        model.decoder.bias.zero_()
        model.decoder.bias[vocab.eos] = 50.0
    out = generate(model, vocab, "a b", 100, temperature=1.0, num=4, seed=0)
    assert out == [""] * 4


def test_word_prompt_with_unknown_word_warns():
    vocab = Vocab.build("a b c".split(), "word")
    model = build_model(ModelConfig(hidden=8, layers=1), len(vocab))
    with pytest.warns(UserWarning, match="zebra"):
        generate(model, vocab, "a zebra", 3, temperature=0)


def test_bad_generation_settings():
    vocab = Vocab.build("a b c".split(), "word")
    model = build_model(ModelConfig(hidden=8, layers=1), len(vocab))
    with pytest.raises(UserError, match="temperature"):
        generate(model, vocab, "a", 3, temperature=-1)
    with pytest.raises(UserError, match="top_p"):
        generate(model, vocab, "a", 3, top_p=0)


def _word_model(bias_word: str, words: str = "a b c <eos>"):
    """A word model that says `bias_word` at every step."""
    torch.manual_seed(0)
    vocab = Vocab.build(words.split(), "word")
    model = build_model(ModelConfig(hidden=8, layers=1), len(vocab))
    with torch.no_grad():
        model.decoder.bias.zero_()
        model.decoder.bias[vocab.stoi[bias_word]] = 50.0
    return model, vocab


def test_word_continuation_is_printed_after_a_space(tmp_path, capsys):
    """`rnnlab generate` once printed 'the company said<unk>'."""
    from rnnlab.generate import with_prompt

    model, vocab = _word_model("c")
    text = generate(model, vocab, "a b", 3, temperature=0)[0]
    assert text == "c c c"
    assert with_prompt(vocab, "a b", text) == "a b c c c"
    assert with_prompt(vocab, "", text) == "c c c"
    char_vocab = Vocab.build(list("ab"), "char")
    assert with_prompt(char_vocab, "ab", "ba") == "abba"


def test_stop_string_ends_each_sample_and_is_not_returned(char_model):
    model, vocab = char_model
    full = generate(model, vocab, "hel", 200, temperature=1.0, num=3, seed=5)
    stopped = generate(model, vocab, "hel", 200, temperature=1.0, num=3, seed=5, stop="o")
    assert any("o" in f for f in full)
    assert stopped == [f.split("o")[0] for f in full]


def test_stop_spanning_tokens_streams_only_text_before_it(char_model):
    """A two-character stop string: what is streamed equals what is returned,
    the held-back first character included when the stop does not follow."""
    model, vocab = char_model
    full = generate(model, vocab, "he", 300, temperature=1.5, seed=11)[0]
    stop = next(full[i:i + 2] for i in range(len(full) - 1) if full[i] != full[i + 1])
    pieces = []
    out = generate(model, vocab, "he", 300, temperature=1.5, seed=11, stop=stop,
                   on_token=lambda i, piece: pieces.append(piece))[0]
    assert out == full[:full.index(stop)]
    assert "".join(pieces) == out


def test_word_stop_string():
    model, vocab = _word_model("b", "a b c d <eos>")
    assert generate(model, vocab, "a", 5, temperature=0)[0] == "b b b b b"
    assert generate(model, vocab, "a", 5, temperature=0, stop=" b b")[0] == "b"


def test_command_line_escapes():
    from rnnlab.generate import unescape

    assert unescape(r"\n") == "\n"
    assert unescape(r"a\tb\\n") == "a\tb\\n"
    assert unescape("plain") == "plain"


def test_cli_stop_newline_gives_one_line_per_sample(tiny_lm_run, capsys):
    import json

    from rnnlab.cli import main

    args = ["generate", str(tiny_lm_run), "--length", "400", "--num", "4", "--seed", "2", "--json"]
    assert main(args) == 0
    full = json.loads(capsys.readouterr().out)[0]["samples"]
    assert any("\n" in f for f in full)
    assert main([*args, "--stop", r"\n"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["samples"] == [f.split("\n")[0] for f in full]
