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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
