"""Finite-difference check of every hand-written backward pass.

``run_gradcheck()`` compares the analytic float64 gradient of each parameter
(and of the inputs and initial states) with a numerical one, for every cell
and for the full language model, and returns rows
``{"cell", "parameter", "max_rel_error"}``; ``format_table(rows)`` renders
them. Everything must be <= 1e-6; in practice it is ~1e-10 or better.

Numerical gradient: the fourth-order central difference

    f'(p) ~ [-f(p + 2e) + 8 f(p + e) - 8 f(p - e) + f(p - 2e)] / (12 e).

Relative error per element, reported as the max over a tensor:

    |a - n| / max(|a| + |n|, 1e-8).

Why the reference runs in extended precision: in float64 the loss carries a
rounding error of ~1 ulp, so any finite difference has an absolute noise of
~1e-13 (worse when BLAS picks a differently aligned kernel between calls).
The analytic gradient is fine, but elements of size 1e-7 (closed Phased
LSTM gates, saturated units) then show "relative errors" of 1e-6 that are
pure reference noise. So the forward used for the differences runs on
``np.longdouble`` copies of the same float64 values (80-bit on x86-64: eps
1e-19, e = 1e-4, noise ~1e-15), while the gradient under test is the
ordinary float64 backward. Where ``longdouble`` is just float64 (some
platforms), e = 1e-3 in float64 is used and tiny elements may read ~1e-7.

Where a gradient is structurally zero (dead relu units, tokens absent from
the batch) both a and n are exactly 0. The loss for a single layer is a
fixed random projection of all outputs and of the final state, so every
backward path (dout and dstate) is exercised; the language model uses its
own mean cross-entropy. Piecewise functions (relu, the Phased LSTM time gate)
are only differentiable away from their kinks, so inputs/timestamps are
redrawn until every kink is at least ``KINK_MARGIN`` away.
"""

from __future__ import annotations

import numpy as np

from rnnlab import cell_registry

from .cells import phase_gate
from .model import NumpyLanguageModel

TOLERANCE = 1e-6
REF_DTYPE = np.longdouble  # dtype of the forward passes behind the differences
EXTENDED = np.finfo(REF_DTYPE).eps < np.finfo(np.float64).eps
STEP = 1e-4 if EXTENDED else 1e-3
KINK_MARGIN = 0.05


def numerical_gradient(f, arr: np.ndarray, eps: float = STEP) -> np.ndarray:
    """d f() / d arr by fourth-order central differences, perturbing ``arr``
    in place one element at a time (restored afterwards). Arithmetic is in
    ``arr``'s dtype (and f's return type); the result is float64."""
    grad = np.zeros_like(arr, dtype=np.float64)
    flat = arr.reshape(-1)  # view: writes go to arr
    for idx in range(flat.size):
        orig = flat[idx]
        vals = []
        for k in (2.0, 1.0, -1.0, -2.0):
            flat[idx] = orig + k * eps
            vals.append(f())
        flat[idx] = orig
        # differences first: exact (0) when the values agree, no cancellation
        # between the large terms 8 f(p + e) and 8 f(p - e)
        grad.reshape(-1)[idx] = ((vals[3] - vals[0]) + 8.0 * (vals[1] - vals[2])) / (12.0 * eps)
    return grad


def max_relative_error(analytic, numeric, floor: float = 1e-8) -> float:
    a, n = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    return float(np.max(np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), floor)))


def _ext(a):
    """Extended-precision copy of a float64 array (same values)."""
    return np.array(a, dtype=REF_DTYPE)


def _row(cell, parameter, analytic, numeric):
    return {"cell": cell, "parameter": parameter,
            "max_rel_error": max_relative_error(analytic, numeric)}


# --- kink avoidance ----------------------------------------------------------

def _relu_preactivation_margin(layer, params, x, state) -> float:
    _, _, cache = layer.forward(params, x, state)
    h_prev = cache["h"][:-1]
    pre = x @ params["weight_ih"].T + h_prev @ params["weight_hh"].T + params["bias_ih"]
    if "bias_hh" in params:
        pre = pre + params["bias_hh"]
    return float(np.abs(pre).min())


