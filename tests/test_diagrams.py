"""`rnnlab plot cell`: the RNN, LSTM and GRU diagrams are drawn from graphs that
match the cells' structure (gates from the cell table), with the recurrent
connections drawn and the equations read from the explicit cells, typeset."""

import pytest

from rnnlab import cell_registry
from rnnlab.cli import main
from rnnlab.errors import UserError
from rnnlab.report.diagrams import (
    DRAWINGS,
    LOOP,
    cell_figure,
    cell_graph,
    equations,
    gru_graph,
    lstm_graph,
    mathtext,
    rnn_graph,
)

GRU_SETTINGS = [{"gru_z": z, "gru_reset": reset} for z in ("old", "new") for reset in ("after", "before")]
GRAPHS = [rnn_graph(), rnn_graph({"nonlinearity": "relu"}), lstm_graph(), *(gru_graph(o) for o in GRU_SETTINGS)]


@pytest.mark.parametrize("graph", GRAPHS)
def test_every_edge_joins_drawn_nodes(graph):
    nodes, edges = graph
    assert all(src in nodes and dst in nodes for src, dst, _ in edges)
    # every non-input node is reached, every non-output node is left
    assert {d for _, d, _ in edges} >= {k for k, n in nodes.items() if n.kind != "io" or k in ("c_t", "h_t")}
    assert {s for s, _, _ in edges} >= {k for k, n in nodes.items() if k not in ("c_t", "h_t") or n.kind != "io"}


@pytest.mark.parametrize("graph", GRAPHS)
def test_the_state_feeds_the_next_step(graph):
    """h_t (and the LSTM's c_t) run round, through the loop's wires only, into h_{t-1} (c_{t-1})."""
    nodes, edges = graph
    following = {}
    for src, dst, _ in edges:
        following.setdefault(src, []).append(dst)
    for state in ("h", "c"):
        if f"{state}_t" not in nodes:
            continue
        path, node = [], f"{state}_t"
        while node != f"{state}_prev":
            (node,) = [d for d in following[node] if d.startswith(LOOP) or d == f"{state}_prev"]
            path.append(node)
        assert len(path) >= 3 and all(p.startswith(LOOP) for p in path[:-1])


def test_gate_layers_are_the_cell_tables_gates():
    for name, drawing in DRAWINGS.items():
        entry = cell_registry.get(name)
        for _, label, options in [v for v in cell_registry.variants() if v[0] is entry]:
            nodes, _ = drawing.graph(cell_registry.resolve(name, options)[1])
            assert sorted(k for k, n in nodes.items() if n.kind == "layer") == sorted(entry.gates), label
    lstm, _ = lstm_graph()
    assert [n.label.split("$")[1] for k, n in sorted(lstm.items()) if n.kind == "layer"] == [
        "\\sigma", "\\tanh", "\\sigma", "\\sigma"]  # f, g, i, o
    assert "c_prev" in lstm and "c_prev" not in gru_graph()[0]  # the GRU carries no cell state


def test_gru_options_move_the_labels_and_the_reset():
    old, new = gru_graph({"gru_z": "old"})[0], gru_graph({"gru_z": "new"})[0]
    assert (old["keep"].label, old["take"].label) == ("× z", "× 1−z")
    assert (new["keep"].label, new["take"].label) == ("× 1−z", "× z")
    # after: W_hn h first, then r ⊙; before: r ⊙ h first, then W_hn
    for reset, first, second in (("after", "hn", "mul_r"), ("before", "mul_r", "hn")):
        _, edges = gru_graph({"gru_reset": reset})
        assert ("tap_h", first, "") in edges and (first, second, "") in edges and (second, "n", "") in edges


def test_a_cell_without_a_drawing_is_one_user_error(monkeypatch):
    phased = cell_registry.get("phased_lstm")
    assert "phased_lstm" not in DRAWINGS
    with pytest.raises(UserError, match="no diagram of the phased_lstm cell") as e:
        cell_graph("phased_lstm")
    assert "\n" not in str(e.value) and "rnn, lstm, gru" in str(e.value)
    with pytest.raises(UserError, match="unknown cell"):
        cell_graph("transformer")
    # A drawing that disagrees with the table's gates is refused, not drawn.
    monkeypatch.setitem(cell_registry.CELLS, "lstm", cell_registry.Cell(**{**vars(cell_registry.get("lstm")),
                                                                          "gates": ("i", "f", "o")}))
    with pytest.raises(UserError, match="the lstm diagram draws the gates"):
        cell_graph("lstm")
    assert phased.name == "phased_lstm"


def test_equations_come_from_the_cell_docstrings_and_are_typeset():
    assert any(line.startswith("c_t =") for line in equations("lstm"))
    assert any(line.startswith("n = tanh") for line in equations("gru"))
    assert mathtext("h_t = tanh(c_t) ⊙ o") == r"$h_{t}\ =\ \tanh(c_{t})\ \odot\ o$"
    assert mathtext("W_hn h_{t-1}") == r"$W_{hn}\ h_{t-1}$"
    from matplotlib.mathtext import MathTextParser

    parser = MathTextParser("agg")
    for entry, _, options in cell_registry.variants():
        if entry.name in DRAWINGS:
            for line in equations(entry.name, **options):
                parser.parse(mathtext(line), dpi=72)  # raises on anything mathtext cannot set
    # The figure shows them as mathtext, and labels its nodes with it too.
    fig = cell_figure("gru", gru_reset="before")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert mathtext("n = tanh(W_in x + b_in + W_hn (r ⊙ h_{t-1}) + b_hn)") in texts
    assert "$h_{t-1}$" in texts and "$h_t$" in texts and "to the next step" in texts


def test_boxes_do_not_overlap():
    for name in DRAWINGS:
        for options in ({}, *(GRU_SETTINGS if name == "gru" else [])):
            fig = cell_figure(name, **options)
            fig.canvas.draw()
            boxes = [p.get_window_extent() for p in fig.axes[0].patches]
            assert len(boxes) >= 5
            assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]), (name, options)


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_command_writes_the_picture(tmp_path, capsys, suffix):
    out = tmp_path / f"gru.{suffix}"
    assert main(["plot", "cell", "--cell", "gru", "--gru-reset", "before", "--out", str(out)]) == 0
    assert out.stat().st_size > 5000 and str(out) in capsys.readouterr().out
    assert main(["plot", "cell", "--cell", "rnn", "--out", str(tmp_path / "rnn.png")]) == 0
    assert main(["plot", "cell", "--cell", "phased_lstm", "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no diagram of the phased_lstm cell" in err and "\n" not in err
