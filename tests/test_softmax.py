"""model.softmax="adaptive": an exact distribution whose cheap training loss is
the same number as its full log-probabilities, evaluated exactly, trained,
checkpointed and sampled like any other model."""

import json
import math
import random

import pytest
import torch
from conftest import TINY, shared_data

from rnnlab.config import ModelConfig, load_config
from rnnlab.errors import UserError
from rnnlab.evaluate import evaluate
from rnnlab.models import build_model
from rnnlab.models.softmax import AdaptiveSoftmax
from rnnlab.runs import load_run
from rnnlab.trainer import read_metrics, train_config


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: a second OpenMP thread only waits, and on a loaded
    2-core machine it makes these tests several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def head(seed=0):
    torch.manual_seed(seed)
    return AdaptiveSoftmax(16, 300, [20, 100], div_value=2.0)


def test_loss_is_exact_log_probability():
    m = head()
    h, y = torch.randn(400, 16) * 3, (torch.rand(400) ** 2 * 300).long()
    assert ((y >= 20) & (y < 100)).any() and (y >= 100).any()  # every cluster is visited
    log_p = m.log_prob(h)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(400))
    out = m.loss(h, y)
    torch.testing.assert_close(out.loss, -log_p.gather(1, y[:, None]).mean())
    torch.testing.assert_close(out.loss, torch.nn.AdaptiveLogSoftmaxWithLoss.forward(m, h, y).loss)
    assert out.correct is None  # not counted in training mode
    m.eval()
    assert m.loss(h, y).correct.item() == (log_p.argmax(1) == y).sum().item()


def test_top1_needs_tails_when_clusters_lead():
    m = head()
    with torch.no_grad():
        m.head.bias[20:] = 50.0  # the cluster entries dominate every head row
    m.eval()
    h, y = torch.randn(64, 16), torch.randint(0, 300, (64,))
    assert m.loss(h, y).correct.item() == (m.log_prob(h).argmax(1) == y).sum().item()
    assert (m.log_prob(h).argmax(1) >= 20).all()


def test_language_model_logits_are_log_probabilities():
    model = build_model(ModelConfig(hidden=16, layers=1, softmax="adaptive", cutoffs="20,100", div_value=2.0),
                        300).eval()
    x = torch.randint(0, 300, (5, 3))
    with torch.no_grad():
        logits, _ = model(x)
        out, _ = model(x[:-1], targets=x[1:])
    assert logits.shape == (5, 3, 300)
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(5, 3))
    nll = -logits[:-1].gather(2, x[1:, :, None]).mean()
    torch.testing.assert_close(out.loss, nll)


@pytest.mark.parametrize("setting, message", [
    ("model.cutoffs=20,x", "comma-separated integers"),
    ("model.cutoffs=100,20", "increasing"),
    ("model.tie_weights=true", "cannot tie weights"),
    ("model.div_value=0.5", "div_value"),
])
def test_bad_settings_are_one_line_errors(setting, message):
    with pytest.raises(UserError, match=message):
        load_config("grimm-char", None, ["model.softmax=adaptive", setting])


def test_cutoffs_must_fit_the_vocabulary():
    with pytest.raises(UserError, match="needs a vocabulary larger than 10000"):
        build_model(ModelConfig(softmax="adaptive", cutoffs="2000,10000"), 90)
    with pytest.raises(UserError, match="chosen from the training data"):
        build_model(ModelConfig(softmax="adaptive", cutoffs="auto"), 90)


def test_auto_cutoffs_follow_the_frequencies():
    import numpy as np

    from rnnlab.models.softmax import auto_cutoffs, fit_output

    zipf = np.round(1e6 / np.arange(1, 20_001)).astype(np.int64)  # ids sorted by frequency, as Vocab.build sorts them
    covered = np.cumsum(zipf) / zipf.sum()
    cutoffs = auto_cutoffs(zipf)
    assert len(cutoffs) == 2 and cutoffs[0] < cutoffs[1] < len(zipf)
    for cut, share in zip(cutoffs, (0.83, 0.97)):
        assert abs(covered[cut - 1] - share) < 0.01, (cutoffs, covered[cut - 1])
    assert auto_cutoffs(zipf[:3000]) == []  # a small vocabulary: the full softmax
    m = ModelConfig(softmax="adaptive", cutoffs="auto")
    fit_output(m, zipf)
    assert (m.softmax, m.cutoffs) == ("adaptive", f"{cutoffs[0]},{cutoffs[1]}")
    m = ModelConfig(softmax="adaptive", cutoffs="auto")
    fit_output(m, zipf[:500])
    assert m.softmax == "full"
    m = ModelConfig(softmax="adaptive", cutoffs="30,60")
    fit_output(m, zipf)
    assert m.cutoffs == "30,60"  # numeric cutoffs are left as they are


def test_auto_cutoffs_keep_browns_committed_split():
    """The Brown results (benchmarks/results/brown_lm_study.md) were measured with 2000,10000."""

    from rnnlab.data.corpus import load_corpus
    from rnnlab.models.softmax import fit_output_to_corpus

    cfg = load_config("lstm-dropout", None, [f"data.path={shared_data('brown')}"])
    assert cfg.model.cutoffs == "auto"
    corpus = load_corpus(cfg.data)
    fit_output_to_corpus(cfg.model, corpus)
    assert cfg.model.cutoffs == "2000,10000"


