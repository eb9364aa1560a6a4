"""The minimal gated unit (Zhou et al. 2016): one gate where the GRU has two.

    f  = σ(W_f x_t + b_f + U_f h_{t-1} + b_hf)
    h̃  = tanh(W_h x_t + b_h + U_h (f ⊙ h_{t-1}) + b_hh)
    h_t = (1 − f) ⊙ h_{t-1} + f ⊙ h̃

Gate rows (f, h) in `weight_ih [2H, I]`, `weight_hh [2H, H]`, `bias_ih`,
`bias_hh` (absent with model.bias="single"). The one gate both resets the
state that the candidate reads (as the GRU's r, applied before the recurrent
product) and overwrites the state when open (as the GRU's z with
gru_z="new"): an open f forgets, so `model.forget_bias` does not apply
(the cell table names no forget gate) and chrono init makes f's bias
negative. `MGULayer` is the PyTorch layer; `MGUStep` is its NumPy sampling
step (rnnlab/models/stepper.py). The NumPy layer with the hand-written
backward pass is rnnlab/numpy/mgu.py.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rnnlab.models.cells import RecurrentLayer
from rnnlab.models.stepper import recurrent_weights, sigmoid_of_negated


class MGULayer(RecurrentLayer):
    gates = 2

    def step(self, xp, state, record=None):
        h, H, b_hh = state[0], self.hidden, self.bias_hh
        xf, xh = xp.chunk(2, dim=1)
        f = torch.sigmoid(xf + F.linear(h, self.weight_hh[:H], None if b_hh is None else b_hh[:H]))
        h_tilde = torch.tanh(xh + F.linear(f * h, self.weight_hh[H:], None if b_hh is None else b_hh[H:]))
        if record is not None:
            record.update(f=f, h_tilde=h_tilde)
        return (h + f * (h_tilde - h),)


class MGUStep:
    """One MGU step in NumPy for sampling. The product [x, h_{t-1}, 1] · w gives
    columns (−a_f | W_h x + b_h + b_hh), the f column negated (σ(a) = 1 / (1 + e^{−a}));
    U_h (f ⊙ h_{t-1}) needs f first: a second product."""

    def __init__(self, layer, state: tuple, dtype):
        H = layer.hidden
        self.w = recurrent_weights(layer)  # columns (f, h)
        self.w[:, :H] *= -1
        self.w[layer.input_size : layer.input_size + layer.hidden, H:] = 0  # U_h multiplies f ⊙ h, below
        self.U_hT = np.ascontiguousarray(layer.weight_hh[H:].detach().numpy().T.astype(dtype))
        self.f = np.empty((state[0].shape[0], H), dtype)

    def __call__(self, a: np.ndarray, h: np.ndarray) -> None:
        H, f = self.f.shape[1], self.f
        sigmoid_of_negated(a[:, :H], f)
        h_tilde = a[:, H:]
        h_tilde += np.dot(f * h, self.U_hT)
        np.tanh(h_tilde, out=h_tilde)
        h_tilde -= h  # h = h + f (h̃ − h)
        h_tilde *= f
        h += h_tilde