def _phase_kink_distance(times, tau, shift, r_on) -> np.ndarray:
    """Distance [T, B] (in phase units) from each sample's phases to the
    nearest kink of k: phi = 0 (= 1, the wrap), r_on/2 and r_on."""
    phi = phase_gate(times, tau, shift, r_on, 0.0).phi
    d = np.minimum.reduce([phi, 1.0 - phi, np.abs(phi - 0.5 * r_on), np.abs(phi - r_on)])
    return d.min(axis=-1)


def safe_times(layer_params: list[dict], T: int, B: int, rng, t_max: float = 6.0) -> np.ndarray:
    """Timestamps in [0, t_max) whose phases stay KINK_MARGIN away from the
    kinks of every layer's time gate (entries are redrawn until they do)."""
    times = rng.uniform(0.0, t_max, size=(T, B))
    for _ in range(1000):
        bad = np.zeros((T, B), dtype=bool)
        for p in layer_params:
            bad |= _phase_kink_distance(times, p["tau"], p["shift"], p["r_on"]) < KINK_MARGIN
        if not bad.any():
            return times
        times[bad] = rng.uniform(0.0, t_max, size=int(bad.sum()))
    raise RuntimeError("could not find timestamps away from the phase-gate kinks")


def _phased_test_params(layer, rng):
    """Timing parameters that open the gate for a good share of steps, so
    the LSTM part gets real gradients (r_on = 0.05 would keep it closed)."""
    p = layer.init_params(rng, np.float64)
    H = layer.hidden_size
    p["tau"] = np.exp(rng.uniform(0.0, np.log(4.0), size=H))
    p["shift"] = rng.uniform(0.0, p["tau"])
    p["r_on"] = rng.uniform(0.2, 0.6, size=H)
    return p


# --- single layers -------------------------------------------------------------

def check_cell(cell: str, seed: int = 0, T: int = 4, B: int = 3, I: int = 5, H: int = 4,
               bias: str = "double", label: str | None = None, **options) -> list[dict]:
    """Gradcheck one layer: every parameter, the input and the initial state.
    ``cell`` and ``options`` as in the cell table (rnnlab/cell_registry.py)."""
    rng = np.random.default_rng(seed)
    label = label or cell
    spec, chosen = cell_registry.resolve(cell, options)
    layer = cell_registry.numpy_layer(cell, I, H, bias, **options)
    phased = spec.needs_times
    params = _phased_test_params(layer, rng) if phased else layer.init_params(rng, np.float64)
    n_state = spec.n_states
    relu = chosen.get("nonlinearity") == "relu"  # a kink at 0
    for _ in range(100):  # redraw until relu pre-activations are clear of 0
        x = rng.standard_normal((T, B, I))
        state = tuple(0.5 * rng.standard_normal((B, H)) for _ in range(n_state))
        if not relu or _relu_preactivation_margin(layer, params, x, state) > KINK_MARGIN:
            break
    else:
        raise RuntimeError("could not draw relu inputs away from the kink")
    times = safe_times([params], T, B, rng) if phased else None
    w_out = rng.standard_normal((T, B, H))
    w_state = tuple(rng.standard_normal((B, H)) for _ in range(n_state))

    # analytic gradient: the float64 backward under test
    _, _, cache = layer.forward(params, x, state, times=times, train=True)
    g = layer.backward(params, cache, w_out, w_state)

    # reference: extended-precision copies, perturbed in place
    p_ref = {k: _ext(v) for k, v in params.items()}
    x_ref, s_ref = _ext(x), tuple(_ext(s) for s in state)
    t_ref = None if times is None else _ext(times)
    w_out_ref, w_state_ref = _ext(w_out), tuple(_ext(w) for w in w_state)

    def loss():
        out, final, _ = layer.forward(p_ref, x_ref, s_ref, times=t_ref, train=True)
        return np.sum(out * w_out_ref) + sum(np.sum(s * w) for s, w in zip(final, w_state_ref))

    rows = [_row(label, k, g.params[k], numerical_gradient(loss, p_ref[k])) for k in params]
    rows.append(_row(label, "input", g.dx, numerical_gradient(loss, x_ref)))
    for s, ds, which in zip(s_ref, g.state, ("h0", "c0")):
        rows.append(_row(label, which, ds, numerical_gradient(loss, s)))
    return rows


# --- language model --------------------------------------------------------------

