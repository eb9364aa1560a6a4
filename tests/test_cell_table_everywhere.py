"""No command, experiment, initialiser or the sampling stepper lists cells by hand:
a cell registered only in the table (a dummy: the RNN's layers under another
name, with no kernel, no NumPy sampling step, no gate) is offered everywhere
and either works or is refused with one line (exit 2 / UserError), and a cell
removed from the table is offered nowhere."""

from __future__ import annotations

import pytest
import torch

from rnnlab import cell_registry, cli
from rnnlab.cell_registry import Cell
from rnnlab.config import Config, apply, validate
from rnnlab.errors import UserError
from rnnlab.models import build_model
from rnnlab.models.classifier import chrono_init
from rnnlab.models.stepper import Stepper

DUMMY = Cell("dummy", "rnnlab.models.cells:RNNLayer", "rnnlab.numpy.cells:RNNLayer", gates=("h",), n_states=1,
             variants=(("dummy", {}),))


@pytest.fixture
def dummy(monkeypatch):
    monkeypatch.setitem(cell_registry.CELLS, "dummy", DUMMY)
    return DUMMY


def run_cli(argv, capsys) -> tuple[int, str, list[str]]:
    threads = torch.get_num_threads()
    code = cli.main([str(a) for a in argv])
    torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def test_params_counts_a_cell_known_only_to_the_table(dummy, capsys):
    code, out, err = run_cli(["params", "--cell", "dummy", "--input", "5", "--hidden", "3", "--layers", "2"], capsys)
    assert code == 0, err
    assert "(mn + n² + n) + 1·[(n² + n² + n)]" in out and "matches" in out


def test_plot_cell_offers_it_and_draws_or_refuses_in_one_line(dummy, tmp_path, capsys):
    out = tmp_path / "dummy.png"
    code, _, err = run_cli(["plot", "cell", "--cell", "dummy", "--out", out], capsys)
    assert code in (0, 2)
    if code == 2:  # no diagram for it: one line, not argparse's "invalid choice" (it was offered)
        assert len(err) == 1 and err[0].startswith("rnnlab: error:") and "invalid choice" not in err[0]
    else:
        assert out.is_file()


@pytest.mark.parametrize("name", ["palindrome", "frequency"])
def test_the_sequence_experiments_train_it(dummy, name, tmp_path, capsys):
    extra = ["--lengths", "4"] if name == "palindrome" else []
    code, out, err = run_cli(["experiment", name, "--quick", "--cells", "dummy", "--max-steps", "4", "--jobs", "1",
                              "--no-progress", "--out", tmp_path, *extra], capsys)
    assert code == 0, err
    assert "| dummy |" in out


def test_config_validation_accepts_it_and_refuses_a_setting_it_lacks(dummy):
    cfg = Config()
    apply(cfg, "model.cell", "dummy")
    validate(cfg)
    apply(cfg, "model.forget_bias", "1.0")
    with pytest.raises(UserError, match="model.forget_bias needs a cell with a forget gate") as e:
        validate(cfg)
    assert "\n" not in str(e.value)


def test_the_stepper_leaves_it_to_the_model_and_refuses_to_step_it(dummy):
    model = build_model(Config().model.__class__(cell="dummy", hidden=6, embed=4), 9)
    assert not Stepper.supports(model)
    with pytest.raises(ValueError, match="names no NumPy sampling step for dummy"):
        Stepper(model, model.init_state(2))


def test_chrono_init_leaves_a_cell_the_table_gives_no_gate(dummy):
    bias = torch.zeros(3)
    chrono_init("dummy", bias, None, 10, torch.rand(3))
    assert (bias == 0).all()


def test_a_cell_removed_from_the_table_is_offered_nowhere(monkeypatch, capsys, tmp_path):
    # a new dict, not delitem: restoring an item puts it last, and the table's order is what commands show
    monkeypatch.setattr(cell_registry, "CELLS", {name: c for name, c in cell_registry.CELLS.items() if name != "gru"})
    for argv in (["params", "--cell", "gru", "--input", "3", "--hidden", "2"],
                 ["plot", "cell", "--cell", "gru", "--out", tmp_path / "gru.png"],
                 ["experiment", "palindrome", "--quick", "--cells", "gru", "--out", tmp_path],
                 ["experiment", "frequency", "--quick", "--cells", "gru", "--out", tmp_path],
                 ["train", "--set", "model.cell=gru", "--run-dir", tmp_path / "run"]):
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and len(err) == 1 and err[0].startswith("rnnlab: error:"), (argv, err)
        assert "gru" in err[0]
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="unknown cell 'gru'"):
        chrono_init("gru", torch.zeros(6), None, 10, torch.rand(2))
    cfg = Config()
    apply(cfg, "model.cell", "gru")
    with pytest.raises(UserError, match="model.cell"):
        validate(cfg)
