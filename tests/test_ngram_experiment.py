"""The n-gram experiment end to end, in quick mode on Brown."""

import csv
import json

import pytest

from conftest import shared_data
from rnnlab.errors import UserError
from rnnlab.experiments.ngram import parse_overrides, run_ngram_experiment


def test_quick_experiment_on_brown(tmp_path):
    data = shared_data("brown")
    out = tmp_path / "ngram"
    rows = run_ngram_experiment(data, out, hidden_sizes=(16,), activations=("linear", "tanh"), minutes=0.02,
                                best_minutes=0.02, quick=True, log=lambda s: None)
    names = [r["model"] for r in rows]
    assert names == ["kn3", "mlp-linear-h16", "mlp-tanh-h16", "mlp-linear-h16-long", "mlp-tanh-h16-long"]
    for r in rows:
        assert set(r) == {"model", "valid_ppl", "test_ppl", "train_minutes"}
        assert 1 < r["valid_ppl"] < 17906 * 2 and 1 < r["test_ppl"] < 17906 * 2
        assert r["train_minutes"] < 0.2
    # The files: table, csv, json, plot, one run directory per neural model.
    md = (out / "summary.md").read_text()
    assert "| kn3 |" in md and "| mlp-tanh-h16 |" in md and "QUICK RUN" in md
    with open(out / "summary.csv") as f:
        assert [r["model"] for r in csv.DictReader(f)] == names
    assert json.loads((out / "summary.json").read_text()) == rows
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    for name in names[1:]:
        assert (out / "runs" / name / "model.safetensors").is_file()
        assert json.loads((out / "runs" / name / "vocab.json").read_text())["level"] == "word"


def test_overrides():
    assert parse_overrides(["embed=60", "direct=true", "cutoffs=1000,4000", "lr=0.01"]) == {
        "embed": 60, "direct": True, "cutoffs": (1000, 4000), "lr": 0.01}
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_overrides(["embedding=60"])
    with pytest.raises(UserError, match="expects int"):
        parse_overrides(["embed=big"])
