"""Closed-form parameter counts vs torch.nn.RNN/GRU/LSTM and the NumPy layers."""

import pytest
import torch

from rnnlab.numpy import make_cell
from rnnlab.numpy.model import NumpyLanguageModel
from rnnlab.numpy.params import count_params


def test_lstm_200_example():
    assert count_params("lstm", 200, 200)[0] == 320_800
    assert count_params("lstm", 200, 200, bias="double")[0] == 321_600
    count, formula = count_params("lstm", 200, 200)
    assert formula.startswith("4(mn + n² + n)") and "m=200" in formula and "320,800" in formula


@pytest.mark.parametrize("cell,module,kw", [("lstm", torch.nn.LSTM, {}), ("gru", torch.nn.GRU, {}),
                                            ("rnn_tanh", torch.nn.RNN, {}),
                                            ("rnn_relu", torch.nn.RNN, {"nonlinearity": "relu"})])
@pytest.mark.parametrize("inp,hid,layers", [(200, 200, 1), (13, 7, 3), (5, 31, 2)])
def test_counts_match_torch(cell, module, kw, inp, hid, layers):
    m = module(inp, hid, num_layers=layers, **kw)
    torch_count = sum(p.numel() for p in m.parameters())  # torch: two bias vectors
    gates = {"lstm": 4, "gru": 3}.get(cell, 1)
    assert count_params(cell, inp, hid, layers, bias="double")[0] == torch_count
    assert count_params(cell, inp, hid, layers, bias="single")[0] == torch_count - gates * hid * layers
    # and the NumPy layers allocate exactly that many
    for bias in ("single", "double"):
        n = sum(make_cell(cell, inp if l == 0 else hid, hid, bias=bias).num_params()
                for l in range(layers))
        assert n == count_params(cell, inp, hid, layers, bias=bias)[0]


def test_phased_and_formula_for_stacks():
    count, formula = count_params("phased_lstm", 10, 20, layers=2, bias="double")
    assert count == (4 * (10 * 20 + 400 + 40) + 60) + (4 * (400 + 400 + 40) + 60)
    assert "+ 3n" in formula and "L=2" in formula
    model = NumpyLanguageModel(30, 10, 20, 2, cell="phased_lstm")
    rnn = sum(v.size for k, v in model.params.items() if k.startswith("rnn."))
    assert rnn == count
    with pytest.raises(ValueError):
        count_params("transformer", 1, 1)
