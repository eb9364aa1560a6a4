"""NumPy neural n-gram: finite-difference gradients and agreement with PyTorch."""

import numpy as np
import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.models.nplm import NUMPY_NAMES, NeuralNgramModel
from rnnlab.numpy import ngram as npg


def batch(V=11, c=3, N=7, seed=1):
    rng = np.random.default_rng(seed)
    ctx = rng.integers(0, V, size=(N, c))
    ctx[0] = [2, 2, 2]  # a word repeated within one context: its gradients must add up
    return ctx, rng.integers(0, V, size=N)


@pytest.mark.parametrize("activation", ["tanh", "linear"])
@pytest.mark.parametrize("direct", [False, True])
def test_gradients_match_finite_differences(activation, direct):
    params = npg.init_params(11, 3, 4, 5, direct=direct, seed=0, scale=0.5)
    ctx, y = batch()
    _, grads = npg.loss_and_grads(params, ctx, y, activation)
    eps = 1e-6
    rng = np.random.default_rng(0)
    for name, p in params.items():
        # Every entry of the small matrices, and the embedding rows the batch uses.
        idx = list(np.ndindex(p.shape))
        if name == "embedding.weight":
            idx = [(v, e) for v in (2, int(ctx[1, 0]), 10) for e in range(p.shape[1])]
        elif len(idx) > 40:
            idx = [idx[i] for i in rng.choice(len(idx), 40, replace=False)]
        for i in idx:
            old = p[i]
            p[i] = old + eps
            up = npg.loss(params, ctx, y, activation)
            p[i] = old - eps
            down = npg.loss(params, ctx, y, activation)
            p[i] = old
            num = (up - down) / (2 * eps)
            assert grads[name][i] == pytest.approx(num, rel=1e-5, abs=1e-9), (name, i)
    assert np.all(grads["embedding.weight"][[v for v in range(11) if v not in ctx]] == 0)


@pytest.mark.parametrize("activation", ["tanh", "linear"])
@pytest.mark.parametrize("direct", [False, True])
def test_numpy_and_torch_agree(activation, direct):
    torch.manual_seed(0)
    model = NeuralNgramModel(13, ModelConfig(arch="nplm", context=3, embed=4, hidden=6, activation=activation,
                                             direct=direct)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    params = {NUMPY_NAMES.get(k, k): v.detach().numpy().copy() for k, v in model.state_dict().items()}
    assert set(params) <= set(npg.NAMES)
    ctx, y = batch(V=13, N=9)
    # The model reads token streams [T, B] after a state of c words: one step per context,
    # its last word as the input and the words before it in the state (whose first is dropped).
    x = torch.from_numpy(ctx[:, -1])[None]
    state = (torch.from_numpy(np.concatenate([ctx[:, :1], ctx[:, :-1]], 1))[None],)
    logits = model(x, state)[0][0]
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    loss.backward()
    z, _ = npg.forward(params, ctx, activation)
    np.testing.assert_allclose(z, logits.detach().numpy(), rtol=1e-12, atol=1e-12)
    L, grads = npg.loss_and_grads(params, ctx, y, activation)
    assert L == pytest.approx(loss.item(), rel=1e-12)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[NUMPY_NAMES.get(name, name)], p.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_numpy_sgd_learns_a_deterministic_sequence():
    # The stream 0 1 2 3 0 1 2 3 ...: the next word is a function of the previous one.
    V, c = 4, 2
    stream = np.tile(np.arange(V), 30)
    ctx = np.stack([stream[i : len(stream) - c + i] for i in range(c)], axis=1)
    y = stream[c:]
    params = npg.init_params(V, c, 3, 8, seed=0, scale=0.3)
    first = npg.loss(params, ctx, y)
    for _ in range(300):
        _, g = npg.loss_and_grads(params, ctx, y)
        npg.sgd_step(params, g, 0.5)
    assert first > 1.2 and npg.loss(params, ctx, y) < 0.05  # init seeds 0-4: first 1.38-1.42, last <= 0.0045
