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

Performance notes (why the loops look the way they do): the input projection
``x @ W_ih^T`` for all T*B rows is one matmul before the loop; the G gate
blocks share one ``h @ W_hh^T`` matmul per step; all buffers are allocated
once per call and ufuncs write with ``out=``; in ``backward`` every quantity
that does not depend on the incoming gradient (activation derivatives and
their products) is computed for all steps at once before the loop, so the
sequential part is only a handful of [B, H] ufuncs plus one matmul per step;
the weight gradients are then three large matmuls after the loop.
Returned ``out`` is a view of the cache: do not modify it in place.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

BIAS_MODES = ("single", "double")
CELL_NAMES = ("rnn_tanh", "rnn_relu", "lstm", "gru", "phased_lstm")


class LayerGrads(NamedTuple):
    """Result of ``backward``: gradients of the loss w.r.t. everything the
    forward pass consumed, plus the per-step hidden-state gradients."""

    dx: np.ndarray  # [T, B, I]
    params: dict  # name -> array, same keys and shapes as ``params``
    state: tuple  # like the initial state
    dh: np.ndarray  # [T, B, H]; dh[t] = dL/dh_t, h_t = out[t]


def _sigmoid_(a: np.ndarray) -> np.ndarray:
    """In-place logistic sigmoid 1 / (1 + exp(-a)).

    exp is 2x (float32) to 2.5x (float64) faster than tanh in NumPy on
    AVX2 machines, so this beats (1 + tanh(a/2)) / 2. exp(-a) overflows to
    inf for a < -88 (float32), which correctly gives 0; callers silence the
    overflow warning with ``np.errstate(over="ignore")``.
    """
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1.0
    np.reciprocal(a, out=a)
    return a


