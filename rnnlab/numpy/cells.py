"""Recurrent layers (RNN, LSTM, GRU, Phased LSTM) with hand-written BPTT.

Every layer runs a whole time-major sequence at once:

    out, final_state, cache = layer.forward(params, x, state)
    grads = layer.backward(params, cache, dout, dstate)

* ``x`` is ``[T, B, I]``, ``out`` is ``[T, B, H]`` (the hidden state after every
  step), ``state`` is a tuple ``(h,)`` (RNN, GRU) or ``(h, c)`` (LSTM, Phased
  LSTM) of ``[B, H]`` arrays; ``None`` means zeros.
* ``params`` is a plain dict with the PyTorch names and shapes
  (``weight_ih [G*H, I]``, ``weight_hh [G*H, H]``, ``bias_ih [G*H]`` and, in
  "double" bias mode, ``bias_hh [G*H]``), gate rows in PyTorch's order. The layer
  objects hold only hyper-parameters, so the same dict loads into
  ``torch.nn.LSTM`` & co. (``*_l0`` names) or the project's PyTorch cells.
* The dtype follows the parameters (float32 or float64).
* ``dout`` (``[T, B, H]`` or ``None``) is dL/d(out) and ``dstate`` (tuple like
  ``state`` or ``None``) is dL/d(final_state): together they cover a loss on
  the outputs plus whatever the next truncated-BPTT segment sends back.
* ``backward`` returns :class:`LayerGrads` ``(dx, params, state, dh)``: the
  input gradient, a dict of parameter gradients keyed like ``params``, the
  gradient w.r.t. the initial state, and ``dh[t]`` = total dL/dh_t (through
  both the output at t and all later steps), which is what gradient-flow
  plots need.

The code follows the equations in each docstring, one named quantity per
line. What keeps it fast without hiding the equations: the input projection
W_ih x_t + b of all T steps is one matrix product before the loop (only
W_hh h_{t-1}, with W_hhᵀ made contiguous once, is left inside it); the local
derivatives that do not depend on the incoming gradient (∂c_t/∂a_i, σ', ...)
are computed for all steps before the backward loop; per-step results are
written into their [T, B, H] arrays with ``out=``; and the weight gradients
are one product each after the loop (dW = Σ_t da_tᵀ x_t over all T·B rows).
Layers are built by name through the cell table (rnnlab/cell_registry.py).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

BIAS_MODES = ("single", "double")


class LayerGrads(NamedTuple):
    """Result of ``backward``: gradients of the loss w.r.t. everything the
    forward pass consumed, plus the per-step hidden-state gradients."""

    dx: np.ndarray  # [T, B, I]
    params: dict  # name -> array, same keys and shapes as ``params``
    state: tuple  # like the initial state
    dh: np.ndarray  # [T, B, H]; dh[t] = dL/dh_t, h_t = out[t]


def sigmoid(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """σ(a) = 1 / (1 + e^{−a}), into `out` if given. For a < −88 (float32)
    e^{−a} overflows to inf and σ correctly becomes 0; callers silence that
    warning with np.errstate."""
    out = np.negative(a, out=out)
    np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


def dsigmoid(s: np.ndarray) -> np.ndarray:
    """σ'(a) written with s = σ(a): s (1 − s)."""
    return s * (1.0 - s)


def dtanh(y: np.ndarray) -> np.ndarray:
    """tanh'(a) written with y = tanh(a): 1 − y²."""
    return 1.0 - y * y


