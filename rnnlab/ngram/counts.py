"""N-gram counts of a corpus: the most frequent n-grams and how counts are
distributed (the course's look at the data before modelling it).

The corpus is read as the models read it (rnnlab.data: one token stream per
split, `<eos>` at every line end, words seen too rarely mapped to `<unk>`),
and every window of n consecutive tokens of the training stream is one
n-gram. The frequency histogram is the count of counts: how many distinct
n-grams occur exactly k times. Most occur once (Zipf), which is why an n-gram
model needs smoothing and why a neural model that shares statistics between
similar words helps.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from rnnlab.config import DataConfig
from rnnlab.data.corpus import load_corpus
from rnnlab.errors import UserError


def ngram_counts(ids: np.ndarray, n: int) -> Counter:
    """Counts of every window of n consecutive ids: {(id_1, ..., id_n): count}."""
    if n < 1:
        raise UserError(f"n must be >= 1, got {n}")
    ids = np.asarray(ids)
    if len(ids) < n:
        return Counter()
    windows = np.lib.stride_tricks.sliding_window_view(ids, n)
    grams, counts = np.unique(windows, axis=0, return_counts=True)
    return Counter({tuple(int(t) for t in g): int(c) for g, c in zip(grams, counts)})


def count_of_counts(counts: Counter) -> dict[int, int]:
    """{k: number of distinct n-grams that occur exactly k times}, k ascending."""
    return dict(sorted(Counter(counts.values()).items()))


def corpus_ngrams(path: str, n: int = 4, level: str = "word", min_count: int = 1) -> tuple[Counter, list[str]]:
    """The training split's n-gram counts and the vocabulary's tokens."""
    corpus = load_corpus(DataConfig(path=path, level=level, min_count=min_count))
    return ngram_counts(corpus.train, n), corpus.vocab.itos


def plot_histogram(hist: dict[int, int], n: int, path: Path) -> Path:
    """Log-log count of counts."""
    from rnnlab.report.plots import COLORS, new_figure, save

    fig, (ax,) = new_figure(1, width=5.0)
    ax.loglog(list(hist), list(hist.values()), marker="o", ms=3, linestyle="", color=COLORS[0])
    ax.set(xlabel=f"times a {n}-gram occurs (k)", ylabel=f"distinct {n}-grams occurring k times",
           title=f"{n}-gram frequency histogram")
    return save(fig, path)
