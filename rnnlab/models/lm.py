"""The recurrent language model: embedding → L recurrent layers → linear decoder.

    e_t = E[x_t]                      (dropout)
    h_t = stack(e_t, h_{t-1})         (dropout between layers and after the last)
    p(x_{t+1} | x_≤t) = softmax(W h_t + b)

With weight tying (Press & Wolf 2017, Inan et al. 2017) W is E itself and
`decoder.weight` does not exist. Parameter names are the contract shared with
the NumPy backend: `embedding.weight`, `rnn.layers.{l}.*`, `decoder.weight`,
`decoder.bias`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnnlab.config import ModelConfig
from rnnlab.models.stack import RecurrentStack


class Decoder(nn.Module):
    def __init__(self, hidden: int, vocab_size: int, tied: nn.Embedding | None = None):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self._tied = [tied] if tied is not None else None  # a list, so it is not a second owner
        if tied is None:
            self.weight = nn.Parameter(torch.empty(vocab_size, hidden))
            nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Linear's default
            bound = 1 / hidden**0.5
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def matrix(self) -> torch.Tensor:
        return self._tied[0].weight if self._tied else self.weight

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.matrix, self.bias)


class LanguageModel(nn.Module):
    def __init__(self, vocab_size: int, cfg: ModelConfig):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        embed = cfg.embed or cfg.hidden
        self.embedding = nn.Embedding(vocab_size, embed)
        self.rnn = RecurrentStack(cfg.cell, embed, cfg.hidden, cfg.layers, cfg.dropout, cfg.impl,
                                  cfg.bias, cfg.nonlinearity, cfg.gru_z)
        self.decoder = Decoder(cfg.hidden, vocab_size, self.embedding if cfg.tie_weights else None)
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.init > 0:
            for p in self.parameters():
                nn.init.uniform_(p, -cfg.init, cfg.init)

    def init_state(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        return self.rnn.init_state(batch_size)

    def features(self, x: torch.Tensor, state=None, times=None):
        """x: [T, B] token ids → top-layer outputs [T, B, H] (after dropout), final state."""
        h, state = self.rnn(self.drop(self.embedding(x)), state, times)
        return self.drop(h), state

    def forward(self, x: torch.Tensor, state=None, times=None):
        """x: [T, B] token ids → logits [T, B, V], final state."""
        h, state = self.features(x, state, times)
        return self.decoder(h), state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_model(cfg: ModelConfig, vocab_size: int) -> LanguageModel:
    return LanguageModel(vocab_size, cfg)
