"""The shared parameter contract, end to end: NumPy LM weights load with
``load_state_dict(strict=True)`` into the project's PyTorch LanguageModel and
both compute the same loss, state and gradients (float64), for every cell
family, tied/untied, single/double bias, fused and explicit torch paths; and
the NumPy Phased LSTM equals the PyTorch one including tau/shift/r_on grads.
Skipped if the PyTorch side is not importable."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlab.numpy.cells import PhasedLSTMLayer
from rnnlab.numpy.gradcheck import _phased_test_params, safe_times
from rnnlab.numpy.model import NumpyLanguageModel

config = pytest.importorskip("rnnlab.config")
lm = pytest.importorskip("rnnlab.models.lm")
phased = pytest.importorskip("rnnlab.models.phased")

RTOL = 1e-8


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


CASES = [
    ("lstm", False, "fused", {}),
    ("lstm", True, "explicit", {}),
    ("gru", True, "fused", {"gru_z": "new"}),
    ("gru", False, "explicit", {"bias": "single"}),
    ("rnn", False, "explicit", {"nonlinearity": "relu"}),
    ("phased_lstm", True, "explicit", {}),
]


@pytest.mark.parametrize("cell,tie,impl,extra", CASES)
def test_numpy_weights_run_identically_in_torch_lm(cell, tie, impl, extra):
    V, E, H, L, T, B = 11, 6, 6, 2, 5, 3
    model = NumpyLanguageModel(V, E, H, L, cell=cell, tie_weights=tie, dtype="float64", seed=1, **extra)
    cfg = config.ModelConfig(cell=cell, hidden=H, layers=L, embed=E, tie_weights=tie, impl=impl, **extra)
    ref = lm.LanguageModel(V, cfg).double()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in model.params.items()}, strict=True)
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = [tuple(rng.standard_normal((B, H)) for _ in s) for s in model.zero_state(B)]
    times = np.tile(np.arange(T, dtype=float)[:, None], (1, B)) + 3.0  # stream positions 3..

    loss, new_state, cache = model.forward_loss(x, y, state, times=times)
    grads = model.backward(cache)
    tstate = tuple(torch.from_numpy(s) for s in NumpyLanguageModel.stack_state(state))
    logits, tnew = ref(torch.from_numpy(x), tstate, torch.from_numpy(times))
    lt = F.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1))
    lt.backward()

    tgrads = dict(ref.named_parameters())
    errors = {k: rel_err(grads[k], tgrads[k].grad.numpy()) for k in model.params}
    errors["loss"] = abs(loss - lt.item()) / lt.item()
    for k, s in enumerate(NumpyLanguageModel.stack_state(new_state)):
        errors[f"state{k}"] = rel_err(s, tnew[k].detach().numpy())
    assert max(errors.values()) <= RTOL, errors
    back = model.unstack_state(tuple(t.detach() for t in tnew))
    np.testing.assert_allclose(back[1][0], new_state[1][0], rtol=0, atol=1e-13)


@pytest.mark.parametrize("bias", ["double", "single"])
@pytest.mark.parametrize("train", [True, False])
def test_phased_lstm_matches_torch_layer(bias, train):
    T, B, I, H = 6, 3, 4, 5
    rng = np.random.default_rng(0)
    layer = PhasedLSTMLayer(I, H, bias=bias)
    p = _phased_test_params(layer, rng)
    tl = phased.PhasedLSTMLayer(I, H, bias=bias).double()
    tl.train(train)
    with torch.no_grad():
        for k, v in p.items():
            getattr(tl, k).copy_(torch.from_numpy(v))
    x = rng.standard_normal((T, B, I))
    times = safe_times([p], T, B, rng)
    state = (rng.standard_normal((B, H)), rng.standard_normal((B, H)))
    dout = rng.standard_normal((T, B, H))
    dstate = (rng.standard_normal((B, H)), rng.standard_normal((B, H)))
    out, final, cache = layer.forward(p, x, state, times=times, train=train)
    g = layer.backward(p, cache, dout, dstate)

    xt = torch.tensor(x, requires_grad=True)
    st = tuple(torch.tensor(s, requires_grad=True) for s in state)
    o, f = tl(xt, st, times=torch.tensor(times))
    loss = (o * torch.from_numpy(dout)).sum() + sum((a * torch.from_numpy(b)).sum() for a, b in zip(f, dstate))
    loss.backward()
    errors = {"out": rel_err(out, o.detach().numpy()), "dx": rel_err(g.dx, xt.grad.numpy())}
    errors.update({k: rel_err(g.params[k], getattr(tl, k).grad.numpy()) for k in p})
    errors.update({f"dstate{i}": rel_err(a, b.grad.numpy()) for i, (a, b) in enumerate(zip(g.state, st))})
    assert {"tau", "shift", "r_on"} <= set(errors)
    assert max(errors.values()) <= RTOL, errors
