"""The finite-difference gradient check: every cell and the LM pass, and the
check is sharp enough to catch a wrong gradient."""

import numpy as np
import pytest

from rnnlab import cell_registry
from rnnlab.numpy import cells as numpy_cells
from rnnlab.numpy import gradcheck


@pytest.fixture(scope="module")
def rows():
    return gradcheck.run_gradcheck()


def test_every_cell_and_parameter_within_tolerance(rows):
    assert all(set(r) == {"cell", "parameter", "max_rel_error"} for r in rows)
    cells = {r["cell"] for r in rows}
    variants = {label for _, label, _ in cell_registry.variants()}
    assert {"gru_reset_before", "gru_new_reset_before"} <= variants  # the table's cells, every one checked
    assert variants | {f"{v}-single_bias" for v in variants} <= cells
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
    """Break one gradient formula (1% off in σ') and the check must fail
    loudly for the recurrent weights."""
    real = numpy_cells.dsigmoid
    monkeypatch.setattr(numpy_cells, "dsigmoid", lambda s: 1.01 * real(s))
    rows = gradcheck.check_cell("lstm", seed=0)
    worst = {r["parameter"]: r["max_rel_error"] for r in rows}
    assert worst["weight_hh"] > 1e-3 and worst["bias_ih"] > 1e-3
