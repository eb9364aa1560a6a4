"""Seeded generators for the synthetic sequence tasks.

Every generator takes a `numpy.random.Generator`, so a (seed, call) pair always
gives the same data, and returns NumPy arrays, batch first:

* `palindromes`: the first T−1 digits of a palindrome of length T; the target
  is the last digit, which equals the first one — the model must carry one
  digit across T−2 distractors.
* `frequency`: sine waves sampled regularly or at random times (Neil et al.
  2016, §3.1); the label says whether the period lies inside a narrow band.
* `varlen`: token sequences whose lengths come from a wide (log-normal)
  distribution; the label says whether token A occurs anywhere in it.

Below them, `TaskData`: a task (`task.*` in the config) as training data for
the Trainer, with a batcher behind make_batcher's interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

DIGITS = 10


def palindromes(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n palindromic digit strings of `length` T ≥ 2 → (inputs [n, T−1], target [n]).

    The first ⌈T/2⌉ digits are uniform; the rest mirror them.
    """
    if length < 2:
        raise ValueError(f"a palindrome task needs length >= 2, got {length}")
    half = rng.integers(0, DIGITS, size=(n, (length + 1) // 2))
    full = np.concatenate([half, half[:, : length // 2][:, ::-1]], axis=1)
    return full[:, :-1], full[:, -1].copy()


@dataclass(frozen=True)
class FrequencySpec:
    """The frequency-discrimination task, in milliseconds.

    Class 1: period in `band`; class 0: period in [periods[0], periods[1]]
    outside the band, drawn log-uniformly so that hard near-band periods
    are common. Classes are balanced; each wave has a random phase.
    Regular sampling: every `step` ms. Irregular sampling: the same number
    of samples at uniformly random times in [0, duration).
    """

    duration: float = 15.0
    step: float = 0.125  # 120 samples in 15 ms: the high-resolution regime (Neil et al. also sample every 0.1 ms)
    band: tuple[float, float] = (5.0, 6.0)
    periods: tuple[float, float] = (1.0, 100.0)

    @property
    def samples(self) -> int:
        return int(round(self.duration / self.step))


def _outside_band(n: int, spec: FrequencySpec, rng: np.random.Generator) -> np.ndarray:
    lo, hi = np.log(spec.periods)
    out = np.empty(n)
    todo = np.arange(n)
    while len(todo):  # rejection sampling: a handful of rounds at most
        p = np.exp(rng.uniform(lo, hi, size=len(todo)))
        ok = (p < spec.band[0]) | (p > spec.band[1])
        out[todo[ok]] = p[ok]
        todo = todo[~ok]
    return out


def frequency(n: int, rng: np.random.Generator, sampling: str = "regular",
              spec: FrequencySpec = FrequencySpec()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n sampled sine waves → (values [n, S], times [n, S] in ms, labels [n] in {0, 1})."""
    if sampling not in ("regular", "irregular"):
        raise ValueError(f"sampling must be 'regular' or 'irregular', got {sampling!r}")
    labels = rng.permutation(np.arange(n) % 2)
    period = np.where(labels == 1, rng.uniform(*spec.band, size=n), _outside_band(n, spec, rng))
    phase = rng.uniform(0, 2 * np.pi, size=n)
    S = spec.samples
    if sampling == "regular":
        times = np.broadcast_to(np.arange(S) * spec.step, (n, S)).copy()
    else:
        times = np.sort(rng.uniform(0, spec.duration, size=(n, S)), axis=1)
    values = np.sin(2 * np.pi * times / period[:, None] + phase[:, None])
    return values, times, labels


@dataclass(frozen=True)
class VarlenSpec:
    """Lengths ~ round(LogNormal(log(median), sigma)) clipped to [min_len, max_len].

    Tokens are uniform over `vocab` symbols. Label 1 iff token A (id 0)
    occurs anywhere, so the evidence can sit at any distance from the end
    (and is more often there the longer the sequence: 15% at length 10,
    47% at 40, 79% at 100 with 64 symbols).
    """

    median: float = 40.0
    sigma: float = 0.8
    min_len: int = 5
    max_len: int = 400
    vocab: int = 64


def varlen(n: int, rng: np.random.Generator, spec: VarlenSpec = VarlenSpec()) -> tuple[list[np.ndarray], np.ndarray]:
    """n sequences of varying length → (list of int arrays, labels [n])."""
    lengths = np.clip(np.round(rng.lognormal(np.log(spec.median), spec.sigma, size=n)),
                      spec.min_len, spec.max_len).astype(int)
    seqs = [rng.integers(0, spec.vocab, size=L) for L in lengths]
    labels = np.array([int((s == 0).any()) for s in seqs])
    return seqs, labels


# ------------------------------------------------- the tasks as training data
# `task.kind` names a generator above; `TaskData` turns it into what the Trainer
# needs: a batcher behind make_batcher's interface (batch(epoch, index) → (x, y),
# steps_per_epoch, batch_size, carries_state) and fixed validation and test sets.

KINDS = ("palindrome", "frequency", "varlen")
_VALID, _TEST = 1, 2  # the sets' seeds: the same sets for every training seed (and cell, and batching)


@dataclass
class TaskBatch:
    """A batch of a sequence task, time-major: x [T, B] token ids or [T, B, I]
    features, or a PackedSequence of either; `lengths` [B] marks each
    sequence's last valid step (None: all run to T); `times` [T, B] are the
    timestamps a Phased LSTM gates on."""

    x: object
    lengths: torch.Tensor | None = None
    times: torch.Tensor | None = None

    def to(self, device) -> TaskBatch:
        def move(t):
            return None if t is None else t.to(device)

        return TaskBatch(move(self.x), move(self.lengths), move(self.times))


def frequency_spec(cfg) -> FrequencySpec:
    return FrequencySpec(duration=cfg.duration, step=cfg.step)


def varlen_spec(cfg) -> VarlenSpec:
    return VarlenSpec(median=cfg.median, sigma=cfg.sigma, min_len=cfg.min_len, max_len=cfg.max_len, vocab=cfg.symbols)


def shape(cfg) -> tuple[int, int, int]:
    """(one-hot symbols, real-valued features, classes) of the task: what the classifier is built for.
    A palindrome's digits are one-hot (10 symbols) or, with task.encoding = "scalar", one float
    feature each (the digit's value, as the course's template feeds them: input_dim 1)."""
    if cfg.kind == "palindrome" and cfg.encoding == "scalar":
        return 0, 1, DIGITS
    return {"palindrome": (DIGITS, 0, DIGITS), "frequency": (0, 2, 2), "varlen": (cfg.symbols, 0, 2)}[cfg.kind]


def draw(cfg, n: int, rng: np.random.Generator) -> tuple[list[np.ndarray] | np.ndarray, ...]:
    """n examples of the task: (inputs, labels), plus timestamps for `frequency`."""
    if cfg.kind == "palindrome":
        return palindromes(n, cfg.length, rng)
    if cfg.kind == "frequency":
        values, times, labels = frequency(n, rng, cfg.sampling, frequency_spec(cfg))
        return (values, times), labels
    return varlen(n, rng, varlen_spec(cfg))


def collate(cfg, inputs, idx: np.ndarray | None = None, pack: bool = False) -> TaskBatch:
    """Model inputs for examples `idx` (all when None) of what `draw` returned."""
    if cfg.kind == "palindrome":
        x = inputs if idx is None else inputs[idx]
        if cfg.encoding == "scalar":  # [T, B, 1]: each digit's value as one feature
            return TaskBatch(torch.as_tensor(x.T[..., None], dtype=torch.float32))
        return TaskBatch(torch.as_tensor(x.T.copy()))
    if cfg.kind == "frequency":
        values, times = inputs if idx is None else (inputs[0][idx], inputs[1][idx])
        # features: the value and Δt since the previous sample, in units of the regular step
        gaps = np.diff(times, axis=1, prepend=0.0) / cfg.step
        x = torch.as_tensor(np.stack([values, gaps], axis=-1).transpose(1, 0, 2), dtype=torch.float32)
        return TaskBatch(x, times=torch.as_tensor(times.T, dtype=torch.float32))
    seqs = inputs if idx is None else [inputs[i] for i in idx]
    lengths = torch.as_tensor([len(s) for s in seqs])
    padded = pad_sequence([torch.as_tensor(s) for s in seqs])  # [T_max, B]
    if pack:
        return TaskBatch(pack_padded_sequence(padded, lengths, enforce_sorted=False))
    return TaskBatch(padded, lengths)


def epoch_batches(lengths: np.ndarray, batch_size: int, batching: str, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of index batches: random (pad, pack) or of similar lengths (bucket:
    sorted with random ties, cut into batches, batch order shuffled)."""
    if batching == "bucket":
        order = np.lexsort((rng.random(len(lengths)), lengths))  # by length, random among equals
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        return [chunks[i] for i in rng.permutation(len(chunks))]
    order = rng.permutation(len(lengths))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class TaskBatcher:
    """Training batches of a task. Batch (epoch, index) depends only on the
    seed and that position, so a resumed run draws the same batches.

    palindrome, frequency: every batch is freshly drawn. varlen: one training
    set of train_size sequences, cut into batches anew every epoch by
    `task.batching` (pad and pack: the same random batches; bucket: by length).
    """

    carries_state = False

    def __init__(self, cfg, batch_size: int, seed: int):
        self.cfg, self.batch_size, self.seed = cfg, batch_size, seed
        self.steps_per_epoch = max(1, -(-cfg.train_size // batch_size))
        self.fixed = None
        if cfg.kind == "varlen":
            self.fixed = draw(cfg, cfg.train_size, np.random.default_rng([seed, 0]))
            self.lengths = np.array([len(s) for s in self.fixed[0]])
            self._epoch, self._order = None, None

    def order(self, epoch: int) -> list[np.ndarray]:
        """varlen: the index batches of an epoch (what padding and throughput are counted over)."""
        if self._epoch != epoch:
            self._epoch = epoch
            self._order = epoch_batches(self.lengths, self.batch_size, self.cfg.batching,
                                        np.random.default_rng([self.seed, 2, epoch]))
        return self._order

    def batch(self, epoch: int, index: int) -> tuple[TaskBatch, torch.Tensor]:
        if self.fixed is None:
            inputs, labels = draw(self.cfg, self.batch_size, np.random.default_rng([self.seed, 1, epoch, index]))
            return collate(self.cfg, inputs), torch.as_tensor(labels)
        idx = self.order(epoch)[index]
        return (collate(self.cfg, self.fixed[0], idx, pack=self.cfg.batching == "pack"),
                torch.as_tensor(self.fixed[1][idx]))


class TaskData:
    """A task's training batcher and its fixed validation and test sets (scored by
    rnnlab/evaluate.py:evaluate_task)."""

    def __init__(self, cfg, batch_size: int, seed: int):
        self.cfg = cfg
        self.batcher = TaskBatcher(cfg, batch_size, seed)
        self.vocab_size, self.features, self.classes = shape(cfg)
        self.sets = {"valid": draw(cfg, cfg.valid_size, np.random.default_rng([7919, _VALID])),
                     "test": draw(cfg, cfg.test_size, np.random.default_rng([7919, _TEST]))}
