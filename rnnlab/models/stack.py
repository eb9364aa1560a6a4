"""L stacked recurrent layers, run either explicitly (the cell equations, step
by step in Python), fused (the kernels behind PyTorch's `nn.RNN/LSTM/GRU`,
`torch.lstm` & co., called directly with the very same parameter tensors) or,
for LSTMs, fast (rnnlab/models/fastlstm.py: a hand-written backward pass).

Both paths own identical parameters (`layers.{l}.weight_ih`, ...), so
switching `model.impl` never touches the weights. State is a tuple of
[L, B, H] tensors — (h, c) for LSTMs, (h,) otherwise — the layout nn.LSTM uses.
Dropout is applied between layers only (Zaremba et al. 2014: never on the
recurrent connections).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnnlab.models.cells import CELL_TYPES
from rnnlab.models.fastlstm import lstm_stack

FUSED = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# The functions nn.RNN/LSTM/GRU.forward end in. Calling them directly skips
# the module machinery (functional_call on an nn.LSTM costs ~0.1 ms a call).
KERNELS = {"lstm": torch.lstm, "gru": torch.gru, "rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu}


class RecurrentStack(nn.Module):
    def __init__(self, cell: str, input_size: int, hidden: int, layers: int, dropout: float = 0.0,
                 impl: str = "fused", bias: str = "double", nonlinearity: str = "tanh", gru_z: str = "old"):
        super().__init__()
        layer_cls = CELL_TYPES[cell]
        self.cell, self.hidden, self.num_layers, self.dropout = cell, hidden, layers, dropout
        self.n_states = layer_cls.n_states
        self.layers = nn.ModuleList(
            layer_cls(input_size if l == 0 else hidden, hidden, bias=bias, nonlinearity=nonlinearity, gru_z=gru_z)
            for l in range(layers)
        )
        self.gru_z, self.single_bias = gru_z, bias == "single"
        self.impl = impl if cell in FUSED else "explicit"
        if self.impl == "fast" and cell != "lstm":
            self.impl = "fused"  # the hand-written backward exists for the LSTM only

    def init_state(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        p = self.layers[0].weight_hh
        return tuple(p.new_zeros(self.num_layers, batch_size, self.hidden) for _ in range(self.n_states))

    def forward(self, x: torch.Tensor, state: tuple | None = None, times: torch.Tensor | None = None):
        if state is None:
            state = self.init_state(x.shape[1])
        if x.shape[0] == 1 and not torch.is_grad_enabled():
            return self._forward_explicit(x, state, times)  # one step (sampling): the cell equations cost least
        if self.impl == "fused":
            return self._forward_fused(x, state)
        if self.impl == "fast":
            return lstm_stack(self.layers, x, state, self.dropout, self.training)
        return self._forward_explicit(x, state, times)

    def forward_ids(self, ids: torch.Tensor, embedding: torch.Tensor, state: tuple | None = None, times=None):
        """The stack over embedding[ids] (ids [T, B], embedding [V, I]); the
        fast LSTM folds the lookup into its first input projection."""
        if state is None:
            state = self.init_state(ids.shape[1])
        if self.impl == "fast" and (ids.shape[0] > 1 or torch.is_grad_enabled()):
            return lstm_stack(self.layers, ids, state, self.dropout, self.training, embedding=embedding)
        return self(F.embedding(ids, embedding), state, times)

    def _forward_explicit(self, x, state, times):
        finals = []
        for l, layer in enumerate(self.layers):
            if l > 0:
                x = F.dropout(x, self.dropout, self.training)
            x, s = layer(x, tuple(s[l] for s in state), times=times)
            finals.append(s)
        return x, tuple(torch.stack([f[k] for f in finals]) for k in range(self.n_states))

    def fused_parameters(self) -> dict[str, torch.Tensor]:
        """Our parameters under nn.LSTM's names (weight_ih_l0, ...)."""
        params = {}
        for l, layer in enumerate(self.layers):
            tensors = {"weight_ih": layer.weight_ih, "weight_hh": layer.weight_hh, "bias_ih": layer.bias_ih,
                       "bias_hh": layer.bias_hh if layer.bias_hh is not None else torch.zeros_like(layer.bias_ih)}
            if self.cell == "gru" and self.gru_z == "new":
                # z_new = 1 - z_old = σ(-a): negate the z rows of every tensor.
                sign = torch.ones(3 * self.hidden, dtype=layer.weight_ih.dtype, device=layer.weight_ih.device)
                sign[self.hidden : 2 * self.hidden] = -1
                tensors = {k: v * (sign[:, None] if v.dim() == 2 else sign) for k, v in tensors.items()}
            params.update({f"{k}_l{l}": v for k, v in tensors.items()})
        return params

    def _forward_fused(self, x, state):
        params = list(self.fused_parameters().values())  # nn.LSTM's flat order: w_ih, w_hh, b_ih, b_hh per layer
        dropout = self.dropout if self.num_layers > 1 else 0.0  # between layers only
        args = (params, True, self.num_layers, dropout, self.training, False, False)
        if self.n_states == 2:
            out, h, c = torch.lstm(x, state, *args)
            return out, (h, c)
        kernel = KERNELS[f"rnn_{self.layers[0].nonlinearity}" if self.cell == "rnn" else self.cell]
        out, h = kernel(x, state[0], *args)
        return out, (h,)
