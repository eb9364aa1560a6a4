"""`rnnlab plot cell`: the LSTM and GRU diagrams are drawn from graphs that
match the cells' structure, with the equations read from the explicit cells."""

import pytest

from rnnlab.cli import main
from rnnlab.report.diagrams import equations, gru_graph, lstm_graph


@pytest.mark.parametrize("graph", [lstm_graph(), gru_graph("old"), gru_graph("new")])
def test_every_edge_joins_drawn_nodes(graph):
    nodes, edges = graph
    assert all(src in nodes and dst in nodes for src, dst, _ in edges)
    # every non-input node is reached, every non-output node is left
    assert {d for _, d, _ in edges} >= {k for k, n in nodes.items() if n.kind != "io" or k in ("c", "h")}


def test_gate_layers_are_the_cells_gates():
    lstm, _ = lstm_graph()
    gru, _ = gru_graph()
    assert sorted(k for k, n in lstm.items() if n.kind == "layer") == ["f", "g", "i", "o"]
    assert sorted(k for k, n in gru.items() if n.kind == "layer") == ["n", "r", "z"]
    assert [n.label.split()[0] for k, n in sorted(lstm.items()) if n.kind == "layer"] == ["σ", "tanh", "σ", "σ"]
    assert "c_prev" in lstm and "c_prev" not in gru  # the GRU carries no cell state


def test_gru_z_convention_moves_the_labels():
    old, new = gru_graph("old")[0], gru_graph("new")[0]
    assert (old["keep"].label, old["take"].label) == ("× z", "× 1−z")
    assert (new["keep"].label, new["take"].label) == ("× 1−z", "× z")


def test_equations_come_from_the_cell_docstrings():
    assert any(line.startswith("c_t =") for line in equations("lstm"))
    assert any(line.startswith("n = tanh") for line in equations("gru"))


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_command_writes_the_picture(tmp_path, capsys, suffix):
    out = tmp_path / f"gru.{suffix}"
    assert main(["plot", "cell", "--cell", "gru", "--out", str(out)]) == 0
    assert out.stat().st_size > 5000 and str(out) in capsys.readouterr().out
