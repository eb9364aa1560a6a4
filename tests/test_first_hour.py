"""What a newcomer meets in the first hour (issue 22, the command-line half):
answers without torch, progress in every long phase, curves with points,
one set of cell names, one unit label per level."""

import json
import math
import subprocess
import sys

import pytest
from conftest import REPO, TINY

from rnnlab.cli import main
from rnnlab.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

# Every parser path of the CLI (rnnlab, rnnlab train, rnnlab experiment palindrome, ...) with --help,
# plus presets and config, run in one fresh interpreter: none may load torch (or numpy, matplotlib).
NO_TORCH = r"""
import argparse, contextlib, io, sys
from rnnlab.cli import build_parser, main

def paths(parser, prefix=()):
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from paths(sub, (*prefix, name))

commands = [[*p, "--help"] for p in paths(build_parser())]
commands += [["presets"], ["config"], ["config", "--preset", "nplm"], ["config", "--set", "model.hidden=64"]]
for argv in commands:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit:
            pass
    heavy = [m for m in ("torch", "numpy", "matplotlib") if m in sys.modules]
    if heavy:
        print("rnnlab " + " ".join(argv) + " loaded " + ", ".join(heavy))
        sys.exit(1)
print(len(commands))
"""


def test_help_presets_and_config_load_no_torch():
    done = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert int(done.stdout.split()[-1]) > 30  # every command's --help was asked: ~40 parser paths


# -- one set of cell names ----------------------------------------------------------------------------

def test_gradflow_prints_finite_numbers_for_rnn_and_lstm(tmp_path, capsys):
    out = tmp_path / "figs" / "gf.png"
    assert main(["gradflow", "--cells", "rnn,lstm", "--steps", "12", "--hidden", "8", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["T-t", "rnn", "lstm"]
    rows = [line.split() for line in lines[1:] if line.split()[0].isdigit()]
    values = [float(v) for row in rows for v in row[1:]]
    assert len(rows) >= 5 and len(values) == 2 * len(rows)
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert out.is_file()


@pytest.mark.parametrize("name", ["rnn", "RNN", "rnn_tanh", "rnn-relu", "lstm", "gru"])
def test_every_command_takes_the_cell_tables_names(name, tmp_path, capsys):
    assert main(["gradflow", "--cells", name, "--steps", "3", "--hidden", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert main(["params", "--cell", name, "--input", "3", "--hidden", "4"]) == 0
    assert "matches" in capsys.readouterr().out


def test_palindrome_takes_an_alias_with_its_options():
    from rnnlab.experiments.palindrome import PalindromeConfig

    cfg = PalindromeConfig.quick().run_config("rnn_relu", 5, 0)
    assert (cfg.model.cell, cfg.model.nonlinearity) == ("rnn", "relu")
    assert PalindromeConfig.quick().run_config("rnn", 5, 0).model.nonlinearity == "tanh"


def test_unknown_or_unfit_cell_names_are_one_line_errors(capsys):
    assert main(["gradflow", "--cells", "rnn,lsmt"]) == 2
    assert main(["gradflow", "--cells", "phased_lstm"]) == 2
    assert main(["params", "--cell", "phased_lstm", "--input", "3", "--hidden", "4"]) == 2
    assert main(["experiment", "palindrome", "--cells", "phased_lstm", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("rnnlab: error:") for line in err)
    assert "lsmt" in err[0] and "phased_lstm" in err[1]


# -- figures that belong to no run go to a stated folder -------------------------------------------------

def test_figures_default_into_runs_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["gradflow", "--cells", "lstm", "--steps", "3", "--hidden", "4"]) == 0
    assert main(["plot", "kgate"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert (tmp_path / "runs" / "figures" / "gradflow.png").is_file()
    assert (tmp_path / "runs" / "figures" / "kgate.png").is_file()


# -- labels, greedy samples, the API's prompt --------------------------------------------------------------

@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("first-hour") / "char"
    assert main(["train", "--preset", "grimm-char", "--run-dir", str(run_dir), "--no-progress",
                 *[x for s in [*TINY, "train.max_steps=20"] for x in ("--set", s)]]) == 0
    return run_dir


def test_train_and_generate_name_the_unit_of_a_char_model(char_run, capsys):
    summary = json.loads((char_run / "summary.json").read_text())
    assert summary["level"] == "char"
    assert main(["eval", str(char_run)]) == 0
    assert "bits/char" in capsys.readouterr().out
    assert main(["generate", str(char_run), "--length", "12", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "12 characters" in out and "tokens" not in out


def test_train_last_lines_say_bits_per_char(tmp_path, capsys):
    assert main(["train", "--preset", "grimm-char", "--run-dir", str(tmp_path / "r"), "--no-progress",
                 *[x for s in [*TINY, "train.max_steps=4"] for x in ("--set", s)]]) == 0
    out = capsys.readouterr().out
    assert "valid:" in out and "bits/char" in out and "bits/token" not in out


def test_greedy_with_num_warns_once_and_prints_one_sample(char_run, capsys):
    with pytest.warns(UserWarning, match="greedy") as warned:
        assert main(["generate", str(char_run), "--temperature", "0", "1", "--num", "3", "--length", "10",
                     "--seed", "1", "--json"]) == 0
    assert len(warned) == 1
    rows = json.loads(capsys.readouterr().out)
    assert [len(r["samples"]) for r in rows] == [1, 3]  # temperature 0: one; temperature 1: three


def test_run_generate_says_whether_the_prompt_is_included(char_run):
    import rnnlab

    run = rnnlab.load(char_run)
    bare = run.generate("the ", length=8, seed=0)
    full = run.generate("the ", length=8, seed=0, include_prompt=True)
    assert full == ["the " + bare[0]] and len(bare[0]) > 0


def test_metrics_frame_without_pandas_is_a_user_error(char_run, monkeypatch):
    import rnnlab

    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(UserError, match=r"\[pandas\]"):
        rnnlab.load(char_run).metrics_frame()


# -- rnnlab config: meanings, allowed values, and the values train would use ----------------------------

def test_config_shows_meanings_choices_and_the_default_presets_values(capsys):
    from rnnlab.config import load_config

    assert main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "preset grimm-char" in lines[0]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["model.hidden"].split()[2] == str(load_config().model.hidden) == "256"  # grimm-char's, not 128
    assert "units per recurrent layer" in rows["model.hidden"]
    assert "[rnn | lstm | gru | phased_lstm]" in rows["model.cell"]
    assert "[sgd | adagrad | rmsprop | adam]" in rows["train.optimizer"]
    assert main(["config", "--preset", "none"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["model.hidden"].split()[2] == "128"


def test_every_setting_has_a_meaning_and_its_choices_are_what_validate_accepts():
    import dataclasses

    from rnnlab.config import SECTIONS, Config, apply, describe, validate

    for row in describe(Config()):
        assert row["meaning"], row["key"]
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            for value in f.metadata["choices"]:
                cfg = Config()
                apply(cfg, f"{section}.{f.name}", value)
                if f"{section}.{f.name}" in ("model.arch", "task.kind"):
                    continue  # these two go together (validate_task); each value is checked by its own tests
                validate(cfg)
            if f.metadata["choices"]:
                cfg = Config()
                apply(cfg, f"{section}.{f.name}", "nonsense")
                with pytest.raises(UserError, match=f"{section}.{f.name} must be one of"):
                    validate(cfg)
