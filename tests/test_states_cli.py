"""`rnnlab inspect RUN units|saturation|surprise` end to end on tiny runs: a character LSTM, a word
GRU and a character MGU trained with model.backend=numpy (a few steps each: what is checked is
the command, not what the network learned); and the refusals, one line and exit status 2."""

from __future__ import annotations

import json
import random

import pytest
import torch
from conftest import TINY

from rnnlab.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

STORY = ("The king said, ‘Who is there?’ (nobody answered)\nThen the Fox ran to the wood.\n"
         "‘Come here,’ said the Wolf, and the King went home.\n")


def run_cli(argv, capsys) -> tuple[int, str, list[str]]:
    threads = torch.get_num_threads()
    code = main([str(a) for a in argv])
    torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def train(run_dir, data, *settings) -> None:
    code = main(["train", "--preset", "grimm-char", "--run-dir", str(run_dir), "--no-progress",
                 "--set", f"data.path={data}", "--set", "train.max_steps=6", "--set", "train.threads=1",
                 *[a for s in [*TINY, "model.layers=2", "model.hidden=8", *settings] for a in ("--set", s)]])
    assert code == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    (root / "story.txt").write_text(STORY * 40, encoding="utf-8")
    rng = random.Random(0)
    words = root / "words"
    words.mkdir()
    for split, lines in (("train", 200), ("valid", 40)):
        text = "\n".join(f"the {rng.choice(['King', 'fox', 'wolf'])} went to {rng.choice(['the', 'a'])} "
                         f"{rng.choice(['wood', 'castle', '12'])} ." for _ in range(lines))
        (words / f"{split}.txt").write_text(text + "\n", encoding="utf-8")
    threads = torch.get_num_threads()
    train(root / "char", root / "story.txt")
    train(root / "word", words, "data.level=word", "model.cell=gru")
    train(root / "numpy", root / "story.txt", "model.backend=numpy", "model.cell=mgu")
    torch.set_num_threads(threads)
    (root / "text.txt").write_text(STORY, encoding="utf-8")
    (root / "words.txt").write_text("the King went to the castle .\nthe fox went to a wood .\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("run,text", [("char", "text.txt"), ("word", "words.txt"), ("numpy", "text.txt")])
def test_units_prints_the_strongest_units_and_writes_the_table(runs, run, text, capsys):
    code, out, err = run_cli(["inspect", runs / run, "units", "--text", runs / text, "--no-progress"], capsys)
    assert code == 0, err
    data = json.loads((runs / run / "inspect" / "units.json").read_text())
    features = ["in_quotes", "capital", "since_space"] if run != "word" else ["capitalised", "sentence_position"]
    for name in features:
        assert f"\n{name} " in "\n" + out and name in data["strongest"], name
        assert len(data["strongest"][name]) == 3 and len(data["strongest"][name][0]["top"]) == 5
    assert data["tokens"] == (len(STORY) if run != "word" else 16) and data["source"] == str(runs / text)
    signals = {"char": {"h", "c", "i", "f", "g", "o"}, "word": {"h", "r", "z", "n"}, "numpy": {"h", "f", "h_tilde"}}
    assert {row["signal"] for row in data["table"]} == signals[run]
    assert {row["layer"] for row in data["table"]} == {0, 1}
    row = data["strongest"][features[0]][0]
    assert f"layer {row['layer']} {row['signal']}[{row['unit']}]  r = {row['r']:+.3f}" in out


def test_units_without_a_text_reads_the_validation_split_and_out_goes_where_asked(runs, capsys, tmp_path, monkeypatch):
    from rnnlab.states import record

    real, numpy_layers = record._numpy_signals, []  # --backend numpy: the NumPy layers compute the states
    monkeypatch.setattr(record, "_numpy_signals", lambda *a: numpy_layers.append(1) or real(*a))
    out_file = tmp_path / "u.json"
    code, out, err = run_cli(["inspect", runs / "char", "units", "--length", "300", "--backend", "numpy",
                              "--out", out_file, "--no-progress"], capsys)
    assert code == 0, err
    data = json.loads(out_file.read_text())
    assert data["tokens"] == 300 and data["source"] == "the first 300 characters of the validation split"
    assert data["backend"] == "numpy" and f"wrote {out_file}" in out and numpy_layers == [1]


def test_saturation_writes_the_plot_and_the_fractions(runs, capsys):
    code, out, err = run_cli(["inspect", runs / "char", "saturation", "--text", runs / "text.txt", "--no-progress"],
                             capsys)
    assert code == 0, err
    png, fractions = runs / "char" / "inspect" / "saturation.png", runs / "char" / "inspect" / "saturation.json"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    rows = json.loads(fractions.read_text())["rows"]
    assert [(r["layer"], r["signal"]) for r in rows] == [(l, s) for l in (0, 1) for s in ("h", "i", "f", "g", "o")]
    assert all(len(r["left"]) == 8 and 0 <= min(r["left"]) and max(r["right"]) <= 1 for r in rows)
    assert "layer 1 f" in out


def test_surprise_writes_json_and_html_and_colours_on_request(runs, capsys, tmp_path):
    page = tmp_path / "s.html"
    code, out, err = run_cli(["inspect", runs / "word", "surprise", "--text", runs / "words.txt", "--top-k", "3",
                              "--html", page, "--color", "always", "--kneser-ney", "--no-progress"], capsys)
    assert code == 0, err
    data = json.loads((runs / "word" / "inspect" / "surprise.json").read_text())
    assert [r["token"] for r in data["rows"]][:8] == "the King went to the castle . <eos>".split()
    assert data["rows"][0]["bits"] is None and len(data["rows"][1]["expected"]) == 3
    assert data["summary"]["tokens"] == 15 and "bits/word on average" in out and "\x1b[48;5;" in out
    assert page.read_text().startswith("<!doctype html>")
    assert 0 < data["summary"]["kn_bits"] < 10 and data["rows"][5]["kn_bits"] > 0 and "Kneser-Ney trigram" in out


@pytest.mark.parametrize("argv,message", [
    (["units", "--text", "missing.txt"], "text file not found"),
    (["units", "--text", "unknown.txt"], "no character the model knows"),
    (["saturation", "--length", "0"], "--length"),
    (["surprise", "--checkpoint", "first"], "--checkpoint"),
])
def test_bad_input_is_one_line_and_exit_2(runs, argv, message, capsys, monkeypatch):
    (runs / "unknown.txt").write_text("§§§¤¤¤", encoding="utf-8")
    monkeypatch.chdir(runs)
    code, _, err = run_cli(["inspect", runs / "char", *argv, "--no-progress"], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("rnnlab: error:") and message in err[0], err


def test_a_run_that_is_not_a_recurrent_language_model_is_refused(runs, tmp_path, capsys):
    run = tmp_path / "nplm"
    run.mkdir()
    config = (runs / "word" / "config.toml").read_text()
    (run / "config.toml").write_text(config.replace('arch = "rnn"', 'arch = "nplm"'))
    code, _, err = run_cli(["inspect", run, "units", "--no-progress"], capsys)
    assert code == 2 and len(err) == 1 and "neural n-gram model" in err[0], err
    code, _, err = run_cli(["inspect", tmp_path / "nothing", "surprise", "--no-progress"], capsys)
    assert code == 2 and len(err) == 1 and "run directory not found" in err[0], err
