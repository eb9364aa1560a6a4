"""L stacked recurrent layers, run either explicitly (the cell equations, step
by step in Python) or fused (the kernels behind PyTorch's `nn.RNN/LSTM/GRU`,
`torch.lstm` & co., called directly with the very same parameter tensors).

Both paths own identical parameters (`layers.{l}.weight_ih`, ...), so
switching `model.impl` never touches the weights. State is a tuple of
[L, B, H] tensors — (h, c) for LSTMs, (h,) otherwise — the layout nn.LSTM uses.
Dropout is applied between layers only (Zaremba et al. 2014: never on the
recurrent connections).

Which path runs is decided once, here in `__init__`, from the cell table
(rnnlab/cell_registry.py): `model.impl = "fused"` runs the cell's kernel
where the table names one for its options, and the explicit layers where it
names none (the Phased LSTM, the GRU with `gru_reset = "before"`);
`self.impl` says which, and every call of `forward` takes that path.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnnlab import cell_registry


class RecurrentStack(nn.Module):
    def __init__(self, cell: str, input_size: int, hidden: int, layers: int, dropout: float = 0.0,
                 impl: str = "fused", bias: str = "double", **options):
        super().__init__()
        spec, self.options = cell_registry.resolve(cell, options)
        self.cell, self.hidden, self.num_layers, self.dropout = spec.name, hidden, layers, dropout
        self.n_states = spec.n_states
        self.layers = nn.ModuleList(
            cell_registry.torch_layer(cell, input_size if l == 0 else hidden, hidden, bias, **options)
            for l in range(layers)
        )
        self.single_bias = bias == "single"
        # The functions nn.RNN/LSTM/GRU.forward end in (torch.lstm, torch.gru, torch.rnn_tanh, ...):
        # calling them directly skips the module machinery (~0.1 ms a call).
        self.kernel = spec.fused_kernel(self.options)
        self.impl = "fused" if impl == "fused" and self.kernel else "explicit"

    def init_state(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        p = self.layers[0].weight_ih
        return tuple(p.new_zeros(self.num_layers, batch_size, self.hidden) for _ in range(self.n_states))

    def forward(self, x: torch.Tensor, state: tuple | None = None, times: torch.Tensor | None = None):
        if state is None:
            state = self.init_state(x.shape[1])
        if self.impl == "fused":
            return self.forward_fused(x, state)
        return self._forward_explicit(x, state, times)

    def _forward_explicit(self, x, state, times):
        finals = []
        for l, layer in enumerate(self.layers):
            if l > 0:
                x = F.dropout(x, self.dropout, self.training)
            x, s = layer(x, tuple(s[l] for s in state), times=times)
            finals.append(s)
        return x, tuple(torch.stack([f[k] for f in finals]) for k in range(self.n_states))

    def fused_parameters(self) -> dict[str, torch.Tensor]:
        """Our parameters under nn.LSTM's names (weight_ih_l0, ...), as the kernel reads them."""
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return {f"{k}_l{l}": v for l, layer in enumerate(self.layers) for k, v in zip(names, layer.fused_tensors())}

    def forward_fused(self, x: torch.Tensor, state: tuple, batch_sizes: torch.Tensor | None = None):
        """The cell's fused kernel (torch.lstm, torch.gru, torch.rnn_tanh, ...) on x [T, B, in], or on
        a PackedSequence's data with its `batch_sizes` (each step then touches only the sequences
        still going): (outputs, final state). The one place the kernel is called."""
        params = list(self.fused_parameters().values())  # nn.LSTM's flat order: w_ih, w_hh, b_ih, b_hh per layer
        dropout = self.dropout if self.num_layers > 1 else 0.0  # between layers only
        args = (params, True, self.num_layers, dropout, self.training, False)  # has_biases ... bidirectional
        kernel = getattr(torch, self.kernel)
        hx = state if self.n_states == 2 else state[0]
        if batch_sizes is None:
            out, *final = kernel(x, hx, *args, False)  # batch_first=False
        else:
            out, *final = kernel(x, batch_sizes, hx, *args)
        return out, tuple(final)