def test_word_preset_trains_on_a_7000_word_corpus(tmp_path, capsys):
    """`model.cutoffs=2000,10000 needs a vocabulary larger than 10000 tokens` once
    stopped every word preset on a smaller corpus: PTB's validation text as training data."""
    from rnnlab.cli import main

    ptb = shared_data("ptb-sample")
    data = tmp_path / "ptb"
    data.mkdir()
    (data / "train.txt").write_text((ptb / "ptb.valid.txt").read_text())
    (data / "valid.txt").write_text("".join((ptb / "ptb.test.txt").read_text().splitlines(True)[:200]))
    run = tmp_path / "run"
    assert main(["train", "--preset", "lstm-dropout", "--set", f"data.path={data}", "--set", "train.max_steps=50",
                 "--run-dir", str(run), "--no-progress"]) == 0
    stored = load_config(None, str(run / "config.toml"))
    assert stored.model.softmax == "adaptive" and stored.model.cutoffs == "1100,3900"
    summary = json.loads((run / "summary.json").read_text())
    assert 5000 < summary["vocab_size"] < 8000
    assert summary["final"]["valid"]["perplexity"] < summary["vocab_size"] / 5


@pytest.mark.skipif(torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has native bf16")
def test_bf16_refused_without_native_support(tmp_path):
    with pytest.raises(UserError, match="native bf16"):
        train_config(load_config("grimm-char", None, TINY + ["train.bf16=on", "train.max_steps=1"]), tmp_path / "r",
                     progress=False)


def test_bf16_auto_follows_the_cpu_and_learns_as_float32_does(tmp_path):
    """auto: bf16 autocast exactly where the CPU has it natively, and there it
    learns what float32 learns (evaluation is float32 either way)."""
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    settings = TINY + ["train.max_steps=200", "model.hidden=32", "train.batch_size=16"]
    runs = {mode: train_config(load_config("grimm-char", None, settings + [f"train.bf16={mode}"]), tmp_path / mode,
                               progress=False)
            for mode in ("auto", "off")}
    assert runs["auto"]["bf16"] is native and runs["off"]["bf16"] is False
    bpc = {mode: r["final"]["valid"]["bpc"] for mode, r in runs.items()}
    # train.seed 0-4 on this AVX-512/bf16 CPU: off 3.837-3.906, |auto - off| <= 0.0006 (0 under AVX2, where
    # auto is off): below the unigram entropy with ~0.1 to spare, and bf16 within 0.05 of float32 with room.
    assert bpc["off"] < 4.0  # character unigrams: ~4.1 bits; uniform: 6.5
    assert abs(bpc["auto"] - bpc["off"]) < 0.05, bpc
    numpy_cfg = load_config("grimm-char", None, TINY + ["train.bf16=auto", "model.backend=numpy", "train.max_steps=1"])
    assert train_config(numpy_cfg, tmp_path / "n", progress=False)["bf16"] is False  # autocast means nothing to NumPy
    with pytest.raises(UserError, match="must be one of off, on, auto"):
        load_config("grimm-char", None, ["train.bf16=yes"])


@pytest.fixture
def word_corpus(tmp_path):
    """Zipf-distributed words: ~120 types, most of the mass on a few."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(120)]
    weights = [1 / (i + 1) for i in range(120)]
    for split, lines in (("train", 400), ("valid", 60)):
        text = "\n".join(" ".join(rng.choices(words, weights, k=12)) for _ in range(lines))
        (tmp_path / f"{split}.txt").write_text(text + "\n", encoding="utf-8")
    return tmp_path


def test_adaptive_word_model_trains_evaluates_and_reloads(word_corpus, tmp_path):
    cfg = load_config("grimm-char", None, TINY + [
        f"data.path={word_corpus}", "data.level=word", "model.softmax=adaptive", "model.cutoffs=10,40",
        "model.div_value=2", "model.hidden=24", "train.max_steps=60", "train.eval_every=30", "train.lr=1e-2"])
    summary = train_config(cfg, tmp_path / "run", progress=False)
    valid = summary["final"]["valid"]
    uniform = math.log(summary["vocab_size"])
    assert valid["loss"] < uniform - 0.3  # it learned the word frequencies at least (seeds 0-4: by 0.61-0.63 more)
    train_records = [r for r in read_metrics(tmp_path / "run") if r.get("split") == "train"]
    assert train_records and all(math.isnan(r["accuracy"]) for r in train_records)  # not counted in training
    assert 0 < valid["accuracy"] < 1
    # The checkpoint reloads into the same model; evaluation by hand from log_prob agrees.
    model, vocab, cfg2, _ = load_run(tmp_path / "run", "last")
    from rnnlab.data.corpus import load_corpus

    data = load_corpus(cfg2.data, vocab).valid
    again = evaluate(model, data, cfg.train.eval_batch_size, cfg.train.eval_seq_len)
    assert again["loss"] == pytest.approx(valid["loss"], rel=1e-5)
    with torch.no_grad():
        x = torch.as_tensor(data[:-1])[:, None]
        logits, _ = model(x)
        by_hand = -logits[:, 0].gather(1, torch.as_tensor(data[1:])[:, None]).mean().item()
    one_stream = evaluate(model, data, 1, 10_000)
    assert one_stream["loss"] == pytest.approx(by_hand, rel=1e-5)
