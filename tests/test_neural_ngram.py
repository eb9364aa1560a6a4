"""Neural n-gram model (PyTorch): exact evaluation, training, run directory, generation."""

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnlab.data.corpus import Corpus
from rnnlab.data.vocab import Vocab, tokenize
from rnnlab.errors import UserError
from rnnlab.ngram.neural import NeuralNgramLM, NgramConfig, contexts, evaluate, generate, load_run, train


def toy_corpus(repeat=40) -> Corpus:
    text = "the cat sat on the mat\nthe dog ate the bone\n" * repeat
    vocab = Vocab.build(tokenize(text, "word"), "word")
    ids = vocab.encode(tokenize(text, "word"))
    return Corpus(vocab, ids, ids[:60].copy(), ids[:45].copy(), "toy")


def test_contexts_pad_the_stream_start():
    stream = np.array([5, 6, 7, 8])
    c = contexts(stream, np.array([1, 2, 3]), 3, pad=1)
    assert c.tolist() == [[1, 1, 5], [1, 5, 6], [5, 6, 7]]


@pytest.mark.parametrize("output", ["full", "adaptive"])
def test_distribution_is_normalised_and_evaluation_exact(output):
    torch.manual_seed(0)
    V = 40
    model = NeuralNgramLM(V, context=2, embed=5, hidden=16, output=output, cutoffs=(10, 25)).double()
    ctx = torch.randint(0, V, (6, 2))
    logp = torch.log_softmax(model(ctx), -1)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(6, dtype=torch.double))
    # evaluate(): mean NLL over stream[1:], every target predicted from its padded context.
    stream = np.random.default_rng(0).integers(0, V, size=50)
    got = evaluate(model, stream, pad=1, batch_size=16)
    pos = np.arange(1, 50)
    lp = torch.log_softmax(model(torch.from_numpy(contexts(stream, pos, 2, 1))), -1)
    nll = -lp[torch.arange(49), torch.from_numpy(stream[1:])].mean().item()
    assert got["tokens"] == 49
    assert got["loss"] == pytest.approx(nll, rel=1e-9) and got["ppl"] == pytest.approx(math.exp(nll))
    assert got["accuracy"] == pytest.approx((lp.argmax(-1) == torch.from_numpy(stream[1:])).double().mean().item())


@pytest.mark.parametrize("activation,direct,output", [("tanh", True, "full"), ("linear", False, "adaptive")])
def test_training_learns_and_writes_a_run_directory(tmp_path, activation, direct, output):
    corpus = toy_corpus()
    cfg = NgramConfig(context=2, embed=8, hidden=16, activation=activation, direct=direct, output=output,
                      cutoffs=(4,), batch_size=16, lr=1e-2, epochs=5, eval_every=40, threads=1)
    summary = train(corpus, cfg, tmp_path / "run", log=lambda s: None)
    uniform = len(corpus.vocab)
    assert summary["valid_ppl"] < 1.6 < uniform  # the toy text is nearly deterministic given two words
    assert summary["test_ppl"] < 1.6 and summary["model"] == f"mlp-{activation}-h16"
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in records:
        assert {"step", "epoch", "split", "loss", "ppl", "accuracy", "tokens", "elapsed"} <= set(r)
    valid = [r for r in records if r["split"] == "valid"]
    assert valid[0]["ppl"] > valid[-1]["ppl"] and valid[-1]["accuracy"] > 0.6
    assert [r["split"] for r in records].count("test") == 1
    assert json.loads((run / "vocab.json").read_text()) == {"level": "word", "tokens": corpus.vocab.itos}
    assert json.loads((run / "config.json").read_text())["activation"] == activation
    tensors = load_file(str(run / "model.safetensors"))
    assert tensors["embedding.weight"].shape == (len(corpus.vocab), 8)
    assert ("direct.weight" in tensors) == direct
    saved = json.loads((run / "summary.json").read_text())
    assert saved["valid_ppl"] == pytest.approx(summary["valid_ppl"])
    # Reloaded weights give the same figures, and greedy generation continues the pattern.
    model, vocab, loaded_cfg = load_run(run)
    assert loaded_cfg.hidden == 16 and loaded_cfg.output == output
    again = evaluate(model, corpus.valid, pad=vocab.eos)
    assert again["ppl"] == pytest.approx(summary["valid_ppl"], rel=1e-5)
    assert generate(model, vocab, "the cat", length=4, temperature=0) == ["sat", "on", "the", "mat"]
    sampled = generate(model, vocab, "the dog", length=5, temperature=1.0, seed=3)
    assert len(sampled) == 5 and all(w in vocab.stoi for w in sampled)
    assert sampled == generate(model, vocab, "the dog", length=5, temperature=1.0, seed=3)


def test_time_budget_and_validation(tmp_path):
    corpus = toy_corpus(repeat=400)
    cfg = NgramConfig(context=2, embed=4, hidden=8, batch_size=8, epochs=1000, max_minutes=0.01, threads=1)
    summary = train(corpus, cfg, None, log=lambda s: None)
    assert 0.009 < summary["train_minutes"] < 0.05 and summary["epochs"] < 1000
    with pytest.raises(UserError, match="activation"):
        train(corpus, NgramConfig(activation="relu"), None)
    with pytest.raises(UserError, match="direct"):
        train(corpus, NgramConfig(direct=True, output="adaptive"), None)
    with pytest.raises(UserError, match="embed_init"):
        train(corpus, NgramConfig(embed_init=0.0), None)
    with pytest.raises(UserError, match="not a neural n-gram run"):
        load_run(tmp_path)


def test_embedding_init_scale():
    """embed_init sets the embeddings' initial range (the tanh units' operating range depends on it)."""
    torch.manual_seed(0)
    for a in (0.1, 1.0):
        w = NeuralNgramLM.from_config(NgramConfig(embed_init=a), 500).embedding.weight
        assert w.abs().max() <= a and w.abs().max() > 0.95 * a
