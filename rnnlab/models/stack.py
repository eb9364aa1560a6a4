"""L stacked recurrent layers, run either explicitly (the cell equations, step
by step in Python) or fused (PyTorch's `nn.RNN/LSTM/GRU` kernels, fed the very
same parameter tensors through `torch.func.functional_call`).

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
from torch.func import functional_call

from rnnlab.models.cells import CELL_TYPES

FUSED = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


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
        # The nn.RNN/LSTM/GRU whose kernel the fused path borrows. Set with
        # object.__setattr__ so it is not registered as a submodule.
        object.__setattr__(self, "_template", None)

    def init_state(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        p = self.layers[0].weight_hh
        return tuple(p.new_zeros(self.num_layers, batch_size, self.hidden) for _ in range(self.n_states))

    def forward(self, x: torch.Tensor, state: tuple | None = None, times: torch.Tensor | None = None):
        if state is None:
            state = self.init_state(x.shape[1])
        if self.impl == "fused":
            return self._forward_fused(x, state)
        return self._forward_explicit(x, state, times)

    def _forward_explicit(self, x, state, times):
        finals = []
        for l, layer in enumerate(self.layers):
            if l > 0:
                x = F.dropout(x, self.dropout, self.training)
            x, s = layer(x, tuple(s[l] for s in state), times=times)
            finals.append(s)
        return x, tuple(torch.stack([f[k] for f in finals]) for k in range(self.n_states))

    def _fused_module(self) -> nn.Module:
        if self._template is None:
            l0 = self.layers[0]
            kwargs = {"nonlinearity": l0.nonlinearity} if self.cell == "rnn" else {}
            with torch.device("meta"):  # its own parameters are never used
                dropout = self.dropout if self.num_layers > 1 else 0.0  # between layers only
                template = FUSED[self.cell](l0.input_size, self.hidden, self.num_layers, dropout=dropout, **kwargs)
            object.__setattr__(self, "_template", template)
        self._template.train(self.training)
        return self._template

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
        hx = state if self.n_states == 2 else state[0]
        out, hx = functional_call(self._fused_module(), self.fused_parameters(), (x, hx))
        return out, (hx if self.n_states == 2 else (hx,))
