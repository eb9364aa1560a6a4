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
    for name in names[1:]:  # normal run directories of the Trainer
        run = out / "runs" / name
        assert (run / "config.toml").is_file() and (run / "checkpoints").is_dir()
        assert json.loads((run / "vocab.json").read_text())["level"] == "word"
        assert json.loads((run / "summary.json").read_text())["arch"] == "nplm"
    details = json.loads((out / "details.json").read_text())
    assert [d["config"]["model"]["activation"] for d in details[1:]] == ["linear", "tanh", "linear", "tanh"]


def test_quick_command_line(tmp_path, capsys):
    from rnnlab.cli import main

    data = shared_data("brown")
    out = tmp_path / "cli"
    assert main(["experiment", "ngram", "--data", str(data), "--out", str(out), "--quick", "--hidden", "8",
                 "--activations", "tanh", "--no-progress"]) == 0
    assert "| mlp-tanh-h8 |" in capsys.readouterr().out
    assert (out / "runs" / "mlp-tanh-h8" / "config.toml").is_file()


def test_overrides():
    assert parse_overrides(["model.embed=60", "model.direct=true"]) == ["model.embed=60", "model.direct=true"]
    with pytest.raises(UserError, match="unknown setting"):
        parse_overrides(["model.embedding=60"])
    with pytest.raises(UserError, match="expects int"):
        parse_overrides(["model.embed=big"])
