"""Recurrent cells written from their equations.

Every layer owns the same four tensors as one layer of `torch.nn.RNN/LSTM/GRU`
(and of the NumPy backend), with the same gate order, so weights move between
implementations unchanged:

    weight_ih  [G*H, I]     weight_hh  [G*H, H]
    bias_ih    [G*H]        bias_hh    [G*H]   (absent with model.bias="single")

G = 1 (RNN), 4 (LSTM: rows i, f, g, o), 3 (GRU: rows r, z, n). Inputs are
time-major, x: [T, B, I]. The input projection W_ih x_t + b_ih of all T steps
is one matrix product before the loop; inside the loop only W_hh h_{t-1}
remains, one fused product for all gates.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RecurrentLayer(nn.Module):
    """Parameters and the time loop shared by every explicit cell."""

    gates = 1
    n_states = 1  # tensors in the state tuple: (h,) or (h, c)

    def __init__(self, input_size: int, hidden: int, bias: str = "double", **options):
        super().__init__()
        self.input_size, self.hidden = input_size, hidden
        g = self.gates * hidden
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g, hidden))
        self.bias_ih = nn.Parameter(torch.empty(g))
        self.bias_hh = nn.Parameter(torch.empty(g)) if bias == "double" else None
        self.reset_parameters()

    def reset_parameters(self, init: float = 0.0) -> None:
        # PyTorch's RNN default: every tensor ~ U(-1/sqrt(H), 1/sqrt(H)).
        a = init or 1.0 / math.sqrt(self.hidden)
        for p in self.parameters(recurse=False):
            nn.init.uniform_(p, -a, a)

    def recurrent(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.weight_hh, self.bias_hh)

    def step(self, xp: torch.Tensor, state: tuple) -> tuple:
        """One time step given the input projection xp = W_ih x_t + b_ih."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: tuple, times: torch.Tensor | None = None):
        """x: [T, B, I]; state: tuple of [B, H]. Returns ([T, B, H], final state)."""
        xp = F.linear(x, self.weight_ih, self.bias_ih)
        outputs = []
        for t in range(x.shape[0]):
            state = self.step(xp[t], state)
            outputs.append(state[0])
        return torch.stack(outputs), state


class RNNLayer(RecurrentLayer):
    """Elman RNN.

        h_t = φ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   φ = tanh (default) or relu
    """

    def __init__(self, input_size, hidden, bias="double", nonlinearity="tanh", **options):
        super().__init__(input_size, hidden, bias)
        self.nonlinearity = nonlinearity
        self.phi = torch.tanh if nonlinearity == "tanh" else torch.relu

    def step(self, xp, state):
        return (self.phi(xp + self.recurrent(state[0])),)


class LSTMLayer(RecurrentLayer):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with forget gate).

        a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh, split into rows (i, f, g, o)
        i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
        c_t = g ⊙ i + c_{t-1} ⊙ f
        h_t = tanh(c_t) ⊙ o
    """

    gates, n_states = 4, 2

    def step(self, xp, state):
        h, c = state
        i, f, g, o = (xp + self.recurrent(h)).chunk(4, dim=1)
        c = torch.tanh(g) * torch.sigmoid(i) + c * torch.sigmoid(f)
        return torch.tanh(c) * torch.sigmoid(o), c


class GRULayer(RecurrentLayer):
    """Gated recurrent unit (Cho et al. 2014), rows (r, z, n):

        r = σ(W_ir x + b_ir + W_hr h_{t-1} + b_hr)
        z = σ(W_iz x + b_iz + W_hz h_{t-1} + b_hz)
        n = tanh(W_in x + b_in + r ⊙ (W_hn h_{t-1} + b_hn))
        gru_z="old" (default; Cho et al. 2014, PyTorch):  h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
        gru_z="new" (Chung et al. 2014, many textbooks):  h_t = z ⊙ n + (1 − z) ⊙ h_{t-1}

    The two conventions are the same model with z's pre-activation negated
    (σ(−a) = 1 − σ(a)); the fused path uses that to run "new" on PyTorch's
    kernel. The reset gate multiplies W_hn h + b_hn (PyTorch's placement).
    """

    gates = 3

    def __init__(self, input_size, hidden, bias="double", gru_z="old", **options):
        super().__init__(input_size, hidden, bias)
        self.gru_z = gru_z

    def step(self, xp, state):
        h = state[0]
        xr, xz, xn = xp.chunk(3, dim=1)
        hr, hz, hn = self.recurrent(h).chunk(3, dim=1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        if self.gru_z == "old":
            return (n + z * (h - n),)
        return (h + z * (n - h),)


# model.cell -> explicit layer class. Other cells register here.
CELL_TYPES: dict[str, type[RecurrentLayer]] = {"rnn": RNNLayer, "lstm": LSTMLayer, "gru": GRULayer}

# Imported here, after RecurrentLayer exists, because phased.py builds on it.
from rnnlab.models.phased import PhasedLSTMLayer  # noqa: E402

CELL_TYPES["phased_lstm"] = PhasedLSTMLayer
