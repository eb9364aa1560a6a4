"""`rnnlab experiment optimizers --quick`: every optimizer trains both problems
through the Trainer, the table names each one's tuned rate, the curves are drawn."""

import json
import math
import tomllib

import pytest
from pictures import C0, assert_lines_drawn

from rnnlab.cli import main
from rnnlab.experiments import optimizers


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("optimizers")
    assert main(["experiment", "optimizers", "--quick", "--jobs", "1", "--no-progress", "--out", str(out)]) == 0
    return out


def test_every_optimizer_learns_both_problems(study):
    rows = json.loads((study / "optimizers.json").read_text())
    assert [(r["problem"], r["optimizer"]) for r in rows] == [(p, o) for p in optimizers.PROBLEMS
                                                              for o in optimizers.OPTIMIZERS]
    for r in rows:
        assert math.isfinite(r["valid_loss"]), r
        if r["problem"] == "char":  # 30 steps of a 16-unit model: below the uniform 6.3 bits/char (measured 4.1-5.0)
            assert r["valid_bpc"] < 5.5, r
        else:  # 30 steps are too few to learn palindromes (tests/test_task_runs.py shows that): not diverged
            assert 0 <= r["valid_accuracy"] <= 1 and r["valid_loss"] < math.log(10) + 0.1, r
        run = study / "runs" / r["run"]
        assert optimizers.curve(run), r  # a normal run directory with its curve, trained as the row says
        train = tomllib.loads((run / "config.toml").read_text())["train"]
        expected = {k.split(".")[1]: v for k, v in optimizers.OPTIMIZERS[r["optimizer"]].items()}
        assert {k: train[k] for k in expected} == expected and train["lr"] == r["lr"] and train["momentum"] == (
            0.9 if r["optimizer"] == "sgd-momentum" else 0.0), r
    assert_lines_drawn(study / "optimizers.png", colours=(C0,))


def test_the_tuned_rate_is_the_best_of_the_grid(tmp_path, monkeypatch):
    losses = {0.1: 2.0, 0.3: 1.5, 1.0: math.inf}
    monkeypatch.setitem(optimizers.GRIDS["char"], "sgd", tuple(losses))
    monkeypatch.setattr(optimizers, "train_one", lambda p, o, lr, cfg: {"valid_loss": losses[lr], "seconds": 0.0})
    monkeypatch.setattr(optimizers, "plot", lambda rows, cfg, path: None)
    rows, _ = optimizers.measure(optimizers.OptimizersConfig(runs=tmp_path / "runs"), ["char"], ["sgd"], tmp_path,
                                 "test", progress=False)
    assert rows[0]["lr"] == 0.3 and rows[0]["lrs_tried"] == "0.1: 2.000, 0.3: 1.500, 1: inf"


def test_bad_names_are_one_line(capsys):
    assert main(["experiment", "optimizers", "--optimizers", "sgd,lbfgs", "--quick"]) == 2
    assert "--optimizers takes a comma list" in capsys.readouterr().err
