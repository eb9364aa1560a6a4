"""Phased LSTM (Neil, Pfeiffer & Liu 2016): an LSTM whose units only update
while their own rhythmic time gate is open.

Each unit has a period τ, a phase shift s and an open ratio r_on, all
learnable. At timestamp t (a real number, not only a step index):

    φ_t = ((t − s) mod τ) / τ                         phase in [0, 1)
    k_t = 2 φ_t / r_on          if φ_t < r_on / 2     gate opening
          2 − 2 φ_t / r_on      if φ_t < r_on         gate closing
          α φ_t                 otherwise             closed (leak α = 1e-3 in training, 0 in eval)

On top of the LSTM candidates (rows i, f, g, o as in `LSTMLayer`)

    c̃_t = g ⊙ i + c_{t−1} ⊙ f        h̃_t = tanh(c̃_t) ⊙ o
    c_t = k_t ⊙ c̃_t + (1 − k_t) ⊙ c_{t−1}
    h_t = k_t ⊙ h̃_t + (1 − k_t) ⊙ h_{t−1}

so a closed unit keeps its state (and passes gradients back unchanged),
which is what lets it bridge long or irregular gaps between inputs.
The parameter names (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`, `tau`,
`shift`, `r_on`) match `rnnlab.numpy.cells.PhasedLSTMLayer`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnnlab.models.cells import RecurrentLayer, record_steps


def time_gate(times: torch.Tensor, tau: torch.Tensor, shift: torch.Tensor, r_on: torch.Tensor,
              alpha: float = 0.0) -> torch.Tensor:
    """Openness k of every unit at every timestamp: times [...] → k [..., H]."""
    phi = torch.remainder(times.unsqueeze(-1) - shift, tau) / tau
    up = 2 * phi / r_on
    return torch.where(phi < 0.5 * r_on, up, torch.where(phi < r_on, 2 - up, alpha * phi))


class PhasedLSTMLayer(RecurrentLayer):
    """LSTM with a per-unit rhythmic time gate k(t); see the module docstring.

    Init (Neil et al.): τ = exp(U(tau_log_range)), s = U(0, τ), r_on = r_on_init.
    The frequency task sets the ranges to its own time scale.
    """

    gates, n_states = 4, 2

    def __init__(self, input_size: int, hidden: int, bias: str = "double", leak: float = 1e-3,
                 tau_log_range: tuple[float, float] = (0.0, 3.0), r_on_init: float = 0.05):
        self.leak, self.tau_log_range, self.r_on_init = leak, tuple(tau_log_range), r_on_init
        super().__init__(input_size, hidden, bias)
        self.tau = nn.Parameter(torch.empty(hidden))
        self.shift = nn.Parameter(torch.empty(hidden))
        self.r_on = nn.Parameter(torch.empty(hidden))
        self.reset_time_parameters()

    def reset_parameters(self, init: float = 0.0) -> None:
        # The LSTM weights only: tau/shift/r_on have their own init (and must stay > 0).
        a = init or 1.0 / math.sqrt(self.hidden)
        for p in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            if p is not None:
                nn.init.uniform_(p, -a, a)

    @torch.no_grad()
    def reset_time_parameters(self, tau_log_range: tuple[float, float] | None = None,
                              r_on_init: float | None = None) -> None:
        if tau_log_range is not None:
            self.tau_log_range = tuple(tau_log_range)
        if r_on_init is not None:
            self.r_on_init = r_on_init
        lo, hi = self.tau_log_range
        self.tau.copy_(torch.empty_like(self.tau).uniform_(lo, hi).exp())
        self.shift.copy_(torch.rand_like(self.shift) * self.tau)
        self.r_on.fill_(self.r_on_init)

    def gate(self, times: torch.Tensor) -> torch.Tensor:
        return time_gate(times, self.tau, self.shift, self.r_on, self.leak if self.training else 0.0)

    def forward(self, x: torch.Tensor, state: tuple, times: torch.Tensor | None = None,
                record: dict | None = None):
        """x: [T, B, I]; state (h, c) of [B, H]; times [T, B] (None: steps 0..T−1). With `record`
        (a dict), also fills record[name] = [T, B, H] for h, c, the gates i, f, g, o and the time
        gate k (rnnlab/states/record.py reads them)."""
        T, B = x.shape[:2]
        if times is None:
            times = torch.arange(T, dtype=x.dtype, device=x.device)[:, None].expand(T, B)
        k = self.gate(times.to(x.dtype))  # [T, B, H], all steps at once
        # Both biases join the input projection once, before the loop; inside
        # it every step is a handful of fused kernels (this loop is the cost).
        xp = F.linear(x, self.weight_ih, self.bias_ih)
        if self.bias_hh is not None:
            xp = xp + self.bias_hh
        w_hh, H = self.weight_hh.t(), self.hidden
        h, c = state
        outputs, states, steps = [], [], []
        for t in range(T):
            a = torch.addmm(xp[t], h, w_hh)
            s = torch.sigmoid(a)  # i, f, o (one kernel; its g block goes unused)
            g = torch.tanh(a[:, 2 * H : 3 * H])
            c_new = torch.addcmul(c * s[:, H : 2 * H], g, s[:, :H])
            h_new = torch.tanh(c_new) * s[:, 3 * H :]
            c = torch.lerp(c, c_new, k[t])  # c + k (c̃ − c)
            h = torch.lerp(h, h_new, k[t])
            outputs.append(h)
            if record is not None:
                states.append((h, c))
                steps.append({"i": s[:, :H], "f": s[:, H : 2 * H], "g": g, "o": s[:, 3 * H :], "k": k[t]})
        if record is not None:
            record_steps(record, states, steps)
        return torch.stack(outputs), (h, c)
