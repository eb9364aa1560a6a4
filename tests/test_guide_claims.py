"""The true/false statements about LSTM behaviour in docs/guide/gates.md, each
checked on rnnlab's own cells (the explicit PyTorch LSTM, float64).

A gate is saturated by a large bias on its rows (PyTorch order i, f, g, o):
σ(±80) is 1 or 0 to within 2e-35: a "closed" gate leaks nothing visible next to values of order 1.
"""

import pytest
import torch

from rnnlab.models.cells import GRULayer, LSTMLayer
from rnnlab.numpy.params import count_params

D_IN, H, T, B = 3, 5, 20, 4
ROWS = {"i": 0, "f": 1, "g": 2, "o": 3}


def lstm(**bias) -> LSTMLayer:
    """A random LSTM layer with the gates named in `bias` pushed to a constant."""
    torch.manual_seed(0)
    layer = LSTMLayer(D_IN, H).double()
    with torch.no_grad():
        for gate, value in bias.items():
            layer.bias_ih[ROWS[gate] * H:(ROWS[gate] + 1) * H] += value
    return layer


def run(layer, c0=None, x=None, h0=None):
    torch.manual_seed(1)
    x = torch.randn(T, B, D_IN, dtype=torch.float64) if x is None else x
    h0 = torch.zeros(B, H, dtype=torch.float64) if h0 is None else h0
    c0 = torch.randn(B, H, dtype=torch.float64) if c0 is None else c0
    out, (h, c) = layer(x, (h0, c0))
    return out, h, c, c0


def test_true_forget_1_input_0_carries_the_cell_state_unchanged():
    _, _, c, c0 = run(lstm(f=80.0, i=-80.0))
    assert torch.equal(c, c0)  # bit for bit, after 20 steps of random input


def test_false_forget_1_means_new_input_is_ignored():
    # The forget gate only decides what is kept; the input gate still adds i⊙g.
    _, _, c, c0 = run(lstm(f=80.0, i=80.0))
    assert (c - c0).abs().max() > 0.5


def test_true_forget_0_erases_the_past_in_one_step():
    layer = lstm(f=-80.0)
    x = torch.randn(1, B, D_IN, dtype=torch.float64)
    _, _, c_a, _ = run(layer, c0=torch.zeros(B, H, dtype=torch.float64), x=x)
    _, _, c_b, _ = run(layer, c0=torch.full((B, H), 7.0, dtype=torch.float64), x=x)
    assert torch.equal(c_a, c_b)  # c_1 = i⊙g: nothing of c_0 is left


def test_true_h_is_bounded_but_c_is_not():
    # h = o⊙tanh(c) stays in [-1, 1]; c = f⊙c + i⊙g can add up to 1 a step.
    torch.manual_seed(2)
    layer = lstm(f=80.0, i=80.0, o=80.0)
    with torch.no_grad():
        layer.bias_ih[2 * H:3 * H] += 80.0  # g = tanh(large) = 1
    out, _, c, c0 = run(layer, c0=torch.zeros(B, H, dtype=torch.float64))
    assert out.abs().max() <= 1.0  # tanh(20) rounds to 1.0 in float64
    assert torch.allclose(c, torch.full_like(c, float(T)))  # c_T = T


def test_false_a_closed_output_gate_forgets_the_cell_state():
    # o = 0 hides c from h (and from the layer above), but c is still carried.
    _, h_closed, c_closed, c0 = run(lstm(o=-80.0, f=80.0, i=-80.0))
    assert h_closed.abs().max() < 1e-15 and torch.equal(c_closed, c0)


def test_true_with_the_output_gate_closed_the_gradient_through_c_is_the_product_of_forget_gates():
    # h = 0 cuts every path but c_{t-1} -> f⊙c_{t-1}: dc_T/dc_0 = Π_t f_t (element-wise).
    layer = lstm(o=-80.0, f=2.0)
    torch.manual_seed(1)
    x = torch.randn(T, B, D_IN, dtype=torch.float64)
    c0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    _, (_, c) = layer(x, (torch.zeros(B, H, dtype=torch.float64), c0))
    (grad,) = torch.autograd.grad(c.sum(), c0)
    with torch.no_grad():  # h stays 0, so f_t = σ(W_if x_t + b_if + b_hf)
        f = torch.sigmoid(torch.nn.functional.linear(x, layer.weight_ih, layer.bias_ih + layer.bias_hh)[..., H:2 * H])
    assert torch.allclose(grad, f.prod(dim=0), rtol=1e-12)
    assert 0.0 < grad.min() and grad.max() < 1.0  # it shrinks, but only as fast as the forget gates close


