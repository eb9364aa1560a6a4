"""Evaluation of a language model on a token stream: loss (nats/token),
perplexity, bits per token (bits/char for character models) and top-1 accuracy.

The split is cut into `batch_size` contiguous streams and the recurrent state
is carried across segments, so every token is predicted from all the text
before it in its stream.

`evaluate_task` scores a sequence classifier on a task's fixed valid or test
set (rnnlab/data/tasks.py): mean loss and accuracy over its sequences.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from rnnlab.data.batching import StreamBatcher
from rnnlab.data.tasks import TaskData, collate
from rnnlab.models.lm import positions


def metrics_from_totals(nll: float, correct: int, tokens: int) -> dict:
    loss = nll / max(tokens, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "bpc": loss / math.log(2),
            "accuracy": correct / max(tokens, 1), "tokens": tokens}


@torch.no_grad()
def evaluate(model, data: np.ndarray, batch_size: int = 16, seq_len: int = 256, device="cpu",
             on_batch: Callable[[int, int], None] | None = None) -> dict:
    """The metrics of `model` on the token stream `data`; `on_batch(done, total)` is called after
    each batch (a progress bar: rnnlab.console.counter)."""
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


@torch.no_grad()
def evaluate_task(model, task: TaskData, split: str, batch_size: int = 500, device="cpu") -> dict:
    """Mean loss and accuracy over a task's split, in batches (varlen: sorted by length, so
    that little is padding; the results do not depend on the batching)."""
    inputs, labels = task.sets[split]
    n = len(labels)
    order = np.argsort([len(s) for s in inputs], kind="stable") if task.cfg.kind == "varlen" else np.arange(n)
    was_training = model.training
    model.eval()
    nll, correct = 0.0, 0
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        y = torch.as_tensor(labels[idx]).to(device)
        out, _ = model(collate(task.cfg, inputs, idx).to(device), targets=y)
        nll += out.loss.item() * len(idx)
        correct += out.correct.item()
    model.train(was_training)
    m = metrics_from_totals(nll, correct, n)
    return {"loss": m["loss"], "accuracy": m["accuracy"], "sequences": n}
