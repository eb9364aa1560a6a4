"""NumPy recurrent layers vs torch.nn.RNN/LSTM/GRU on identical weights (float64):
outputs, final states and every gradient (parameters, input, initial state)
must agree to 1e-8 relative; plus truncated BPTT, dtypes and Phased LSTM."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.numpy import make_cell
from rnnlab.numpy.cells import GRULayer, LSTMLayer, PhasedLSTMLayer, RNNLayer, forward_backward, phase_gate
from rnnlab.numpy.gradcheck import check_cell

RTOL = 1e-8


def rel_err(a, b):
    """max |a - b| / max |b|: relative to the tensor's scale (elementwise
    ratios are meaningless for entries that are ~0 by cancellation)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def torch_module(cell, I, H):
    if cell.startswith("rnn"):
        return torch.nn.RNN(I, H, nonlinearity=cell[4:], dtype=torch.float64)
    if cell == "lstm":
        return torch.nn.LSTM(I, H, dtype=torch.float64)
    return torch.nn.GRU(I, H, dtype=torch.float64)


def torch_reference(cell, params, x, state, dout, dstate, gru_z="old"):
    """Run the torch module on our weights; return outputs and grads under
    our names. "single" bias = torch with bias_hh fixed at 0. gru_z="new" =
    torch with the z rows of all four tensors negated (sigma(-a) = 1 - sigma(a))."""
    T, B, I = x.shape
    H = params["weight_hh"].shape[1]
    m = torch_module(cell, I, H)
    flip = np.ones(params["weight_ih"].shape[0])
    if gru_z == "new":
        flip[H:2 * H] = -1.0
    with torch.no_grad():
        for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            v = params.get(k, np.zeros(params["weight_ih"].shape[0]))
            v = v * (flip[:, None] if v.ndim == 2 else flip)
            getattr(m, f"{k}_l0").copy_(torch.from_numpy(v))
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s[None], requires_grad=True) for s in state]
    out, fin = m(xt, tuple(st) if len(st) == 2 else st[0])
    fin = fin if isinstance(fin, tuple) else (fin,)
    loss = (out * torch.from_numpy(dout)).sum()
    loss = loss + sum((f[0] * torch.from_numpy(d)).sum() for f, d in zip(fin, dstate))
    loss.backward()
    grads = {}
    for k in params:
        g = getattr(m, f"{k}_l0").grad.numpy()
        grads[k] = g * (flip[:, None] if g.ndim == 2 else flip)
    return {"out": out.detach().numpy(), "final": [f[0].detach().numpy() for f in fin],
            "dx": xt.grad.numpy(), "dstate": [s.grad[0].numpy() for s in st], "grads": grads}


CASES = [("rnn_tanh", "old"), ("rnn_relu", "old"), ("lstm", "old"), ("gru", "old"), ("gru", "new")]


@pytest.mark.parametrize("bias", ["double", "single"])
@pytest.mark.parametrize("cell,gru_z", CASES)
def test_matches_torch_float64(cell, gru_z, bias):
    T, B, I, H = 6, 3, 5, 7
    rng = np.random.default_rng(1)
    layer = make_cell(cell, I, H, bias=bias, gru_z=gru_z)
    params = layer.init_params(rng, np.float64)
    assert ("bias_hh" in params) == (bias == "double")
    x = rng.standard_normal((T, B, I))
    state = tuple(rng.standard_normal((B, H)) for _ in range(layer.n_states))
    dout = rng.standard_normal((T, B, H))
    dstate = tuple(rng.standard_normal((B, H)) for _ in state)

    out, final, cache = layer.forward(params, x, state)
    g = layer.backward(params, cache, dout, dstate)
    ref = torch_reference(cell, params, x, state, dout, dstate, gru_z)

    errors = {"out": rel_err(out, ref["out"]), "dx": rel_err(g.dx, ref["dx"])}
    for i, (f, fr, ds, dsr) in enumerate(zip(final, ref["final"], g.state, ref["dstate"])):
        errors[f"final{i}"] = rel_err(f, fr)
        errors[f"dstate{i}"] = rel_err(ds, dsr)
    for k in params:
        errors[k] = rel_err(g.params[k], ref["grads"][k])
    assert set(g.params) == set(params)
    assert max(errors.values()) <= RTOL, errors


