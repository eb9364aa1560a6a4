"""MGU, minGRU and minLSTM: the parallel scan equals the recurrence, both
backends agree, and each cell trains, resumes bitwise, generates and runs on
the NumPy backend. (The cell-table tests, test_cell_registry.py,
test_numpy_gradcheck.py and test_stepper.py, cover them as every other cell.)"""

import json

import numpy as np
import pytest
import torch
from conftest import TINY

from rnnlab import cell_registry
from rnnlab.cli import main
from rnnlab.config import ModelConfig, load_config
from rnnlab.errors import UserError
from rnnlab.models import build_model
from rnnlab.models.classifier import chrono_init
from rnnlab.numpy import minimal as np_minimal
from rnnlab.trainer import read_metrics, resume, train_config

NEW = ["mgu", "mingru", "minlstm"]
PARALLEL = [name for name, cell in cell_registry.CELLS.items() if not cell.recurrent_weights]


def test_the_minimal_cells_are_the_tables_parallel_ones():
    assert PARALLEL == ["mingru", "minlstm"]


def stepwise(layer, x, h0):
    """The recurrence, one `step` at a time."""
    xp = torch.nn.functional.linear(x, layer.weight_ih, layer.bias_ih)
    state, out = (h0,), []
    for t in range(len(x)):
        state = layer.step(xp[t], state)
        out.append(state[0])
    return torch.stack(out)


