"""Two ways to cut a token stream into training batches (time-major: [T, B]).

StreamBatcher (truncated BPTT, Zaremba et al.): the data is cut into B
contiguous streams laid side by side; each batch is the next T tokens of every
stream, so the recurrent state at the end of one batch is the right initial
state for the next. Targets are the inputs shifted by one token.

WindowBatcher: B windows of T tokens at random offsets; the state starts from
zero every batch. Cheaper to reason about, but the model never sees context
longer than T.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnlab.errors import UserError


class StreamBatcher:
    carries_state = True

    def __init__(self, data: np.ndarray, batch_size: int, seq_len: int):
        n = (len(data) - 1) // batch_size  # tokens per stream that have a target
        if n < 1:
            raise UserError(
                f"corpus is shorter than one batch: {len(data)} tokens for {batch_size} streams "
                "(lower train.batch_size)"
            )
        self.batch_size, self.seq_len = batch_size, seq_len
        data = torch.as_tensor(data[: n * batch_size + 1], dtype=torch.long)
        # inputs[:, b] is stream b; targets are the same positions shifted by one.
        self.inputs = data[:-1].view(batch_size, n).t().contiguous()
        self.targets = data[1:].view(batch_size, n).t().contiguous()
        self.steps_per_epoch = (n + seq_len - 1) // seq_len

    def batch(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `index` (0-based) of an epoch; every epoch is the same pass."""
        start = index * self.seq_len
        return self.inputs[start : start + self.seq_len], self.targets[start : start + self.seq_len]

    def __iter__(self):
        for i in range(self.steps_per_epoch):
            yield self.batch(0, i)


class WindowBatcher:
    carries_state = False

    def __init__(self, data: np.ndarray, batch_size: int, seq_len: int, seed: int = 0):
        if len(data) < seq_len + 1:
            raise UserError(f"corpus is shorter than one window: {len(data)} tokens for train.seq_len={seq_len}")
        self.data = torch.as_tensor(data, dtype=torch.long)
        self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed
        self.steps_per_epoch = max(1, (len(data) - 1) // (batch_size * seq_len))

    def batch(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Offsets depend only on (seed, epoch, index): a resumed run draws the same windows.
        g = np.random.default_rng([self.seed, epoch, index])
        starts = torch.as_tensor(g.integers(0, len(self.data) - self.seq_len, size=self.batch_size))
        idx = starts[None, :] + torch.arange(self.seq_len)[:, None]
        return self.data[idx], self.data[idx + 1]


def make_batcher(kind: str, data: np.ndarray, batch_size: int, seq_len: int, seed: int = 0):
    if kind == "stream":
        return StreamBatcher(data, batch_size, seq_len)
    return WindowBatcher(data, batch_size, seq_len, seed)
