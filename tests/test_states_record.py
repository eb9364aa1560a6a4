"""Recording a network's states (rnnlab/states/record.py), for every cell of the table.

Tolerances: the models here are float32, 2 layers of 6 units over 41 steps. The explicit layers,
the fused kernel and the NumPy layers compute the same sums in different orders; each step's
rounding is a few float32 ulps (6e-8 relative) on values of order 1, and the recurrence carries
it forward without growing much over 41 steps (|dh_t/dh_{t-1}| < 1 for these small random
weights): measured, at most 1.2e-7 between any two of them for the cells with recurrent weights.
minGRU's and minLSTM's own forward is a log-space scan, h_t = exp(A_t + logcumsumexp(...)) with
A_t a sum of t log-gates: an absolute error of ε·|A_t| in the exponent is a relative error of
up to t·ε·max|log a| in h (measured 3e-6 against the step-by-step recurrence). So: 1e-5 absolute
plus 1e-5 relative, and for the cells without recurrent weights T·1e-6 relative (4e-5) — while a
wrong gate, a wrong order or an off-by-one step differs by 1e-2 or more.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab import cell_registry
from rnnlab.cell_registry import Cell
from rnnlab.config import ModelConfig
from rnnlab.data.vocab import Vocab
from rnnlab.errors import UserError
from rnnlab.models import build_model
from rnnlab.models.lm import positions
from rnnlab.states.record import record_model

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT = "The king said, ‘Here!’ (twice)\nand left."
TOL = {"atol": 1e-5, "rtol": 1e-5}
SCAN_TOL = {"atol": 1e-5, "rtol": len(TEXT) * 1e-6}  # the minimal cells' log-space scan (module docstring)
VARIANTS = cell_registry.variants()


def vocab() -> Vocab:
    return Vocab(["<unk>", *sorted(set(TEXT))], "char")


def model_of(cell: str, options: dict, backend: str = "torch", seed: int = 0):
    torch.manual_seed(seed)
    cfg = ModelConfig(cell=cell, hidden=6, embed=5, layers=2, dropout=0.0, backend=backend, **options)
    return build_model(cfg, len(vocab())).eval()


@pytest.mark.parametrize("cell,label,options", VARIANTS, ids=[label for _, label, _ in VARIANTS])
def test_explicit_record_equals_the_runs_forward_and_the_numpy_record(cell, label, options):
    model = model_of(cell.name, options)
    tol = TOL if cell.recurrent_weights else SCAN_TOL
    rec = record_model(model, vocab(), TEXT, backend="torch", top_k=3)
    rec_np = record_model(model, vocab(), TEXT, backend="numpy", top_k=3)
    kinds = cell.recorded_signals(options)
    assert list(rec.kinds) == list(kinds) and rec.cell == cell.name
    assert len(rec.layers) == 2 and all(list(layer) == list(kinds) for layer in rec.layers)
    # the run's model forward: the fused kernel where the table names one
    x = torch.from_numpy(vocab().encode(list(TEXT)))[:, None]
    with torch.no_grad():
        h, final = model.features(x, None, positions(0, x))
    np.testing.assert_allclose(rec.layers[-1]["h"], h[:, 0].numpy(), **tol)
    for l in range(2):  # every layer's last state is the kernel's final state
        np.testing.assert_allclose(rec.layers[l]["h"][-1], final[0][l, 0].numpy(), **tol)
        if "c" in kinds:
            np.testing.assert_allclose(rec.layers[l]["c"][-1], final[1][l, 0].numpy(), **tol)
    for l in range(2):  # both backends record the same values
        for name in kinds:
            np.testing.assert_allclose(rec.layers[l][name], rec_np.layers[l][name], **tol, err_msg=f"{l} {name}")
    np.testing.assert_array_equal(rec.loss, rec_np.loss)  # the same model forward
    for name, kind in kinds.items():  # ranges the table declares
        values = np.concatenate([layer[name].ravel() for layer in rec.layers])
        assert values.dtype == np.float32 and values.shape == (2 * len(TEXT) * 6,)
        if kind == "gate":
            assert values.min() >= 0 and values.max() <= 1, name
        if kind == "tanh":
            assert values.min() >= -1 and values.max() <= 1, name


@pytest.mark.parametrize("cell", ["lstm", "phased_lstm", "mingru"])
def test_pieces_carry_the_state_and_the_time(cell, monkeypatch):
    """The text is read CHUNK steps at a time; with pieces of 7 steps the recording is the same
    (the state and, for the Phased LSTM, the timestamps continue across pieces)."""
    from rnnlab.states import record

    model = model_of(cell, {})
    whole = record_model(model, vocab(), TEXT)
    monkeypatch.setattr(record, "CHUNK", 7)
    pieces = record_model(model, vocab(), TEXT)
    np.testing.assert_allclose(pieces.loss, whole.loss, rtol=1e-6)
    for l in range(2):
        for name in whole.kinds:
            np.testing.assert_allclose(pieces.layers[l][name], whole.layers[l][name], **TOL, err_msg=name)


def test_loss_and_top_predictions_are_the_models_softmax():
    model = model_of("lstm", {})
    rec = record_model(model, vocab(), TEXT, top_k=4)
    ids = vocab().encode(list(TEXT))
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(ids)[:, None])
    logp = torch.log_softmax(logits[:, 0].double(), -1).numpy()
    assert np.isnan(rec.loss[0])
    np.testing.assert_allclose(rec.loss[1:], -logp[np.arange(len(ids) - 1), ids[1:]], rtol=1e-6)
    assert len(rec.top) == len(TEXT) and all(len(row) == 4 for row in rec.top)
    best = logp.argmax(-1)
    assert [row[0][0] for row in rec.top] == [vocab().itos[j] for j in best]
    np.testing.assert_allclose([row[0][1] for row in rec.top], np.exp(logp.max(-1)), rtol=1e-6)
    assert rec.tokens == list(TEXT) and rec.level == "char"


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def layer_weights(model, l):
    layer = model.rnn.layers[l]
    w = {name: p.detach().double().numpy() for name, p in layer.named_parameters()}
    return w["weight_ih"], w["weight_hh"], w["bias_ih"] + w["bias_hh"]


def layer_inputs(model, rec, l):
    if l > 0:
        return rec.layers[l - 1]["h"].astype(np.float64)
    return model.embedding.weight.detach().double().numpy()[vocab().encode(rec.tokens)]


@pytest.mark.parametrize("l", [0, 1])
def test_lstm_gates_equal_the_equations_from_the_weights(l):
    """i, f, g, o recomputed in float64 from W_ih, W_hh, b and the recorded h_{t-1}, c_{t-1}."""
    model = model_of("lstm", {})
    rec = record_model(model, vocab(), TEXT)
    W_ih, W_hh, b = layer_weights(model, l)
    x, r = layer_inputs(model, rec, l), rec.layers[l]
    h_prev = np.vstack([np.zeros(6), r["h"][:-1]])
    c_prev = np.vstack([np.zeros(6), r["c"][:-1]])
    a_i, a_f, a_g, a_o = np.split(x @ W_ih.T + h_prev @ W_hh.T + b, 4, axis=1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    for name, value in {
        "i": i,
        "f": f,
        "g": g,
        "o": o,
        "c": f * c_prev + i * g,
        "h": o * np.tanh(f * c_prev + i * g),
    }.items():
        np.testing.assert_allclose(r[name], value, **TOL, err_msg=name)


@pytest.mark.parametrize("gru_z", ["old", "new"])
def test_gru_gates_equal_the_equations_from_the_weights(gru_z):
    """r, z, n (reset after the recurrent product, PyTorch's GRU) recomputed in float64."""
    model = model_of("gru", {"gru_z": gru_z})
    rec = record_model(model, vocab(), TEXT)
    layer = model.rnn.layers[0]
    W_ih, W_hh = layer.weight_ih.detach().double().numpy(), layer.weight_hh.detach().double().numpy()
    b_ih, b_hh = layer.bias_ih.detach().double().numpy(), layer.bias_hh.detach().double().numpy()
    x, r = layer_inputs(model, rec, 0), rec.layers[0]
    h_prev = np.vstack([np.zeros(6), r["h"][:-1]])
    xr, xz, xn = np.split(x @ W_ih.T + b_ih, 3, axis=1)
    hr, hz, hn = np.split(h_prev @ W_hh.T + b_hh, 3, axis=1)
    reset, update = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + reset * hn)
    h = (1 - update) * n + update * h_prev if gru_z == "old" else update * n + (1 - update) * h_prev
    for name, value in {"r": reset, "z": update, "n": n, "h": h}.items():
        np.testing.assert_allclose(r[name], value, **TOL, err_msg=name)


