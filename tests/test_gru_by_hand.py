"""The hand-derived GRU gradients (reset before W_hn, no biases, t = 2) agree
with torch autograd to 1e-6 in float64, for both z conventions."""

import json

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.numpy.gru_by_hand import WEIGHTS, compare, forward, hand_gradients, random_problem


@pytest.mark.parametrize("gru_z", ["old", "new"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hand_gradients_match_autograd(seed, gru_z):
    rows = compare(seed=seed, input_size=3, hidden=5, gru_z=gru_z)
    assert {(r["part"], r["weight"]) for r in rows} == {(p, w) for p in ("t2", "total") for w in WEIGHTS}
    for r in rows:
        assert r["max_abs_grad"] > 1e-4, r  # a zero gradient would agree trivially
        assert r["max_abs_error"] <= 1e-6, r


def test_step_one_term_is_not_negligible():
    # The total gradient differs from step 2's own term: the path through h1 matters.
    rows = {(r["part"], r["weight"]): r["autograd_00"] for r in compare(seed=0)}
    assert any(abs(rows[("total", w)] - rows[("t2", w)]) > 1e-3 for w in WEIGHTS)


def test_reset_is_applied_before_the_recurrent_product():
    # n = tanh(W_in x + W_hn (r ⊙ h)), which is not PyTorch's tanh(W_in x + r ⊙ (W_hn h)).
    p = random_problem(seed=3)
    _, s1, _ = forward(p)
    before = np.tanh(p["W_in"] @ p["x1"] + p["W_hn"] @ (s1["r"] * p["h0"]))
    after = np.tanh(p["W_in"] @ p["x1"] + s1["r"] * (p["W_hn"] @ p["h0"]))
    assert np.allclose(s1["n"], before, atol=1e-15) and not np.allclose(s1["n"], after, atol=1e-3)


def test_gradcheck_command_prints_hand_and_autograd(capsys):
    assert main(["gradcheck", "--gru-by-hand", "--json", "--seed", "4"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 12 and max(r["max_abs_error"] for r in rows) <= 1e-6


@pytest.mark.parametrize("gru_z", ["old", "new"])
def test_hand_gradients_are_those_of_rnnlabs_reset_before_gru(gru_z):
    """The same weights in rnnlab's own GRU (model.gru_reset="before", both backends, biases zero):
    the same h₂, and its gradients of E₂ are the hand-derived totals."""
    import torch

    from rnnlab import cell_registry

    p = random_problem(input_size=3, hidden=4, seed=5)
    _, _, s2 = forward(p, gru_z)
    hand = hand_gradients(p, gru_z)["total"]
    w_ih = np.concatenate([p["W_ir"], p["W_iz"], p["W_in"]])
    w_hh = np.concatenate([p["W_hr"], p["W_hz"], p["W_hn"]])
    x = np.stack([p["x1"], p["x2"]])[:, None, :]  # [T=2, B=1, I]
    h0 = p["h0"][None, :]

    layer = cell_registry.torch_layer("gru", 3, 4, bias="single", gru_reset="before", gru_z=gru_z).double()
    with torch.no_grad():
        layer.weight_ih.copy_(torch.from_numpy(w_ih))
        layer.weight_hh.copy_(torch.from_numpy(w_hh))
        layer.bias_ih.zero_()
    out, _ = layer(torch.from_numpy(x), (torch.from_numpy(h0),))
    assert np.allclose(out[-1, 0].detach().numpy(), s2["h"], atol=1e-12)
    (0.5 * ((out[-1, 0] - torch.from_numpy(p["y"])) ** 2).sum()).backward()

    twin = cell_registry.numpy_layer("gru", 3, 4, bias="single", gru_reset="before", gru_z=gru_z)
    params = {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": np.zeros(12)}
    out_np, _, cache = twin.forward(params, x, (h0,), train=True)
    dout = np.zeros_like(out_np)
    dout[-1, 0] = out_np[-1, 0] - p["y"]
    grads = twin.backward(params, cache, dout).params

    for name, grad in (("weight_ih", layer.weight_ih.grad.numpy()), ("weight_hh", layer.weight_hh.grad.numpy()),
                       ("weight_ih", grads["weight_ih"]), ("weight_hh", grads["weight_hh"])):
        gates = ("W_ir", "W_iz", "W_in") if name == "weight_ih" else ("W_hr", "W_hz", "W_hn")
        assert np.allclose(grad, np.concatenate([hand[g] for g in gates]), atol=1e-10), name