def test_false_the_hidden_state_alone_is_the_lstms_memory():
    # The state is the pair (h, c): the same h with another c gives another next step.
    layer = lstm()
    x = torch.randn(1, B, D_IN, dtype=torch.float64)
    h0 = torch.randn(B, H, dtype=torch.float64)
    out_a, *_ = run(layer, c0=torch.zeros(B, H, dtype=torch.float64), x=x, h0=h0)
    out_b, *_ = run(layer, c0=torch.ones(B, H, dtype=torch.float64), x=x, h0=h0)
    assert (out_a - out_b).abs().max() > 1e-3


def test_true_gates_are_fractions_candidates_are_signed():
    # σ gates lie in (0, 1), so they scale; the tanh candidate lies in (-1, 1), so it can add or subtract.
    layer = lstm()
    torch.manual_seed(3)
    a = torch.nn.functional.linear(10 * torch.randn(500, D_IN, dtype=torch.float64), layer.weight_ih, layer.bias_ih)
    i, f, g, o = a.chunk(4, dim=1)
    gates = torch.sigmoid(torch.cat([i, f, o]))
    assert 0.0 <= gates.min() and gates.max() <= 1.0
    assert torch.tanh(g).min() < -0.5 and torch.tanh(g).max() > 0.5


@pytest.mark.parametrize("m,n", [(200, 200), (32, 128)])
def test_true_an_lstm_has_four_thirds_the_parameters_of_a_gru(m, n):
    lstm_params = sum(p.numel() for p in LSTMLayer(m, n).parameters())
    gru_params = sum(p.numel() for p in GRULayer(m, n).parameters())
    assert lstm_params * 3 == gru_params * 4 == 12 * (m * n + n * n + 2 * n)
    assert count_params("lstm", m, n)[0] * 3 == count_params("gru", m, n)[0] * 4 == 12 * (m * n + n * n + n)


def test_true_the_phased_lstm_learns_its_period_shift_and_open_ratio():
    # docs/guide/time-gate.md: τ, s and r_on are parameters like the weights: the
    # optimizer sees them and the loss has a gradient for each (while the gate is open).
    from rnnlab.models.phased import PhasedLSTMLayer

    torch.manual_seed(0)
    layer = PhasedLSTMLayer(D_IN, H, r_on_init=0.5).double()
    names = {name for name, _ in layer.named_parameters()}
    assert {"tau", "shift", "r_on"} <= names
    x = torch.randn(T, B, D_IN, dtype=torch.float64)
    times = torch.linspace(0, 30, T, dtype=torch.float64)[:, None].expand(T, B)
    state = (torch.zeros(B, H, dtype=torch.float64), torch.zeros(B, H, dtype=torch.float64))
    out, _ = layer(x, state, times)
    out.pow(2).sum().backward()
    for p in (layer.tau, layer.shift, layer.r_on):
        assert p.grad is not None and p.grad.abs().max() > 0


def test_false_a_zero_input_leaves_h_unchanged():
    # x_t = 0 removes W_ih x_t, but the gates still see W_hh h_{t-1} and the biases.
    layer = lstm()
    h0, c0 = torch.randn(B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    _, h1, _, _ = run(layer, c0=c0, x=torch.zeros(1, B, D_IN, dtype=torch.float64), h0=h0)
    assert (h1 - h0).abs().max() > 0.1


def test_false_a_closed_forget_gate_stops_the_gradient_to_earlier_steps():
    # f = 0 cuts the c path, but the error still reaches x_1 through h_{t-1} -> W_hh -> gates.
    layer = lstm(f=-80.0)
    torch.manual_seed(1)
    x = torch.randn(5, B, D_IN, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    out, _ = layer(x, (torch.zeros(B, H, dtype=torch.float64), c0))
    dx, dc0 = torch.autograd.grad(out[-1].sum(), (x, c0))
    assert dx[0].abs().max() > 1e-6  # the first input still gets a gradient from the last output (~3e-5 here)
    assert dc0.abs().max() < 1e-30  # only the c path itself is cut


def test_false_gate_vectors_are_probability_distributions():
    # Each entry is in (0, 1), but the entries of one gate vector are independent: no sum to 1.
    layer = lstm()
    a = torch.nn.functional.linear(torch.randn(100, D_IN, dtype=torch.float64), layer.weight_ih, layer.bias_ih)
    f = torch.sigmoid(a[:, H:2 * H])
    assert (f.sum(dim=1) - 1).abs().min() > 0.5  # with H = 5 units the sums are near 2.5
