"""Interpolated Kneser-Ney n-gram model (Chen & Goodman 1998, section 3.5), exact.

For a trigram model with one absolute discount D (0.75 at every order)::

    P3(w | u v) = max(c(u v w) - D, 0) / c(u v .)
                  + D * N1+(u v .) / c(u v .) * P2(w | v)

    P2(w | v)   = max(N1+(. v w) - D, 0) / N1+(. v .)
                  + D * N1+(v .)' / N1+(. v .) * P1(w)

    P1(w)       = max(N1+(. w) - D, 0) / N1+(. .)
                  + D * |{w : N1+(. w) > 0}| / N1+(. .) * 1 / V

where c are raw counts (used only at the highest order), N1+(. v w) is the
number of distinct words u with c(u v w) > 0 (a *continuation* count),
N1+(. v .) = sum over w of N1+(. v w), N1+(v .)' = |{w : N1+(. v w) > 0}|,
and V is the vocabulary size, so the recursion ends in the uniform
distribution over the vocabulary and every distribution sums to exactly 1.

Unseen contexts: when c(u v .) = 0 the trigram level has no mass of its own
and P3(w | u v) = P2(w | v); likewise P2(w | v) = P1(w) when N1+(. v .) = 0.

Sentence boundaries: like the recurrent models, the model reads each split as
ONE token stream (`<eos>` appended to every line by `rnnlab.data.vocab.tokenize`),
so n-grams run across line ends and `<eos>` is an ordinary word that is
predicted and serves as context; there are no `<s>` padding tokens. Counts come
from every window of the training stream. Evaluation predicts every token of a
stream but the first (the same targets as the recurrent models): the second
token is predicted from a one-word history (P2), the rest from two words.

The general order n >= 1 is supported; the default and the tested case is 3.
"""

from __future__ import annotations

import math

import numpy as np

from rnnlab.errors import UserError

CHUNK = 20_000  # positions scored at a time (a progress step: ~0.1 s on Brown)


def _keys(ids: np.ndarray, n: int, V: int) -> np.ndarray:
    """Integer key of every n-gram window of `ids`: sum_i ids[t+i] * V^(n-1-i)."""
    L = len(ids) - n + 1
    key = np.zeros(max(L, 0), dtype=np.int64)
    for i in range(n):
        key = key * V + ids[i : i + L]
    return key


class _Table:
    """A sorted key -> value table with vectorised lookup (missing keys give 0)."""

    def __init__(self, keys: np.ndarray, values: np.ndarray):
        order = np.argsort(keys, kind="stable")
        self.keys, self.values = keys[order], values[order]

    def get(self, query: np.ndarray) -> np.ndarray:
        query = np.asarray(query, dtype=np.int64)
        if len(self.keys) == 0:
            return np.zeros(query.shape, dtype=self.values.dtype)
        pos = np.searchsorted(self.keys, query)
        pos = np.minimum(pos, len(self.keys) - 1)
        hit = self.keys[pos] == query
        return np.where(hit, self.values[pos], 0).astype(self.values.dtype)


