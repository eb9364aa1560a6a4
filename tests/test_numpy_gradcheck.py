"""The finite-difference gradient check: every cell and the LM pass, and the
check is sharp enough to catch a wrong gradient."""

import numpy as np
import pytest

from rnnlab.numpy import gradcheck
from rnnlab.numpy.cells import LSTMLayer


@pytest.fixture(scope="module")
def rows():
    return gradcheck.run_gradcheck()


def test_every_cell_and_parameter_within_tolerance(rows):
    assert all(set(r) == {"cell", "parameter", "max_rel_error"} for r in rows)
    cells = {r["cell"] for r in rows}
    assert set(gradcheck.CELLS) <= cells
    assert {"lm-lstm", "lm-lstm-tied", "lm-lstm-dropout", "lm-phased_lstm-tied"} <= cells
    by_cell = {c: {r["parameter"] for r in rows if r["cell"] == c} for c in cells}
    assert {"tau", "shift", "r_on", "c0"} <= by_cell["phased_lstm"]
    assert "decoder.weight" in by_cell["lm-lstm"] and "decoder.weight" not in by_cell["lm-lstm-tied"]
    worst = max(rows, key=lambda r: r["max_rel_error"])
    assert worst["max_rel_error"] <= 1e-6, worst


def test_format_table(rows):
    table = gradcheck.format_table(rows)
    lines = table.splitlines()
    assert lines[0].split() == ["cell", "parameter", "max_rel_error", "status"]
    assert len(lines) == len(rows) + 3
    assert "FAIL" not in table and "0 above tolerance" in lines[-1]
    bad = gradcheck.format_table([{"cell": "x", "parameter": "w", "max_rel_error": 0.1}])
    assert "FAIL" in bad and "1 above tolerance" in bad


def test_numerical_gradient_of_known_function():
    a = np.array([0.3, -1.2, 2.0])
    g = gradcheck.numerical_gradient(lambda: np.sum(np.sin(a) * a**3), a)
    exact = np.cos(a) * a**3 + 3 * a**2 * np.sin(a)
    assert gradcheck.max_relative_error(g, exact) < 1e-9


def test_check_detects_a_wrong_backward(monkeypatch):
    """Break one gradient formula (forget the f-gate factor on dc) and the
    check must fail loudly for the recurrent weights."""
    real = LSTMLayer._gate_coefficients

    def broken(G4, c_prev, tanh_c):
        R, P = real(G4, c_prev, tanh_c)
        R[:, :, 1] *= 1.01  # 1% error in da_f
        return R, P

    monkeypatch.setattr(LSTMLayer, "_gate_coefficients", staticmethod(broken))
    rows = gradcheck.check_cell("lstm", seed=0)
    worst = {r["parameter"]: r["max_rel_error"] for r in rows}
    assert worst["weight_hh"] > 1e-3 and worst["bias_ih"] > 1e-3