def project(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """x [T, B, I] -> x Wᵀ + b, [T, B, rows]: all steps as one matrix product."""
    out = x @ weight.T
    if bias is not None:
        out += bias
    return out


def rows_product(da: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Σ over all T·B rows of da_tᵀ v_t: a weight gradient as one product
    (da [T, B, G], v [T, B, K] -> [G, K])."""
    return da.reshape(-1, da.shape[-1]).T @ v.reshape(-1, v.shape[-1])


class _Recurrent:
    """Shared plumbing: parameter shapes, init, state handling, affine grads."""

    gates = 1  # gate blocks of the weight rows (rnnlab/cell_registry.py names them)
    n_states = 1  # (h,) or (h, c)
    name = "rnn"

    def __init__(self, input_size: int, hidden_size: int, bias: str = "double"):
        if bias not in BIAS_MODES:
            raise ValueError(f"bias must be one of {BIAS_MODES}, got {bias!r}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.bias = bias

    # --- parameters -----------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        gh, h, i = self.gates * self.hidden_size, self.hidden_size, self.input_size
        shapes = {"weight_ih": (gh, i), "weight_hh": (gh, h), "bias_ih": (gh,)}
        if self.bias == "double":
            shapes["bias_hh"] = (gh,)
        return shapes

    def init_params(self, rng: np.random.Generator | None = None, dtype=np.float64,
                    init: float | None = None) -> dict[str, np.ndarray]:
        """PyTorch's default U(-1/sqrt(H), 1/sqrt(H)) for every tensor, or
        U(-init, init) when ``init`` is given."""
        rng = np.random.default_rng() if rng is None else rng
        bound = 1.0 / np.sqrt(self.hidden_size) if init is None else float(init)
        return {k: rng.uniform(-bound, bound, size=s).astype(dtype)
                for k, s in self.param_shapes().items()}

    def num_params(self) -> int:
        return int(sum(np.prod(s) for s in self.param_shapes().values()))

    # --- state -----------------------------------------------------------
    def zero_state(self, batch: int, dtype=np.float64) -> tuple:
        return tuple(np.zeros((batch, self.hidden_size), dtype=dtype) for _ in range(self.n_states))

    def _prepare(self, params, x, state):
        dtype = params["weight_ih"].dtype
        x = np.asarray(x, dtype=dtype)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"expected x of shape [T, B, {self.input_size}], got {x.shape}")
        if state is None:
            state = self.zero_state(x.shape[1], dtype)
        return x, tuple(np.asarray(s, dtype=dtype) for s in state)

    def _summed_bias(self, params):
        # RNN/LSTM add both biases to the same pre-activation, so fold them.
        if self.bias == "double":
            return params["bias_ih"] + params["bias_hh"]
        return params["bias_ih"]

    @staticmethod
    def _incoming(dstate, k, like):
        """dL/d(final state k), zeros when the loss does not reach it."""
        if dstate is None or dstate[k] is None:
            return np.zeros_like(like)
        return np.asarray(dstate[k], dtype=like.dtype)

    def _affine_grads(self, params, x, h_prev, da):
        """Gradients of a = W_ih x + b_ih + W_hh h_{t-1} (+ b_hh) given da = dL/da:

            dW_ih = Σ_t da_tᵀ x_t     db_ih = Σ_t da_t     dx_t = da_t W_ih
            dW_hh = Σ_t da_tᵀ h_{t-1}  db_hh = Σ_t da_t
        """
        grads = {"weight_ih": rows_product(da, x), "weight_hh": rows_product(da, h_prev),
                 "bias_ih": da.sum(axis=(0, 1))}
        if self.bias == "double":
            grads["bias_hh"] = grads["bias_ih"].copy()
        return da @ params["weight_ih"], grads

    def signals(self, cache: dict) -> dict[str, np.ndarray]:
        """What the forward pass computed at every step, [T, B, H] each, by the names of the cell
        table's `signals` (rnnlab/states/record.py records them): the hidden state h_t, and in
        the cells below c_t and the gates. The RNN's one gate row "h" is h_t itself."""
        return {"h": cache["h"][1:]}


class RNNLayer(_Recurrent):
    """Elman RNN layer (PyTorch ``nn.RNN``).

    Forward, per step:
        a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        h_t = φ(a_t),   φ = tanh or relu
    Backward, with dh_t = dL/dh_t (the output's gradient plus what step t+1 sends back):
        da_t      = dh_t ⊙ φ'(a_t),   φ' = 1 − h_t² (tanh) or [h_t > 0] (relu)
        dh_{t-1} += da_t W_hh
        and the affine gradients (dW_ih, dW_hh, db, dx) of `_affine_grads`.
    """

    def __init__(self, input_size, hidden_size, bias="double", nonlinearity="tanh"):
        super().__init__(input_size, hidden_size, bias)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.name = f"rnn_{nonlinearity}"

    def phi(self, a):
        return np.maximum(a, 0.0) if self.nonlinearity == "relu" else np.tanh(a)

    def dphi(self, h):
        return (h > 0).astype(h.dtype) if self.nonlinearity == "relu" else dtanh(h)

    def forward(self, params, x, state=None, *, times=None, train=True):
        x, (h0,) = self._prepare(params, x, state)
        T = x.shape[0]
        a_x = project(x, params["weight_ih"], self._summed_bias(params))  # W_ih x_t + b, all t
        W_hhT = np.ascontiguousarray(params["weight_hh"].T)  # W_hhᵀ, contiguous: a faster product
        h = np.empty((T + 1, *h0.shape), dtype=a_x.dtype)  # h[0] = h0, h[t+1] = h_t
        h[0] = h0
        for t in range(T):
            a = a_x[t] + h[t] @ W_hhT
            h[t + 1] = self.phi(a)
        cache = {"x": x, "h": h}
        return h[1:], (h[T].copy(),), cache

    def backward(self, params, cache, dout=None, dstate=None):
        x, h = cache["x"], cache["h"]
        T = x.shape[0]
        W_hh = params["weight_hh"]
        dphi = self.dphi(h[1:])  # φ'(a_t) for all steps at once, from the outputs
        da = np.empty_like(dphi)
        dh_all = np.empty_like(dphi)
        dh_next = self._incoming(dstate, 0, h[0])  # dL/dh_t from the steps after t
        for t in range(T - 1, -1, -1):
            dh = dh_next if dout is None else dh_next + dout[t]
            da[t] = dh * dphi[t]
            dh_next = da[t] @ W_hh
            dh_all[t] = dh
        dx, grads = self._affine_grads(params, x, h[:-1], da)
        return LayerGrads(dx, grads, (dh_next,), dh_all)


def lstm_gates(a: np.ndarray, i, f, g, o) -> None:
    """i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o) from the
    pre-activations a [B, 4H] (rows i, f, g, o), written into i, f, g, o [B, H]."""
    H = i.shape[-1]
    sigmoid(a[:, :H], out=i)
    sigmoid(a[:, H:2 * H], out=f)
    np.tanh(a[:, 2 * H:3 * H], out=g)
    sigmoid(a[:, 3 * H:], out=o)


def lstm_step(a, c_prev, i, f, g, o, c, tanh_c, h) -> None:
    """One LSTM step from the pre-activations a [B, 4H], written into the
    [B, H] arrays i, f, g, o (the gates) and

        c = f ⊙ c_prev + i ⊙ g      tanh_c = tanh(c)      h = o ⊙ tanh_c

    (the Phased LSTM's candidates c̃, h̃ are these c and h)."""
    lstm_gates(a, i, f, g, o)
    np.multiply(f, c_prev, out=c)
    c += i * g
    np.tanh(c, out=tanh_c)
    np.multiply(o, tanh_c, out=h)


class LSTMDerivatives(NamedTuple):
    """The LSTM's local derivatives, which do not depend on the incoming
    gradient (so the backward pass computes them for all steps at once):
    with dc = dL/dc_t, dh = dL/dh_t,  da_i = dc ⊙ dc_dai, ...,  da_o = dh ⊙ dh_dao."""

    dc_dai: np.ndarray  # ∂c_t/∂a_i = g ⊙ σ'(a_i)
    dc_daf: np.ndarray  # ∂c_t/∂a_f = c_{t-1} ⊙ σ'(a_f)
    dc_dag: np.ndarray  # ∂c_t/∂a_g = i ⊙ tanh'(a_g)
    dh_dao: np.ndarray  # ∂h_t/∂a_o = tanh(c_t) ⊙ σ'(a_o)
    dh_dc: np.ndarray  # ∂h_t/∂c_t = o ⊙ tanh'(c_t)


def lstm_derivatives(i, f, g, o, c_prev, tanh_c) -> LSTMDerivatives:
    return LSTMDerivatives(g * dsigmoid(i), c_prev * dsigmoid(f), i * dtanh(g), tanh_c * dsigmoid(o), o * dtanh(tanh_c))


def lstm_gate_grads(dc, dh, d: LSTMDerivatives, t: int, da: np.ndarray) -> None:
    """da [B, 4H] = [da_i, da_f, da_g, da_o] at step t from dc = dL/dc_t, dh = dL/dh_t."""
    H = dc.shape[-1]
    np.multiply(dc, d.dc_dai[t], out=da[:, :H])
    np.multiply(dc, d.dc_daf[t], out=da[:, H:2 * H])
    np.multiply(dc, d.dc_dag[t], out=da[:, 2 * H:3 * H])
    np.multiply(dh, d.dh_dao[t], out=da[:, 3 * H:])


class LSTMLayer(_Recurrent):
    """LSTM layer (PyTorch ``nn.LSTM``), gate rows (i, f, g, o).

    Forward, per step:
        a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh, split into (a_i, a_f, a_g, a_o)
        i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
        c_t = f ⊙ c_{t-1} + i ⊙ g
        h_t = o ⊙ tanh(c_t)
    Backward, with dh = dL/dh_t (output + recurrent) and dc_next = dL/dc_t from step t+1:
        dc   = dc_next + dh ⊙ o ⊙ (1 − tanh² c_t)
        da_i = dc ⊙ g ⊙ i(1 − i)          da_f = dc ⊙ c_{t-1} ⊙ f(1 − f)
        da_g = dc ⊙ i ⊙ (1 − g²)          da_o = dh ⊙ tanh(c_t) ⊙ o(1 − o)
        dL/dc_{t-1} = dc ⊙ f              dL/dh_{t-1} = da_t W_hh
        and the affine gradients of `_affine_grads` with da_t = [da_i, da_f, da_g, da_o].
    """

    gates = 4
    n_states = 2
    name = "lstm"

    def forward(self, params, x, state=None, *, times=None, train=True):
        x, (h0, c0) = self._prepare(params, x, state)
        T, B, _ = x.shape
        H = self.hidden_size
        a_x = project(x, params["weight_ih"], self._summed_bias(params))
        W_hhT = np.ascontiguousarray(params["weight_hh"].T)  # W_hhᵀ, contiguous: a faster product
        i, f, g, o, tanh_c = (np.empty((T, B, H), dtype=a_x.dtype) for _ in range(5))
        c = np.empty((T + 1, B, H), dtype=a_x.dtype)  # c[0] = c0, c[t+1] = c_t; h likewise
        h = np.empty((T + 1, B, H), dtype=a_x.dtype)
        c[0], h[0] = c0, h0
        with np.errstate(over="ignore"):  # σ: e^{−a} -> inf is the right limit
            for t in range(T):
                a = a_x[t] + h[t] @ W_hhT
                lstm_step(a, c[t], i[t], f[t], g[t], o[t], c[t + 1], tanh_c[t], h[t + 1])
        cache = {"x": x, "i": i, "f": f, "g": g, "o": o, "c": c, "h": h, "tanh_c": tanh_c}
        return h[1:], (h[T].copy(), c[T].copy()), cache

    def signals(self, cache):
        """h_t, c_t and the gates i, f, g, o of every step."""
        return {"h": cache["h"][1:], "c": cache["c"][1:], **{name: cache[name] for name in ("i", "f", "g", "o")}}

    def backward(self, params, cache, dout=None, dstate=None):
        x, i, f, g, o = cache["x"], cache["i"], cache["f"], cache["g"], cache["o"]
        c, h, tanh_c = cache["c"], cache["h"], cache["tanh_c"]
        T, B, _ = x.shape
        H = self.hidden_size
        W_hh = params["weight_hh"]
        d = lstm_derivatives(i, f, g, o, c[:-1], tanh_c)  # all steps at once
        da = np.empty((T, B, 4 * H), dtype=i.dtype)
        dh_all = np.empty_like(i)
        dh_next = self._incoming(dstate, 0, h[0])
        dc_next = self._incoming(dstate, 1, c[0])
        for t in range(T - 1, -1, -1):
            dh = dh_next if dout is None else dh_next + dout[t]
            dc = dc_next + dh * d.dh_dc[t]
            lstm_gate_grads(dc, dh, d, t, da[t])
            dc_next = dc * f[t]
            dh_next = da[t] @ W_hh
            dh_all[t] = dh
        dx, grads = self._affine_grads(params, x, h[:-1], da)
        return LayerGrads(dx, grads, (dh_next, dc_next), dh_all)


class GRULayer(_Recurrent):
    """GRU layer, gate rows (r, z, n); with gru_reset="after" it is PyTorch's ``nn.GRU``.

    Forward, per step (b_h* absent in "single" bias mode):
        r = σ(W_ir x + b_ir + W_hr h + b_hr)
        z = σ(W_iz x + b_iz + W_hz h + b_hz)
        gru_reset="after" (PyTorch, cuDNN):  n = tanh(W_in x + b_in + r ⊙ hn),  hn = W_hn h + b_hn
        gru_reset="before" (Cho et al. 2014): n = tanh(W_in x + b_in + W_hn u + b_hn),  u = r ⊙ h
        gru_z="old" (Cho et al. 2014, PyTorch): h' = (1 − z) ⊙ n + z ⊙ h
        gru_z="new" (Chung et al. 2014):         h' = z ⊙ n + (1 − z) ⊙ h
    Backward, with dh = dL/dh':
        "old":  dn = dh ⊙ (1 − z),  dz = dh ⊙ (h − n),  dL/dh (direct) = dh ⊙ z
        "new":  dn = dh ⊙ z,        dz = dh ⊙ (n − h),  dL/dh (direct) = dh ⊙ (1 − z)
        da_n = dn ⊙ (1 − n²)        da_z = dz ⊙ z(1 − z)
        "after":  dr = da_n ⊙ hn;  dhn = da_n ⊙ r
                  dL/dh += [da_r, da_z, dhn] W_hh;  dW_hh = Σ [da_r, da_z, dhn]ᵀ h
        "before": du = da_n W_hn;  dr = du ⊙ h;  dhn = da_n
                  dL/dh += [da_r, da_z] W_h(r,z) + du ⊙ r
                  dW_h(r,z) = Σ [da_r, da_z]ᵀ h,   dW_hn = Σ da_nᵀ u
        da_r = dr ⊙ r(1 − r);  input side [da_r, da_z, da_n] -> dW_ih, db_ih, dx;
        db_hh = Σ [da_r, da_z, dhn].
    With "new", the layer equals the "old" one whose z rows (in all four
    tensors) are negated, since σ(−a) = 1 − σ(a).
    """

    gates = 3
    name = "gru"

    def __init__(self, input_size, hidden_size, bias="double", gru_z="old", gru_reset="after"):
        super().__init__(input_size, hidden_size, bias)
        if gru_z not in ("old", "new"):
            raise ValueError(f"gru_z must be 'old' or 'new', got {gru_z!r}")
        if gru_reset not in ("after", "before"):
            raise ValueError(f"gru_reset must be 'after' or 'before', got {gru_reset!r}")
        self.gru_z, self.gru_reset = gru_z, gru_reset

    def forward(self, params, x, state=None, *, times=None, train=True):
        x, (h0,) = self._prepare(params, x, state)
        T, B, _ = x.shape
        H = self.hidden_size
        # Input side with b_i*; the hidden-side biases stay apart because b_hn
        # sits inside the reset product ("after") or after it ("before").
        a_x = project(x, params["weight_ih"], params["bias_ih"])
        W_hh = params["weight_hh"]
        b_hh = params["bias_hh"] if self.bias == "double" else np.zeros(3 * H, dtype=a_x.dtype)
        # Transposed and contiguous (a faster product): W_h(r,z)ᵀ [H, 2H] and W_hnᵀ [H, H].
        W_hrzT, W_hnT = np.ascontiguousarray(W_hh[:2 * H].T), np.ascontiguousarray(W_hh[2 * H:].T)
        b_hrz, b_hn = b_hh[:2 * H], b_hh[2 * H:]
        r, z, n = (np.empty((T, B, H), dtype=a_x.dtype) for _ in range(3))
        hn = np.empty((T, B, H), dtype=a_x.dtype)  # the recurrent input of n: W_hn h + b_hn or W_hn u + b_hn
        u = np.empty((T, B, H), dtype=a_x.dtype) if self.gru_reset == "before" else None
        h = np.empty((T + 1, B, H), dtype=a_x.dtype)
        h[0] = h0
        with np.errstate(over="ignore"):  # σ: e^{−a} -> inf is the right limit
            for t in range(T):
                a_rz = a_x[t, :, :2 * H] + h[t] @ W_hrzT + b_hrz
                r[t] = sigmoid(a_rz[:, :H])
                z[t] = sigmoid(a_rz[:, H:])
                if self.gru_reset == "after":
                    hn[t] = h[t] @ W_hnT + b_hn
                    n[t] = np.tanh(a_x[t, :, 2 * H:] + r[t] * hn[t])
                else:
                    u[t] = r[t] * h[t]
                    hn[t] = u[t] @ W_hnT + b_hn
                    n[t] = np.tanh(a_x[t, :, 2 * H:] + hn[t])
                if self.gru_z == "old":
                    h[t + 1] = n[t] + z[t] * (h[t] - n[t])
                else:
                    h[t + 1] = h[t] + z[t] * (n[t] - h[t])
        cache = {"x": x, "r": r, "z": z, "n": n, "hn": hn, "u": u, "h": h}
        return h[1:], (h[T].copy(),), cache

    def signals(self, cache):
        """h_t and the gates r, z and the candidate n of every step."""
        return {"h": cache["h"][1:], "r": cache["r"], "z": cache["z"], "n": cache["n"]}

    def backward(self, params, cache, dout=None, dstate=None):
        x, r, z, n, hn, u, h = (cache[k] for k in ("x", "r", "z", "n", "hn", "u", "h"))
        T, B, _ = x.shape
        H = self.hidden_size
        h_prev = h[:-1]
        W_hh = params["weight_hh"]
        W_hrz, W_hn = W_hh[:2 * H], W_hh[2 * H:]
        old, before = self.gru_z == "old", self.gru_reset == "before"
        # Factors that do not depend on the gradient, all steps at once:
        dn_dh = 1.0 - z if old else z  # ∂h'/∂n
        dz_dh = h_prev - n if old else n - h_prev  # ∂h'/∂z
        direct = z if old else 1.0 - z  # ∂h'/∂h
        dr_da, dz_da, dn_da = dsigmoid(r), dsigmoid(z), dtanh(n)
        da = np.empty((T, B, 3 * H), dtype=r.dtype)  # input side [da_r, da_z, da_n]
        da_r, da_z, da_n = da[..., :H], da[..., H:2 * H], da[..., 2 * H:]
        da_h = np.empty_like(da)  # hidden side [da_r, da_z, dhn], dhn = dL/dhn
        dhn = da_h[..., 2 * H:]
        dh_all = np.empty_like(r)
        dh_next = self._incoming(dstate, 0, h[0])
        for t in range(T - 1, -1, -1):
            dh = dh_next if dout is None else dh_next + dout[t]
            da_n[t] = dh * dn_dh[t] * dn_da[t]
            da_z[t] = dh * dz_dh[t] * dz_da[t]
            if before:
                du = da_n[t] @ W_hn
                da_r[t] = du * h_prev[t] * dr_da[t]
                dhn[t] = da_n[t]
                dh_next = dh * direct[t] + da[t, :, :2 * H] @ W_hrz + du * r[t]
            else:
                da_r[t] = da_n[t] * hn[t] * dr_da[t]
                dhn[t] = da_n[t] * r[t]
                da_h[t, :, :2 * H] = da[t, :, :2 * H]
                dh_next = dh * direct[t] + da_h[t] @ W_hh
            dh_all[t] = dh
        da_h[..., :2 * H] = da[..., :2 * H]
        grads = {"weight_ih": rows_product(da, x), "bias_ih": da.sum(axis=(0, 1))}
        grads["weight_hh"] = np.concatenate([rows_product(da[..., :2 * H], h_prev),
                                             rows_product(dhn, u if before else h_prev)])
        if self.bias == "double":
            grads["bias_hh"] = da_h.sum(axis=(0, 1))
        return LayerGrads(da @ params["weight_ih"], grads, (dh_next,), dh_all)


# ---------------------------------------------------------------------------
# Phased LSTM
# ---------------------------------------------------------------------------

class PhaseGate(NamedTuple):
    """Openness k [T, B, H] of the Phased LSTM time gate plus what its
    backward needs."""

    k: np.ndarray
    phi: np.ndarray  # phase in [0, 1)
    q: np.ndarray  # floor((t - shift) / tau)
    up: np.ndarray  # bool: phi < r_on / 2
    down: np.ndarray  # bool: r_on / 2 <= phi < r_on
    alpha: float


def phase_gate(times, tau, shift, r_on, alpha: float) -> PhaseGate:
    """Time gate of Neil et al. (2016) for every step, sample and unit.

        phi = ((t - shift) mod tau) / tau
        k   = 2 phi / r_on          if phi < r_on / 2
              2 - 2 phi / r_on      if r_on / 2 <= phi < r_on
              alpha * phi           otherwise (leak; 0 at evaluation)

    ``times`` is [T, B]; ``tau``, ``shift``, ``r_on`` are [H].
    """
    times = np.asarray(times, dtype=tau.dtype)
    shifted = times[..., None] - shift
    q, m = np.divmod(shifted, tau)  # q = floor(shifted / tau), m in [0, tau)
    phi = m / tau
    up = phi < 0.5 * r_on
    down = ~up & (phi < r_on)
    k = alpha * phi
    np.copyto(k, 2.0 * phi / r_on, where=up)
    np.copyto(k, 2.0 - 2.0 * phi / r_on, where=down)
    return PhaseGate(k, phi, q, up, down, float(alpha))


def phase_gate_backward(gate: PhaseGate, dk, tau, r_on) -> dict[str, np.ndarray]:
    """Gradients of sum(dk * k) w.r.t. tau, shift and r_on.

        dk/dphi  = 2/r_on (up), -2/r_on (down), alpha (closed)
        dk/dr_on = -2 phi/r_on^2 (up), +2 phi/r_on^2 (down), 0 (closed)
        phi = m / tau with m = (t - s) mod tau = (t - s) - tau floor((t - s)/tau):
        dm/dtau = -floor((t - s)/tau), dm/ds = -1, hence
        dphi/dtau = -(floor((t - s)/tau) + phi) / tau,  dphi/ds = -1/tau.
    """
    up, down, phi = gate.up, gate.down, gate.phi
    slope = np.full_like(phi, gate.alpha)
    inv = 2.0 / r_on
    np.copyto(slope, np.broadcast_to(inv, phi.shape), where=up)
    np.copyto(slope, np.broadcast_to(-inv, phi.shape), where=down)
    dphi = dk * slope
    sign = np.zeros_like(phi)  # -1 (up), +1 (down), 0 (closed); keeps the dtype
    sign[up] = -1.0
    sign[down] = 1.0
    dr = sign * (dk * phi) * (2.0 / (r_on * r_on))
    axes = tuple(range(dk.ndim - 1))
    return {
        "tau": (-(dphi * (gate.q + phi)) / tau).sum(axis=axes),
        "shift": (-dphi / tau).sum(axis=axes),
        "r_on": dr.sum(axis=axes),
    }


class PhasedLSTMLayer(LSTMLayer):
    """Phased LSTM layer (Neil et al. 2016).

    Parameters: the LSTM's (gate rows i, f, g, o) plus per-unit ``tau`` [H]
    (period), ``shift`` [H] and ``r_on`` [H] (open ratio). Forward needs
    ``times`` [T, B]. With k_t from :func:`phase_gate` and the LSTM candidates
        c̃_t = f ⊙ c_{t-1} + i ⊙ g        h̃_t = o ⊙ tanh(c̃_t)
        c_t = k_t ⊙ c̃_t + (1 − k_t) ⊙ c_{t-1}
        h_t = k_t ⊙ h̃_t + (1 − k_t) ⊙ h_{t-1}
    The leak alpha (1e-3) applies when ``train=True``, 0 otherwise.
    Backward, with dh = dL/dh_t and dc = dL/dc_t:
        dk  = dc ⊙ (c̃ − c_{t-1}) + dh ⊙ (h̃ − h_{t-1})
        dh̃ = dh ⊙ k;   dc̃ = dc ⊙ k + dh̃ ⊙ o ⊙ (1 − tanh² c̃)
        LSTM gate gradients from (dh̃, dc̃) as in :class:`LSTMLayer`
        dL/dc_{t-1} = dc ⊙ (1 − k) + dc̃ ⊙ f
        dL/dh_{t-1} = dh ⊙ (1 − k) + da_t W_hh
        and dk -> tau, shift, r_on through :func:`phase_gate_backward`.
    """

    name = "phased_lstm"

    def __init__(self, input_size, hidden_size, bias="double", leak: float = 1e-3,
                 r_on_init: float = 0.05, tau_log_range: tuple[float, float] = (0.0, 3.0)):
        super().__init__(input_size, hidden_size, bias)
        self.leak = float(leak)
        self.r_on_init = float(r_on_init)
        self.tau_log_range = tau_log_range

    def param_shapes(self):
        shapes = super().param_shapes()
        H = self.hidden_size
        shapes.update(tau=(H,), shift=(H,), r_on=(H,))
        return shapes

    def init_params(self, rng=None, dtype=np.float64, init=None):
        """LSTM weights as :class:`LSTMLayer`; tau = exp(U(0, 3)),
        shift = U(0, tau), r_on = 0.05 (Neil et al.'s defaults)."""
        rng = np.random.default_rng() if rng is None else rng
        H = self.hidden_size
        base = LSTMLayer.init_params(self, rng, dtype, init)
        lo, hi = self.tau_log_range
        tau = np.exp(rng.uniform(lo, hi, size=H))
        base["tau"] = tau.astype(dtype)
        base["shift"] = rng.uniform(0.0, tau).astype(dtype)
        base["r_on"] = np.full(H, self.r_on_init, dtype=dtype)
        return base

    def forward(self, params, x, state=None, *, times=None, train=True):
        if times is None:
            raise ValueError("PhasedLSTMLayer.forward needs times [T, B]")
        x, (h0, c0) = self._prepare(params, x, state)
        T, B, _ = x.shape
        H = self.hidden_size
        gate = phase_gate(times, params["tau"], params["shift"], params["r_on"],
                          self.leak if train else 0.0)
        if gate.k.shape != (T, B, H):
            raise ValueError(f"times must have shape [T, B] = {(T, B)}, got {np.shape(times)}")
        k = gate.k
        a_x = project(x, params["weight_ih"], self._summed_bias(params))
        W_hhT = np.ascontiguousarray(params["weight_hh"].T)  # W_hhᵀ, contiguous: a faster product
        i, f, g, o, c_tilde, tanh_c, h_tilde = (np.empty((T, B, H), dtype=a_x.dtype) for _ in range(7))
        c = np.empty((T + 1, B, H), dtype=a_x.dtype)
        h = np.empty((T + 1, B, H), dtype=a_x.dtype)
        c[0], h[0] = c0, h0
        with np.errstate(over="ignore"):  # σ: e^{−a} -> inf is the right limit
            for t in range(T):
                a = a_x[t] + h[t] @ W_hhT
                lstm_step(a, c[t], i[t], f[t], g[t], o[t], c_tilde[t], tanh_c[t], h_tilde[t])
                c[t + 1] = k[t] * c_tilde[t] + (1.0 - k[t]) * c[t]
                h[t + 1] = k[t] * h_tilde[t] + (1.0 - k[t]) * h[t]
        cache = {"x": x, "i": i, "f": f, "g": g, "o": o, "c": c, "h": h, "c_tilde": c_tilde,
                 "tanh_c": tanh_c, "h_tilde": h_tilde, "gate": gate}
        return h[1:], (h[T].copy(), c[T].copy()), cache

    def signals(self, cache):
        """The LSTM's (h_t, c_t, i, f, g, o) and the time gate's openness k of every step."""
        return {**super().signals(cache), "k": cache["gate"].k}

    def backward(self, params, cache, dout=None, dstate=None):
        x, i, f, g, o = cache["x"], cache["i"], cache["f"], cache["g"], cache["o"]
        c, h, c_tilde, tanh_c, h_tilde = cache["c"], cache["h"], cache["c_tilde"], cache["tanh_c"], cache["h_tilde"]
        gate = cache["gate"]
        k = gate.k
        T, B, _ = x.shape
        H = self.hidden_size
        W_hh = params["weight_hh"]
        d = lstm_derivatives(i, f, g, o, c[:-1], tanh_c)  # of the candidates c̃, h̃; all steps at once
        da = np.empty((T, B, 4 * H), dtype=i.dtype)
        dh_all = np.empty_like(i)
        dc_all = np.empty_like(i)  # dc_all[t] = dL/dc_t
        dh_next = self._incoming(dstate, 0, h[0])
        dc_next = self._incoming(dstate, 1, c[0])
        for t in range(T - 1, -1, -1):
            dh = dh_next if dout is None else dh_next + dout[t]
            dc = dc_next
            dh_tilde = dh * k[t]
            dc_tilde = dc * k[t] + dh_tilde * d.dh_dc[t]
            lstm_gate_grads(dc_tilde, dh_tilde, d, t, da[t])
            dc_next = dc * (1.0 - k[t]) + dc_tilde * f[t]
            dh_next = dh * (1.0 - k[t]) + da[t] @ W_hh
            dh_all[t], dc_all[t] = dh, dc
        dx, grads = self._affine_grads(params, x, h[:-1], da)
        dk = dc_all * (c_tilde - c[:-1]) + dh_all * (h_tilde - h[:-1])
        grads.update(phase_gate_backward(gate, dk, params["tau"], params["r_on"]))
        return LayerGrads(dx, grads, (dh_next, dc_next), dh_all)


def forward_backward(layer: _Recurrent, params: dict, x, state=None, *, times=None,
                     train: bool = True, dout=None, dstate=None) -> dict:
    """One call for cross-checking against another implementation (e.g. the
    PyTorch Phased LSTM): runs forward, then backward for the loss

        L = sum(out * dout) + sum_i sum(final_state[i] * dstate[i])

    (``dout``/``dstate`` default to all ones / zeros). Returns
    ``{"out", "state", "grads", "dx", "dstate", "dh"}`` where ``grads`` is
    keyed like ``params``.
    """
    out, final, cache = layer.forward(params, x, state, times=times, train=train)
    if dout is None:
        dout = np.ones_like(out)
    g = layer.backward(params, cache, dout, dstate)
    return {"out": out, "state": final, "grads": g.params, "dx": g.dx, "dstate": g.state,
            "dh": g.dh}
