"""minGRU and minLSTM (Feng et al. 2024) with hand-written backward passes;
the calling convention of rnnlab/numpy/cells.py.

The gates read only x_t, so every step is h_t = a_t ⊙ h_{t-1} + b_t with a_t
and b_t known before the recurrence starts. The forward pass is the
parallel scan in log space (as the PyTorch layers, rnnlab/models/minimal.py):

    A_t = Σ_{s≤t} log a_s
    h_t = e^{A_t} ⊙ h_0 + exp(A_t + logcumsumexp_{s≤t}(log b_s − A_s))

The backward pass runs the recurrence's adjoint from the last step down,
elementwise only (no product inside the loop):

    dh_t = dout_t + a_{t+1} ⊙ dh_{t+1}     (dh_T also gets dL/dh_T of the final state)
    da_t = dh_t ⊙ h_{t-1}                  db_t = dh_t
    dL/dh_0 = a_1 ⊙ dh_1

then one product each for dW_ih, db_ih and dx. Both cells are
h_t = h_{t-1} + z ⊙ (h̃ − h_{t-1}) with their own z, so the adjoint above
reads dz = dh ⊙ (h̃ − h_{t-1}), dh̃ = dh ⊙ z, dh_{t-1} = dh ⊙ (1 − z).

g(k) = k + 0.5 (k ≥ 0), σ(k) (k < 0);  g'(k) = 1 (k ≥ 0), σ(k)(1 − σ(k)) (k < 0).
"""

from __future__ import annotations

import numpy as np

from .cells import LayerGrads, _Recurrent, project, rows_product


def softplus(k: np.ndarray) -> np.ndarray:
    """log(1 + e^k), without overflow."""
    return np.logaddexp(0, k)


def sigmoid(k: np.ndarray) -> np.ndarray:
    """σ(k) = exp(−softplus(−k)), without overflow."""
    return np.exp(-softplus(-k))


def g(k: np.ndarray) -> np.ndarray:
    return np.where(k >= 0, np.maximum(k, 0) + 0.5, sigmoid(k))


def log_g(k: np.ndarray) -> np.ndarray:
    return np.where(k >= 0, np.log(np.maximum(k, 0) + 0.5), -softplus(-k))


def dg(k: np.ndarray) -> np.ndarray:
    s = sigmoid(k)
    return np.where(k >= 0, 1.0, s * (1.0 - s))


