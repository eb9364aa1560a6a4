"""The NumPy sampling step (rnnlab/models/stepper.py) and the sampler
(rnnlab/generate.py): the same numbers as the PyTorch model, the same tokens
as re-running the prefix, and the distribution it claims to sample."""

import numpy as np
import pytest
import torch

from rnnlab import cell_registry
from rnnlab.config import ModelConfig
from rnnlab.data.vocab import Vocab
from rnnlab.generate import choose, choose_in_clusters, generate, never_sample, prompt_ids, sample_tokens, uniforms
from rnnlab.models import build_model
from rnnlab.models import stepper as stepper_module
from rnnlab.models.stepper import Stepper

CASES = {
    "lstm": dict(cell="lstm"),
    "lstm-single-bias": dict(cell="lstm", bias="single"),
    "gru-old": dict(cell="gru"),
    "gru-new": dict(cell="gru", gru_z="new"),
    "rnn-tanh": dict(cell="rnn"),
    "rnn-relu": dict(cell="rnn", nonlinearity="relu"),
    "lstm-tied": dict(cell="lstm", embed=24, tie_weights=True),
    "lstm-adaptive": dict(cell="lstm", softmax="adaptive", cutoffs="6,12"),
    "gru-adaptive-1layer": dict(cell="gru", layers=1, softmax="adaptive", cutoffs="20"),
    "gru-reset-before-adaptive": dict(cell="gru", gru_reset="before", softmax="adaptive", cutoffs="6,12"),
}
# Every variant of every cell the table says the stepper implements.
CASES.update(
    {label: dict(cell=cell.name, **options) for cell, label, options in cell_registry.variants() if cell.stepper}
)


@pytest.mark.parametrize("table", [True, False], ids=["token-table", "no-table"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES)
def test_stepper_matches_the_model_step_by_step(case, dtype, table, monkeypatch):
    """Same weights, same tokens, three streams: the stepper's distribution
    equals the model's at every step (log-softmax, since an adaptive head's
    stepper logits are unnormalised); with the first layer's per-token table
    (small vocabularies) and without it (large ones)."""
    monkeypatch.setattr(stepper_module, "TABLE_ENTRIES", 1 << 20 if table else 0)
    torch.manual_seed(0)
    cfg = ModelConfig(**{"hidden": 24, "layers": 2, "embed": 16, **CASES[case]})
    model = build_model(cfg, 40).to(dtype).eval()
    tokens = torch.randint(0, 40, (12, 3))
    with torch.no_grad():
        expected, _ = model(tokens)
        stepper = Stepper(model, model.init_state(3))
        got = np.stack([stepper(t.numpy()) for t in tokens])
    assert (stepper.x_table is not None) == table
    tol = 2e-5 if dtype == torch.float32 else 1e-10
    np.testing.assert_allclose(torch.from_numpy(got).log_softmax(-1).numpy(),
                               expected.log_softmax(-1).numpy(), atol=tol, rtol=0)


def test_cells_without_a_stepper_are_left_to_the_model():
    for name, cell in cell_registry.CELLS.items():
        model = build_model(ModelConfig(cell=name, hidden=8, embed=8), 10)
        assert Stepper.supports(model) == (cell.stepper is not None)
    assert cell_registry.CELLS["phased_lstm"].stepper is None


@pytest.mark.parametrize("case,level,top_p", [("lstm", "char", 0.95), ("gru-old", "char", 0.95),
                                              ("lstm-adaptive", "char", 1.0), ("lstm-adaptive", "word", 1.0)])
def test_sampling_with_carried_state_equals_rerunning_the_prefix(case, level, top_p):
    """At temperature 1, under one seed, streaming sampling gives the very
    tokens that re-running the whole prefix for every token gives (a word model
    with an adaptive softmax samples cluster by cluster on the streaming side)."""
    torch.manual_seed(1)
    text = "the cat sat on a mat and the dog ate a bone so the cat ran .\n" * 2
    vocab = Vocab.build(list(text) if level == "char" else text.split(), level)
    model = build_model(ModelConfig(**{"hidden": 32, "embed": 16, **CASES[case]}), len(vocab)).eval()
    streamed = [int(t[0]) for t in sample_tokens(model, vocab, "the cat", 60, temperature=1.0, top_p=top_p, seed=5)]
    u = uniforms(torch.Generator().manual_seed(5), 1)
    ids = prompt_ids(vocab, "the cat").tolist()
    rerun = []
    with torch.no_grad():
        for _ in range(60):
            logits, _ = model(torch.tensor(ids)[:, None])
            token = int(choose(never_sample(logits[-1], vocab), 1.0, 0, top_p, next(u))[0])
            ids.append(token)
            rerun.append(token)
    assert streamed == rerun


def test_choose_samples_the_softmax_distribution():
    """Frequencies over 200,000 draws match softmax(logits / T) (chi-square,
    p > 1e-4 for a correct sampler) and a zero-probability token never appears."""
    logits = np.log(np.array([[0.5, 0.2, 1.0, 0.15, 0.1, 0.05]], np.float32))
    logits[0, 2] = -np.inf
    n, T = 200_000, 0.7
    u = uniforms(torch.Generator().manual_seed(0), n, block=1)
    draws = choose(np.repeat(logits, n, 0), T, 0, 1.0, next(u))
    counts = np.bincount(draws, minlength=6)
    p = np.exp(logits[0] / T) / np.exp(logits[0] / T).sum()
    assert counts[2] == 0
    keep = p > 0
    chi2 = (((counts[keep] - n * p[keep]) ** 2) / (n * p[keep])).sum()
    assert chi2 < 23.5  # 4 degrees of freedom: P(chi2 > 23.5) ≈ 1e-4


def test_generation_is_reproducible_and_leaves_grad_mode_alone():
    """A seed fixes the samples; sampling does not leak torch.no_grad into the
    caller between tokens (the generator yields outside no_grad blocks)."""
    torch.manual_seed(0)
    vocab = Vocab.build(list("hello world\n"), "char")
    model = build_model(ModelConfig(cell="gru", hidden=16, embed=8), len(vocab))
    for _token in sample_tokens(model, vocab, "he", 5, seed=3):
        assert torch.is_grad_enabled()
    assert generate(model, vocab, "he", 30, num=2, seed=3) == generate(model, vocab, "he", 30, num=2, seed=3)



def test_sampling_cluster_by_cluster_gives_the_tokens_of_the_full_distribution():
    """A word model with an adaptive softmax at temperature 1 samples through
    its clusters (rnnlab.generate.choose_in_clusters); with the same uniforms
    it picks what inverse-CDF sampling over all V probabilities picks."""
    torch.manual_seed(2)
    vocab = Vocab.build([f"w{i}" for i in range(60) for _ in range(60 - i)], "word")
    model = build_model(ModelConfig(hidden=16, embed=8, softmax="adaptive", cutoffs="8,30"), len(vocab)).eval()
    with torch.no_grad():
        stepper = Stepper(model, model.init_state(4))
    rng = np.random.default_rng(0)
    picked_tail = 0
    for _ in range(200):
        stepper.advance(rng.integers(0, len(vocab), 4))
        u = rng.random(4)
        tokens = choose_in_clusters(stepper, u)
        assert tokens.tolist() == choose(stepper.logits(), 1.0, 0, 1.0, u).tolist()
        picked_tail += int((tokens >= 8).sum())
    assert picked_tail > 50  # the tail clusters were exercised
