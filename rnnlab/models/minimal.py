"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates that
read only x_t, so that h_t = a_t ⊙ h_{t-1} + b_t with a_t, b_t known for all
t before the recurrence starts, and training runs it as a parallel scan.

    minGRU  (rows z, h):     z = σ(k_z)   h̃ = g(k_h)          h_t = (1 − z) ⊙ h_{t-1} + z ⊙ h̃
    minLSTM (rows f, i, h):  f = σ(k_f)   i = σ(k_i)   h̃ = g(k_h)
                             f' = f / (f + i)   i' = i / (f + i)   h_t = f' ⊙ h_{t-1} + i' ⊙ h̃

k = W_ih x_t + b_ih: one input projection for the whole sequence, the only
product (there is no weight_hh and no bias_hh, whatever model.bias says).
g(k) = k + 0.5 for k ≥ 0, σ(k) below: continuous, increasing and positive,
so h̃ > 0 and b_t = z ⊙ h̃ (i' ⊙ h̃) has a logarithm.

The scan, in log space as the paper does: with A_t = Σ_{s≤t} log a_s,

    h_t = e^{A_t} ⊙ h_0 + exp(A_t + logcumsumexp_{s≤t}(log b_s − A_s))

The first term is kept apart (in linear space) so that any initial state,
also a negative one, is allowed; the second sums positive terms only. The
log-gates come from softplus: log σ(k) = −softplus(−k), log(1 − σ(k)) =
−softplus(k), and for minLSTM, with d = softplus(−k_f) − softplus(−k_i) =
log i − log f: log f' = −softplus(d), log i' = −softplus(−d).

`step` runs the same cell one step at a time (the recurrence the scan must
equal; tests/test_minimal_cells.py). `MinGRUStep`, `MinLSTMStep` are the
NumPy sampling steps (rnnlab/models/stepper.py). The NumPy layers with the
hand-written backward pass are in rnnlab/numpy/minimal.py.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rnnlab.models.cells import record_steps
from rnnlab.models.stepper import recurrent_weights, sigmoid_of_negated


def g(k: torch.Tensor) -> torch.Tensor:
    """k + 0.5 for k ≥ 0, σ(k) below."""
    return torch.where(k >= 0, F.relu(k) + 0.5, torch.sigmoid(k))


def log_g(k: torch.Tensor) -> torch.Tensor:
    """log g(k): log(k + 0.5) for k ≥ 0, −softplus(−k) below."""
    return torch.where(k >= 0, torch.log(F.relu(k) + 0.5), -F.softplus(-k))


def prefix_logsumexp(v: torch.Tensor) -> torch.Tensor:
    """logcumsumexp over dim 0. On a GPU, torch's parallel kernel. On a CPU, a running
    logaddexp over time, the same sums in the same order of magnitude: for the short
    sequences of training it runs about 6x faster there, forward and backward, than
    torch.logcumsumexp's CPU kernel (T = 30, batch 64, 503 units, one thread, torch 2.13,
    AMD EPYC; 2.6x for a whole minGRU layer)."""
    if v.device.type != "cpu":
        return torch.logcumsumexp(v, dim=0)
    acc, out = v[0], [v[0]]
    for t in range(1, v.shape[0]):
        acc = torch.logaddexp(acc, v[t])
        out.append(acc)
    return torch.stack(out)


def scan(log_a: torch.Tensor, log_b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t for every t at once ([T, B, H]; b > 0, h0 [B, H] any sign):
    h_t = e^{A_t} ⊙ h_0 + exp(A_t + logcumsumexp_{s≤t}(log b_s − A_s)),  A_t = Σ_{s≤t} log a_s."""
    A = torch.cumsum(log_a, dim=0)
    return torch.exp(A) * h0 + torch.exp(A + prefix_logsumexp(log_b - A))


class ParallelLayer(nn.Module):
    """Parameters of a cell whose gates read only x_t: weight_ih [G·H, I], bias_ih [G·H]."""

    gates = 2
    n_states = 1

    def __init__(self, input_size: int, hidden: int, bias: str = "double"):
        super().__init__()
        self.input_size, self.hidden = input_size, hidden
        self.weight_ih = nn.Parameter(torch.empty(self.gates * hidden, input_size))
        self.bias_ih = nn.Parameter(torch.empty(self.gates * hidden))
        self.bias_hh = None  # no recurrent product, so no second bias
        self.reset_parameters()

    def reset_parameters(self, init: float = 0.0) -> None:
        a = init or 1.0 / math.sqrt(self.hidden)  # the recurrent layers' default, U(-1/sqrt(H), 1/sqrt(H))
        for p in self.parameters(recurse=False):
            nn.init.uniform_(p, -a, a)

    def log_coefficients(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log a, log b) of h_t = a_t ⊙ h_{t-1} + b_t from the projections k [..., G·H]."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: tuple, times: torch.Tensor | None = None,
                record: dict | None = None):
        """x: [T, B, I]; state: (h0,) [B, H]. Returns ([T, B, H], (h_T,)): the parallel scan.
        With `record` (a dict): the recurrence step by step instead (`step`), filling
        record[name] = [T, B, H] for "h" and every gate (rnnlab/states/record.py reads them)."""
        k = F.linear(x, self.weight_ih, self.bias_ih)
        if record is not None:
            return self._recorded(k, state, record)
        log_a, log_b = self.log_coefficients(k)
        h = scan(log_a, log_b, state[0])
        return h, (h[-1],)

    def _recorded(self, k: torch.Tensor, state: tuple, record: dict):
        states, steps = [], []
        for t in range(k.shape[0]):
            gates = {}
            state = self.step(k[t], state, gates)
            states.append(state)
            steps.append(gates)
        record_steps(record, states, steps)
        return record["h"], state

    def step(self, xp: torch.Tensor, state: tuple, record: dict | None = None) -> tuple:
        """One step of the recurrence, given xp = W_ih x_t + b_ih; with `record` (a dict), its gates go there."""
        raise NotImplementedError


class MinGRULayer(ParallelLayer):
    """minGRU: z = σ(k_z), h̃ = g(k_h), h_t = (1 − z) ⊙ h_{t-1} + z ⊙ h̃."""

    def log_coefficients(self, k):
        k_z, k_h = k.chunk(2, dim=-1)
        return -F.softplus(k_z), -F.softplus(-k_z) + log_g(k_h)  # log(1 − z), log z + log h̃

    def step(self, xp, state, record=None):
        k_z, k_h = xp.chunk(2, dim=1)
        z, h_tilde, h = torch.sigmoid(k_z), g(k_h), state[0]
        if record is not None:
            record.update(z=z, h_tilde=h_tilde)
        return ((1 - z) * h + z * h_tilde,)


class MinLSTMLayer(ParallelLayer):
    """minLSTM: f = σ(k_f), i = σ(k_i), h̃ = g(k_h), f' = f / (f + i), i' = i / (f + i),
    h_t = f' ⊙ h_{t-1} + i' ⊙ h̃."""

    gates = 3

    def log_coefficients(self, k):
        k_f, k_i, k_h = k.chunk(3, dim=-1)
        d = F.softplus(-k_f) - F.softplus(-k_i)  # log i − log f
        return -F.softplus(d), -F.softplus(-d) + log_g(k_h)  # log f', log i' + log h̃

    def step(self, xp, state, record=None):
        k_f, k_i, k_h = xp.chunk(3, dim=1)
        f, i, h_tilde, h = torch.sigmoid(k_f), torch.sigmoid(k_i), g(k_h), state[0]
        if record is not None:
            record.update(f=f, i=i, h_tilde=h_tilde)
        return ((f * h + i * h_tilde) / (f + i),)


def g_into(k: np.ndarray) -> None:
    """k ← g(k) in place (NumPy): k + 0.5 for k ≥ 0, σ(k) = e^k / (1 + e^k) below."""
    below = k < 0
    e = np.exp(np.minimum(k, 0))
    k += 0.5
    np.divide(e, 1 + e, out=k, where=below)


class MinGRUStep:
    """One minGRU step in NumPy for sampling: [x, h_{t-1}, 1] · w gives (−k_z | k_h)
    (the h rows of w are zero: the gates read only x); h ← h + z ⊙ (h̃ − h)."""

    def __init__(self, layer, state: tuple, dtype):
        self.H = layer.hidden
        self.w = recurrent_weights(layer)
        self.w[:, : self.H] *= -1
        self.z = np.empty((state[0].shape[0], self.H), dtype)

    def __call__(self, a: np.ndarray, h: np.ndarray) -> None:
        z, h_tilde = self.z, a[:, self.H :]
        sigmoid_of_negated(a[:, : self.H], z)
        g_into(h_tilde)
        h_tilde -= h
        h_tilde *= z
        h += h_tilde


class MinLSTMStep:
    """One minLSTM step in NumPy for sampling: (−k_f | −k_i | k_h) from the product;
    h ← (f ⊙ h + i ⊙ h̃) / (f + i)."""

    def __init__(self, layer, state: tuple, dtype):
        self.H = layer.hidden
        self.w = recurrent_weights(layer)
        self.w[:, : 2 * self.H] *= -1
        self.fi = np.empty((state[0].shape[0], 2 * self.H), dtype)

    def __call__(self, a: np.ndarray, h: np.ndarray) -> None:
        H, fi = self.H, self.fi
        sigmoid_of_negated(a[:, : 2 * H], fi)
        f, i, h_tilde = fi[:, :H], fi[:, H:], a[:, 2 * H :]
        g_into(h_tilde)
        h *= f
        h_tilde *= i
        h += h_tilde
        f += i
        h /= f
