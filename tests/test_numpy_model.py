"""NumpyLanguageModel vs a reference LM built from torch.nn.Embedding / LSTM /
GRU / Linear on identical weights (float64): loss, logits, states and all
gradients to 1e-8 relative; dropout placement; truncated BPTT; checkpoints."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from rnnlab.numpy.model import NumpyLanguageModel
from rnnlab.numpy.optim import SGD, clip_grad_norm

RTOL = 1e-8


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


class TorchLM(torch.nn.Module):
    def __init__(self, V, E, H, L, cell, tie):
        super().__init__()
        self.embedding = torch.nn.Embedding(V, E)
        rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        self.rnn = rnn(E, H, num_layers=L, dropout=0.0)
        self.decoder = torch.nn.Linear(H, V)
        if tie:
            self.decoder.weight = self.embedding.weight
        self.double()

    def forward(self, x, state):
        out, state = self.rnn(self.embedding(x), state)
        return self.decoder(out), state


def torch_from_numpy_lm(model: NumpyLanguageModel, cell):
    ref = TorchLM(model.vocab_size, model.embed, model.hidden, model.num_layers, cell,
                  model.tie_weights)
    with torch.no_grad():
        for name, v in model.params.items():
            if name.startswith("rnn.layers."):
                _, _, l, k = name.split(".")
                getattr(ref.rnn, f"{k}_l{l}").copy_(torch.from_numpy(v))
            else:
                ref.get_parameter(name).copy_(torch.from_numpy(v))
    return ref


def torch_grad(ref, name):
    if name.startswith("rnn.layers."):
        _, _, l, k = name.split(".")
        return getattr(ref.rnn, f"{k}_l{l}").grad.numpy()
    return ref.get_parameter(name).grad.numpy()


def to_torch_state(state, cell):
    hs = torch.tensor(np.stack([s[0] for s in state]))
    if cell == "lstm":
        return hs, torch.tensor(np.stack([s[1] for s in state]))
    return hs


@pytest.mark.parametrize("cell,tie,E", [("lstm", False, 5), ("lstm", True, 6),
                                        ("gru", False, 4), ("gru", True, 6)])
def test_language_model_matches_torch(cell, tie, E):
    V, H, L, T, B = 11, 6, 2, 7, 3
    model = NumpyLanguageModel(V, E, H, L, cell=cell, tie_weights=tie, dtype="float64", seed=1)
    assert ("decoder.weight" in model.params) == (not tie)
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = [tuple(rng.standard_normal((B, H)) for _ in s) for s in model.zero_state(B)]

    loss, new_state, cache = model.forward_loss(x, y, state, train=True)
    grads = model.backward(cache)
    assert list(grads) == list(model.params)

    ref = torch_from_numpy_lm(model, cell)
    logits_t, state_t = ref(torch.from_numpy(x), to_torch_state(state, cell))
    loss_t = F.cross_entropy(logits_t.reshape(T * B, V), torch.from_numpy(y).reshape(-1))
    loss_t.backward()

    assert abs(loss - loss_t.item()) <= RTOL * abs(loss_t.item())
    errors = {k: rel_err(grads[k], torch_grad(ref, k)) for k in model.params}
    state_t = state_t if isinstance(state_t, tuple) else (state_t,)
    for l in range(L):
        for i, s in enumerate(new_state[l]):
            errors[f"state{l}.{i}"] = rel_err(s, state_t[i][l].detach().numpy())
    logits, _ = model.logits(x, state)
    errors["logits"] = rel_err(logits, logits_t.detach().numpy())
    assert max(errors.values()) <= RTOL, errors


def test_dropout_only_on_non_recurrent_connections():
    """Replay the model's own masks in a torch graph that applies them only
    to the embedding output, between layers and before the decoder: loss and
    all gradients agree, so nothing else is dropped."""
    V, E, H, L, T, B, p = 9, 5, 6, 2, 6, 4, 0.4
    model = NumpyLanguageModel(V, E, H, L, cell="lstm", dropout=p, dtype="float64", seed=3)
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    loss, _, cache = model.forward_loss(x, y, None, train=True, rng=np.random.default_rng(5))
    grads = model.backward(cache)
    masks = cache["masks"]
    assert len(masks) == L + 1
    for m in masks:  # inverted dropout: values 0 or 1/(1-p), some of each
        assert set(np.unique(m)) == {0.0, 1.0 / (1.0 - p)}

    prm = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    h = prm["embedding.weight"][torch.from_numpy(x)] * torch.from_numpy(masks[0])
    for l in range(L):
        lstm = torch.nn.LSTM(E if l == 0 else H, H, dtype=torch.float64)
        weights = {f"{k}_l0": prm[f"rnn.layers.{l}.{k}"]
                   for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        h, _ = functional_call(lstm, weights, (h,))
        h = h * torch.from_numpy(masks[l + 1])
    logits = h @ prm["decoder.weight"].T + prm["decoder.bias"]
    loss_t = F.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1))
    loss_t.backward()
    assert abs(loss - loss_t.item()) <= RTOL * loss_t.item()
    for k in model.params:
        assert rel_err(grads[k], prm[k].grad.numpy()) <= RTOL, k

    # evaluation: no dropout, deterministic, equals a p=0 model
    l1, _, _ = model.forward_loss(x, y, None, train=False)
    l2, _, _ = model.forward_loss(x, y, None, train=False)
    assert l1 == l2 and l1 != loss


def test_truncated_bptt_state_carry_matches_torch():
    V, E, H, T, B = 8, 4, 5, 10, 2
    model = NumpyLanguageModel(V, E, H, 2, cell="lstm", dtype="float64", seed=6)
    ref = torch_from_numpy_lm(model, "lstm")
    rng = np.random.default_rng(7)
    data = rng.integers(0, V, (T + 1, B))
    state, tstate = model.zero_state(B), None
    for s in range(0, T, 4):
        e = min(s + 4, T)
        x, y = data[s:e], data[s + 1:e + 1]
        loss, state, cache = model.forward_loss(x, y, state)
        grads = model.backward(cache)
        ref.zero_grad()
        logits, tstate = ref(torch.from_numpy(x), tstate)
        lt = F.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1))
        lt.backward()
        tstate = tuple(t.detach() for t in tstate)
        assert abs(loss - lt.item()) <= RTOL * lt.item()
        for k in model.params:
            assert rel_err(grads[k], torch_grad(ref, k)) <= RTOL, (s, k)


def test_logits_step_by_step_equals_whole_sequence():
    model = NumpyLanguageModel(10, 4, 4, 2, cell="gru", dtype="float64", seed=8)
    x = np.random.default_rng(9).integers(0, 10, (6, 3))
    whole, final = model.logits(x)
    state, steps = None, []
    for t in range(6):
        lg, state = model.logits(x[t:t + 1], state)
        steps.append(lg)
    np.testing.assert_allclose(np.concatenate(steps), whole, rtol=0, atol=1e-13)
    np.testing.assert_allclose(state[1][0], final[1][0], rtol=0, atol=1e-13)


def test_safetensors_roundtrip_and_load_state_dict(tmp_path):
    from safetensors.numpy import load_file, save_file

    model = NumpyLanguageModel(12, 6, 6, 2, cell="phased_lstm", tie_weights=True, seed=10)
    path = tmp_path / "m.safetensors"
    save_file(model.state_dict(), str(path))
    other = NumpyLanguageModel(12, 6, 6, 2, cell="phased_lstm", tie_weights=True, seed=99)
    other.load_state_dict(load_file(str(path)))
    for k, v in model.params.items():
        np.testing.assert_array_equal(other.params[k], v)
    assert {"rnn.layers.1.tau", "rnn.layers.1.shift", "rnn.layers.1.r_on"} <= set(model.params)
    with pytest.raises(KeyError):
        other.load_state_dict({"embedding.weight": model.params["embedding.weight"]})
    with pytest.raises(ValueError):
        NumpyLanguageModel(12, 5, 6, 1, tie_weights=True)
    with pytest.raises(ValueError):
        model.forward_loss(np.zeros((3, 2), int), np.zeros((2, 2), int))


def test_default_init_and_dtype():
    m = NumpyLanguageModel(50, 8, 16, 2, cell="lstm", seed=0)
    assert all(v.dtype == np.float32 for v in m.params.values())
    w = m.params["rnn.layers.1.weight_hh"]
    assert np.abs(w).max() <= 0.25 and w.shape == (64, 16)
    assert abs(np.std(m.params["embedding.weight"]) - 1.0) < 0.1  # nn.Embedding: N(0, 1)
    u = NumpyLanguageModel(50, 8, 16, 2, cell="gru", init=0.05, seed=0)
    assert max(np.abs(v).max() for v in u.params.values()) <= 0.05
    assert m.num_params() == sum(v.size for v in m.params.values())
    # ModelConfig conventions: init 0 = PyTorch defaults, embed 0 = hidden
    z = NumpyLanguageModel(50, 0, 16, 1, cell="lstm", init=0.0, seed=0)
    assert z.embed == 16 and abs(np.std(z.params["embedding.weight"]) - 1.0) < 0.1
    assert np.abs(z.params["rnn.layers.0.weight_hh"]).max() > 0.1


def test_training_steps_reduce_loss_float32():
    """A few SGD steps on a tiny repeating sequence must drive the loss down."""
    V = 6
    model = NumpyLanguageModel(V, 8, 8, 1, cell="lstm", dropout=0.1, tie_weights=True, seed=11)
    seq = np.tile(np.arange(V), 8)[:, None].repeat(4, axis=1)  # 0 1 2 3 4 5 0 1 ...
    x, y = seq[:-1][:20], seq[1:][:20]
    opt = SGD(model.params, lr=1.0)
    first = model.forward_loss(x, y, train=False)[0]
    for _ in range(60):
        loss, _, cache = model.forward_loss(x, y)
        g = model.backward(cache)
        clip_grad_norm(g, 5.0)
        opt.step(g)
    last = model.forward_loss(x, y, train=False)[0]
    assert isinstance(last, float) and model.params["decoder.bias"].dtype == np.float32
    assert last < 0.3 * first, (first, last)
