"""The seeded task generators: palindromes, frequency discrimination, varlen."""

import numpy as np
import pytest

from rnnlab.data.tasks import FrequencySpec, VarlenSpec, frequency, palindromes, varlen


@pytest.mark.parametrize("length", [2, 5, 6, 17])
def test_palindromes_are_palindromes(length):
    x, y = palindromes(500, length, np.random.default_rng(0))
    assert x.shape == (500, length - 1) and y.shape == (500,)
    full = np.concatenate([x, y[:, None]], axis=1)
    assert (full == full[:, ::-1]).all()
    assert x.min() >= 0 and x.max() <= 9
    assert (y == x[:, 0]).all()
    # The target is uniform over the ten digits: no shortcut besides memory.
    counts = np.bincount(y, minlength=10)
    assert counts.min() > 25


def test_palindromes_are_seeded():
    a = palindromes(50, 9, np.random.default_rng(3))
    b = palindromes(50, 9, np.random.default_rng(3))
    c = palindromes(50, 9, np.random.default_rng(4))
    assert all((u == v).all() for u, v in zip(a, b))
    assert not (a[0] == c[0]).all()
    with pytest.raises(ValueError):
        palindromes(5, 1, np.random.default_rng(0))


@pytest.mark.parametrize("sampling", ["regular", "irregular"])
def test_frequency_task(sampling):
    spec = FrequencySpec(duration=15.0, step=0.25)
    values, times, labels = frequency(400, np.random.default_rng(1), sampling, spec)
    assert values.shape == times.shape == (400, spec.samples) and labels.shape == (400,)
    assert labels.sum() == 200  # balanced
    assert (np.diff(times, axis=1) >= 0).all() and times.min() >= 0 and times.max() < spec.duration
    if sampling == "regular":
        assert np.allclose(np.diff(times, axis=1), spec.step)
    else:
        assert np.diff(times, axis=1).std() > 0.05
    assert np.abs(values).max() <= 1.0


def test_frequency_labels_follow_the_period():
    # Recover each wave's period from densely sampled data: class 1 has it in [5, 6] ms.
    spec = FrequencySpec(duration=200.0, step=0.05)
    values, times, labels = frequency(60, np.random.default_rng(2), "regular", spec)
    spectrum = np.abs(np.fft.rfft(values, axis=1))
    freqs = np.fft.rfftfreq(spec.samples, d=spec.step)
    period = 1 / freqs[1 + spectrum[:, 1:].argmax(axis=1)]
    assert (period[labels == 1] > 4.8).all() and (period[labels == 1] < 6.3).all()
    near = (period > 5.2) & (period < 5.8)
    assert not (near & (labels == 0)).any()


def test_frequency_is_seeded_and_checks_sampling():
    a = frequency(10, np.random.default_rng(5), "irregular")
    b = frequency(10, np.random.default_rng(5), "irregular")
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    with pytest.raises(ValueError):
        frequency(10, np.random.default_rng(5), "sometimes")


def test_varlen_task():
    spec = VarlenSpec()
    seqs, labels = varlen(3000, np.random.default_rng(0), spec)
    lengths = np.array([len(s) for s in seqs])
    assert lengths.min() >= spec.min_len and lengths.max() <= spec.max_len
    assert 30 <= np.median(lengths) <= 50 and lengths.max() > 4 * np.median(lengths)  # a wide distribution
    expected = [int(0 in s.tolist()) for s in seqs]
    assert labels.tolist() == expected
    assert 0.35 < labels.mean() < 0.65
    again, _ = varlen(3000, np.random.default_rng(0), spec)
    assert all(np.array_equal(u, v) for u, v in zip(seqs, again))