def _project_inputs(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """x [T, B, I] -> x @ weight^T + bias, [T, B, rows], as one matmul."""
    T, B, I = x.shape
    out = np.empty((T, B, weight.shape[0]), dtype=weight.dtype)
    np.dot(x.reshape(T * B, I), weight.T, out=out.reshape(T * B, -1))
    if bias is not None:
        out += bias
    return out


class _Recurrent:
    """Shared plumbing: parameter shapes, init, state handling, weight grads."""

    gates = 1
    has_cell_state = False
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
        n = 2 if self.has_cell_state else 1
        return tuple(np.zeros((batch, self.hidden_size), dtype=dtype) for _ in range(n))

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
    def _incoming(dstate, i, shape, dtype):
        if dstate is None or dstate[i] is None:
            return np.zeros(shape, dtype=dtype)
        return np.array(dstate[i], dtype=dtype)  # copy: we accumulate into it

    def _affine_grads(self, params, x, h_prev, da_in, da_hid):
        """Gradients of the affine maps given dL/d(pre-activation).

        a_in = W_ih x + b_ih and a_hid = W_hh h_prev (+ b_hh), so
        dW_ih = sum_t da_in_t^T x_t, db_ih = sum_t da_in_t,
        dW_hh = sum_t da_hid_t^T h_{t-1}, db_hh = sum_t da_hid_t and
        dx_t = da_in_t W_ih. All T*B rows go through one matmul each.
        """
        T, B, I = x.shape
        H = self.hidden_size
        din = da_in.reshape(T * B, -1)
        dhid = din if da_hid is da_in else da_hid.reshape(T * B, -1)
        grads = {
            "weight_ih": din.T @ x.reshape(T * B, I),
            "weight_hh": dhid.T @ h_prev.reshape(T * B, H),
            "bias_ih": din.sum(axis=0),
        }
        if self.bias == "double":
            grads["bias_hh"] = dhid.sum(axis=0) if dhid is not din else grads["bias_ih"].copy()
        dx = (din @ params["weight_ih"]).reshape(T, B, I)
        return dx, grads


class RNNLayer(_Recurrent):
    """Elman RNN layer (PyTorch ``nn.RNN``).

    Forward, per step:  a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh,
                        h_t = phi(a_t),  phi = tanh or relu.
    Backward: with g_t = dL/dh_t (output gradient + gradient from step t+1),
        da_t = g_t * phi'(a_t), phi' = 1 - h_t^2 (tanh) or [h_t > 0] (relu);
        dL/dh_{t-1} += da_t W_hh;  dW_ih = sum da_t^T x_t;
        dW_hh = sum da_t^T h_{t-1};  db_ih = db_hh = sum da_t;  dx_t = da_t W_ih.
    """

    gates = 1

    def __init__(self, input_size, hidden_size, bias="double", nonlinearity="tanh"):
        super().__init__(input_size, hidden_size, bias)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.name = f"rnn_{nonlinearity}"

    def forward(self, params, x, state=None, *, times=None, train=True):
        x, (h0,) = self._prepare(params, x, state)
        T, B, _ = x.shape
        H = self.hidden_size
        A = _project_inputs(x, params["weight_ih"], self._summed_bias(params))
        w_hhT = np.ascontiguousarray(params["weight_hh"].T)
        hs = np.empty((T + 1, B, H), dtype=A.dtype)  # hs[0] = h0, hs[t+1] = h_t
        hs[0] = h0
        relu = self.nonlinearity == "relu"
        for t in range(T):
            h = hs[t + 1]
            np.dot(hs[t], w_hhT, out=h)
            h += A[t]
            if relu:
                np.maximum(h, 0, out=h)
            else:
                np.tanh(h, out=h)
        cache = {"x": x, "h": hs}
        return hs[1:], (hs[T].copy(),), cache

    def backward(self, params, cache, dout=None, dstate=None):
        x, hs = cache["x"], cache["h"]
        T, B, _ = x.shape
        H = self.hidden_size
        dtype = hs.dtype
        out = hs[1:]
        # phi'(a_t) for all steps at once, expressed through the output.
        if self.nonlinearity == "relu":
            dphi = (out > 0).astype(dtype)
        else:
            dphi = 1.0 - out * out
        w_hh = params["weight_hh"]
        DA = np.empty((T, B, H), dtype=dtype)
        DH = np.empty((T, B, H), dtype=dtype)
        dh_next = self._incoming(dstate, 0, (B, H), dtype)
        for t in range(T - 1, -1, -1):
            dh = DH[t]
            if dout is None:
                dh[...] = dh_next
            else:
                np.add(dh_next, dout[t], out=dh)
            np.multiply(dh, dphi[t], out=DA[t])
            np.dot(DA[t], w_hh, out=dh_next)
        dx, grads = self._affine_grads(params, x, hs[:-1], DA, DA)
        return LayerGrads(dx, grads, (dh_next,), DH)


class LSTMLayer(_Recurrent):
    """LSTM layer (PyTorch ``nn.LSTM``), gate rows (i, f, g, o).

    Forward, per step, with a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh split
    into blocks (a_i, a_f, a_g, a_o):
        i = sigma(a_i), f = sigma(a_f), g = tanh(a_g), o = sigma(a_o)
        c_t = i * g + f * c_{t-1},   h_t = o * tanh(c_t).
    Backward, with g_h = dL/dh_t (output + recurrent) and g_c = dL/dc_t
    (from step t+1):
        g_c += g_h * o * (1 - tanh^2 c_t)
        da_i = g_c * g * i(1-i)          da_f = g_c * c_{t-1} * f(1-f)
        da_g = g_c * i * (1-g^2)         da_o = g_h * tanh(c_t) * o(1-o)
        dL/dc_{t-1} = g_c * f,   dL/dh_{t-1} = da_t W_hh
        and the affine gradients of :class:`RNNLayer` with da_t = [da_i..da_o].

    Implementation trick: all four gates come from one exp over the 4H
    columns. The i, f, o rows of the weights/biases are pre-scaled by -1 and
    the g rows by -2, so 1 / (1 + exp(.)) gives sigma(a) for i, f, o and
    sigma(2a) for g, and tanh(a) = 2 sigma(2a) - 1. (NumPy's exp is 2-2.5x
    faster than its tanh on AVX2 CPUs; see :func:`_sigmoid_`.)
    """

    gates = 4
    has_cell_state = True
    name = "lstm"

    def _lstm_gates_setup(self, params, x):
        """Row-scaled weights (-1 for i, f, o; -2 for g; exact in binary
        floating point) and the all-steps input projection with them."""
        H = self.hidden_size
        scale = np.full(4 * H, -1.0, dtype=params["weight_ih"].dtype)
        scale[2 * H:3 * H] = -2.0
        G = _project_inputs(x, params["weight_ih"] * scale[:, None],
                            self._summed_bias(params) * scale)
        w_hhT = np.ascontiguousarray((params["weight_hh"] * scale[:, None]).T)
        return G, w_hhT

    @staticmethod
    def _gates_(gt, H):
        """In place: scaled pre-activations [B, 4H] -> gates [i, f, g, o]."""
        np.exp(gt, out=gt)
        gt += 1.0
        np.reciprocal(gt, out=gt)  # sigma(a) for i, f, o; sigma(2a) for g
        g = gt[:, 2 * H:3 * H]
        g *= 2.0
        g -= 1.0  # tanh(a) = 2 sigma(2a) - 1

    def forward(self, params, x, state=None, *, times=None, train=True):
        x, (h0, c0) = self._prepare(params, x, state)
        T, B, _ = x.shape
        H = self.hidden_size
        G, w_hhT = self._lstm_gates_setup(params, x)
        dtype = G.dtype
        C = np.empty((T + 1, B, H), dtype=dtype)
        hs = np.empty((T + 1, B, H), dtype=dtype)
        TC = np.empty((T, B, H), dtype=dtype)
        C[0], hs[0] = c0, h0
        rec = np.empty((B, 4 * H), dtype=dtype)
        tmp = np.empty((B, H), dtype=dtype)
        with np.errstate(over="ignore"):  # exp -> inf gives the right limit
            for t in range(T):
                gt = G[t]
                np.dot(hs[t], w_hhT, out=rec)
                gt += rec
                self._gates_(gt, H)  # gt = [i, f, g, o]
                c = C[t + 1]
                np.multiply(gt[:, :H], gt[:, 2 * H:3 * H], out=c)
                np.multiply(gt[:, H:2 * H], C[t], out=tmp)
                c += tmp
                np.tanh(c, out=TC[t])
                np.multiply(gt[:, 3 * H:], TC[t], out=hs[t + 1])
        cache = {"x": x, "gates": G, "c": C, "h": hs, "tanh_c": TC}
        return hs[1:], (hs[T].copy(), C[T].copy()), cache

    @staticmethod
    def _gate_coefficients(G4, c_prev, tanh_c):
        """Step-independent factors of the gate gradients, all steps at once.

        R[..., 0:3] multiply dL/dc_t (giving da_i, da_f, da_g), R[..., 3]
        multiplies dL/dh_t (giving da_o); P = o (1 - tanh^2 c) carries
        dL/dh_t into dL/dc_t.
        """
        i, f, g, o = (G4[:, :, k] for k in range(4))
        R = np.empty_like(G4)
        r = R[:, :, 0]
        np.subtract(1.0, i, out=r); r *= i; r *= g
        r = R[:, :, 1]
        np.subtract(1.0, f, out=r); r *= f; r *= c_prev
        r = R[:, :, 2]
        np.multiply(g, g, out=r); np.subtract(1.0, r, out=r); r *= i
        r = R[:, :, 3]
        np.subtract(1.0, o, out=r); r *= o; r *= tanh_c
        P = tanh_c * tanh_c
        np.subtract(1.0, P, out=P)
        P *= o
        return R, P

    def backward(self, params, cache, dout=None, dstate=None):
        x, G, C, hs, TC = cache["x"], cache["gates"], cache["c"], cache["h"], cache["tanh_c"]
        T, B, _ = x.shape
        H = self.hidden_size
        dtype = G.dtype
        G4 = G.reshape(T, B, 4, H)
        R, P = self._gate_coefficients(G4, C[:-1], TC)
        f = G4[:, :, 1]
        w_hh = params["weight_hh"]
        DA = np.empty((T, B, 4 * H), dtype=dtype)
        DA4 = DA.reshape(T, B, 4, H)
        DH = np.empty((T, B, H), dtype=dtype)
        dh_next = self._incoming(dstate, 0, (B, H), dtype)
        dc = self._incoming(dstate, 1, (B, H), dtype)
        tmp = np.empty((B, H), dtype=dtype)
        for t in range(T - 1, -1, -1):
            dh = DH[t]
            if dout is None:
                dh[...] = dh_next
            else:
                np.add(dh_next, dout[t], out=dh)
            np.multiply(dh, P[t], out=tmp)
            dc += tmp
            np.multiply(dc[:, None, :], R[t, :, :3], out=DA4[t, :, :3])
            np.multiply(dh, R[t, :, 3], out=DA4[t, :, 3])
            dc *= f[t]  # dL/dc_{t-1} = dL/dc_t * f_t
            np.dot(DA[t], w_hh, out=dh_next)
        dx, grads = self._affine_grads(params, x, hs[:-1], DA, DA)
        return LayerGrads(dx, grads, (dh_next, dc), DH)


class GRULayer(_Recurrent):
    """GRU layer (PyTorch ``nn.GRU``), gate rows (r, z, n).

    Forward, per step:
        r = sigma(W_ir x + b_ir + W_hr h + b_hr)
        z = sigma(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * hn),   hn = W_hn h + b_hn
        gru_z="old" (Cho et al. 2014, PyTorch): h' = (1 - z) * n + z * h
        gru_z="new" (Chung et al. 2014):         h' = z * n + (1 - z) * h
    ("single" bias mode drops b_h*, so hn = W_hn h.)
    Backward, with g = dL/dh' and s = +1 ("old") or -1 ("new"):
        dn  = g * (1 - z) ("old") or g * z ("new");   dan = dn * (1 - n^2)
        dz  = s * g * (h - n);                         daz = dz * z(1 - z)
        dar = dan * hn * r(1 - r)
        input side   da_x = [dar, daz, dan]        -> dW_ih, db_ih, dx
        hidden side  da_h = [dar, daz, dan * r]    -> dW_hh, db_hh
        dL/dh = g * z ("old") or g * (1 - z) ("new") + da_h W_hh.
    With "new", the layer equals ``nn.GRU`` whose z rows (in all four
    tensors) are negated, since sigma(-a) = 1 - sigma(a).
    """

    gates = 3
    name = "gru"

    def __init__(self, input_size, hidden_size, bias="double", gru_z="old"):
        super().__init__(input_size, hidden_size, bias)
        if gru_z not in ("old", "new"):
            raise ValueError(f"gru_z must be 'old' or 'new', got {gru_z!r}")
        self.gru_z = gru_z

    def forward(self, params, x, state=None, *, times=None, train=True):
        x, (h0,) = self._prepare(params, x, state)
        T, B, _ = x.shape
        H = self.hidden_size
        # Input side: all three blocks with b_i*; hidden-side biases stay
        # separate because b_hn sits inside the reset product.
        X = _project_inputs(x, params["weight_ih"], params["bias_ih"])
        b_hh = params.get("bias_hh") if self.bias == "double" else None
        w_hhT = np.ascontiguousarray(params["weight_hh"].T)
        dtype = X.dtype
        HH = np.empty((T, B, 3 * H), dtype=dtype)  # W_hh h + b_hh per step
        hs = np.empty((T + 1, B, H), dtype=dtype)
        hs[0] = h0
        tmp = np.empty((B, H), dtype=dtype)
        old = self.gru_z == "old"
        with np.errstate(over="ignore"):  # exp(-a) -> inf is the right limit
            self._gru_loop(X, HH, hs, w_hhT, b_hh, tmp, old)
        cache = {"x": x, "gates": X, "hn": HH[:, :, 2 * H:], "h": hs}
        return hs[1:], (hs[T].copy(),), cache

    def _gru_loop(self, X, HH, hs, w_hhT, b_hh, tmp, old):
        H = self.hidden_size
        for t in range(X.shape[0]):
            xt, hh, hp = X[t], HH[t], hs[t]
            np.dot(hp, w_hhT, out=hh)
            if b_hh is not None:
                hh += b_hh
            rz = xt[:, :2 * H]
            rz += hh[:, :2 * H]
            _sigmoid_(rz)
            r, z, n = xt[:, :H], xt[:, H:2 * H], xt[:, 2 * H:]
            np.multiply(r, hh[:, 2 * H:], out=tmp)
            n += tmp
            np.tanh(n, out=n)
            if old:  # h' = n + z (h - n)
                np.subtract(hp, n, out=tmp)
                tmp *= z
                np.add(n, tmp, out=hs[t + 1])
            else:  # h' = h + z (n - h)
                np.subtract(n, hp, out=tmp)
                tmp *= z
                np.add(hp, tmp, out=hs[t + 1])

    def backward(self, params, cache, dout=None, dstate=None):
        x, X, hn, hs = cache["x"], cache["gates"], cache["hn"], cache["h"]
        T, B, _ = x.shape
        H = self.hidden_size
        dtype = X.dtype
        X4 = X.reshape(T, B, 3, H)
        r, z, n = X4[:, :, 0], X4[:, :, 1], X4[:, :, 2]
        hp = hs[:-1]
        # Step-independent factors, all steps at once:
        # A[:, :, 0] * g = daz, A[:, :, 1] * g = dan, Ar * dan = dar.
        A = np.empty((T, B, 2, H), dtype=dtype)
        zz = z * (1.0 - z)
        dn_tanh = 1.0 - n * n
        if self.gru_z == "old":
            np.subtract(hp, n, out=A[:, :, 0])
            np.multiply(1.0 - z, dn_tanh, out=A[:, :, 1])
            direct = z
        else:
            np.subtract(n, hp, out=A[:, :, 0])
            np.multiply(z, dn_tanh, out=A[:, :, 1])
            direct = 1.0 - z
        A[:, :, 0] *= zz
        Ar = hn * r * (1.0 - r)
        w_hh = params["weight_hh"]
        DX = np.empty((T, B, 3 * H), dtype=dtype)
        DX4 = DX.reshape(T, B, 3, H)
        DHH = np.empty((T, B, 3 * H), dtype=dtype)
        DHH4 = DHH.reshape(T, B, 3, H)
        DH = np.empty((T, B, H), dtype=dtype)
        dh_next = self._incoming(dstate, 0, (B, H), dtype)
        tmp = np.empty((B, H), dtype=dtype)
        for t in range(T - 1, -1, -1):
            dh = DH[t]
            if dout is None:
                dh[...] = dh_next
            else:
                np.add(dh_next, dout[t], out=dh)
            np.multiply(dh[:, None, :], A[t], out=DX4[t, :, 1:])  # daz, dan
            np.multiply(DX4[t, :, 2], Ar[t], out=DX4[t, :, 0])  # dar
            DHH4[t, :, :2] = DX4[t, :, :2]
            np.multiply(DX4[t, :, 2], r[t], out=DHH4[t, :, 2])
            np.dot(DHH[t], w_hh, out=dh_next)
            np.multiply(dh, direct[t], out=tmp)
            dh_next += tmp
        dx, grads = self._affine_grads(params, x, hp, DX, DHH)
        return LayerGrads(dx, grads, (dh_next,), DH)


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
    ``times`` [T, B]. With k_t from :func:`phase_gate` and the LSTM
    candidates c~_t = i * g + f * c_{t-1}, h~_t = o * tanh(c~_t):
        c_t = k_t * c~_t + (1 - k_t) * c_{t-1}
        h_t = k_t * h~_t + (1 - k_t) * h_{t-1}
    The leak alpha (1e-3) applies when ``train=True``, 0 otherwise.
    Backward, with g_h = dL/dh_t and g_c = dL/dc_t:
        dk      = g_c * (c~ - c_{t-1}) + g_h * (h~ - h_{t-1})
        dh~     = g_h * k;   dc~ = g_c * k + dh~ * o * (1 - tanh^2 c~)
        LSTM gate gradients from (dh~, dc~) as in :class:`LSTMLayer`
        dL/dc_{t-1} = g_c * (1 - k) + dc~ * f
        dL/dh_{t-1} = g_h * (1 - k) + da_t W_hh
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
        K = gate.k
        G, w_hhT = self._lstm_gates_setup(params, x)
        dtype = G.dtype
        C = np.empty((T + 1, B, H), dtype=dtype)
        hs = np.empty((T + 1, B, H), dtype=dtype)
        CT = np.empty((T, B, H), dtype=dtype)  # c~
        TC = np.empty((T, B, H), dtype=dtype)  # tanh(c~)
        HT = np.empty((T, B, H), dtype=dtype)  # h~
        C[0], hs[0] = c0, h0
        rec = np.empty((B, 4 * H), dtype=dtype)
        tmp = np.empty((B, H), dtype=dtype)
        with np.errstate(over="ignore"):  # exp -> inf gives the right limit
            self._phased_loop(G, w_hhT, K, C, hs, CT, TC, HT, rec, tmp)
        cache = {"x": x, "gates": G, "c": C, "h": hs, "c_tilde": CT, "tanh_c": TC,
                 "h_tilde": HT, "gate": gate}
        return hs[1:], (hs[T].copy(), C[T].copy()), cache

    def _phased_loop(self, G, w_hhT, K, C, hs, CT, TC, HT, rec, tmp):
        H = self.hidden_size
        T = G.shape[0]
        for t in range(T):
            gt = G[t]
            np.dot(hs[t], w_hhT, out=rec)
            gt += rec
            self._gates_(gt, H)
            ct = CT[t]
            np.multiply(gt[:, :H], gt[:, 2 * H:3 * H], out=ct)
            np.multiply(gt[:, H:2 * H], C[t], out=tmp)
            ct += tmp
            np.tanh(ct, out=TC[t])
            np.multiply(gt[:, 3 * H:], TC[t], out=HT[t])
            # c = k c~ + (1 - k) c_prev, written as c_prev + k (c~ - c_prev)
            np.subtract(ct, C[t], out=tmp)
            tmp *= K[t]
            np.add(C[t], tmp, out=C[t + 1])
            np.subtract(HT[t], hs[t], out=tmp)
            tmp *= K[t]
            np.add(hs[t], tmp, out=hs[t + 1])

    def backward(self, params, cache, dout=None, dstate=None):
        x, G, C, hs = cache["x"], cache["gates"], cache["c"], cache["h"]
        CT, TC, HT, gate = cache["c_tilde"], cache["tanh_c"], cache["h_tilde"], cache["gate"]
        T, B, _ = x.shape
        H = self.hidden_size
        dtype = G.dtype
        K = gate.k
        one_minus_k = 1.0 - K
        G4 = G.reshape(T, B, 4, H)
        R, P = self._gate_coefficients(G4, C[:-1], TC)
        f = G4[:, :, 1]
        w_hh = params["weight_hh"]
        DA = np.empty((T, B, 4 * H), dtype=dtype)
        DA4 = DA.reshape(T, B, 4, H)
        DH = np.empty((T, B, H), dtype=dtype)
        DC = np.empty((T + 1, B, H), dtype=dtype)  # DC[t+1] = dL/dc_t (state index)
        DC[T] = self._incoming(dstate, 1, (B, H), dtype)
        dh_next = self._incoming(dstate, 0, (B, H), dtype)
        dht = np.empty((B, H), dtype=dtype)
        dct = np.empty((B, H), dtype=dtype)
        tmp = np.empty((B, H), dtype=dtype)
        for t in range(T - 1, -1, -1):
            dh = DH[t]
            if dout is None:
                dh[...] = dh_next
            else:
                np.add(dh_next, dout[t], out=dh)
            dc = DC[t + 1]
            np.multiply(dh, K[t], out=dht)
            np.multiply(dc, K[t], out=dct)
            np.multiply(dht, P[t], out=tmp)
            dct += tmp
            np.multiply(dct[:, None, :], R[t, :, :3], out=DA4[t, :, :3])
            np.multiply(dht, R[t, :, 3], out=DA4[t, :, 3])
            np.multiply(dc, one_minus_k[t], out=DC[t])
            np.multiply(dct, f[t], out=tmp)
            DC[t] += tmp
            np.dot(DA[t], w_hh, out=dh_next)
            np.multiply(dh, one_minus_k[t], out=tmp)
            dh_next += tmp
        dx, grads = self._affine_grads(params, x, hs[:-1], DA, DA)
        dk = DC[1:] * (CT - C[:-1])
        dk += DH * (HT - hs[:-1])
        grads.update(phase_gate_backward(gate, dk, params["tau"], params["r_on"]))
        return LayerGrads(dx, grads, (dh_next, DC[0].copy()), DH)


def make_cell(cell: str, input_size: int, hidden_size: int, *, bias: str = "double",
              nonlinearity: str = "tanh", gru_z: str = "old", **kwargs) -> _Recurrent:
    """Layer by name: "rnn" (uses ``nonlinearity``), "rnn_tanh", "rnn_relu",
    "lstm", "gru", "phased_lstm" (hyphens accepted). Extra kwargs go to
    :class:`PhasedLSTMLayer` (leak, r_on_init, tau_log_range)."""
    key = cell.lower().replace("-", "_")
    if key == "rnn":
        key = f"rnn_{nonlinearity}"
    if key in ("rnn_tanh", "rnn_relu"):
        return RNNLayer(input_size, hidden_size, bias, nonlinearity=key[4:])
    if key == "lstm":
        return LSTMLayer(input_size, hidden_size, bias)
    if key == "gru":
        return GRULayer(input_size, hidden_size, bias, gru_z=gru_z)
    if key in ("phased_lstm", "phasedlstm", "plstm"):
        return PhasedLSTMLayer(input_size, hidden_size, bias, **kwargs)
    raise ValueError(f"unknown cell {cell!r}; expected one of {CELL_NAMES} or 'rnn'")


def forward_backward(cell: str | _Recurrent, params: dict, x, state=None, *, times=None,
                     train: bool = True, dout=None, dstate=None, **cell_kwargs) -> dict:
    """One call for cross-checking against another implementation (e.g. the
    PyTorch Phased LSTM): runs forward, then backward for the loss

        L = sum(out * dout) + sum_i sum(final_state[i] * dstate[i])

    (``dout``/``dstate`` default to all ones / zeros). ``cell`` is a layer
    or a name for :func:`make_cell`, whose sizes are then read off ``params``.
    Returns ``{"out", "state", "grads", "dx", "dstate", "dh"}`` where
    ``grads`` is keyed like ``params``.
    """
    if isinstance(cell, str):
        gh, hidden = params["weight_hh"].shape
        layer = make_cell(cell, params["weight_ih"].shape[1], hidden,
                          bias="double" if "bias_hh" in params else "single", **cell_kwargs)
        if layer.gates * hidden != gh:
            raise ValueError(f"{cell}: weight_hh rows {gh} != {layer.gates} * {hidden}")
    else:
        layer = cell
    out, final, cache = layer.forward(params, x, state, times=times, train=train)
    if dout is None:
        dout = np.ones_like(out)
    g = layer.backward(params, cache, dout, dstate)
    return {"out": out, "state": final, "grads": g.params, "dx": g.dx, "dstate": g.state,
            "dh": g.dh}
