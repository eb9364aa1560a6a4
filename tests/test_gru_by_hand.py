"""The hand-derived GRU gradients (reset before W_hn, no biases, t = 2) agree
with torch autograd to 1e-6 in float64, for both z conventions."""

import json

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.numpy.gru_by_hand import WEIGHTS, compare, forward, random_problem


@pytest.mark.parametrize("gru_z", ["old", "new"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hand_gradients_match_autograd(seed, gru_z):
    rows = compare(seed=seed, input_size=3, hidden=5, gru_z=gru_z)
    assert {(r["part"], r["weight"]) for r in rows} == {(p, w) for p in ("t2", "total") for w in WEIGHTS}
    for r in rows:
        assert r["max_abs_grad"] > 1e-4, r  # a zero gradient would agree trivially
        assert r["max_abs_error"] <= 1e-6, r


def test_step_one_term_is_not_negligible():
    # The total gradient differs from step 2's own term: the path through h1 matters.
    rows = {(r["part"], r["weight"]): r["autograd_00"] for r in compare(seed=0)}
    assert any(abs(rows[("total", w)] - rows[("t2", w)]) > 1e-3 for w in WEIGHTS)


def test_reset_is_applied_before_the_recurrent_product():
    # n = tanh(W_in x + W_hn (r ⊙ h)), which is not PyTorch's tanh(W_in x + r ⊙ (W_hn h)).
    p = random_problem(seed=3)
    _, s1, _ = forward(p)
    before = np.tanh(p["W_in"] @ p["x1"] + p["W_hn"] @ (s1["r"] * p["h0"]))
    after = np.tanh(p["W_in"] @ p["x1"] + s1["r"] * (p["W_hn"] @ p["h0"]))
    assert np.allclose(s1["n"], before, atol=1e-15) and not np.allclose(s1["n"], after, atol=1e-3)


def test_gradcheck_command_prints_hand_and_autograd(capsys):
    assert main(["gradcheck", "--gru-by-hand", "--json", "--seed", "4"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 12 and max(r["max_abs_error"] for r in rows) <= 1e-6
