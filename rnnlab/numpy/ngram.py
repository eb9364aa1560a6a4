"""The neural n-gram model of Bengio et al. (2003) in NumPy, forward and backward by hand.

Same model and shapes as `rnnlab.models.nplm.NeuralNgramModel` (dropout excluded; its
`decoder.*` is `output.*` here), so weights move between the two unchanged.

Notation: a batch of N examples, context c words, embedding size E, hidden
size H, vocabulary V. Inputs: ctx int [N, c] (oldest word first), targets
y int [N]. Parameters: C = ``embedding.weight`` [V, E], A = ``hidden.weight``
[H, cE], d = ``hidden.bias`` [H], U = ``output.weight`` [V, H],
b = ``output.bias`` [V], optionally W = ``direct.weight`` [V, cE].

Forward::

    x_n = [C[ctx_n1]; ...; C[ctx_nc]]           [N, cE]  (concatenation)
    a_n = A x_n + d                             [N, H]
    h_n = tanh(a_n)   or   h_n = a_n  ("linear")
    z_n = U h_n + b (+ W x_n)                   [N, V]   logits
    L   = (1/N) sum_n [ logsumexp(z_n) - z_n[y_n] ]     mean cross-entropy (nats)

Backward (p_n = softmax(z_n), e_y the one-hot row of y)::

    dz_n = (p_n - e_{y_n}) / N
    dU   = dz^T h        db = sum_n dz_n        dW = dz^T x
    dh   = dz U
    da   = dh * (1 - h^2)   (tanh)   or   da = dh   (linear)
    dA   = da^T x        dd = sum_n da_n
    dx   = da A (+ dz W)
    dC[v] = sum over (n, j) with ctx_nj = v of dx_n[jE:(j+1)E]   (scatter-add)
"""

from __future__ import annotations

import numpy as np

NAMES = ("embedding.weight", "hidden.weight", "hidden.bias", "output.weight", "output.bias", "direct.weight")


def init_params(vocab_size: int, context: int, embed: int, hidden: int, direct: bool = False,
                seed: int = 0, dtype=np.float64, scale: float = 0.1) -> dict[str, np.ndarray]:
    """Small uniform random weights (for tests and experiments)."""
    rng = np.random.default_rng(seed)

    def u(*shape):
        return rng.uniform(-scale, scale, size=shape).astype(dtype)

    p = {"embedding.weight": u(vocab_size, embed), "hidden.weight": u(hidden, context * embed),
         "hidden.bias": u(hidden), "output.weight": u(vocab_size, hidden), "output.bias": u(vocab_size)}
    if direct:
        p["direct.weight"] = u(vocab_size, context * embed)
    return p


def forward(params: dict[str, np.ndarray], ctx: np.ndarray, activation: str = "tanh"):
    """Logits [N, V] and the cache the backward pass needs."""
    if activation not in ("tanh", "linear"):
        raise ValueError(f"activation must be tanh or linear, got {activation!r}")
    ctx = np.asarray(ctx)
    x = params["embedding.weight"][ctx].reshape(len(ctx), -1)
    a = x @ params["hidden.weight"].T + params["hidden.bias"]
    h = np.tanh(a) if activation == "tanh" else a
    z = h @ params["output.weight"].T + params["output.bias"]
    if "direct.weight" in params:
        z = z + x @ params["direct.weight"].T
    return z, (ctx, x, h, activation)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def loss(params: dict[str, np.ndarray], ctx: np.ndarray, targets: np.ndarray, activation: str = "tanh") -> float:
    z, _ = forward(params, ctx, activation)
    return float(-log_softmax(z)[np.arange(len(targets)), targets].mean())


def loss_and_grads(params: dict[str, np.ndarray], ctx: np.ndarray, targets: np.ndarray,
                   activation: str = "tanh") -> tuple[float, dict[str, np.ndarray]]:
    """Mean cross-entropy and its gradient for every parameter (same keys as params)."""
    z, (ctx, x, h, act) = forward(params, ctx, activation)
    N = len(targets)
    logp = log_softmax(z)
    L = float(-logp[np.arange(N), targets].mean())
    dz = np.exp(logp)
    dz[np.arange(N), targets] -= 1.0
    dz /= N
    g = {"output.weight": dz.T @ h, "output.bias": dz.sum(axis=0)}
    dh = dz @ params["output.weight"]
    da = dh * (1.0 - h * h) if act == "tanh" else dh
    g["hidden.weight"] = da.T @ x
    g["hidden.bias"] = da.sum(axis=0)
    dx = da @ params["hidden.weight"]
    if "direct.weight" in params:
        g["direct.weight"] = dz.T @ x
        dx = dx + dz @ params["direct.weight"]
    C = params["embedding.weight"]
    dC = np.zeros_like(C)
    np.add.at(dC, ctx.reshape(-1), dx.reshape(N * ctx.shape[1], C.shape[1]))  # repeated words add up
    g["embedding.weight"] = dC
    return L, g


def sgd_step(params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
    for k in params:
        params[k] -= lr * grads[k]
