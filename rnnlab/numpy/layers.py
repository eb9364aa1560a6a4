"""Non-recurrent layers of the language model: Embedding, Linear, inverted
dropout and mean softmax cross-entropy. Plain functions: each ``*_forward``
returns what its ``*_backward`` needs, nothing is hidden in objects.
"""

from __future__ import annotations

import numpy as np


def embedding_forward(weight: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Lookup: out[t, b] = weight[tokens[t, b]]   ([V, E], int [T, B] -> [T, B, E])."""
    return weight[tokens]


def embedding_backward(tokens: np.ndarray, dout: np.ndarray, vocab_size: int) -> np.ndarray:
    """dW[v] = sum of dout over all positions where tokens == v.

    ``np.add.at`` (unbuffered scatter-add) is needed because a token can occur
    several times in a batch; a plain ``dW[tokens] += dout`` would keep only
    one of the repeated contributions.
    """
    E = dout.shape[-1]
    dW = np.zeros((vocab_size, E), dtype=dout.dtype)
    np.add.at(dW, tokens.reshape(-1), dout.reshape(-1, E))
    return dW


def linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """y = x W^T + b, for x [..., in], W [out, in] (PyTorch's ``nn.Linear``)."""
    y = x @ weight.T
    if bias is not None:
        y += bias
    return y


def linear_backward(x: np.ndarray, weight: np.ndarray, dy: np.ndarray):
    """Gradients of y = x W^T + b:  dx = dy W,  dW = dy^T x,  db = sum dy.

    Leading dimensions are flattened so dW is one matmul.
    Returns ``(dx, dW, db)``.
    """
    n_in = x.shape[-1]
    x2 = x.reshape(-1, n_in)
    dy2 = dy.reshape(-1, dy.shape[-1])
    dx = (dy2 @ weight).reshape(x.shape)
    return dx, dy2.T @ x2, dy2.sum(axis=0)


def dropout_mask(shape, p: float, rng: np.random.Generator, dtype) -> np.ndarray | None:
    """Inverted-dropout mask: 0 with probability p, else 1/(1-p), so the
    expected activation is unchanged and evaluation needs no rescaling.
    Returns ``None`` when p == 0 (identity)."""
    if p <= 0.0:
        return None
    if p >= 1.0:
        return np.zeros(shape, dtype=dtype)
    dtype = np.dtype(dtype)
    # float32 models draw float32 uniforms (half the work); every other dtype
    # draws float64 ones, so float64 and extended-precision runs (gradcheck)
    # get identical masks from identical generators.
    keep = rng.random(shape, dtype=np.float32 if dtype == np.float32 else np.float64) >= p
    mask = keep.astype(dtype)
    mask *= dtype.type(1.0 / (1.0 - p))
    return mask


def apply_mask(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Forward and backward of dropout are the same product with the mask."""
    return x if mask is None else x * mask


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray):
    """Mean cross-entropy over all rows, as ``torch.nn.functional.cross_entropy``.

        loss = (1/N) sum_n [ logsumexp(z_n) - z_n[y_n] ]
        dloss/dz_n = (softmax(z_n) - onehot(y_n)) / N

    ``logits`` [N, V] (or [..., V], flattened), ``targets`` int [N].
    Returns ``(loss, dlogits)`` with dlogits shaped like logits; ``loss`` is
    an ``np.float64`` scalar (a ``float`` subclass), accumulated in float64
    even for float32 logits (extended precision stays extended, which the
    gradient check relies on). The max is subtracted first so exp never
    overflows.
    """
    shape = logits.shape
    z = logits.reshape(-1, shape[-1])
    y = np.asarray(targets).reshape(-1)
    n = z.shape[0]
    rows = np.arange(n)
    probs = z - z.max(axis=1, keepdims=True)
    # log softmax at the target from the shifted logit (not log(prob), which
    # underflows to -inf in float32 for very unlikely targets)
    target_shifted = probs[rows, y]
    np.exp(probs, out=probs)
    total = probs.sum(axis=1, keepdims=True)
    log_p = target_shifted - np.log(total[:, 0])
    loss = -np.mean(log_p, dtype=np.promote_types(log_p.dtype, np.float64))
    probs /= total
    probs[rows, y] -= 1.0
    probs *= probs.dtype.type(1.0 / n)
    return loss, probs.reshape(shape)
