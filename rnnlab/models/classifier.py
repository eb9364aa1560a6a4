"""The sequence classifier (`model.arch = "classifier"`): a sequence task's
inputs → L recurrent layers → a linear layer on each sequence's last valid step.

    x_t = one-hot(token_t)  or  the task's features at step t
    h_t = stack(x_t, h_{t-1})            (timestamps t for the Phased LSTM)
    p(class | x_1..x_n) = softmax(W h_n + b)     n = the sequence's own length

A batch is a `TaskBatch` (rnnlab/data/tasks.py): padded inputs with their
lengths, or a PackedSequence, which runs the fused kernel only on the
sequences still going. The loss is the cross-entropy of that one prediction
per sequence, from the same `full_loss` the language model's softmax uses, so
the Trainer treats both alike (a Loss with the mean loss and the top-1 count).

backend="numpy" (one layer): the recurrent layer runs in the NumPy reference,
forward and backward by hand (rnnlab/numpy/cells.py), on the same parameters;
the linear head and the optimizer stay PyTorch's.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from rnnlab import cell_registry
from rnnlab.config import ModelConfig
from rnnlab.models.numpy_bridge import through_numpy
from rnnlab.models.softmax import full_loss
from rnnlab.models.stack import RecurrentStack


class SequenceClassifier(nn.Module):
    """x → RecurrentStack → W h_last + b.

    Inputs are token ids (one-hot encoded over `vocab` symbols) or real-valued
    features of `input_size` (vocab = 0).
    """

    def __init__(self, cell: str, input_size: int, hidden: int, classes: int, vocab: int = 0,
                 layers: int = 1, impl: str = "fused", backend: str = "torch", bias: str = "double",
                 dropout: float = 0.0, **options):
        super().__init__()
        self.vocab = vocab
        self.rnn = RecurrentStack(cell, vocab or input_size, hidden, layers, dropout, impl, bias, **options)
        self.head = nn.Linear(hidden, classes)
        self.numpy_layer = None
        if backend == "numpy":
            if layers != 1:
                raise ValueError("the NumPy-backed classifier has one recurrent layer")
            self.numpy_layer = cell_registry.numpy_layer(cell, vocab or input_size, hidden, bias, **options)

    @classmethod
    def from_config(cls, cfg: ModelConfig, input_size: int, classes: int, vocab: int) -> SequenceClassifier:
        options = cfg.cell_options()
        model = cls(cfg.cell, input_size, cfg.hidden, classes, vocab, cfg.layers, cfg.impl, cfg.backend, cfg.bias,
                    cfg.dropout, **options)
        if cfg.chrono:
            for layer in model.rnn.layers:
                with torch.no_grad():
                    chrono_init(cfg.cell, layer.bias_ih, layer.bias_hh, cfg.chrono, torch.rand(cfg.hidden), **options)
        return model

    def _numpy_rnn(self, x: torch.Tensor) -> torch.Tensor:
        """The recurrent layer by the NumPy reference: its forward pass and, in training,
        its hand-written BPTT (rnnlab/numpy/cells.py), on this layer's own tensors."""
        names, tensors = zip(*self.rnn.layers[0].named_parameters())
        params = {name: t.detach().numpy() for name, t in zip(names, tensors)}
        if not (torch.is_grad_enabled() and self.training):
            return torch.from_numpy(self.numpy_layer.forward(params, x.numpy(), None, train=False)[0])
        out, _, cache = self.numpy_layer.forward(params, x.detach().numpy(), None, train=True)

        def vjp(dout):
            grads = self.numpy_layer.backward(params, cache, np.ascontiguousarray(dout)).params
            return [grads[name] for name in names]

        return through_numpy(out, vjp, tensors)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.head.weight.dtype  # features come as float32 whatever train.dtype is
        return F.one_hot(x, self.vocab).to(dtype) if self.vocab else x.to(dtype)

    def logits(self, batch) -> torch.Tensor:
        """Class scores [B, classes] of a TaskBatch."""
        if isinstance(batch.x, PackedSequence):
            return self.head(self._last_packed(batch.x))
        x = self.encode(batch.x)
        if self.numpy_layer is not None:
            out = self._numpy_rnn(x)
        else:
            out, _ = self.rnn(x, None, batch.times)
        if batch.lengths is None:
            return self.head(out[-1])
        return self.head(out[batch.lengths - 1, torch.arange(out.shape[1], device=out.device)])

    def forward(self, batch, state=None, times=None, targets=None):
        """The language model's calling convention, so that the Trainer runs both alike: a
        TaskBatch (its own timestamps; no state is carried) → logits, or with targets
        [B] → (Loss, None)."""
        logits = self.logits(batch)
        if targets is None:
            return logits, None
        return full_loss(logits, targets), None

    def _last_packed(self, x: PackedSequence) -> torch.Tensor:
        """Run the stack's fused kernel on a packed batch: each step only touches
        the sequences still going, and the final state is each sequence's last valid step."""
        rnn = self.rnn
        if rnn.impl != "fused":
            raise ValueError(f"packed sequences need a fused cell (rnn, lstm, gru), not {rnn.cell}")
        h = rnn.forward_fused(self.encode(x.data), rnn.init_state(int(x.batch_sizes[0])), x.batch_sizes)[1][0]
        # The kernel saw the batch sorted by length; put it back in order.
        return h[-1] if x.unsorted_indices is None else h[-1][x.unsorted_indices]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def chrono_init(cell: str, bias_ih, bias_hh, horizon: int, u, **options) -> None:
    """Chrono initialization (Tallec & Ollivier 2018) of a gated cell's biases, in place:
    the carry gate's bias is log(U(1, horizon − 1)), so at init units keep their
    state for 1 to `horizon` steps instead of about 2 (σ(0) = ½ per step).

        b = log(1 + u (horizon − 2)),  u ~ U(0, 1) per unit
        LSTM (rows i, f, g, o): b_f = b, b_i = −b
        GRU  (rows r, z, n; h = (1 − z) n + z h_prev, gru_z="old"): b_z = b
        MGU, minGRU (an open gate overwrites h): b_f = −b, b_z = −b

    Which gate, its sign and its opposite come from the cell table (`Cell.chrono`,
    rnnlab/cell_registry.py); the hidden-side biases of those gates are zeroed. A cell
    the table gives no such gate (the RNN) is left alone; an unknown cell is a ValueError.
    """
    spec, chosen = cell_registry.resolve(cell, options)
    gates = spec.chrono_gates(chosen)
    if gates is None:
        return
    H = len(u)
    if isinstance(bias_ih, torch.Tensor):
        b = torch.log1p(torch.as_tensor(u) * max(horizon - 2, 0)).to(bias_ih.dtype)
    else:
        b = np.log1p(np.asarray(u) * max(horizon - 2, 0)).astype(bias_ih.dtype)
    for gate, value in ((gates.gate, b if gates.keeps else -b), (gates.opposite, -b if gates.keeps else b)):
        if gate is None:
            continue
        rows = slice(spec.gates.index(gate) * H, (spec.gates.index(gate) + 1) * H)
        bias_ih[rows] = value
        if bias_hh is not None:
            bias_hh[rows] = 0.0
