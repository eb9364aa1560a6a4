"""model.impl="fast": the LSTM with a hand-written backward must compute what
nn.LSTM's kernel computes — outputs, final state and every gradient."""

import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.models import build_model
from rnnlab.models.fastlstm import LSTMRecurrence


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: a second OpenMP thread only waits, and on a loaded
    2-core machine it makes these tests several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_recurrence_gradcheck():
    torch.manual_seed(0)
    T, B, H = 3, 2, 3
    args = [torch.randn(T, B, 4 * H), torch.randn(B, H), torch.randn(B, H), torch.randn(4 * H, H) * 0.5]
    args = [a.double().requires_grad_() for a in args]
    assert torch.autograd.gradcheck(LSTMRecurrence.apply, args, fast_mode=True)
    assert torch.autograd.gradcheck(LSTMRecurrence.apply, args)


def twin_models(vocab: int, dtype=torch.float32, **options):
    torch.manual_seed(0)
    cfg = dict(hidden=12, embed=10, layers=2, **options)
    fused = build_model(ModelConfig(impl="fused", **cfg), vocab).to(dtype)
    fast = build_model(ModelConfig(impl="fast", **cfg), vocab).to(dtype)
    fast.load_state_dict(fused.state_dict())
    return fused, fast


@pytest.mark.parametrize("vocab", [7, 300])  # 7 < T·B tokens: the embedding is folded into layer 1; 300: it is not
@pytest.mark.parametrize("bias", ["double", "single"])
def test_fast_matches_fused_kernel(vocab, bias):
    fused, fast = twin_models(vocab, bias=bias)
    torch.manual_seed(1)
    x = torch.randint(0, vocab, (9, 4))
    state = tuple(torch.randn(2, 4, 12) for _ in range(2))
    results = []
    for model in (fused, fast):
        logits, (h, c) = model(x, state)
        loss = logits.square().mean() + h.sum() + 2 * c.sum()
        grads = torch.autograd.grad(loss, list(model.parameters()))
        results.append((logits, h, c, grads))
    (l1, h1, c1, g1), (l2, h2, c2, g2) = results
    for a, b in [(l1, l2), (h1, h2), (c1, c2), *zip(g1, g2)]:
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_fast_matches_fused_in_float64():
    fused, fast = twin_models(50, torch.float64, dropout=0.3)  # dropout is off in eval mode
    x = torch.randint(0, 50, (6, 3))
    fused.eval()
    fast.eval()
    torch.testing.assert_close(fused(x)[0], fast(x)[0], atol=1e-12, rtol=1e-10)
    fast.train()  # and on in training, between the layers and around the stack
    assert not torch.allclose(fast(x)[0], fused(x)[0])


def test_stepping_equals_one_pass():
    """Generation runs one token at a time with the state carried: the same
    logits as the whole sequence in one pass, for every implementation."""
    for impl in ("fast", "fused", "explicit"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(hidden=16, layers=2, impl=impl), 20).eval()
        x = torch.randint(0, 20, (12, 1))
        with torch.no_grad():
            whole, _ = model(x)
            state, steps = None, []
            for t in range(12):
                logits, state = model(x[t : t + 1], state)
                steps.append(logits)
        torch.testing.assert_close(torch.cat(steps), whole, atol=1e-5, rtol=1e-4)


def test_fast_trains_like_fused():
    """A few Adam steps from the same weights on the same batches."""
    fused, fast = twin_models(30)
    torch.manual_seed(2)
    batches = [torch.randint(0, 30, (11, 5)) for _ in range(4)]
    losses = {}
    for name, model in (("fused", fused), ("fast", fast)):
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses[name] = []
        for x in batches:
            out, _ = model(x[:-1], targets=x[1:])
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            losses[name].append(out.loss.item())
    assert losses["fast"] == pytest.approx(losses["fused"], abs=1e-4)
    assert losses["fast"][-1] < losses["fast"][0]
