"""The adaptive softmax output layer (Grave et al. 2017), `model.softmax = "adaptive"`.

A full softmax costs V·H multiply-adds per token; for a word model that is
most of the arithmetic (V = 17,129 on Brown, H = 200). The adaptive softmax
splits the frequency-sorted vocabulary at `model.cutoffs` into a head
(the most frequent words plus one entry per cluster) and tail clusters of
rarer words, each reached through a smaller projection (H / div_value^k):

    p(w | h) = softmax(W_head h)[w]                                   w in the head
    p(w | h) = softmax(W_head h)[cluster k] · softmax(U_k P_k h)[w]     w in tail cluster k

This is an exact, normalised distribution over the whole vocabulary, not an
approximation of another model: the loss scores each token with the head and
its own cluster only (cost ≈ head size) and is exactly -log p(y | h), so
training and evaluation share it; `log_prob` gives all V log-probabilities
for sampling. Token ids must be
sorted by frequency, which `Vocab.build` guarantees (specials first).

Parameters and `log_prob` are torch's `nn.AdaptiveLogSoftmaxWithLoss`
(`decoder.head.*`, `decoder.tail.{k}.{0,1}.weight`); the training loss is
written out here so that evaluation gets the exact top-1 count from the
head's scores (training skips it: see `Loss`).
The language model uses two entry points of every head: `logits(h)` and
`loss(h, y)`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rnnlab.config import ModelConfig
from rnnlab.errors import UserError

# model.cutoffs = "auto" (see `auto_cutoffs`).
FULL_BELOW = 4000  # words: below this the full softmax (V·H at H = 200 is then the 2×200 LSTM's own cost)
COVERAGE = (0.83, 0.97)  # of the training tokens: the head's share, then the head's and first cluster's


class Loss(NamedTuple):
    """What a head returns for a batch with targets: the mean negative
    log-likelihood (nats/token) and how many targets were the top-1 guess
    (None where counting would cost more than the step: an adaptive head in
    training, whose top-1 often lies in a tail cluster)."""

    loss: torch.Tensor
    correct: torch.Tensor | None


def full_loss(logits: torch.Tensor, targets: torch.Tensor) -> Loss:
    """The plain softmax's loss from logits [..., V] and targets [...]."""
    logits, targets = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    correct = (logits.detach().argmax(-1) == targets).sum()
    if logits.dtype in (torch.bfloat16, torch.float16):  # autocast: the softmax itself in float32
        logits = logits.float()
    return Loss(F.cross_entropy(logits, targets), correct)


def auto_cutoffs(counts: np.ndarray) -> list[int]:
    """Cutoffs for a vocabulary from its tokens' training counts, in id order
    (ids sorted by frequency, specials first): the head ends where the tokens
    so far cover 83 % of the training text, the first tail cluster at 97 %,
    each rounded to two significant digits. Grave et al. (2017) put most of
    the probability mass in a small head; these two shares give Brown's
    17,129 training words the 2000,10000 split that its results were measured
    with. [] (a full softmax) for a vocabulary under FULL_BELOW words."""
    vocab_size = len(counts)
    if vocab_size < FULL_BELOW or counts.sum() == 0:
        return []
    covered = np.cumsum(counts) / counts.sum()
    cutoffs = []
    for share in COVERAGE:
        n = int(np.searchsorted(covered, share)) + 1  # the first n ids cover `share`
        n = round(n, 2 - len(str(n)))  # two significant digits
        if (cutoffs[-1] if cutoffs else 0) < n < vocab_size:
            cutoffs.append(n)
    return cutoffs


def fit_output(m: ModelConfig, counts: np.ndarray) -> None:
    """Resolve model.cutoffs = "auto" in place from the training counts (see
    `auto_cutoffs`), so that the configuration a run stores is the one it
    trained and reloads with: an adaptive softmax with numeric cutoffs, or
    model.softmax = "full" for a small vocabulary."""
    if m.softmax != "adaptive" or m.cutoffs != "auto":
        return
    cutoffs = auto_cutoffs(np.asarray(counts))
    if cutoffs:
        m.cutoffs = ",".join(map(str, cutoffs))
    else:
        m.softmax = "full"


def fit_output_to_corpus(m: ModelConfig, corpus) -> None:
    """`fit_output` from a corpus's training split, as a run does when it starts
    (a corpus: its `train` token ids and its `vocab`)."""
    fit_output(m, np.bincount(corpus.train, minlength=len(corpus.vocab)))


class AdaptiveSoftmax(nn.AdaptiveLogSoftmaxWithLoss):
    def __init__(self, hidden: int, vocab_size: int, cutoffs: list[int], div_value: float = 4.0):
        if cutoffs[-1] >= vocab_size:
            raise UserError(
                f"model.cutoffs={','.join(map(str, cutoffs))} needs a vocabulary larger than "
                f"{cutoffs[-1]} tokens; this one has {vocab_size} (lower the cutoffs or use model.softmax=full)"
            )
        super().__init__(hidden, vocab_size, cutoffs, div_value=div_value, head_bias=True)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """h [..., H] → log-probabilities [..., V]: exact and normalised, so
        they serve wherever logits do (softmax, argmax, temperature)."""
        return self.log_prob(h.reshape(-1, h.shape[-1])).view(*h.shape[:-1], self.n_classes)

    def loss(self, h: torch.Tensor, targets: torch.Tensor) -> Loss:
        """Every token through the head, and through its own cluster only if
        it is a tail word: the exact -log p(y | h) of the full distribution
        (what `log_prob` would give), at the cost of the head."""
        h, targets = h.reshape(-1, h.shape[-1]), targets.reshape(-1)
        head = self.head(h)
        head_targets, tail_nll = targets.clone(), 0.0
        for k, (low, high) in enumerate(zip(self.cutoffs, self.cutoffs[1:])):
            rows = ((targets >= low) & (targets < high)).nonzero().squeeze(1)
            if len(rows):
                head_targets[rows] = self.shortlist_size + k  # the head's entry for cluster k
                tail_nll = tail_nll + F.cross_entropy(self.tail[k](h[rows]), targets[rows] - low, reduction="sum")
        loss = (F.cross_entropy(head, head_targets, reduction="sum") + tail_nll) / len(targets)
        correct = None if self.training else (self._top1(h.detach(), head.detach()) == targets).sum()
        return Loss(loss, correct)

    @torch.no_grad()
    def _top1(self, h: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        """Exact argmax of the full distribution, cheaply: a head word that beats
        every cluster entry beats every tail word too (p(w') ≤ p(cluster));
        only rows whose best head entry is a cluster need their tail scored."""
        best = head.argmax(1)
        tail = (best >= self.shortlist_size).nonzero().squeeze(1)
        if len(tail):
            best[tail] = self.log_prob(h[tail]).argmax(1)
        return best
