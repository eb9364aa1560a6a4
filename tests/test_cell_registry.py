"""Every cell variant in the cell table (rnnlab/cell_registry.py) is checked
here without being named: a new entry gets these tests by existing.

* the explicit PyTorch layer equals the NumPy layer (float64): outputs, final
  state and every gradient (parameters, input, initial state);
* where the table names a fused kernel, the fused stack equals the explicit
  one; where it names none, the stack runs the explicit layers;
* the closed-form parameter count equals both layers' parameters;
* the layers have the table's gate blocks and state count, and recurrent
  weights exactly where the table says so.
The gradient check over the same table is in test_numpy_gradcheck.py.
"""

import numpy as np
import pytest
import torch

from rnnlab import cell_registry
from rnnlab.config import ModelConfig
from rnnlab.models import build_model
from rnnlab.models.stack import RecurrentStack
from rnnlab.numpy.gradcheck import _phased_test_params, safe_times
from rnnlab.numpy.params import count_params

VARIANTS = {label: (cell, options) for cell, label, options in cell_registry.variants()}
FUSED = [label for label, (cell, options) in VARIANTS.items() if cell.fused_kernel(options)]


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


@pytest.mark.parametrize("bias", ["double", "single"])
@pytest.mark.parametrize("label", VARIANTS)
def test_torch_layer_equals_numpy_layer(label, bias):
    cell, options = VARIANTS[label]
    T, B, I, H = 5, 3, 4, 6
    rng = np.random.default_rng(0)
    np_layer = cell_registry.numpy_layer(cell.name, I, H, bias, **options)
    params = _phased_test_params(np_layer, rng) if cell.needs_times else np_layer.init_params(rng)
    torch_layer = cell_registry.torch_layer(cell.name, I, H, bias, **options).double()
    torch_layer.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()}, strict=True)
    x = rng.standard_normal((T, B, I))
    state = tuple(rng.standard_normal((B, H)) for _ in range(cell.n_states))
    times = safe_times([params], T, B, rng) if cell.needs_times else None
    dout = rng.standard_normal((T, B, H))
    dstate = tuple(rng.standard_normal((B, H)) for _ in state)

    out, final, cache = np_layer.forward(params, x, state, times=times, train=False)
    grads = np_layer.backward(params, cache, dout, dstate)

    xt = torch.from_numpy(x).requires_grad_()
    st = tuple(torch.from_numpy(s).requires_grad_() for s in state)
    torch_layer.eval()  # the Phased LSTM's leak: 0 on both sides (train=False)
    tout, tfinal = torch_layer(xt, st, None if times is None else torch.from_numpy(times))
    loss = (tout * torch.from_numpy(dout)).sum() + sum((f * torch.from_numpy(d)).sum() for f, d in zip(tfinal, dstate))
    loss.backward()

    assert rel_err(out, tout.detach().numpy()) <= 1e-12
    for a, b in zip(final, tfinal):
        assert rel_err(a, b.detach().numpy()) <= 1e-12
    for name, p in torch_layer.named_parameters():
        assert rel_err(grads.params[name], p.grad.numpy()) <= 1e-9, name
    assert rel_err(grads.dx, xt.grad.numpy()) <= 1e-9
    for a, s in zip(grads.state, st):
        assert rel_err(a, s.grad.numpy()) <= 1e-9


@pytest.mark.parametrize("label", FUSED)
def test_fused_equals_explicit_where_a_kernel_exists(label):
    cell, options = VARIANTS[label]
    torch.manual_seed(0)
    stack = RecurrentStack(cell.name, 5, 7, 2, impl="explicit", **options).double()
    fused = RecurrentStack(cell.name, 5, 7, 2, impl="fused", **options).double()
    fused.load_state_dict(stack.state_dict())
    assert (stack.impl, fused.impl) == ("explicit", "fused")
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    results = []
    for s in (stack, fused):
        out, final = s(x)
        loss = out.square().sum() + sum(f.square().sum() for f in final)
        results.append((out, final, torch.autograd.grad(loss, list(s.parameters()))))
    (out_e, final_e, grads_e), (out_f, final_f, grads_f) = results
    torch.testing.assert_close(out_f, out_e, rtol=1e-10, atol=1e-12)
    for a, b in zip(final_f, final_e):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(grads_f, grads_e):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("label", VARIANTS)
