"""Evaluation of a language model on a token stream: loss (nats/token),
perplexity, bits per token (bits/char for character models) and top-1 accuracy.

The split is cut into `batch_size` contiguous streams and the recurrent state
is carried across segments, so every token is predicted from all the text
before it in its stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from rnnlab.data.batching import StreamBatcher
from rnnlab.models.lm import positions


def metrics_from_totals(nll: float, correct: int, tokens: int) -> dict:
    loss = nll / max(tokens, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "bpc": loss / math.log(2),
            "accuracy": correct / max(tokens, 1), "tokens": tokens}


@torch.no_grad()
def evaluate(model, data: np.ndarray, batch_size: int = 16, seq_len: int = 256, device="cpu",
             on_batch: Callable[[int, int], None] | None = None) -> dict:
    """The metrics of `model` on the token stream `data`; `on_batch(done, total)` is called after
    each batch (a progress bar: rnnlab.progress.counter)."""
    was_training = model.training
    model.eval()
    batcher = StreamBatcher(data, min(batch_size, max(1, (len(data) - 1) // 2)), seq_len)
    state = model.init_state(batcher.batch_size)
    state = tuple(s.to(device) for s in state)
    nll, correct, tokens = 0.0, 0, 0
    for i, (x, y) in enumerate(batcher):
        x, y = x.to(device), y.to(device)
        # The model's own loss function; in eval mode an adaptive head scores its full distribution.
        out, state = model(x, state, positions(i * seq_len, x), targets=y)
        nll += out.loss.item() * y.numel()
        correct += out.correct.item()
        tokens += y.numel()
        if on_batch is not None:
            on_batch(i + 1, batcher.steps_per_epoch)
    model.train(was_training)
    return metrics_from_totals(nll, correct, tokens)