@pytest.mark.parametrize("scale", [1.0, 6.0], ids=["moderate", "saturated"])
@pytest.mark.parametrize("cell", PARALLEL)
def test_parallel_scan_equals_the_step_by_step_recurrence(cell, scale):
    """Outputs and every gradient (weights, input, initial state), float64; h0 of
    both signs (the scan keeps e^{A_t} h0 apart for that), gates from open to
    saturated (scale 6: pre-activations up to ~±20)."""
    torch.manual_seed(0)
    T, B, I, H = 40, 3, 5, 6
    layer = cell_registry.torch_layer(cell, I, H).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.mul_(scale)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    w = torch.randn(T, B, H, dtype=torch.float64)
    results = []
    for run in (lambda: layer(x, (h0,))[0], lambda: stepwise(layer, x, h0)):
        out = run()
        grads = torch.autograd.grad((out * w).sum(), [x, h0, *layer.parameters()])
        results.append((out, grads))
    (scan_out, scan_grads), (step_out, step_grads) = results
    # float64 rounding through T=40 steps of exp/log: ~1e-14 relative; a wrong scan is O(1) off
    torch.testing.assert_close(scan_out, step_out, rtol=1e-10, atol=1e-12)
    for a, b in zip(scan_grads, step_grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("cell", PARALLEL)
def test_numpy_scan_equals_its_recurrence(cell):
    """The NumPy layer's log-space scan against h_t = h_{t-1} + z (h̃ − h_{t-1}) run step by step."""
    rng = np.random.default_rng(1)
    layer = cell_registry.numpy_layer(cell, 4, 5)
    params = layer.init_params(rng)
    x, h0 = rng.standard_normal((30, 2, 4)), rng.standard_normal((2, 5))
    out, _, cache = layer.forward(params, x, (h0,))
    z, h_tilde, h = cache["z"], cache["h_tilde"], h0
    for t in range(len(x)):
        h = h + z[t] * (h_tilde[t] - h)
        np.testing.assert_allclose(out[t], h, rtol=1e-12, atol=1e-13)


def test_g_is_continuous_positive_and_increasing():
    k = np.linspace(-30, 30, 60001)
    g = np_minimal.g(k)
    assert (g > 0).all() and (np.diff(g) > 0).all()
    assert np_minimal.g(np.array([0.0]))[0] == 0.5 and abs(np_minimal.g(np.array([-1e-12]))[0] - 0.5) < 1e-12
    np.testing.assert_allclose(np_minimal.log_g(k), np.log(g), rtol=1e-12, atol=1e-300)


def test_float32_scan_stays_close_to_the_float64_recurrence_over_a_long_sequence():
    """The log-space scan's known cost: A_t grows with t and the sum A_t + logcumsumexp
    cancels, so float32 loses ~|A_t|·6e-8 relative. At T = 1000 with ordinary init it
    stays within 1e-3, finite everywhere."""
    torch.manual_seed(0)
    layer = cell_registry.torch_layer("mingru", 8, 16)
    x = torch.randn(1000, 2, 8)
    with torch.no_grad():
        out32 = layer(x, (torch.zeros(2, 16),))[0]
        ref = stepwise(layer.double(), x.double(), torch.zeros(2, 16, dtype=torch.float64))
    assert torch.isfinite(out32).all()
    torch.testing.assert_close(out32.double(), ref, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("cell", NEW)
def test_torch_and_numpy_backends_agree_on_the_language_model(cell):
    torch.manual_seed(0)
    models = {}
    for backend in ("torch", "numpy"):
        torch.manual_seed(0)
        cfg = ModelConfig(cell=cell, hidden=12, layers=2, embed=7, backend=backend, impl="explicit")
        models[backend] = build_model(cfg, 11).double()
    x, y = torch.randint(0, 11, (9, 3)), torch.randint(0, 11, (9, 3))
    grads = {}
    for backend, model in models.items():
        model.train()
        loss, _ = model(x, None, None, targets=y)
        grads[backend] = torch.autograd.grad(loss.loss, list(model.parameters()))
        with torch.no_grad():
            model.eval()
            grads[backend + "-logits"] = model(x)[0]
    torch.testing.assert_close(grads["numpy-logits"], grads["torch-logits"], rtol=1e-10, atol=1e-12)
    for a, b in zip(grads["numpy"], grads["torch"]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def config(path, cell, *extra):
    return load_config("grimm-char", None, TINY + [f"data.path={path}", f"model.cell={cell}", *extra])


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("cell", NEW)
def test_train_resume_bitwise_and_generate(cell, backend, tiny_text, tmp_path, capsys):
    """A run stopped at step 20 and resumed to 40 ends with the very same weights and
    validation loss as one run to 40; the run generates text."""
    common = ["train.checkpoint_every=10", "model.layers=2", "model.dropout=0.1", "train.schedule=constant",
              f"model.backend={backend}", "train.eval_every=20"]
    train_config(config(tiny_text, cell, "train.max_steps=40", *common), tmp_path / "full", progress=False)
    train_config(config(tiny_text, cell, "train.max_steps=20", *common), tmp_path / "half", progress=False)
    assert resume(tmp_path / "half", ["train.max_steps=40"], progress=False)["steps"] == 40
    full = [r for r in read_metrics(tmp_path / "full") if r.get("split") == "valid"]
    half = [r for r in read_metrics(tmp_path / "half") if r.get("split") == "valid"]
    assert full[-1]["loss"] == half[-1]["loss"]
    from safetensors.numpy import load_file

    a, b = (load_file(tmp_path / run / "checkpoints/last-00000040/tensors.safetensors") for run in ("full", "half"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "full"), "--length", "30", "--seed", "1"]) == 0
    assert len(capsys.readouterr().out.strip()) >= 20


@pytest.mark.parametrize("cell", NEW)
def test_each_new_cell_learns_the_tiny_text(cell, tiny_text, tmp_path):
    """Two repeated sentences: any working recurrent cell gets far below the ~3.2 bits/char of
    the character frequencies alone (an RNN ~0.3 here, a broken cell stays near 3)."""
    cfg = config(tiny_text, cell, "model.hidden=48", "train.max_steps=300", "train.eval_every=100", "train.lr=1e-2")
    summary = train_config(cfg, tmp_path / "run", progress=False)
    assert summary["final"]["valid"]["bpc"] < 1.0


def test_forget_bias_goes_to_the_tables_forget_gate_only():
    H = 6
    torch.manual_seed(0)
    base = build_model(ModelConfig(cell="minlstm", hidden=H, embed=4, layers=1), 5)
    torch.manual_seed(0)
    biased = build_model(ModelConfig(cell="minlstm", hidden=H, embed=4, layers=1, forget_bias=1.0), 5)
    diff = (biased.rnn.layers[0].bias_ih - base.rnn.layers[0].bias_ih).detach()
    torch.testing.assert_close(diff, torch.tensor([1.0] * H + [0.0] * 2 * H))  # rows (f, i, h)
    # The MGU's f overwrites when open: the table names no forget gate, and the setting is refused
    assert cell_registry.CELLS["mgu"].forget_gate is None
    from rnnlab.config import Config, apply, validate

    cfg = Config()
    apply(cfg, "model.cell", "mgu")
    apply(cfg, "model.forget_bias", "1.0")
    with pytest.raises(UserError, match="model.forget_bias needs a cell with a forget gate"):
        validate(cfg)


@pytest.mark.parametrize("cell, options, keeps_sign, opposite", [
    ("lstm", {}, {"f": 1, "i": -1}, True), ("gru", {}, {"z": 1}, False), ("gru", {"gru_z": "new"}, {"z": -1}, False),
    ("mgu", {}, {"f": -1}, False), ("mingru", {}, {"z": -1}, False), ("minlstm", {}, {"f": 1, "i": -1}, True)])
def test_chrono_init_sets_the_tables_gates_with_the_tables_sign(cell, options, keeps_sign, opposite):
    spec = cell_registry.get(cell)
    H, horizon = 5, 20
    u = torch.rand(H, generator=torch.Generator().manual_seed(0))
    layer = cell_registry.torch_layer(cell, 3, H, **options)
    before = layer.bias_ih.detach().clone()
    with torch.no_grad():
        chrono_init(cell, layer.bias_ih, layer.bias_hh, horizon, u, **options)
    b = torch.log1p(u * (horizon - 2))
    for gate, sign in keeps_sign.items():
        rows = slice(spec.gates.index(gate) * H, (spec.gates.index(gate) + 1) * H)
        torch.testing.assert_close(layer.bias_ih[rows].detach(), sign * b)
        if layer.bias_hh is not None:
            assert (layer.bias_hh[rows] == 0).all()
    untouched = [g for g in spec.gates if g not in keeps_sign]
    for gate in untouched:
        rows = slice(spec.gates.index(gate) * H, (spec.gates.index(gate) + 1) * H)
        assert torch.equal(layer.bias_ih[rows].detach(), before[rows])


def test_chrono_init_leaves_a_gateless_cell_and_refuses_an_unknown_one():
    bias = torch.zeros(4)
    chrono_init("rnn", bias, None, 10, torch.rand(4))  # the table gives the RNN no gate
    assert (bias == 0).all()
    with pytest.raises(ValueError, match="unknown cell 'nope'"):
        chrono_init("nope", bias, None, 10, torch.rand(4))


def test_gradcheck_json_includes_the_new_cells(capsys):
    from rnnlab.numpy.gradcheck import check_cell

    rows = [r for cell in NEW for bias in ("double", "single") for r in check_cell(cell, bias=bias)]
    assert {r["cell"] for r in rows} == set(NEW)
    assert max(r["max_rel_error"] for r in rows) <= 1e-6
    json.dumps(rows)


def test_the_cpu_prefix_logsumexp_equals_torchs_kernel():
    """The scan's prefix log-sum-exp runs as a loop of logaddexp on a CPU (faster there than
    torch.logcumsumexp): same values and gradients, over values spread across 1e±40."""
    from rnnlab.models.minimal import prefix_logsumexp

    v = (torch.randn(40, 3, 5, dtype=torch.float64) * 30).requires_grad_()
    ours, theirs = prefix_logsumexp(v), torch.logcumsumexp(v, dim=0)
    # float64: each of the 40 logaddexp steps rounds once (~1e-16 relative); values are up to ~100
    torch.testing.assert_close(ours, theirs, rtol=1e-13, atol=1e-12)
    w = torch.randn_like(v)
    (g_ours,) = torch.autograd.grad((ours * w).sum(), v)
    (g_theirs,) = torch.autograd.grad((theirs * w).sum(), v)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-10, atol=1e-12)
