"""One token at a time for sampling: the LSTM language model's step in NumPy.

Generation feeds one token per stream per step. At that size a step is ~25
tiny operations (two gate products per layer, the gate nonlinearities, the
cell update, the output layer) and the cost is not arithmetic but dispatch:
PyTorch spends several microseconds launching each operation, NumPy about
one. So sampling runs the very same equations as `LSTMLayer.step`,

    a = [x, h_{t-1}] · [W_ih; W_hh]ᵀ + b_ih + b_hh,  rows (i, f, g, o)
    c_t = σ(a_f) ⊙ c_{t-1} + σ(a_i) ⊙ tanh(a_g)      h_t = σ(a_o) ⊙ tanh(c_t)

in NumPy on the model's own weights (a snapshot taken when sampling starts),
and hands the logits back as a tensor, so `rnnlab.generate.choose` samples
exactly as before (benchmarks/results/generation.md).

Only what it covers takes this path: LSTM cells, the PyTorch model on the CPU,
no gradient. An adaptive output layer stays in PyTorch (its log_prob).
"""

from __future__ import annotations

import numpy as np
import torch

from rnnlab.models.softmax import AdaptiveSoftmax


class LSTMStepper:
    """step(tokens [B], state) → (logits [1, B, V], state), like model(tokens[None], state)."""

    def __init__(self, model):
        self.model = model
        with torch.no_grad():
            self.embedding = model.embedding.weight.detach().numpy()
            self.weights, self.biases = [], []
            for layer in model.rnn.layers:
                self.weights.append(torch.cat([layer.weight_ih, layer.weight_hh], 1).t().contiguous().numpy())
                bias = layer.bias_ih if layer.bias_hh is None else layer.bias_ih + layer.bias_hh
                self.biases.append(bias.detach().numpy())
            self.adaptive = isinstance(model.decoder, AdaptiveSoftmax)
            if not self.adaptive:
                self.decoder = model.decoder.matrix.detach().t().numpy()
                self.decoder_bias = model.decoder.bias.detach().numpy()
        self.H = model.rnn.hidden

    @staticmethod
    def supports(model) -> bool:
        rnn = getattr(model, "rnn", None)
        return (rnn is not None and rnn.cell == "lstm" and hasattr(model, "embedding") and hasattr(model, "decoder")
                and model.embedding.weight.device.type == "cpu" and not torch.is_grad_enabled()
                and model.embedding.weight.dtype in (torch.float32, torch.float64))

    def __call__(self, tokens: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        H = self.H
        hs, cs = (s.numpy() if torch.is_tensor(s) else s for s in state)  # [L, B, H]
        x = self.embedding[tokens.numpy()]
        new_h, new_c = np.empty_like(hs), np.empty_like(cs)
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            a = np.concatenate([x, hs[l]], 1) @ w
            a += b
            gates = np.exp(-a)  # σ(a) = 1 / (1 + e^-a), for all four rows; g is recomputed with tanh
            gates += 1
            np.reciprocal(gates, out=gates)
            c = new_c[l]
            np.multiply(gates[:, H : 2 * H], cs[l], out=c)
            c += gates[:, :H] * np.tanh(a[:, 2 * H : 3 * H])
            x = new_h[l]
            np.multiply(gates[:, 3 * H :], np.tanh(c), out=x)
        if self.adaptive:
            logits = self.model.decoder.logits(torch.from_numpy(x))
        else:
            logits = torch.from_numpy(x @ self.decoder + self.decoder_bias)
        return logits[None], (new_h, new_c)
