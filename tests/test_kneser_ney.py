"""Interpolated Kneser-Ney: normalisation, a hand-computed value, Brown perplexity."""

import math

import numpy as np
import pytest
from conftest import shared_data

from rnnlab.config import DataConfig
from rnnlab.data.corpus import load_corpus
from rnnlab.errors import UserError
from rnnlab.ngram.kneser_ney import KneserNey


def toy():
    # ids of "a b a b c" with a vocabulary {a, b, c, d}: d never occurs.
    return KneserNey(vocab_size=4, order=3, discount=0.75).fit(np.array([0, 1, 0, 1, 2]))


def test_hand_computed_value():
    m = toy()
    # Unigram level: continuation counts N1+(. w) = 1 for a, b, c (3 bigram types), 0 for d.
    p1_c = (1 - 0.75) / 3 + 0.75 * 3 / 3 * (1 / 4)  # = 0.2708333
    # Bigram level, context b: continuation counts N1+(. b a) = N1+(. b c) = 1.
    p2_c = (1 - 0.75) / 2 + 0.75 * 2 / 2 * p1_c  # = 0.328125
    # Trigram level, context (a b): c(a b a) = c(a b c) = 1.
    p3_c = (1 - 0.75) / 2 + 0.75 * 2 / 2 * p2_c  # = 0.37109375
    assert m.prob(np.array([[0, 1]]), np.array([2]))[0] == pytest.approx(p3_c, abs=1e-15)
    assert p3_c == pytest.approx(0.37109375)
    assert m.distribution([])[3] == pytest.approx(0.75 * 3 / 3 / 4)  # unseen word: only the uniform share
    # An unseen context falls back to the lower orders entirely.
    assert m.prob(np.array([[3, 3]]), np.array([2]))[0] == pytest.approx(p1_c)
    assert m.prob(np.array([[3, 1]]), np.array([2]))[0] == pytest.approx(p2_c)
    # Stream scoring: the second token uses a one-word history (bigram level).
    lp = m.token_logprobs(np.array([0, 1, 2]))
    assert lp[1] == pytest.approx(math.log(p3_c))
    p2_b_given_a = (1 - 0.75) / 1 + 0.75 * 1 / 1 * ((1 - 0.75) / 3 + 0.75 * 3 / 3 / 4)
    assert lp[0] == pytest.approx(math.log(p2_b_given_a))


@pytest.mark.parametrize("context", [[], [0], [1], [3], [0, 1], [1, 0], [2, 0], [3, 3], [1, 2]])
def test_distributions_sum_to_one_on_toy(context):
    d = toy().distribution(context)
    assert d.shape == (4,) and (d > 0).all()
    assert d.sum() == pytest.approx(1.0, abs=1e-12)


def test_distributions_sum_to_one_on_a_random_corpus():
    rng = np.random.default_rng(0)
    ids = rng.zipf(1.5, size=5000) % 50
    m = KneserNey(50).fit(ids)
    for context in ([ids[10], ids[11]], [ids[100], ids[101]], [49, 48], [3], []):
        assert m.distribution(context).sum() == pytest.approx(1.0, abs=1e-12)
    # Vectorised prob() agrees with distribution().
    hist = np.array([[ids[10], ids[11]]] * 50)
    assert np.allclose(m.prob(hist, np.arange(50)), m.distribution([ids[10], ids[11]]))


def test_errors():
    with pytest.raises(UserError):
        KneserNey(4, discount=1.5)
    with pytest.raises(UserError, match="not fitted"):
        KneserNey(4).perplexity(np.array([0, 1, 2]))
    with pytest.raises(UserError, match="out of range"):
        KneserNey(4).fit(np.array([0, 1, 7]))


def test_brown_perplexity():
    corpus = load_corpus(DataConfig(path=str(shared_data("brown")), level="word"))
    m = KneserNey(len(corpus.vocab)).fit(corpus.train)
    valid, test = m.perplexity(corpus.valid), m.perplexity(corpus.test)
    assert 225 < valid < 235 and 213 < test < 223  # reference figures: 230 and 218
