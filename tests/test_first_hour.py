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
    assert main(["experiment", "palindrome", "--cells", "phased_lstm", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("rnnlab: error:") for line in err)
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
    from rnnlab import cell_registry
    from rnnlab.config import load_config

    assert main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "preset grimm-char" in lines[0]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["model.hidden"].split()[2] == str(load_config().model.hidden) == "256"  # grimm-char's, not 128
    assert "units per recurrent layer" in rows["model.hidden"]
    assert f"[{' | '.join(cell_registry.CELLS)}]" in rows["model.cell"]  # read from the cell table
    assert "[sgd | adagrad | rmsprop | adam]" in rows["train.optimizer"]
    assert main(["config", "--preset", "none"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["model.hidden"].split()[2] == "128"


def test_every_setting_has_a_meaning_and_its_choices_are_what_validate_accepts():
    import dataclasses

    from rnnlab.config import SECTIONS, Config, apply, choices_of, describe, validate

    for row in describe(Config()):
        assert row["meaning"], row["key"]
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            for value in choices_of(f):
                cfg = Config()
                apply(cfg, f"{section}.{f.name}", value)
                if f"{section}.{f.name}" in ("model.arch", "task.kind"):
                    continue  # these two go together (validate_task); each value is checked by its own tests
                validate(cfg)
            if choices_of(f):
                cfg = Config()
                apply(cfg, f"{section}.{f.name}", "nonsense")
                with pytest.raises(UserError, match=f"{section}.{f.name} must be one of"):
                    validate(cfg)


# -- curves that are curves: train.eval_every = 0 evaluates about ten times over the budget -----------------

def _valid_steps(run_dir):
    from rnnlab.runs import read_jsonl

    return [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("split") == "valid"]


@pytest.fixture
def long_text(tmp_path):
    """A repetitive corpus long enough that 300 steps of TINY stay within one epoch (~140 steps an epoch)."""
    path = tmp_path / "long.txt"
    path.write_text("the cat sat on the mat. the dog sat on the log.\n" * 400, encoding="utf-8")
    return path


def _train_tiny(run_dir, text, *settings):
    return main(["train", "--preset", "grimm-char", "--run-dir", str(run_dir), "--no-progress", "--overwrite",
                 *[x for s in [*TINY, f"data.path={text}", "train.checkpoint_every=0", *settings]
                   for x in ("--set", s)]])


def test_a_short_run_evaluates_about_ten_times_by_default(long_text, tmp_path, capsys):
    run_dir = tmp_path / "auto"
    assert _train_tiny(run_dir, long_text, "train.eval_every=0", "train.max_steps=300",
                       "train.epochs=100") == 0
    steps = _valid_steps(run_dir)
    assert steps == list(range(30, 301, 30))  # 9 on the way, the final one at 300: no step scored twice
    assert (run_dir / "plots" / "curves.png").is_file()
    explicit = tmp_path / "explicit"
    assert _train_tiny(explicit, long_text, "train.eval_every=100", "train.max_steps=300") == 0
    assert _valid_steps(explicit)[:3] == [100, 200, 300]  # the user's interval is kept


def test_auto_evaluation_interval():
    from rnnlab.run_setup import auto_eval_every

    assert auto_eval_every(300, 10_000, 64 * 30, 54_000) == 30  # grimm-char, 300 steps: ten evaluations
    assert auto_eval_every(2200, 10_000, 64 * 30, 54_000) == 220
    assert auto_eval_every(39 * 1000, 1000, 20 * 35, 160_000) == 1000  # 39 epochs: each epoch end
    assert auto_eval_every(600, 5000, 64 * 4, 380_000) == 600  # nplm on Brown, 600 steps: the final one only
    assert auto_eval_every(600, 5000, 64 * 4, 60_000) == 300  # tokens evaluated stay below tokens trained
    assert auto_eval_every(3, 10, 8, 1) == 1


def test_resume_keeps_the_evaluation_steps_it_began_with(long_text, tmp_path, capsys):
    run_dir = tmp_path / "r"
    assert _train_tiny(run_dir, long_text, "train.eval_every=0", "train.max_steps=100") == 0
    every = _valid_steps(run_dir)[0]  # auto: 17 (six evaluations: the valid split is ~2k tokens, 6.4k trained)
    assert every < 100 and 100 % every
    assert main(["train", "--resume", str(run_dir), "--no-progress", "--set", "train.max_steps=300"]) == 0
    steps = [s for s in _valid_steps(run_dir) if s > 100]
    # as the run began, not the interval a 300-step budget would get (30)
    assert steps == [*range((100 // every + 1) * every, 300, every), 300]


# -- never silent ----------------------------------------------------------------------------------------

def test_the_evaluation_pass_reports_each_batch(char_run):
    import rnnlab
    from rnnlab.data.corpus import load_corpus
    from rnnlab.evaluate import evaluate

    model, vocab, cfg, _, device = rnnlab.load(char_run)._model()
    data = load_corpus(cfg.data, vocab).valid
    calls = []
    quiet = evaluate(model, data, 4, 64, device)
    m = evaluate(model, data, 4, 64, device, on_batch=lambda done, total: calls.append((done, total)))
    n = calls[0][1]
    assert n == math.ceil(((len(data) - 1) // 4) / 64) > 1
    assert calls == [(i, n) for i in range(1, n + 1)]
    assert m == quiet  # reporting changes nothing


def test_eval_and_train_show_the_evaluation_bar(char_run, tmp_path, capsys):
    assert main(["eval", str(char_run)]) == 0
    assert "evaluating valid" in capsys.readouterr().err
    assert main(["eval", str(char_run), "--no-progress"]) == 0
    assert "evaluating" not in capsys.readouterr().err


def test_training_starts_with_a_summary_and_resume_says_where(tiny_text, tmp_path, capsys):
    run_dir = tmp_path / "r"
    assert _train_tiny(run_dir, tiny_text, "train.max_steps=10", "train.threads=1") == 0
    err = capsys.readouterr().err
    summary = next(line for line in err.splitlines() if line.startswith("training "))
    params = json.loads((run_dir / "summary.json").read_text())["parameters"]
    assert f"{params:,} parameters" in summary and "10 steps" in summary and "1 thread" in summary
    assert "train" in summary and "valid" in summary and "vocabulary" in summary
    assert main(["train", "--resume", str(run_dir), "--no-progress", "--set", "train.max_steps=20"]) == 0
    resumed = capsys.readouterr().err.splitlines()
    assert any(line.startswith(f"resuming {run_dir} at step 10 (epoch 0,") for line in resumed)
    assert any("20 steps" in line and "parameters" in line for line in resumed)


def test_kneser_ney_scoring_reports_progress_and_chunks_change_nothing(monkeypatch):
    import numpy as np

    from rnnlab.ngram import kneser_ney

    rng = np.random.default_rng(0)
    train, valid = rng.integers(0, 20, 5000), rng.integers(0, 20, 1000)
    model = kneser_ney.KneserNey(20, 3).fit(train)
    whole = model.token_logprobs(valid)
    monkeypatch.setattr(kneser_ney, "CHUNK", 300)
    calls = []
    chunked = model.token_logprobs(valid, lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]  # 998 full-history positions, 300 at a time
    np.testing.assert_array_equal(chunked, whole)


def test_in_a_notebook_notes_and_bars_go_to_stdout_not_red_stderr(monkeypatch, capsys):
    import importlib.util

    from rnnlab import console

    console.echo("a note")
    assert capsys.readouterr().err == "a note\n"  # a terminal: stderr, stdout stays the result
    monkeypatch.setattr(console, "in_notebook", lambda: True)
    console.echo("a note")
    b = console.bar(total=3, desc="steps")
    b.update(3)
    b.close()
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.startswith("a note\n")
    if importlib.util.find_spec("ipywidgets") is None:
        assert "steps" in captured.out  # a text bar on stdout (tqdm's widget needs ipywidgets)


def test_a_jupyter_kernel_is_recognised(monkeypatch):
    import types

    from rnnlab import console

    assert not console.in_notebook()
    shell = type("ZMQInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert console.in_notebook()
    terminal = type("TerminalInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: terminal))
    assert not console.in_notebook()


def test_a_phase_with_nothing_to_count_still_shows_its_seconds(capsys, monkeypatch):
    import time

    from rnnlab import console

    with console.waiting("piped", every=0.05):
        time.sleep(0.2)
    assert capsys.readouterr().err == ""  # not a terminal: no ticking line in a log or a pipe
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with console.waiting("reading", every=0.05):
        time.sleep(1.0)  # as a long import or corpus read: nothing tells the bar to move
    with console.waiting("quiet", show=False):
        pass
    err = capsys.readouterr().err
    assert err.count("reading...") >= 3 and "quiet" not in err  # redrawn by its thread, ~20 times
