"""The explicit cells (equations, step by step) and the fused path (PyTorch's
nn.RNN/LSTM/GRU kernels) must be the same function of the same weights."""

import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.models import build_model
from rnnlab.models.cells import GRULayer, LSTMLayer


def outputs_and_grads(model, x):
    logits, state = model(x)
    loss = logits.square().mean() + sum(s.square().mean() for s in state)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return logits, state, grads


@pytest.mark.parametrize("cell,extra", [
    ("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}), ("gru", {}), ("gru", {"gru_z": "new"}),
    ("lstm", {"bias": "single"}), ("gru", {"bias": "single", "tie_weights": True, "embed": 0}),
])
def test_explicit_and_fused_agree(cell, extra):
    torch.manual_seed(0)
    cfg = ModelConfig(cell=cell, hidden=12, layers=2, embed=extra.pop("embed", 7), impl="explicit", **extra)
    model = build_model(cfg, vocab_size=11)
    x = torch.randint(0, 11, (9, 4))
    ref = outputs_and_grads(model, x)
    model.rnn.impl = "fused"
    out = outputs_and_grads(model, x)
    torch.testing.assert_close(out[0], ref[0], rtol=1e-5, atol=1e-5)
    for a, b in zip(out[1], ref[1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(out[2], ref[2]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_lstm_matches_nn_lstm_weight_for_weight():
    """Our parameter names/gate order are nn.LSTM's: copy weights across, same outputs."""
    torch.manual_seed(1)
    layer = LSTMLayer(5, 6)
    ref = torch.nn.LSTM(5, 6)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, f"{name}_l0").copy_(getattr(layer, name))
    x = torch.randn(4, 3, 5)
    h0 = torch.randn(1, 3, 6), torch.randn(1, 3, 6)
    out, (h, c) = layer(x, (h0[0][0], h0[1][0]))
    out_ref, (h_ref, c_ref) = ref(x, h0)
    torch.testing.assert_close(out, out_ref)
    torch.testing.assert_close(c, c_ref[0])


def test_gru_conventions_are_mirror_images():
    """gru_z='new' with negated z rows equals gru_z='old' (σ(−a) = 1 − σ(a))."""
    torch.manual_seed(2)
    old, new = GRULayer(3, 4, gru_z="old"), GRULayer(3, 4, gru_z="new")
    new.load_state_dict(old.state_dict())
    with torch.no_grad():
        for p in new.parameters():
            p[4:8] *= -1
    x, h = torch.randn(5, 2, 3), torch.randn(2, 4)
    torch.testing.assert_close(old(x, (h,))[0], new(x, (h,))[0])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_dropout_only_on_non_recurrent_connections(cell):
    """Zaremba et al.: dropout on what flows up the stack, never along time.
    In training mode (dropout 0.5) every layer's output must be exactly what
    the layer computes, without dropout, from the input it received: a mask on
    h_{t-1} inside the recurrence would change it. And dropout does act
    between the layers: layer 1 does not receive layer 0's output unchanged."""
    torch.manual_seed(3)
    cfg = ModelConfig(cell=cell, hidden=8, layers=2, embed=8, dropout=0.5, impl="explicit")
    model = build_model(cfg, 10).train()
    seen = {}
    hooks = [layer.register_forward_hook(lambda m, args, out, l=l: seen.__setitem__(l, (args[0], args[1], out[0])))
             for l, layer in enumerate(model.rnn.layers)]
    model(torch.randint(0, 10, (12, 4)))
    for hook in hooks:
        hook.remove()
    for l, layer in enumerate(model.rnn.layers):
        x, state, out = seen[l]
        layer.eval()
        torch.testing.assert_close(layer(x, state)[0], out, rtol=0, atol=0)
    assert not torch.equal(seen[1][0], seen[0][2])


def test_parameter_names_are_the_shared_contract():
    cfg = ModelConfig(cell="lstm", hidden=8, layers=2, embed=6)
    names = dict(build_model(cfg, 10).named_parameters())
    assert names["embedding.weight"].shape == (10, 6)
    assert names["rnn.layers.0.weight_ih"].shape == (32, 6)
    assert names["rnn.layers.1.weight_hh"].shape == (32, 8)
    assert names["rnn.layers.1.bias_hh"].shape == (32,)
    assert names["decoder.weight"].shape == (10, 8)
    tied = dict(build_model(ModelConfig(hidden=8, layers=1, tie_weights=True), 10).named_parameters())
    assert "decoder.weight" not in tied


def test_uniform_init_range():
    model = build_model(ModelConfig(hidden=8, layers=1, init=0.05), 10)
    assert all(p.abs().max() <= 0.05 for p in model.parameters())