def check_language_model(cell: str = "lstm", tie_weights: bool = False, dropout: float = 0.0,
                         seed: int = 0, vocab: int = 6, embed: int = 3, hidden: int = 3,
                         layers: int = 2, T: int = 3, B: int = 2, label: str | None = None,
                         **model_kwargs) -> list[dict]:
    """Gradcheck every parameter of a small :class:`NumpyLanguageModel`.
    With dropout > 0 the masks are frozen by re-seeding the dropout stream
    for every evaluation, which makes the loss a deterministic function."""
    label = label or f"lm-{cell}" + ("-tied" if tie_weights else "") + ("-dropout" if dropout else "")
    model = NumpyLanguageModel(vocab, embed, hidden, layers, cell=cell, dropout=dropout,
                               tie_weights=tie_weights, dtype="float64", seed=seed, **model_kwargs)
    rng = np.random.default_rng(seed + 1000)
    times = None
    if model.needs_times:
        for l, c in enumerate(model.cells):
            tp = _phased_test_params(c, rng)
            for k in ("tau", "shift", "r_on"):
                model.params[f"rnn.layers.{l}.{k}"][...] = tp[k]
        times = safe_times([model.layer_params(l) for l in range(layers)], T, B, rng)
    x = rng.integers(0, vocab, size=(T, B))
    y = rng.integers(0, vocab, size=(T, B))
    state = [tuple(0.5 * rng.standard_normal(s.shape) for s in st) for st in model.zero_state(B)]

    _, _, cache = model.forward_loss(x, y, state, train=True, rng=np.random.default_rng(7),
                                     times=times)
    grads = model.backward(cache)

    ref = NumpyLanguageModel(vocab, embed, hidden, layers, cell=cell, dropout=dropout,
                             tie_weights=tie_weights, dtype=REF_DTYPE, seed=seed, **model_kwargs)
    ref.load_state_dict(model.params)
    state_ref = [tuple(_ext(s) for s in st) for st in state]
    times_ref = None if times is None else _ext(times)

    def loss():
        return ref.forward_loss(x, y, state_ref, train=True, rng=np.random.default_rng(7),
                                times=times_ref)[0]

    return [_row(label, k, grads[k], numerical_gradient(loss, ref.params[k])) for k in model.params]


def run_gradcheck(seed: int = 0) -> list[dict]:
    """Every variant of every cell in the cell table (RNN tanh/relu, LSTM, GRU
    old/new z with the reset gate after or before, Phased LSTM), with double
    and single bias, and language models (untied, tied, with frozen dropout
    masks, GRU and Phased LSTM stacks). Returns the rows."""
    rows = []
    for cell, label, options in cell_registry.variants():
        rows += check_cell(cell.name, seed=seed, label=label, **options)
        rows += check_cell(cell.name, seed=seed, bias="single", label=f"{label}-single_bias", **options)
    rows += check_language_model("lstm", seed=seed)
    rows += check_language_model("lstm", tie_weights=True, seed=seed)
    rows += check_language_model("lstm", dropout=0.3, seed=seed)
    rows += check_language_model("gru", tie_weights=True, dropout=0.3, seed=seed,
                                 gru_z="new", label="lm-gru_new-tied-dropout")
    rows += check_language_model("gru", dropout=0.3, seed=seed, gru_reset="before",
                                 label="lm-gru_reset_before-dropout")
    rows += check_language_model("phased_lstm", tie_weights=True, seed=seed,
                                 label="lm-phased_lstm-tied")
    return rows


def format_table(rows: list[dict], tolerance: float = TOLERANCE) -> str:
    """Plain-text table of gradcheck rows with an ok/FAIL column and a
    summary line."""
    header = ("cell", "parameter", "max_rel_error", "status")
    body = [(r["cell"], r["parameter"], f"{r['max_rel_error']:.2e}",
             "ok" if r["max_rel_error"] <= tolerance else "FAIL") for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*b) for b in body]
    worst = max((r["max_rel_error"] for r in rows), default=0.0)
    failed = sum(r["max_rel_error"] > tolerance for r in rows)
    lines.append(f"{len(rows)} checks, max relative error {worst:.2e}, "
                 f"{failed} above tolerance {tolerance:.0e}")
    return "\n".join(lines)