def test_gru_conventions_differ_and_mirror():
    """'new' with negated z rows computes exactly what 'old' computes."""
    rng = np.random.default_rng(2)
    old, new = GRULayer(3, 4, gru_z="old"), GRULayer(3, 4, gru_z="new")
    p = old.init_params(rng)
    x = rng.standard_normal((5, 2, 3))
    out_old, _, _ = old.forward(p, x)
    out_new, _, _ = new.forward(p, x)
    assert np.abs(out_old - out_new).max() > 1e-3
    q = {k: v.copy() for k, v in p.items()}
    for v in q.values():
        v[4:8] *= -1
    np.testing.assert_allclose(new.forward(q, x)[0], out_old, rtol=0, atol=1e-14)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_truncated_bptt_matches_torch_with_detach(cell):
    """Segments of k steps with the state carried (detached) = torch doing the same."""
    T, k, B, I, H = 9, 4, 2, 3, 5
    rng = np.random.default_rng(3)
    layer = make_cell(cell, I, H)
    params = layer.init_params(rng)
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, H))
    m = torch_module(cell, I, H)
    with torch.no_grad():
        for name, v in params.items():
            getattr(m, f"{name}_l0").copy_(torch.from_numpy(v))

    state, tstate = None, None
    grads = {name: np.zeros_like(v) for name, v in params.items()}
    outs = []
    for s in range(0, T, k):
        out, state, cache = layer.forward(params, x[s:s + k], state)
        g = layer.backward(params, cache, dout[s:s + k], None)
        for name in grads:
            grads[name] += g.params[name]
        outs.append(out.copy())
        tout, tstate = m(torch.from_numpy(x[s:s + k]), tstate)
        (tout * torch.from_numpy(dout[s:s + k])).sum().backward()
        tstate = tuple(t.detach() for t in tstate) if isinstance(tstate, tuple) else tstate.detach()
        assert rel_err(out, tout.detach().numpy()) <= RTOL
    for name in grads:
        assert rel_err(grads[name], getattr(m, f"{name}_l0").grad.numpy()) <= RTOL
    # carrying the state makes the segmented forward identical to one pass
    full, _, _ = layer.forward(params, x)
    np.testing.assert_allclose(np.concatenate(outs), full, rtol=0, atol=1e-13)


@pytest.mark.parametrize("cell", ["rnn_relu", "lstm", "gru", "phased_lstm"])
def test_float32_stays_float32(cell):
    rng = np.random.default_rng(4)
    layer = make_cell(cell, 3, 4)
    p64 = layer.init_params(rng, np.float64)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    x = rng.standard_normal((5, 2, 3))
    times = np.tile(np.arange(5.0)[:, None], (1, 2))
    o64, _, c64 = layer.forward(p64, x, times=times)
    o32, s32, c32 = layer.forward(p32, x, times=times)
    g32 = layer.backward(p32, c32, np.ones_like(o32), None)
    g64 = layer.backward(p64, c64, np.ones_like(o64), None)
    assert o32.dtype == np.float32 and all(s.dtype == np.float32 for s in s32)
    assert g32.dx.dtype == np.float32
    assert all(v.dtype == np.float32 for v in g32.params.values())
    np.testing.assert_allclose(o32, o64, atol=1e-5)
    for k in p64:
        np.testing.assert_allclose(g32.params[k], g64.params[k], rtol=1e-3, atol=1e-4)


def test_dh_is_total_hidden_gradient():
    """LayerGrads.dh[t] is dL/dh_t through the output and all later steps:
    check it against torch autograd with retain_grad on each step's h."""
    T, B, I, H = 5, 2, 3, 4
    rng = np.random.default_rng(5)
    layer = LSTMLayer(I, H)
    p = layer.init_params(rng)
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, H))
    _, _, cache = layer.forward(p, x)
    dh = layer.backward(p, cache, dout, None).dh

    cellt = torch.nn.LSTMCell(I, H, dtype=torch.float64)
    with torch.no_grad():
        for k, v in p.items():
            getattr(cellt, k).copy_(torch.from_numpy(v))
    h = c = torch.zeros(B, H, dtype=torch.float64)
    hs = []
    for t in range(T):
        h, c = cellt(torch.from_numpy(x[t]), (h, c))
        h.retain_grad()
        hs.append(h)
    sum((hh * torch.from_numpy(d)).sum() for hh, d in zip(hs, dout)).backward()
    assert rel_err(dh, np.stack([hh.grad.numpy() for hh in hs])) <= RTOL


@settings(max_examples=8, deadline=None)
@given(T=st.integers(1, 6), B=st.integers(1, 4), I=st.integers(1, 6), H=st.integers(1, 6),
       seed=st.integers(0, 2**16))
def test_lstm_matches_torch_any_shape(T, B, I, H, seed):
    rng = np.random.default_rng(seed)
    layer = LSTMLayer(I, H)
    p = layer.init_params(rng)
    x = rng.standard_normal((T, B, I))
    state = (rng.standard_normal((B, H)), rng.standard_normal((B, H)))
    dout = rng.standard_normal((T, B, H))
    dstate = (rng.standard_normal((B, H)), rng.standard_normal((B, H)))
    out, _, cache = layer.forward(p, x, state)
    g = layer.backward(p, cache, dout, dstate)
    ref = torch_reference("lstm", p, x, state, dout, dstate)
    assert rel_err(out, ref["out"]) <= RTOL
    assert rel_err(g.dx, ref["dx"]) <= RTOL
    for k in p:
        assert rel_err(g.params[k], ref["grads"][k]) <= RTOL


