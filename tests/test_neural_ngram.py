"""The neural n-gram model (Bengio et al. 2003) as a first-class model: a run
like any other (`--preset nplm`), in either backend."""

import dataclasses
import json
import random

import numpy as np
import pytest
import torch

from rnnlab.cli import main
from rnnlab.config import ModelConfig, load_config
from rnnlab.errors import UserError
from rnnlab.models import build_model
from rnnlab.models.nplm import NeuralNgramModel
from rnnlab.trainer import train_config

NOUNS = "king queen prince princess man woman boy girl fox wolf".split()
VERBS = "went came ran sat looked walked slept".split()
PLACES = "forest castle river garden house well".split()
WORDS = ["a", "the", "to"] + NOUNS + VERBS + PLACES
SMALL = ["model.embed=8", "model.hidden=16", "train.batch_size=16", "train.max_steps=120", "train.eval_every=60",
         "train.samples=0", "train.eval_batch_size=8", "train.eval_seq_len=64", "train.lr=1e-2", "train.threads=1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """'the NOUN VERB to the PLACE' sentences: the word after 'to' is always 'the' (a 4-gram sees it)."""
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("nplm-words")
    for split, lines in (("train", 400), ("valid", 60), ("test", 60)):
        text = "\n".join(
            f"the {rng.choice(NOUNS)} {rng.choice(VERBS)} to the {rng.choice(PLACES)}" for _ in range(lines)
        )
        (root / f"{split}.txt").write_text(text + "\n", encoding="utf-8")
    return root


def _config(corpus, *extra):
    return load_config("nplm", None, [f"data.path={corpus}", *SMALL, *extra])


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("nplm-run") / "run"
    train_config(_config(corpus), run_dir, progress=False)
    return run_dir


def test_presets_are_the_course_setting():
    for name, activation in (("nplm", "linear"), ("nplm-tanh", "tanh")):
        m = load_config(name, None, []).model
        assert (m.arch, m.context, m.embed, m.hidden, m.activation, m.direct) == ("nplm", 3, 16, 128, activation, False)


def test_each_prediction_sees_exactly_the_context_words_before_it():
    """Logits at t are the MLP of (x_{t-2}, x_{t-1}, x_t); across segments the carried
    state supplies the words, so segment by segment equals the whole stream at once."""
    torch.manual_seed(0)
    model = NeuralNgramModel(30, ModelConfig(arch="nplm", embed=4, hidden=8, activation="tanh", direct=True)).eval()
    with torch.no_grad():
        model.direct.weight.normal_()
    x = torch.randint(0, 30, (12, 2))
    whole, _ = model(x)
    first, state = model(x[:5])
    second, _ = model(x[5:], state)
    assert torch.allclose(torch.cat([first, second]), whole, atol=1e-6)
    padded = torch.cat([torch.full((3, 2), 1), x])  # <eos> (id 1) before the stream
    for t in (0, 4, 11):
        ctx = padded[t + 1:t + 4].t()  # [B, 3], oldest first
        e = model.embedding(ctx).flatten(1)
        by_hand = model.decoder(torch.tanh(model.hidden(e))) + model.direct(e)
        assert torch.allclose(whole[t], by_hand, atol=1e-5)


def test_numpy_twin_gives_the_same_logits_and_gradients():
    torch.manual_seed(1)
    cfg = ModelConfig(arch="nplm", embed=5, hidden=7, activation="tanh", direct=True)
    ref = NeuralNgramModel(20, cfg).double()
    twin = build_model(ModelConfig(**{**cfg.__dict__, "backend": "numpy"}), 20).double()
    twin.load_state_dict(ref.state_dict())
    with torch.no_grad():
        for m in (ref, twin):
            m.direct.weight.copy_(torch.linspace(-0.3, 0.3, m.direct.weight.numel()).view_as(m.direct.weight))
    x, y = torch.randint(0, 20, (6, 3)), torch.randint(0, 20, (6, 3))
    losses = []
    for m in (ref, twin):
        m.train()
        out, _ = m(x, targets=y)
        m.zero_grad()
        out.loss.backward()
        losses.append(out.loss.item())
        assert torch.allclose(m.eval()(x)[0], ref.eval()(x)[0], atol=1e-12)
    assert losses[0] == pytest.approx(losses[1], rel=1e-12)
    for (name, p), q in zip(ref.named_parameters(), twin.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-12), name


def test_recurrent_reader_is_the_cell_over_the_window_and_bptt_truncates_it():
    """reader=recurrent: h after the c-th word of the window, by hand with the cell's equation;
    bptt=1: the oldest words get no gradient, yet the forward is unchanged."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch="nplm", reader="recurrent", cell="rnn", layers=1, embed=4, hidden=8)
    model = NeuralNgramModel(30, cfg).eval()
    x = torch.randint(0, 30, (6, 2))
    logits, _ = model(x)
    padded = torch.cat([torch.full((3, 2), 1), x])
    layer = model.reader.layers[0]
    for t in (0, 5):
        h = torch.zeros(2, 8)
        for w in padded[t + 1:t + 4]:  # oldest first
            h = torch.tanh(layer.weight_ih @ model.embedding(w).t() + layer.bias_ih[:, None]
                           + layer.weight_hh @ h.t() + layer.bias_hh[:, None]).t()
        assert torch.allclose(logits[t], model.decoder(h), atol=1e-5)
    before, newest = torch.tensor([[[2, 3, 4]]]), torch.tensor([[5]])  # one window: words 3, 4, 5
    for bptt, touched in ((0, {3, 4, 5}), (1, {5}), (2, {4, 5})):
        truncated = NeuralNgramModel(30, dataclasses.replace(cfg, bptt=bptt))
        truncated.load_state_dict(model.state_dict())
        out, _ = truncated(newest, (before,), targets=torch.tensor([[7]]))
        out.loss.backward()
        rows = {i for i in range(30) if truncated.embedding.weight.grad[i].abs().sum() > 0}
        assert rows == touched, (bptt, rows)
        with torch.no_grad():
            assert torch.allclose(truncated(x)[0], logits, atol=1e-6)


def test_recurrent_reader_trains_as_a_normal_run(corpus, tmp_path):
    summary = train_config(load_config("nplm-rnn", None, [f"data.path={corpus}", *SMALL]), tmp_path / "rnn",
                           progress=False)
    assert summary["final"]["valid"]["perplexity"] < 5, summary["final"]["valid"]  # train.seed 0-4: 2.77-3.19
    assert (summary["model"], summary["cell"], summary["layers"]) == ("nplm-rnn 3×8→16", "rnn", 1)


def test_training_writes_a_normal_run_with_per_epoch_metrics(run):
    for name in ("config.toml", "vocab.json", "metrics.jsonl", "summary.json", "plots/curves.png"):
        assert (run / name).exists(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for split in ("train", "valid"):
        rows = [r for r in records if r.get("split") == split]
        assert rows and all(r["perplexity"] > 1 and 0 <= r["accuracy"] <= 1 for r in rows), split
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["model"], summary["cell"], summary["layers"]) == ("nplm-linear 3×8→16", None, 1)
    # far below a unigram model of this text (~14), let alone uniform (29 words); train.seed 0-4: 2.51-2.61
    assert summary["final"]["valid"]["perplexity"] < 5, summary["final"]["valid"]


def test_eval_generate_inspect_report_and_serve_work_on_it(run, tmp_path, capsys):
    assert main(["eval", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["perplexity"] == pytest.approx(
        json.loads((run / "summary.json").read_text())["final"]["valid"]["perplexity"]
    )
    assert main(["generate", str(run), "--prompt", "the king went", "--length", "3", "--temperature", "0"]) == 0
    words = capsys.readouterr().out.splitlines()[1].split(" ")
    assert words[:5] == ["the", "king", "went", "to", "the"] and words[5] in PLACES, words  # it learned 'to the PLACE'
    assert main(["inspect", str(run), "neighbors", "king", "-k", "3"]) == 0
    assert capsys.readouterr().out.startswith("king:")
    assert main(["report", str(run), "--out", str(tmp_path / "r.html"), "--no-samples"]) == 0
    assert (tmp_path / "r.html").stat().st_size > 1000
    from rnnlab.serve import create_app

    playground = create_app(run).state.playground
    assert playground.info["vocab_size"] == json.loads((run / "summary.json").read_text())["vocab_size"]


def test_numpy_backend_reaches_the_same_perplexity(corpus, run, tmp_path):
    """The NumPy model's hand-written backward pass, at the same seed and steps: the same validation perplexity
    (±1%)."""
    summary = train_config(_config(corpus, "model.backend=numpy"), tmp_path / "np", progress=False)
    torch_ppl = json.loads((run / "summary.json").read_text())["final"]["valid"]["perplexity"]
    assert summary["final"]["valid"]["perplexity"] == pytest.approx(torch_ppl, rel=0.01)


def test_nplm_settings_are_checked():
    with pytest.raises(UserError, match="model.arch must be one of"):
        load_config("nplm", None, ["model.arch=mlp"])
    with pytest.raises(UserError, match="model.direct needs model.softmax=full"):
        load_config("nplm", None, ["model.direct=true", "model.softmax=adaptive"])
    with pytest.raises(UserError, match="model.activation"):
        load_config("nplm", None, ["model.activation=relu"])
    with pytest.raises(UserError, match="model.reader"):
        load_config("nplm", None, ["model.reader=attention"])
    with pytest.raises(UserError, match="model.bptt must be in"):
        load_config("nplm-rnn", None, ["model.bptt=4"])
    with pytest.raises(UserError, match="no NumPy twin"):
        load_config("nplm-rnn", None, ["model.backend=numpy"])


@pytest.mark.parametrize("softmax", ["full", "adaptive"])
def test_distribution_is_normalised_and_evaluation_exact(softmax):
    """evaluate() (streams, carried contexts) scores every token by the exact -log p of its c-word context."""
    from rnnlab.evaluate import evaluate

    torch.manual_seed(0)
    V = 40
    model = NeuralNgramModel(V, ModelConfig(arch="nplm", context=2, embed=5, hidden=16, softmax=softmax,
                                            cutoffs="10,25")).double().eval()
    data = np.random.default_rng(0).integers(0, V, 300)
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(data)[:, None])
        logp = logits[:, 0].log_softmax(-1)
        assert torch.allclose(logp.exp().sum(-1), torch.ones(300, dtype=torch.float64))
        by_hand = -logp[:-1].gather(1, torch.as_tensor(data[1:])[:, None]).mean().item()
    assert evaluate(model, data, batch_size=1, seq_len=1000)["loss"] == pytest.approx(by_hand, rel=1e-10)
    assert evaluate(model, data, batch_size=1, seq_len=7)["loss"] == pytest.approx(by_hand, rel=1e-10)


def test_sweep_over_the_context_size(corpus, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--preset", "nplm", "--grid", "model.context=1,3", "--out", str(out), "--no-progress",
                 *[arg for s in [f"data.path={corpus}", *SMALL, "train.max_steps=60"] for arg in ("--set", s)]]) == 0
    rows = json.loads((out / "sweep.json").read_text())
    assert [r["model.context"] for r in rows] == ["1", "3"]
    # one word of context cannot tell what follows 'the' (a noun or a place); three words can
    assert rows[1]["valid"] < rows[0]["valid"], rows
