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
