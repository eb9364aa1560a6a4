"""The one bridge from the NumPy reference to PyTorch's autograd.

`model.backend = "numpy"` computes a model's forward pass and every gradient
with NumPy's hand-written code, on the memory of PyTorch parameters; PyTorch
keeps the container: the optimizer, clipping, checkpoints, the loop. Each
NumPy-backed model (the language model, the neural n-gram model, the
sequence classifier's recurrent layer) runs its NumPy forward pass and hands
the result, with its backward pass, to `through_numpy`, which makes them one
node of the autograd graph:

    value = f(params)                       NumPy's forward pass
    vjp(dvalue) = (dvalue · ∂value/∂p for p in params)     NumPy's backward pass
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


class _NumpyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value, vjp, *params):
        ctx.vjp = vjp
        return torch.as_tensor(value, dtype=params[0].dtype)

    @staticmethod
    def backward(ctx, dvalue):
        grads, ctx.vjp = ctx.vjp(dvalue.numpy()), None  # the NumPy caches are let go after one backward
        return (None, None, *(torch.from_numpy(g) for g in grads))


def through_numpy(value, vjp: Callable[[np.ndarray], Sequence[np.ndarray]],
                  params: Sequence[torch.Tensor]) -> torch.Tensor:
    """`value` (an array or a number) computed by NumPy from `params`, as a tensor of
    their dtype whose backward pass is `vjp`: given the gradient of the value, the
    gradient of each of `params`, in their order."""
    return _NumpyFunction.apply(value, vjp, *params)