def test_a_numpy_backend_model_records_too():
    model = model_of("gru", {}, backend="numpy")
    rec = record_model(model, vocab(), TEXT, backend="numpy")
    assert list(rec.layers[0]) == ["h", "r", "z", "n"] and np.isfinite(rec.loss[1:]).all()


def test_refusals_are_one_line_user_errors(monkeypatch):
    model = model_of("lstm", {})
    for text, message in (("", "at least 2"), ("x", "at least 2"), ("§§§", "no character the model knows")):
        with pytest.raises(UserError, match=message):
            record_model(model, vocab(), text)
    with pytest.raises(UserError, match="at most 10"):
        record_model(model, vocab(), TEXT, max_tokens=10)
    with pytest.raises(UserError, match="backend"):
        record_model(model, vocab(), TEXT, backend="jax")
    with pytest.warns(UserWarning, match="1 of 3 characters"):
        record_model(model, vocab(), "Th§")
    model.cfg.cell = "no_such_cell"  # the table decides: an unknown cell is an error
    with pytest.raises(UserError, match="unknown cell"):
        record_model(model, vocab(), TEXT)
    monkeypatch.setitem(cell_registry.CELLS, "dummy", Cell("dummy", "rnnlab.models.cells:RNNLayer",
                                                           "rnnlab.numpy.cells:RNNLayer", gates=("h",), n_states=1))
    model.cfg.cell = "dummy"
    with pytest.raises(UserError, match="declares no signals"):
        record_model(model, vocab(), TEXT)
    nplm = build_model(ModelConfig(arch="nplm", hidden=6, embed=5, tie_weights=False), len(vocab()))
    with pytest.raises(UserError, match="recurrent language model"):
        record_model(nplm, vocab(), TEXT)
