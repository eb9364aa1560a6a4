"""Gradient-flow rows (||dL_T/dh_t|| vs T - t) and the plot."""

import numpy as np
import torch

from rnnlab.numpy.gradflow import gradient_flow, plot_gradient_flow


def test_rows_structure_and_unit_start():
    T = 12
    rows = gradient_flow(["rnn", "lstm", "gru"], hidden=16, T=T, seed=0, batch=4)
    assert {r["cell"] for r in rows} == {"rnn_tanh", "lstm", "gru"}
    for cell in ("rnn_tanh", "lstm", "gru"):
        mine = [r for r in rows if r["cell"] == cell]
        assert [r["distance"] for r in mine] == list(range(T + 1))
        # dL_T/dh_T = w, a unit vector
        assert abs(mine[0]["grad_norm"] - 1.0) < 1e-12
        assert all(np.isfinite(r["grad_norm"]) and r["grad_norm"] >= 0 for r in mine)


def test_rnn_gradient_vanishes_at_random_init():
    rows = gradient_flow("rnn_tanh", hidden=32, T=40, seed=1, batch=8)
    norms = [r["grad_norm"] for r in rows]
    assert norms[40] < 1e-3 * norms[0]


def test_matches_torch_autograd():
    """Same weights/inputs in torch.nn.RNNCell, grads via retain_grad."""
    H, T, B = 8, 6, 3
    rows = gradient_flow("rnn_tanh", hidden=H, T=T, seed=2, batch=B)
    rng = np.random.default_rng(2)  # replay gradient_flow's draws
    x = rng.standard_normal((T, B, H))
    w = rng.standard_normal(H)
    w /= np.linalg.norm(w)
    bound = 1 / np.sqrt(H)
    shapes = {"weight_ih": (H, H), "weight_hh": (H, H), "bias_ih": (H,), "bias_hh": (H,)}
    p = {k: rng.uniform(-bound, bound, s) for k, s in shapes.items()}
    cell = torch.nn.RNNCell(H, H, dtype=torch.float64)
    with torch.no_grad():
        for k, v in p.items():
            getattr(cell, k).copy_(torch.from_numpy(v))
    h = torch.zeros(B, H, dtype=torch.float64, requires_grad=True)
    hs = [h]
    for t in range(T):
        h = cell(torch.from_numpy(x[t]), h)
        h.retain_grad()
        hs.append(h)
    (hs[-1] @ torch.from_numpy(w)).sum().backward()
    expected = [hs[T - d].grad.norm(dim=1).mean().item() for d in range(T + 1)]
    got = [r["grad_norm"] for r in rows]
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_plot_writes_png(tmp_path):
    rows = gradient_flow(["rnn", "lstm"], hidden=8, T=10, seed=0, batch=2)
    path = plot_gradient_flow(rows, tmp_path / "flow.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