def scan(log_a: np.ndarray, log_b: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """h [T + 1, B, H] with h[0] = h0 and h[t] = a_t ⊙ h[t − 1] + b_t, in log space."""
    A = np.cumsum(log_a, axis=0)
    h = np.empty((len(A) + 1, *h0.shape), dtype=A.dtype)
    h[0] = h0
    h[1:] = np.exp(A) * h0 + np.exp(A + np.logaddexp.accumulate(log_b - A, axis=0))
    return h


class _Parallel(_Recurrent):
    """weight_ih [G·H, I] and bias_ih [G·H] only: no recurrent weights, one bias whatever ``bias`` says."""

    def param_shapes(self):
        return {"weight_ih": (self.gates * self.hidden_size, self.input_size),
                "bias_ih": (self.gates * self.hidden_size,)}

    def gates_of(self, k: np.ndarray) -> dict:
        """The cell's gates from the projections k [T, B, G·H]: z (the share of h̃ in h_t),
        log(1 − z), log z, and what the backward needs."""
        raise NotImplementedError

    def forward(self, params, x, state=None, *, times=None, train=True):
        x, (h0,) = self._prepare(params, x, state)
        k = project(x, params["weight_ih"], params["bias_ih"])  # one product for the whole sequence
        H = self.hidden_size
        k_h = k[..., -H:]
        gates = self.gates_of(k)
        h = scan(gates["log_1mz"], gates["log_z"] + log_g(k_h), h0)
        cache = {"x": x, "k": k, "z": gates["z"], "h_tilde": g(k_h), "h": h}
        return h[1:], (h[-1].copy(),), cache

    def backward(self, params, cache, dout=None, dstate=None):
        x, k, z, h_tilde, h = (cache[key] for key in ("x", "k", "z", "h_tilde", "h"))
        T = x.shape[0]
        h_prev = h[:-1]
        dh_all = np.empty_like(z)
        dh_next = self._incoming(dstate, 0, h[0])
        for t in range(T - 1, -1, -1):
            dh = dh_next if dout is None else dh_next + dout[t]
            dh_next = dh * (1.0 - z[t])
            dh_all[t] = dh
        dz = dh_all * (h_tilde - h_prev)
        dh_tilde = dh_all * z
        dk = self.gate_grads(k, dz)  # [T, B, G·H], the h̃ block still empty
        H = self.hidden_size
        dk[..., -H:] = dh_tilde * dg(k[..., -H:])
        grads = {"weight_ih": rows_product(dk, x), "bias_ih": dk.sum(axis=(0, 1))}
        return LayerGrads(dk @ params["weight_ih"], grads, (dh_next,), dh_all)

    def gate_grads(self, k, dz) -> np.ndarray:
        raise NotImplementedError

    def signals(self, cache):
        """h_t, the gates and the candidate h̃ of every step (the gates from the cache's projections k)."""
        H = self.hidden_size
        gates = {name: sigmoid(cache["k"][..., j * H : (j + 1) * H]) for j, name in enumerate(self.gate_names)}
        return {"h": cache["h"][1:], **gates, "h_tilde": cache["h_tilde"]}


class MinGRULayer(_Parallel):
    """minGRU, rows (z, h):  z = σ(k_z)   h̃ = g(k_h)   h_t = (1 − z) ⊙ h_{t-1} + z ⊙ h̃
    log(1 − z) = −softplus(k_z), log z = −softplus(−k_z).
    Backward: dk_z = dz ⊙ z(1 − z), dk_h = dh̃ ⊙ g'(k_h)."""

    gates = 2
    gate_names = ("z",)  # σ rows, before the candidate's
    name = "mingru"

    def gates_of(self, k):
        k_z = k[..., : self.hidden_size]
        return {"z": sigmoid(k_z), "log_1mz": -softplus(k_z), "log_z": -softplus(-k_z)}

    def gate_grads(self, k, dz):
        H = self.hidden_size
        z = sigmoid(k[..., :H])
        dk = np.empty_like(k)
        dk[..., :H] = dz * z * (1.0 - z)
        return dk


class MinLSTMLayer(_Parallel):
    """minLSTM, rows (f, i, h):  f = σ(k_f)   i = σ(k_i)   h̃ = g(k_h)
        f' = f / (f + i)   i' = i / (f + i)   h_t = f' ⊙ h_{t-1} + i' ⊙ h̃
    With d = log i − log f = softplus(−k_f) − softplus(−k_i):  i' = σ(d), f' = 1 − i',
    log f' = −softplus(d), log i' = −softplus(−d); so z = i' in the shared form.
    Backward: dd = dz ⊙ i'(1 − i');  ∂d/∂k_i = 1 − i,  ∂d/∂k_f = −(1 − f)
        dk_i = dd ⊙ (1 − i)   dk_f = −dd ⊙ (1 − f)   dk_h = dh̃ ⊙ g'(k_h)."""

    gates = 3
    gate_names = ("f", "i")
    name = "minlstm"

    def _d(self, k):
        H = self.hidden_size
        return softplus(-k[..., :H]) - softplus(-k[..., H : 2 * H])

    def gates_of(self, k):
        d = self._d(k)
        return {"z": sigmoid(d), "log_1mz": -softplus(d), "log_z": -softplus(-d)}

    def gate_grads(self, k, dz):
        H = self.hidden_size
        i_prime = sigmoid(self._d(k))
        dd = dz * i_prime * (1.0 - i_prime)
        f, i = sigmoid(k[..., :H]), sigmoid(k[..., H : 2 * H])
        dk = np.empty_like(k)
        dk[..., :H] = -dd * (1.0 - f)
        dk[..., H : 2 * H] = dd * (1.0 - i)
        return dk