# --- Phased LSTM ---------------------------------------------------------------

def test_phase_gate_piecewise_values():
    tau, shift, r_on = np.array([2.0]), np.array([0.5]), np.array([0.2])
    # phi = ((t - 0.5) mod 2) / 2
    times = np.array([[0.5 + 0.1], [0.5 + 0.3], [0.5 + 1.0], [0.5 - 0.1]])  # phi .05, .15, .5, .95
    g = phase_gate(times[:, :, None][..., 0], tau, shift, r_on, alpha=1e-3)
    np.testing.assert_allclose(g.phi[:, 0, 0], [0.05, 0.15, 0.5, 0.95], atol=1e-12)
    np.testing.assert_allclose(g.k[:, 0, 0], [0.5, 0.5, 1e-3 * 0.5, 1e-3 * 0.95], atol=1e-12)
    assert phase_gate(times, tau, shift, r_on, alpha=0.0).k[2:, 0, 0].tolist() == [0.0, 0.0]


def test_phased_lstm_closed_gate_keeps_state_at_eval():
    """With every unit closed and no leak (evaluation), h and c never change."""
    rng = np.random.default_rng(6)
    layer = PhasedLSTMLayer(3, 4)
    p = layer.init_params(rng)
    p["tau"][:] = 10.0
    p["shift"][:] = 0.0
    p["r_on"][:] = 0.05  # open only for phi < 0.05, i.e. t mod 10 < 0.5
    times = np.tile(np.linspace(1.0, 9.0, 6)[:, None], (1, 2))
    h0, c0 = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    out, (h, c), _ = layer.forward(p, rng.standard_normal((6, 2, 3)), (h0, c0), times=times,
                                   train=False)
    np.testing.assert_array_equal(out, np.broadcast_to(h0, out.shape))
    np.testing.assert_array_equal(c, c0)
    out_train, _, _ = layer.forward(p, rng.standard_normal((6, 2, 3)), (h0, c0), times=times,
                                    train=True)
    assert np.abs(out_train - h0).max() > 0  # the 1e-3 leak lets a little through


def test_phased_lstm_default_init():
    p = PhasedLSTMLayer(3, 500).init_params(np.random.default_rng(0))
    assert np.all((p["tau"] >= 1.0) & (p["tau"] <= np.exp(3.0)))
    assert np.all((p["shift"] >= 0) & (p["shift"] <= p["tau"]))
    np.testing.assert_array_equal(p["r_on"], 0.05)
    assert set(p) == {"weight_ih", "weight_hh", "bias_ih", "bias_hh", "tau", "shift", "r_on"}


@pytest.mark.parametrize("bias", ["double", "single"])
def test_phased_lstm_gradcheck(bias):
    rows = check_cell("phased_lstm", seed=11, bias=bias)
    names = {r["parameter"] for r in rows}
    assert {"tau", "shift", "r_on", "weight_ih", "weight_hh", "input", "h0", "c0"} <= names
    assert max(r["max_rel_error"] for r in rows) <= 1e-6, rows


def test_bad_arguments():
    with pytest.raises(ValueError):
        make_cell("lstmx", 2, 3)
    with pytest.raises(ValueError):
        RNNLayer(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError):
        LSTMLayer(2, 3, bias="triple")
    with pytest.raises(ValueError):
        PhasedLSTMLayer(2, 3).forward(PhasedLSTMLayer(2, 3).init_params(), np.zeros((2, 1, 2)))


def test_forward_backward_helper_phased():
    """The one-call API the PyTorch Phased LSTM comparison uses: grads for
    tau/shift/r_on, consistent with the layer."""
    rng = np.random.default_rng(12)
    layer = PhasedLSTMLayer(3, 4, bias="single")
    p = layer.init_params(rng)
    x = rng.standard_normal((5, 2, 3))
    times = np.cumsum(rng.uniform(0.1, 1.0, (5, 2)), axis=0)
    res = forward_backward(layer, p, x, times=times)
    assert set(res["grads"]) == set(p) and "bias_hh" not in p
    out, _, cache = layer.forward(p, x, times=times)
    g = layer.backward(p, cache, np.ones_like(out), None)
    np.testing.assert_array_equal(res["out"], out)
    for k in p:
        np.testing.assert_array_equal(res["grads"][k], g.params[k])
