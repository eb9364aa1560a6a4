"""One token at a time for sampling: the language model's step in NumPy.

Generation feeds one token per stream per step. At that size a step is ~25
tiny operations (a gate product per layer, the gate nonlinearities, the state
update, the output layer) and the cost is not arithmetic but dispatch:
PyTorch spends several microseconds launching each operation, NumPy about
one. So sampling runs the very same equations as the cells' `step`
(rnnlab/models/cells.py) in NumPy on the model's weights (the gate
matrices rearranged once when sampling starts, every buffer allocated once):

    LSTM  a = [x, h_{t-1}, 1] · W,  W = [W_ih; W_hh; b]ᵀ, gate columns (i, f, o | g)
          c_t = σ(a_f) ⊙ c_{t-1} + σ(a_i) ⊙ tanh(a_g)      h_t = σ(a_o) ⊙ tanh(c_t)
    GRU   a = [x, h_{t-1}, 1] · W, columns (r, z | W_in x + b_in | W_hn h + b_hn)
          n = tanh(a_nx + σ(a_r) ⊙ a_nh)     h_t = n + σ(a_z) ⊙ (h_{t-1} − n)   (gru_z="old")
          gru_reset="before": columns (r, z | W_in x + b_in + b_hn), then
          n = tanh(a_nx + (σ(a_r) ⊙ h_{t-1}) W_hnᵀ), a second product per step
    RNN   h_t = φ([x, h_{t-1}, 1] · W)

For a small vocabulary (a character model) the first layer's input product
x · W_x, which depends only on the token, is computed for every token when
sampling starts and looked up after that (a word vocabulary's table would
cost more to build than a sample saves). The bias is a
weight row (the constant 1 in the input), the columns of the
sigmoid gates are negated so that σ(a) = 1 / (1 + e^{a'}) needs no negation,
and a layer's h lives in its own input buffer, where the next step reads it.
An adaptive softmax output is its head plus each cluster's log-softmax
(`_adaptive`). The cell table (rnnlab/cell_registry.py) names each cell's
step (`stepper`, "module:Class"; the classes below, and those of the MGU,
minGRU and minLSTM next to their layers); the Phased LSTM (its time gate),
which names none, and models on an accelerator keep the PyTorch step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from rnnlab import cell_registry
from rnnlab.models.softmax import AdaptiveSoftmax

# The largest first-layer table [V, G·H] built when sampling starts (1M entries: 4 MB in float32; a
# 2x256 char LSTM needs 80 x 1024). A 17k-word vocabulary's would take ~25 ms to build, a sample's worth.
TABLE_ENTRIES = 1 << 20


def recurrent_weights(layer, columns=None) -> np.ndarray:
    """[W_ih; W_hh; b_ih + b_hh]ᵀ [I + H + 1, G·H], gate columns in the given order (all, in the
    layer's order, by default). A cell without recurrent weights (minGRU, minLSTM) has zero W_hh rows."""
    w_ih = layer.weight_ih.detach().numpy()
    w_hh = layer.weight_hh.detach().numpy() if hasattr(layer, "weight_hh") else np.zeros((len(w_ih), layer.hidden),
                                                                                        w_ih.dtype)
    b = layer.bias_ih.detach().numpy()
    if layer.bias_hh is not None:
        b = b + layer.bias_hh.detach().numpy()
    w = np.concatenate([w_ih.T, w_hh.T, b[None]])
    return w if columns is None else w[:, columns]


def sigmoid_of_negated(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """σ(x) = 1 / (1 + e^{a}) from a = −x (the steps negate the sigmoid gates' columns once)."""
    np.exp(a, out=out)
    out += 1
    return np.reciprocal(out, out=out)


# The NumPy steps of the cells, one class per cell, named by the cell table's `stepper`. A step is
# built from one PyTorch layer, the layer's state (a tuple of [B, H] arrays) and the dtype; it
# holds `w` [I + H + 1, K], the weights of the product a = [x, h_{t-1}, 1] · w that the Stepper
# computes, and `step(a, h)` finishes the step: h [B, H] (a view of the next product's input)
# becomes h_t in place; `a` may be overwritten. Further state (the LSTM's c) is the step's own.


class RNNStep:
    """h_t = φ([x, h_{t-1}, 1] · W)."""

    def __init__(self, layer, state: tuple, dtype):
        self.w = recurrent_weights(layer)
        self.relu = layer.nonlinearity == "relu"

    def __call__(self, a, h):
        if self.relu:
            np.maximum(a, 0, out=h)
        else:
            np.tanh(a, out=h)


class LSTMStep:
    """Gate columns (−i, −f, −o | g): c_t = σ(a_f) ⊙ c_{t-1} + σ(a_i) ⊙ tanh(a_g), h_t = σ(a_o) ⊙ tanh(c_t)."""

    def __init__(self, layer, state: tuple, dtype):
        H = layer.hidden
        G = np.arange(4 * H).reshape(4, H)
        self.w = recurrent_weights(layer, G[[0, 1, 3, 2]].ravel())  # (i, f, g, o) → (−i, −f, −o | g)
        self.w[:, : 3 * H] *= -1
        self.c = np.array(state[1], dtype)
        self.s = np.empty((len(self.c), 3 * H), dtype)

    def __call__(self, a, h):
        H = self.c.shape[1]
        s, g, c, t = self.s, a[:, 3 * H :], self.c, a[:, :H]
        sigmoid_of_negated(a[:, : 3 * H], s)  # the columns hold −a
        np.tanh(g, out=g)
        c *= s[:, H : 2 * H]
        g *= s[:, :H]
        c += g
        np.tanh(c, out=t)
        np.multiply(s[:, 2 * H :], t, out=h)


class GRUStep:
    """Columns (−r, −z | W_in x + b_in | W_hn h + b_hn): n = tanh(a_nx + σ(a_r) ⊙ a_nh),
    h_t = n + σ(a_z) ⊙ (h_{t-1} − n) (gru_z="old"). gru_reset="before": columns
    (−r, −z | W_in x + b_in + b_hn), n = tanh(a_nx + (σ(a_r) ⊙ h_{t-1}) W_hnᵀ), a second product."""

    def __init__(self, layer, state: tuple, dtype):
        H, I = layer.hidden, layer.input_size
        self.old_z, self.reset_before = layer.gru_z == "old", layer.gru_reset == "before"
        G = np.arange(3 * H).reshape(3, H)
        w = recurrent_weights(layer, G[[0, 1, 2, 2]].ravel())  # (r, z, n) → (−r, −z | n from x | n from h)
        w[:, : 2 * H] *= -1
        w[I : I + H, 2 * H : 3 * H] = 0  # n from x: W_in x + b_in
        w[-1, 2 * H : 3 * H] = layer.bias_ih[2 * H :].detach().numpy()
        w[:I, 3 * H :] = 0  # n from h: W_hn h + b_hn
        w[-1, 3 * H :] = 0 if layer.bias_hh is None else layer.bias_hh[2 * H :].detach().numpy()
        self.w_hn = None
        if self.reset_before:  # b_hn joins n from x; W_hn multiplies r ⊙ h, after r is known
            w[-1, 2 * H : 3 * H] += w[-1, 3 * H :]
            w = w[:, : 3 * H]
            self.w_hn = np.ascontiguousarray(layer.weight_hh[2 * H :].detach().numpy().T)
        self.w = w
        self.s = np.empty((state[0].shape[0], 2 * H), dtype)

    def __call__(self, a, h):
        H = h.shape[1]
        s, n = self.s, a[:, 2 * H : 3 * H]
        sigmoid_of_negated(a[:, : 2 * H], s)
        r, z = s[:, :H], s[:, H:]
        if self.reset_before:
            r *= h
            n += np.dot(r, self.w_hn)
        else:
            r *= a[:, 3 * H :]
            n += r
        np.tanh(n, out=n)
        if self.old_z:  # h = n + z (h − n)
            h -= n
            h *= z
            h += n
        else:  # h = h + z (n − h)
            n -= h
            n *= z
            h += n


class _Layer(NamedTuple):
    """One layer's buffers: the product's input xh = [x, h, 1] [B, I + H + 1] (x and h are views
    of it), its weights w, its result a = xh · w, and the cell's step."""

    xh: np.ndarray
    w: np.ndarray
    a: np.ndarray
    x: np.ndarray
    h: np.ndarray
    step: object


class Stepper:
    """Carries the state of B streams; `stepper(tokens [B])` → logits [B, V] (NumPy)."""

    @classmethod
    def supports(cls, model) -> bool:
        rnn = getattr(model, "rnn", None)
        return (rnn is not None and cell_registry.get(rnn.cell).stepper is not None
                and hasattr(model, "embedding") and hasattr(model, "decoder")
                and model.embedding.weight.device.type == "cpu"
                and model.embedding.weight.dtype in (torch.float32, torch.float64))

    @torch.no_grad()
    def __init__(self, model, state: tuple):
        rnn = model.rnn
        step_class = cell_registry.get(rnn.cell).stepper_class()  # ValueError for a cell without one
        self.cell, self.H = rnn.cell, rnn.hidden
        dtype = model.embedding.weight.dtype
        self.dtype = np.float32 if dtype == torch.float32 else np.float64
        self.embedding = model.embedding.weight.detach().numpy()
        B, H = state[0].shape[1], self.H
        self.layers: list[_Layer] = []
        self.x_table = None
        for l, layer in enumerate(rnn.layers):
            step = step_class(layer, tuple(s[l].numpy() for s in state), self.dtype)
            w, I = step.w, layer.input_size
            if l == 0 and self.embedding.shape[0] * w.shape[1] <= TABLE_ENTRIES:
                # x W_x = E[token] W_x is one row per token: all of them computed here [V, G·H]; the
                # layer then multiplies [h, 1] only
                self.x_table = np.dot(self.embedding, w[:I])
                w, I = w[I:], 0
            w = np.ascontiguousarray(w)  # gate columns were picked by fancy indexing: not C order, and a
            # row slice of such an array would fall off BLAS onto NumPy's slow loop
            xh = np.zeros((B, I + H + 1), self.dtype)
            xh[:, -1] = 1
            xh[:, I : I + H] = state[0][l].numpy()
            a = np.empty((B, w.shape[1]), self.dtype)
            self.layers.append(_Layer(xh, w, a, xh[:, :I], xh[:, I : I + H], step))
        self.top = self.layers[-1].xh[:, -H - 1 :]  # [h, 1] of the last layer: the decoder's input
        self.h_top = self.layers[-1].h  # h of the last layer
        d = model.decoder
        self.adaptive = isinstance(d, AdaptiveSoftmax)
        if self.adaptive:  # head [H + 1, shortlist + clusters]; each cluster: P_k [H, d_k], U_k [d_k, n_k]
            self.shortlist = d.shortlist_size
            self.decoder = np.concatenate([d.head.weight.detach().numpy().T, d.head.bias.detach().numpy()[None]])
            self.tails = [(lo, hi, tail[0].weight.detach().numpy().T, tail[1].weight.detach().numpy().T)
                          for lo, hi, tail in zip(d.cutoffs, d.cutoffs[1:], d.tail)]
        else:
            self.decoder = np.concatenate([d.matrix.detach().numpy().T, d.bias.detach().numpy()[None]])

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        self.advance(tokens)
        return self.logits()

    def logits(self) -> np.ndarray:
        """Logits [B, V] for the current state: softmax of them is p(next token)."""
        head = self.head()
        return self._adaptive(head) if self.adaptive else head

    def head(self) -> np.ndarray:
        """The output layer's scores [B, ·] for the current state: all logits of
        a full softmax; an adaptive softmax's head (shortlist, then one entry per cluster)."""
        return np.dot(self.top, self.decoder)

    def cluster(self, k: int, b: int) -> tuple[int, np.ndarray]:
        """Adaptive softmax: (first token id, scores within cluster k) for stream b."""
        return self.tails[k][0], self._tail(k, self.h_top[b])

    def _tail(self, k: int, h: np.ndarray) -> np.ndarray:
        """Scores U_k P_k h within cluster k (not normalised)."""
        _, _, proj, words = self.tails[k]
        return np.dot(np.dot(h, proj), words)

    def advance(self, tokens: np.ndarray) -> None:
        """Feed tokens [B]: one step of every layer."""
        x = self.embedding[tokens] if self.x_table is None else None
        for l, layer in enumerate(self.layers):
            a = layer.a
            if l == 0 and self.x_table is not None:
                np.dot(layer.xh, layer.w, out=a)  # [h, 1] · W_{h,1}
                a += self.x_table[tokens]  # + x W_x: a = [x, h, 1] · W
            else:
                layer.x[...] = x
                np.dot(layer.xh, layer.w, out=a)
            layer.step(a, layer.h)
            x = layer.h

    def _adaptive(self, head: np.ndarray) -> np.ndarray:
        """Logits of the adaptive softmax (rnnlab/models/softmax.py): softmax of
        them is p(w | h). Head words keep their head score; a word of cluster k
        gets the cluster's head score + its log-probability within the cluster."""
        S = self.shortlist
        out = np.empty((len(head), self.tails[-1][1]), self.dtype)
        out[:, :S] = head[:, :S]
        for k, (lo, hi, _, _) in enumerate(self.tails):
            t = self._tail(k, self.h_top)
            m = t.max(-1, keepdims=True)
            out[:, lo:hi] = t - (m + np.log(np.exp(t - m).sum(-1, keepdims=True)) - head[:, S + k : S + k + 1])
        return out
