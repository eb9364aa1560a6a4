"""`rnnlab experiment cells`: every cell of the table at the reference cell's
parameter count, and the committed comparison (benchmarks/results/cells.*)."""

import json

import pytest
from conftest import REPO

from rnnlab import cell_registry
from rnnlab.cli import main
from rnnlab.experiments import cells as cells_experiment

RESULT = REPO / "benchmarks" / "results" / "cells.json"


@pytest.mark.parametrize("count", [cells_experiment.lm_count(80, 2), cells_experiment.classifier_count(10, 10)],
                         ids=["lm", "classifier"])
def test_matched_hidden_is_the_closest_count(count):
    target = count("lstm", 256)
    for cell in cells_experiment.default_cells():
        h = cells_experiment.matched_hidden(cell, target, count)
        assert all(abs(count(cell, h) - target) <= abs(count(cell, other) - target) for other in range(1, 4 * h))


def test_closed_form_counts_are_the_models():
    from rnnlab.config import ModelConfig
    from rnnlab.models import build_model
    from rnnlab.models.classifier import SequenceClassifier

    for cell in cells_experiment.default_cells():
        model = build_model(ModelConfig(cell=cell, hidden=9, layers=2), 13)
        assert model.num_parameters() == cells_experiment.lm_count(13, 2)(cell, 9)
        assert SequenceClassifier(cell, 10, 9, 10, vocab=10).num_parameters() == \
            cells_experiment.classifier_count(10, 10)(cell, 9)


@pytest.mark.slow
def test_cells_quick(tmp_path, capsys):
    out = tmp_path / "cells"
    assert main(["experiment", "cells", "--quick", "--out", str(out), "--no-progress"]) == 0
    rows = json.loads((out / "cells.json").read_text())
    for ext in ("md", "csv", "png"):
        assert (out / f"cells.{ext}").is_file()
    cells = cells_experiment.default_cells()
    char = {r["cell"]: r for r in rows if r["task"] == "char"}
    assert list(char) == cells and {r["cell"] for r in rows if r["task"] != "char"} == set(cells)
    for r in char.values():
        assert r["steps"] > 0 and r["tokens_per_s"] > 0 and r["curve"] and r["bpc"] > 0


def test_the_new_cells_are_compared_by_default():
    assert {"rnn", "lstm", "gru", "mgu", "mingru", "minlstm"} <= set(cells_experiment.default_cells())
    assert all(not cell_registry.get(c).needs_times for c in cells_experiment.default_cells())


@pytest.mark.skipif(not RESULT.is_file(), reason="no committed comparison")
def test_committed_comparison_has_equal_parameters_and_every_cell():
    rows = json.loads(RESULT.read_text())
    md = RESULT.with_suffix(".md").read_text()
    assert "rnnlab experiment cells" in md and "load average" in md and "AMD EPYC" in md
    for task in {r["task"] for r in rows}:
        group = {r["cell"]: r for r in rows if r["task"] == task}
        assert {"rnn", "lstm", "gru", "mgu", "mingru", "minlstm"} <= set(group)
        for r in group.values():
            assert abs(r["parameters"] / group["lstm"]["parameters"] - 1) <= 0.02, (task, r["cell"])
