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

    def __init__(self, input_size: int, hidden: int, bias: str = "double"):
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

    def fused_tensors(self) -> list[torch.Tensor]:
        """weight_ih, weight_hh, bias_ih, bias_hh as the cell's PyTorch kernel
        reads them (rnnlab/cell_registry.py names the kernel)."""
        bias_hh = self.bias_hh if self.bias_hh is not None else torch.zeros_like(self.bias_ih)
        return [self.weight_ih, self.weight_hh, self.bias_ih, bias_hh]

    def step(self, xp: torch.Tensor, state: tuple, record: dict | None = None) -> tuple:
        """One time step given the input projection xp = W_ih x_t + b_ih. With `record` (a
        dict), the step also puts its gates there by name ([B, H] each)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: tuple, times: torch.Tensor | None = None,
                record: dict | None = None):
        """x: [T, B, I]; state: tuple of [B, H]. Returns ([T, B, H], final state).
        With `record` (a dict), also fills record[name] = [T, B, H] for every signal of every
        step: "h", "c" (two-state cells) and the gates (rnnlab/states/record.py reads them)."""
        xp = F.linear(x, self.weight_ih, self.bias_ih)
        outputs, steps = [], []
        for t in range(x.shape[0]):
            gates = None if record is None else {}
            state = self.step(xp[t], state, gates)
            outputs.append(state)
            steps.append(gates)
        if record is not None:
            record_steps(record, outputs, steps)
        return torch.stack([s[0] for s in outputs]), state


def record_steps(record: dict, states: list[tuple], gates: list[dict]) -> None:
    """record["h"] (and record["c"] for (h, c) states) and each gate, stacked over the steps: [T, B, H]."""
    record["h"] = torch.stack([s[0] for s in states])
    if len(states[0]) == 2:
        record["c"] = torch.stack([s[1] for s in states])
    for name in gates[0]:
        record[name] = torch.stack([g[name] for g in gates])


class RNNLayer(RecurrentLayer):
    """Elman RNN.

        h_t = φ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   φ = tanh (default) or relu
    """

    def __init__(self, input_size, hidden, bias="double", nonlinearity="tanh"):
        super().__init__(input_size, hidden, bias)
        self.nonlinearity = nonlinearity
        self.phi = torch.tanh if nonlinearity == "tanh" else torch.relu

    def step(self, xp, state, record=None):
        return (self.phi(xp + self.recurrent(state[0])),)  # the gate row "h" is h itself: nothing more to record


class LSTMLayer(RecurrentLayer):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with forget gate).

        a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh, split into rows (i, f, g, o)
        i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
        c_t = g ⊙ i + c_{t-1} ⊙ f
        h_t = tanh(c_t) ⊙ o
    """

    gates, n_states = 4, 2

    def step(self, xp, state, record=None):
        h, c = state
        a_i, a_f, a_g, a_o = (xp + self.recurrent(h)).chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
        if record is not None:
            record.update(i=i, f=f, g=g, o=o)
        c = g * i + c * f
        return torch.tanh(c) * o, c


class GRULayer(RecurrentLayer):
    """Gated recurrent unit (Cho et al. 2014), rows (r, z, n):

        r = σ(W_ir x + b_ir + W_hr h_{t-1} + b_hr)
        z = σ(W_iz x + b_iz + W_hz h_{t-1} + b_hz)
        gru_reset="after" (default; PyTorch, cuDNN):  n = tanh(W_in x + b_in + r ⊙ (W_hn h_{t-1} + b_hn))
        gru_reset="before" (Cho et al. 2014):         n = tanh(W_in x + b_in + W_hn (r ⊙ h_{t-1}) + b_hn)
        gru_z="old" (default; Cho et al. 2014, PyTorch):  h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
        gru_z="new" (Chung et al. 2014, many textbooks):  h_t = z ⊙ n + (1 − z) ⊙ h_{t-1}

    The two z conventions are the same model with z's pre-activation negated
    (σ(−a) = 1 − σ(a)); `fused_tensors` uses that to run "new" on PyTorch's
    kernel. The reset placements are different models: "before" has no kernel.
    """

    gates = 3

    def __init__(self, input_size, hidden, bias="double", gru_z="old", gru_reset="after"):
        super().__init__(input_size, hidden, bias)
        self.gru_z, self.gru_reset = gru_z, gru_reset

    def step(self, xp, state, record=None):
        h, H = state[0], self.hidden
        xr, xz, xn = xp.chunk(3, dim=1)
        if self.gru_reset == "after":
            hr, hz, hn = self.recurrent(h).chunk(3, dim=1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
        else:
            b_hh = self.bias_hh
            hr, hz = F.linear(h, self.weight_hh[: 2 * H], None if b_hh is None else b_hh[: 2 * H]).chunk(2, dim=1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + F.linear(r * h, self.weight_hh[2 * H :], None if b_hh is None else b_hh[2 * H :]))
        if record is not None:
            record.update(r=r, z=z, n=n)
        if self.gru_z == "old":
            return (n + z * (h - n),)
        return (h + z * (n - h),)

    def fused_tensors(self):
        tensors = super().fused_tensors()
        if self.gru_z == "old":
            return tensors
        # z_new = 1 − z_old = σ(−a): negate the z rows of every tensor.
        sign = torch.ones(3 * self.hidden, dtype=tensors[0].dtype, device=tensors[0].device)
        sign[self.hidden : 2 * self.hidden] = -1
        return [t * (sign[:, None] if t.dim() == 2 else sign) for t in tensors]