def test_the_table_decides_the_path(label):
    """model.impl=fused runs a kernel exactly where the table names one."""
    cell, options = VARIANTS[label]
    stack = RecurrentStack(cell.name, 3, 4, 1, impl="fused", **options)
    assert stack.impl == ("fused" if cell.fused_kernel(options) else "explicit")
    assert stack.kernel == cell.fused_kernel(options)


@pytest.mark.parametrize("bias", ["double", "single"])
@pytest.mark.parametrize("label", VARIANTS)
def test_parameter_formula_counts_both_layers(label, bias):
    cell, options = VARIANTS[label]
    m, n, layers = 13, 7, 3
    count, formula = count_params(cell.name, m, n, layers, bias)
    stack = RecurrentStack(cell.name, m, n, layers, bias=bias, **options)
    assert sum(p.numel() for p in stack.parameters()) == count
    numpy = sum(cell_registry.numpy_layer(cell.name, m if l == 0 else n, n, bias, **options).num_params()
                for l in range(layers))
    assert numpy == count and f"{count:,}" in formula


@pytest.mark.parametrize("label", VARIANTS)
def test_layers_have_the_tables_gates_and_states(label):
    cell, options = VARIANTS[label]
    H = 5
    torch_layer = cell_registry.torch_layer(cell.name, 3, H, **options)
    numpy_layer = cell_registry.numpy_layer(cell.name, 3, H, **options)
    assert torch_layer.weight_ih.shape[0] == len(cell.gates) * H == numpy_layer.param_shapes()["weight_ih"][0]
    # a cell without recurrent weights has neither weight_hh nor bias_hh, in both backends
    recurrent = {"weight_hh"} if cell.recurrent_weights else set()
    assert {n for n, _ in torch_layer.named_parameters()} & {"weight_hh", "bias_hh"} == recurrent | (
        {"bias_hh"} if cell.recurrent_weights else set())
    assert set(numpy_layer.param_shapes()) & {"weight_hh", "bias_hh"} == recurrent | (
        {"bias_hh"} if cell.recurrent_weights else set())
    assert torch_layer.n_states == cell.n_states == numpy_layer.n_states
    assert {name for name, p in torch_layer.named_parameters() if p.dim() == 1 and name.startswith(cell.unit_params)} \
        == set(cell.unit_params)


def test_gru_reset_before_differs_from_after_and_each_equals_its_numpy_twin():
    """Same weights, two models: the reset gate's placement changes the output,
    and each placement is the same function in PyTorch and NumPy."""
    V, H = 9, 6
    x = torch.randint(0, V, (7, 2))
    logits = {}
    for reset in ("after", "before"):
        for backend in ("torch", "numpy"):
            torch.manual_seed(0)  # same initial weights for all four
            cfg = ModelConfig(cell="gru", hidden=H, layers=2, embed=5, gru_reset=reset, backend=backend,
                              impl="explicit")
            model = build_model(cfg, V).double().eval()
            with torch.no_grad():
                logits[reset, backend] = model(x)[0]
    for reset in ("after", "before"):
        torch.testing.assert_close(logits[reset, "numpy"], logits[reset, "torch"], rtol=1e-10, atol=1e-12)
    assert (logits["after", "torch"] - logits["before", "torch"]).abs().max() > 1e-3


def test_unknown_cells_and_options_are_refused():
    with pytest.raises(ValueError, match="expected one of rnn, lstm, gru, phased_lstm, mgu, mingru, minlstm"):
        cell_registry.get("lstmx")
    with pytest.raises(ValueError, match="gru_reset must be one of after, before"):
        cell_registry.resolve("gru", {"gru_reset": "middle"})
    with pytest.raises(ValueError, match="unknown cell option"):
        cell_registry.resolve("lstm", {"gru_rest": "before"})
    # options of other cells are dropped: a configuration holds every cell's
    assert cell_registry.resolve("lstm", {"gru_z": "new"})[1] == {}
    assert cell_registry.resolve("rnn_relu")[1] == {"nonlinearity": "relu"}
