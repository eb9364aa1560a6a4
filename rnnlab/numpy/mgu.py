"""The minimal gated unit (Zhou et al. 2016) with hand-written BPTT; the
calling convention of rnnlab/numpy/cells.py (``forward`` → ``(out,
final_state, cache)``, ``backward`` → ``LayerGrads``)."""

from __future__ import annotations

import numpy as np

from .cells import LayerGrads, _Recurrent, dsigmoid, dtanh, project, rows_product, sigmoid


class MGULayer(_Recurrent):
    """MGU layer, gate rows (f, h): one gate f, which opens to overwrite the state.

    Forward, per step (b_h* absent in "single" bias mode; u is the state the candidate reads):
        f  = σ(W_f x + b_f + U_f h_{t-1} + b_hf)
        u  = f ⊙ h_{t-1}
        h̃ = tanh(W_h x + b_h + U_h u + b_hh)
        h_t = (1 − f) ⊙ h_{t-1} + f ⊙ h̃  =  h_{t-1} + f ⊙ (h̃ − h_{t-1})
    Backward, with dh = dL/dh_t (output + recurrent):
        dh̃ = dh ⊙ f                 da_h = dh̃ ⊙ (1 − h̃²)
        du  = da_h U_h               df = dh ⊙ (h̃ − h_{t-1}) + du ⊙ h_{t-1}
        da_f = df ⊙ f(1 − f)
        dL/dh_{t-1} = dh ⊙ (1 − f) + du ⊙ f + da_f U_f
        dW_ih = Σ [da_f, da_h]ᵀ x    dU_f = Σ da_fᵀ h_{t-1}    dU_h = Σ da_hᵀ u
        db_ih = db_hh = Σ [da_f, da_h]    dx = [da_f, da_h] W_ih
    """

    gates = 2
    name = "mgu"

    def forward(self, params, x, state=None, *, times=None, train=True):
        x, (h0,) = self._prepare(params, x, state)
        T, B, _ = x.shape
        H = self.hidden_size
        a_x = project(x, params["weight_ih"], params["bias_ih"])  # [W_f x + b_f, W_h x + b_h], all t
        W_hh = params["weight_hh"]
        b_hh = params["bias_hh"] if self.bias == "double" else np.zeros(2 * H, dtype=a_x.dtype)
        U_fT, U_hT = np.ascontiguousarray(W_hh[:H].T), np.ascontiguousarray(W_hh[H:].T)
        f, u, h_tilde = (np.empty((T, B, H), dtype=a_x.dtype) for _ in range(3))
        h = np.empty((T + 1, B, H), dtype=a_x.dtype)  # h[0] = h0, h[t+1] = h_t
        h[0] = h0
        with np.errstate(over="ignore"):  # σ: e^{−a} -> inf is the right limit
            for t in range(T):
                f[t] = sigmoid(a_x[t, :, :H] + h[t] @ U_fT + b_hh[:H])
                u[t] = f[t] * h[t]
                h_tilde[t] = np.tanh(a_x[t, :, H:] + u[t] @ U_hT + b_hh[H:])
                h[t + 1] = h[t] + f[t] * (h_tilde[t] - h[t])
        cache = {"x": x, "f": f, "u": u, "h_tilde": h_tilde, "h": h}
        return h[1:], (h[T].copy(),), cache

    def signals(self, cache):
        """h_t, the gate f and the candidate h̃ of every step."""
        return {"h": cache["h"][1:], "f": cache["f"], "h_tilde": cache["h_tilde"]}

    def backward(self, params, cache, dout=None, dstate=None):
        x, f, u, h_tilde, h = (cache[k] for k in ("x", "f", "u", "h_tilde", "h"))
        T, B, _ = x.shape
        H = self.hidden_size
        h_prev = h[:-1]
        U_f, U_h = params["weight_hh"][:H], params["weight_hh"][H:]
        df_da, dh_tilde_da = dsigmoid(f), dtanh(h_tilde)  # all steps at once
        da = np.empty((T, B, 2 * H), dtype=f.dtype)  # [da_f, da_h]
        da_f, da_h = da[..., :H], da[..., H:]
        dh_all = np.empty_like(f)
        dh_next = self._incoming(dstate, 0, h[0])
        for t in range(T - 1, -1, -1):
            dh = dh_next if dout is None else dh_next + dout[t]
            da_h[t] = dh * f[t] * dh_tilde_da[t]
            du = da_h[t] @ U_h
            df = dh * (h_tilde[t] - h_prev[t]) + du * h_prev[t]
            da_f[t] = df * df_da[t]
            dh_next = dh * (1.0 - f[t]) + du * f[t] + da_f[t] @ U_f
            dh_all[t] = dh
        grads = {"weight_ih": rows_product(da, x), "bias_ih": da.sum(axis=(0, 1)),
                 "weight_hh": np.concatenate([rows_product(da_f, h_prev), rows_product(da_h, u)])}
        if self.bias == "double":
            grads["bias_hh"] = grads["bias_ih"].copy()
        return LayerGrads(da @ params["weight_ih"], grads, (dh_next,), dh_all)