class KneserNey:
    """Interpolated Kneser-Ney model of order `order` over token ids in [0, vocab_size).

    `fit(train_ids)`, then `logprob(ids)` / `perplexity(ids)` on a stream, or
    `distribution(context)` for the whole next-word distribution.
    """

    def __init__(self, vocab_size: int, order: int = 3, discount: float = 0.75):
        if order < 1:
            raise UserError(f"n-gram order must be at least 1, got {order}")
        if not 0.0 < discount < 1.0:
            raise UserError(f"Kneser-Ney discount must be in (0, 1), got {discount}")
        if vocab_size ** order >= 2**62:
            raise UserError(f"order {order} with {vocab_size} words overflows the 64-bit n-gram keys")
        self.V, self.order, self.D = int(vocab_size), int(order), float(discount)
        self.fitted = False

    def fit(self, ids: np.ndarray) -> KneserNey:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) < self.order:
            raise UserError(f"training stream has {len(ids)} tokens, fewer than the order {self.order}")
        if ids.min() < 0 or ids.max() >= self.V:
            raise UserError("token ids out of range of the vocabulary")
        V, n = self.V, self.order
        # counts[k] for the k-gram level (k = 1..n): key -> count used at that level,
        # raw counts at the top, continuation counts (distinct left extensions) below.
        self.counts: dict[int, _Table] = {}
        self.ctx_total: dict[int, _Table] = {}  # context key -> sum_w count(context w)
        self.ctx_types: dict[int, _Table] = {}  # context key -> |{w : count(context w) > 0}|
        top_keys, top_counts = np.unique(_keys(ids, n, V), return_counts=True)
        level_keys, level_counts = top_keys, top_counts
        for k in range(n, 0, -1):
            self.counts[k] = _Table(level_keys, level_counts.astype(np.int64))
            ctx = level_keys // V  # the (k-1)-word context of each k-gram (0 for k = 1)
            uctx, inverse = np.unique(ctx, return_inverse=True)
            self.ctx_total[k] = _Table(uctx, np.bincount(inverse, weights=level_counts).astype(np.int64))
            self.ctx_types[k] = _Table(uctx, np.bincount(inverse).astype(np.int64))
            if k > 1:
                # Continuation counts of the (k-1)-grams: number of distinct words to their left.
                suffix = level_keys % (V ** (k - 1))
                level_keys, level_counts = np.unique(suffix, return_counts=True)
        self.fitted = True
        return self

    # -- probabilities -------------------------------------------------------

    def _prob(self, k: int, hist: np.ndarray, w: np.ndarray) -> np.ndarray:
        """P_k(w | last k-1 words), vectorised. hist: [N, n-1] ids (rightmost = previous word)."""
        V, D = self.V, self.D
        if k == 0:
            return np.full(w.shape, 1.0 / V)
        lower = self._prob(k - 1, hist, w)
        ctx = np.zeros(w.shape, dtype=np.int64)
        for i in range(k - 1):
            ctx = ctx * V + hist[:, hist.shape[1] - (k - 1) + i]
        total = self.ctx_total[k].get(ctx).astype(np.float64)
        types = self.ctx_types[k].get(ctx).astype(np.float64)
        c = self.counts[k].get(ctx * V + w).astype(np.float64)
        seen = total > 0
        safe = np.where(seen, total, 1.0)
        p = np.maximum(c - D, 0.0) / safe + D * types / safe * lower
        return np.where(seen, p, lower)

    def prob(self, history: np.ndarray, w: np.ndarray) -> np.ndarray:
        """P(w[i] | history[i]) for a batch: history [N, order-1] ids, w [N] ids."""
        self._check()
        w = np.asarray(w, dtype=np.int64)
        hist = np.asarray(history, dtype=np.int64).reshape(len(w), self.order - 1)
        return self._prob(self.order, hist, w)

    def distribution(self, context) -> np.ndarray:
        """The whole next-word distribution [V] after `context` (the last order-1
        ids are used; a shorter context uses the matching lower order)."""
        self._check()
        context = [int(t) for t in context][-(self.order - 1):] if self.order > 1 else []
        k = len(context) + 1
        w = np.arange(self.V, dtype=np.int64)
        hist = np.tile(np.asarray(context, dtype=np.int64), (self.V, 1)).reshape(self.V, len(context))
        pad = np.zeros((self.V, self.order - 1 - len(context)), dtype=np.int64)
        return self._prob(k, np.concatenate([pad, hist], axis=1), w)

    def token_logprobs(self, ids: np.ndarray, on_chunk=None) -> np.ndarray:
        """Natural-log probability of ids[1:], each given the tokens before it in the stream, scored
        CHUNK positions at a time; `on_chunk(done, total)` is called after each (a progress bar)."""
        self._check()
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) < 2:
            raise UserError("a stream needs at least two tokens to be scored")
        m = self.order - 1
        out = np.empty(len(ids) - 1)
        # Positions with a full history.
        if len(ids) > m:
            positions = np.arange(max(m, 1), len(ids))
            chunks = range(0, len(positions), CHUNK)
            for done, first in enumerate(chunks, 1):
                t = positions[first:first + CHUNK]
                hist = np.stack([ids[t - m + i] for i in range(m)], axis=1) if m else np.zeros((len(t), 0), np.int64)
                out[t - 1] = np.log(self._prob(self.order, hist, ids[t]))
                if on_chunk is not None:
                    on_chunk(done, len(chunks))
        # The first positions of the stream: shorter histories, lower orders.
        for t in range(1, min(m, len(ids))):
            hist = np.zeros((1, m), dtype=np.int64)
            hist[0, m - t:] = ids[:t]
            out[t - 1] = np.log(self._prob(t + 1, hist, ids[t : t + 1]))[0]
        return out

    def perplexity(self, ids: np.ndarray, on_chunk=None) -> float:
        return float(math.exp(-self.token_logprobs(ids, on_chunk).mean()))

    def _check(self) -> None:
        if not self.fitted:
            raise UserError("the Kneser-Ney model is not fitted: call fit(train_ids) first")


def kn_perplexity(corpus, order: int = 3, discount: float = 0.75) -> dict[str, float]:
    """Fit on corpus.train and return {"valid": ppl, "test": ppl} (test if present)."""
    model = KneserNey(len(corpus.vocab), order, discount).fit(corpus.train)
    out = {"valid": model.perplexity(corpus.valid)}
    if corpus.test is not None:
        out["test"] = model.perplexity(corpus.test)
    return out
