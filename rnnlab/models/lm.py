"""The recurrent language model: embedding → L recurrent layers → linear decoder.

    e_t = E[x_t]                      (dropout)
    h_t = stack(e_t, h_{t-1})         (dropout between layers and after the last)
    p(x_{t+1} | x_≤t) = softmax(W h_t + b)

With weight tying (Press & Wolf 2017, Inan et al. 2017) W is E itself and
`decoder.weight` does not exist. Parameter names are the contract shared with
the NumPy backend: `embedding.weight`, `rnn.layers.{l}.*`, `decoder.weight`,
`decoder.bias`. With `model.softmax = "adaptive"` the decoder is an adaptive
softmax instead (rnnlab/models/softmax.py, PyTorch only).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnnlab import cell_registry
from rnnlab.config import ModelConfig, parse_cutoffs
from rnnlab.errors import UserError
from rnnlab.models.softmax import AdaptiveSoftmax, Loss, full_loss
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

    logits = forward

    def loss(self, h: torch.Tensor, targets: torch.Tensor) -> Loss:
        return full_loss(self(h), targets)


class LanguageModel(nn.Module):
    def __init__(self, vocab_size: int, cfg: ModelConfig):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        embed = cfg.embed or cfg.hidden
        self.embedding = nn.Embedding(vocab_size, embed)
        cell = cell_registry.get(cfg.cell)
        self.rnn = RecurrentStack(cfg.cell, embed, cfg.hidden, cfg.layers, cfg.dropout, cfg.impl, cfg.bias,
                                  **cfg.cell_options())
        if cfg.softmax == "adaptive":  # see rnnlab/models/softmax.py
            if cfg.cutoffs == "auto":
                raise UserError("model.cutoffs=auto is chosen from the training data when a run starts "
                                "(models/softmax.py:fit_output); a model built by hand needs numeric cutoffs")
            self.decoder = AdaptiveSoftmax(cfg.hidden, vocab_size, parse_cutoffs(cfg.cutoffs), cfg.div_value)
        else:
            self.decoder = Decoder(cfg.hidden, vocab_size, self.embedding if cfg.tie_weights else None)
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.init > 0:
            for p in self.parameters():
                nn.init.uniform_(p, -cfg.init, cfg.init)
            if cell.unit_params:  # Phased LSTM periods must stay positive: their own init
                for layer in self.rnn.layers:
                    layer.reset_time_parameters()
        if cfg.forget_bias and cell.forget_gate:
            # Gers et al. 2000, Jozefowicz et al. 2015: a positive forget-gate bias lets
            # the cell keep its memory from the first step. The cell table names the gate that
            # keeps the memory when open (the LSTM's f); a cell without one (the MGU, whose f
            # overwrites) is refused by config validation.
            f = cell.gates.index(cell.forget_gate) * cfg.hidden
            with torch.no_grad():
                for layer in self.rnn.layers:
                    layer.bias_ih[f : f + cfg.hidden] += cfg.forget_bias

    def init_state(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        return self.rnn.init_state(batch_size)

    def features(self, x: torch.Tensor, state=None, times=None):
        """x: [T, B] token ids → top-layer outputs [T, B, H] (after dropout), final state."""
        h, state = self.rnn(self.drop(self.embedding(x)), state, times)
        return self.drop(h), state

    def forward(self, x: torch.Tensor, state=None, times=None, targets=None):
        """x: [T, B] token ids → logits [T, B, V], final state. With targets
        [T, B] → (Loss, final state): the loss function training and evaluation
        share, going through forward so DistributedDataParallel sees it (an
        adaptive head then never forms the [T, B, V] logits)."""
        h, state = self.features(x, state, times)
        if targets is None:
            return self.decoder.logits(h), state
        return self.decoder.loss(h, targets), state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def positions(start: int, x: torch.Tensor) -> torch.Tensor:
    """Timestamps [T, B] of a token batch x [T, B] whose first step is stream
    position `start`: the times a Phased LSTM gates on (other cells ignore them)."""
    T, B = x.shape[:2]
    return (start + torch.arange(T, dtype=torch.float32, device=x.device))[:, None].expand(T, B)
