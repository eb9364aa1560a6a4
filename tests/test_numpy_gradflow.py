"""Gradient-flow rows (||dL_T/dh_t|| vs T - t) and the plot."""

import numpy as np
import pytest
import torch
from PIL import Image

from rnnlab import cell_registry
from rnnlab.numpy.gradflow import gradient_flow, gradient_flow_figure, plot_gradient_flow

RECURRENT = [label for cell, label, _ in cell_registry.variants() if not cell.needs_times]


def test_rows_structure_and_unit_start():
    T = 12
    rows = gradient_flow(["rnn", "lstm", "gru"], hidden=16, T=T, seed=0, batch=4)
    assert {r["cell"] for r in rows} == {"rnn_tanh", "lstm", "gru"}
    for cell in ("rnn_tanh", "lstm", "gru"):
        mine = [r for r in rows if r["cell"] == cell]
        assert [r["distance"] for r in mine] == list(range(T + 1))
        # dL_T/dh_T = w, a unit vector
        assert abs(mine[0]["grad_norm"] - 1.0) < 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rnn_gradient_vanishes_far_faster_than_the_gated_cells(seed):
    """The picture the command exists for: at PyTorch's initialisation every
    cell's gradient shrinks with distance, the vanilla RNN's by orders of
    magnitude more than the LSTM's and the GRU's (measured: ~1e-14 against
    ~1e-10 and ~1e-9 after 40 steps)."""
    rows = gradient_flow(["rnn_tanh", "lstm", "gru"], hidden=32, T=40, seed=seed, batch=8)
    norm = {(r["cell"], r["distance"]): r["grad_norm"] for r in rows}
    for gated in ("lstm", "gru"):
        assert norm["rnn_tanh", 40] < 1e-3 * norm[gated, 40]
        assert norm["rnn_tanh", 20] < 0.1 * norm[gated, 20]
    assert norm["rnn_tanh", 40] < 1e-3 * norm["rnn_tanh", 0]


@pytest.mark.parametrize("label", RECURRENT)
def test_matches_torch_autograd(label):
    """||dL_T/dh_t|| of the NumPy backward equals autograd's through the
    explicit PyTorch cell on the same weights and inputs (every cell of the table
    without timestamps)."""
    cell, _, options = next(v for v in cell_registry.variants() if v[1] == label)
    H, T, B = 8, 6, 3
    rows = gradient_flow(cell.name, hidden=H, T=T, seed=2, batch=B, **options)
    rng = np.random.default_rng(2)  # replay gradient_flow's draws
    x = rng.standard_normal((T, B, H))
    w = rng.standard_normal(H)
    w /= np.linalg.norm(w)
    params = cell_registry.numpy_layer(cell.name, H, H, **options).init_params(rng)
    layer = cell_registry.torch_layer(cell.name, H, H, **options).double()
    layer.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    state = tuple(torch.zeros(B, H, dtype=torch.float64, requires_grad=True) for _ in range(cell.n_states))
    hs = [state[0]]
    xp = torch.nn.functional.linear(torch.from_numpy(x), layer.weight_ih, layer.bias_ih)
    for t in range(T):
        state = layer.step(xp[t], state)
        state[0].retain_grad()
        hs.append(state[0])
    (hs[-1] @ torch.from_numpy(w)).sum().backward()
    expected = [hs[T - d].grad.norm(dim=1).mean().item() for d in range(T + 1)]
    got = [r["grad_norm"] for r in rows]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def pixels_of(png_path, rgb, tolerance=40):
    """Rows of the pixels within `tolerance` of a colour (a drawn line's)."""
    img = np.asarray(Image.open(png_path).convert("RGB")).astype(int)
    return np.nonzero(np.abs(img - np.array(rgb)).max(-1) < tolerance)[0]


def test_plot_draws_each_cells_norms(tmp_path):
    """The figure holds one log-scale line per cell with exactly the rows'
    norms, and the PNG shows both lines (matplotlib's first two colours)."""
    rows = gradient_flow(["rnn", "lstm"], hidden=8, T=10, seed=0, batch=2)
    ax = gradient_flow_figure(rows).axes[0]
    assert ax.get_yscale() == "log"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"rnn_tanh", "lstm"}
    for cell, line in lines.items():
        mine = [(r["distance"], r["grad_norm"]) for r in rows if r["cell"] == cell]
        np.testing.assert_array_equal(line.get_xdata(), [d for d, _ in mine])
        np.testing.assert_array_equal(line.get_ydata(), [n for _, n in mine])
    path = plot_gradient_flow(rows, tmp_path / "flow.png")
    height = Image.open(path).size[1]
    for rgb in ((31, 119, 180), (255, 127, 14)):  # C0, C1
        ys = pixels_of(path, rgb)
        assert len(ys) > 300 and ys.max() - ys.min() > 0.3 * height  # a line falling over the plot
