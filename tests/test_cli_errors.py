"""Bad input, table-driven: every case prints one line `rnnlab: error: ...`,
exits with status 2 and leaves nothing half-written (no run directory for a
training that never started; an existing run untouched by eval/generate or
a refused resume)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnlab import checkpoint, cli
from rnnlab.data.text import bundled_path, read_text, strip_gutenberg
from rnnlab.trainer import NOTES

TINY = ["model.hidden=8", "model.layers=1", "train.batch_size=4", "train.seq_len=8", "train.max_steps=2",
        "train.eval_seq_len=32", "train.samples=0", "train.threads=1", "train.checkpoint_every=1"]


def sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def run_cli(argv: list[str], capsys) -> tuple[int, str, list[str]]:
    threads = torch.get_num_threads()
    code = cli.main([str(a) for a in argv])
    torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if not line.startswith(NOTES)]


def snapshot(directory: Path) -> dict:
    """Sizes and times of everything but a run's lock file (RUN/.lock), which every
    would-be writer opens, and a refused resume too, to learn whether the run is busy."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(directory.rglob("*")) if p.name != ".lock"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    text = strip_gutenberg(read_text(bundled_path()))[:4000]
    (d / "tiny.txt").write_text(text, encoding="utf-8")
    (d / "other.txt").write_text("xyz xyz zyx\n" * 300, encoding="utf-8")
    (d / "empty.txt").write_text("")
    (d / "blank.txt").write_text(" \n\n\t\n")
    (d / "short.txt").write_text("Once upon a time there was a king.\n" * 2)
    (d / "tenchars.txt").write_text("abcdefghij")
    (d / "bad.toml").write_text("[model\nhidden = 3\n")
    (d / "nosplits").mkdir()
    (d / "nosplits" / "train.txt").write_text(text)
    (d / "a-file").write_text("not a directory")
    (d / "not-a-run").mkdir()
    (d / "not-a-run" / "notes.txt").write_text("precious")
    return d


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data) -> dict[str, Path]:
    """A tiny finished char run and word run, trained once for the module."""
    root, made = tmp_path_factory.mktemp("runs"), {}
    threads = torch.get_num_threads()
    for level in ("char", "word"):
        run = root / level
        assert cli.main(["train", *sets(f"data.path={data / 'tiny.txt'}", f"data.level={level}", *TINY),
                         "--run-dir", str(run), "--no-progress"]) == 0
        made[level] = run
    torch.set_num_threads(threads)
    return made


# (id, argv given the data dir, a fragment the one-line message must contain)
TRAIN_CASES = [
    ("missing-corpus", lambda d: sets(f"data.path={d / 'nope.txt'}"), "corpus not found"),
    ("empty-corpus", lambda d: sets(f"data.path={d / 'empty.txt'}"), "corpus file is empty"),
    ("blank-corpus", lambda d: sets(f"data.path={d / 'blank.txt'}"), "corpus file is empty"),
    ("corpus-dir-without-valid", lambda d: sets(f"data.path={d / 'nosplits'}"), "needs train.txt and valid.txt"),
    ("corpus-under-a-file", lambda d: sets(f"data.path={d / 'a-file' / 'x.txt'}"), "corpus not found"),
    ("shorter-than-a-batch", lambda d: sets(f"data.path={d / 'short.txt'}"), "corpus is shorter than one batch"),
    ("shorter-than-a-window",
     lambda d: sets(f"data.path={d / 'short.txt'}", "data.batcher=window", "train.seq_len=200"),
     "corpus is shorter than one window"),
    ("valid-split-too-short", lambda d: sets(f"data.path={d / 'tenchars.txt'}"), "is too short"),
    ("unknown-preset", lambda d: ["--preset", "grim-char"], "unknown preset 'grim-char' (did you mean 'grimm-char'?)"),
    ("unknown-key", lambda d: sets("model.hiden=8"), "unknown setting 'model.hiden' (did you mean 'model.hidden'?)"),
    ("unknown-section", lambda d: sets("trian.lr=0.1"), "unknown setting 'trian.lr' (did you mean 'train.lr'?)"),
    ("no-equals", lambda d: ["--set", "model.hidden"], "--set expects key=value, got 'model.hidden'"),
    ("not-an-int", lambda d: sets("model.hidden=abc"), "model.hidden expects int, got 'abc'"),
    ("fractional-int", lambda d: sets("model.hidden=1.5e0"), "model.hidden expects int, got '1.5e0'"),
    ("not-a-bool", lambda d: sets("model.tie_weights=maybe"), "model.tie_weights expects true or false"),
    ("not-a-float", lambda d: sets("train.lr=fast"), "train.lr expects float, got 'fast'"),
    ("nan", lambda d: sets("train.lr=nan"), "train.lr must be a finite number"),
    ("infinite", lambda d: sets("train.clip=inf"), "train.clip must be a finite number"),
    ("negative-size", lambda d: sets("model.hidden=-4"), "model.hidden must be positive, got -4"),
    ("zero-batch", lambda d: sets("train.batch_size=0"), "train.batch_size must be positive, got 0"),
    ("dropout-one", lambda d: sets("model.dropout=1"), "model.dropout must be in [0, 1), got 1.0"),
    ("negative-temperature", lambda d: sets("generate.temperature=-0.5"),
     "generate.temperature must be 0 (greedy) or in [0.001, 100]"),
    ("unknown-choice", lambda d: sets("model.cell=lstn"),
     "model.cell must be one of rnn, lstm, gru, phased_lstm, mgu, mingru, minlstm; got 'lstn' (did you mean 'lstm'?)"),
    ("missing-config", lambda d: ["--config", d / "nope.toml"], "config file not found"),
    ("invalid-toml", lambda d: ["--config", d / "bad.toml"], "is not valid TOML"),
]


@pytest.mark.parametrize("argv,fragment", [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_bad_training_input_is_one_line_exit_2_and_no_run_directory(tmp_path, capsys, data, argv, fragment):
    run = tmp_path / "run"
    code, _, err = run_cli(["train", *argv(data), "--run-dir", run, "--no-progress"], capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("rnnlab: error: ") and fragment in err[0], err
    assert not run.exists()


RUN_DIR_CASES = [
    ("under-a-file", lambda d: d / "a-file" / "run", [], "is not writable"),
    ("is-a-file", lambda d: d / "a-file", [], "exists and is not a directory"),
    ("not-empty", lambda d: d / "not-a-run", [], "is not empty: use --resume to continue it or --overwrite"),
    ("overwrite-a-non-run", lambda d: d / "not-a-run", ["--overwrite"], "refusing to overwrite"),
]


@pytest.mark.parametrize("run_dir,extra,fragment", [c[1:] for c in RUN_DIR_CASES], ids=[c[0] for c in RUN_DIR_CASES])
def test_unusable_run_directories_are_refused_untouched(capsys, data, run_dir, extra, fragment):
    before = snapshot(data)
    code, _, err = run_cli(["train", *sets(f"data.path={data / 'tiny.txt'}", *TINY), "--run-dir", run_dir(data),
                            *extra, "--no-progress"], capsys)
    assert code == 2 and len(err) == 1 and fragment in err[0], err
    assert snapshot(data) == before


def test_a_full_disk_when_the_run_starts_is_one_line(tmp_path, capsys, data, monkeypatch):
    def full(path, *args, **kwargs):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "write_atomic", full)  # how the run's files are written
    code, _, err = run_cli(["train", *sets(f"data.path={data / 'tiny.txt'}", *TINY), "--run-dir", tmp_path / "run",
                            "--no-progress"], capsys)
    assert code == 2 and len(err) == 1, err
    # the line names the file that could not be written, and the half-made run directory is gone (issue 21)
    assert err[0].startswith(f"rnnlab: error: cannot write {tmp_path / 'run' / 'config.toml'}: No space left on device")
    assert not (tmp_path / "run").exists()


# (id, argv given the runs and the data dir, fragment)
RUN_CASES = [
    ("eval-missing-dir", lambda r, d: ["eval", d / "nope"], "run directory not found"),
    ("eval-not-a-run", lambda r, d: ["eval", d / "not-a-run"], "is not a run directory (no config.toml)"),
    ("generate-not-a-run", lambda r, d: ["generate", d / "not-a-run"], "is not a run directory (no config.toml)"),
    ("generate-a-file", lambda r, d: ["generate", d / "tiny.txt"], "is not a run directory (it is a file)"),
    ("eval-no-test-split", lambda r, d: ["eval", r["char"], "--split", "test"], "this corpus has no 'test' split"),
    ("eval-missing-data", lambda r, d: ["eval", r["char"], "--data", d / "nope.txt"], "corpus not found"),
    ("generate-negative-temperature", lambda r, d: ["generate", r["char"], "--temperature", "-1"],
     "temperature must be 0 (greedy) or in [0.001, 100], got -1.0"),
    ("generate-top-p", lambda r, d: ["generate", r["char"], "--top-p", "0"], "top_p must be in [1e-06, 1], got 0.0"),
    ("generate-top-k", lambda r, d: ["generate", r["char"], "--top-k", "-3"], "argument --top-k: must be >= 0, got -3"),
    ("generate-length", lambda r, d: ["generate", r["char"], "--length", "0"],
     "argument --length: must be between 1 and 1000000, got 0"),
    ("generate-num", lambda r, d: ["generate", r["char"], "--num", "0"], "argument --num: must be >= 1, got 0"),
    ("generate-unseen-characters", lambda r, d: ["generate", r["char"], "--prompt", "Once ☃ upon"],
     "prompt has characters the model has never seen: '☃'"),
    ("resume-missing-dir", lambda r, d: ["train", "--resume", d / "nope"], "run directory not found"),
    ("resume-not-a-run", lambda r, d: ["train", "--resume", d / "not-a-run"], "is not a run directory"),
    ("resume-other-data", lambda r, d: ["train", "--resume", r["char"], *sets(f"data.path={d / 'other.txt'}")],
     "changed since its checkpoint: the corpus's train split"),
    ("resume-other-level", lambda r, d: ["train", "--resume", r["char"], *sets("data.level=word")],
     "changed since its checkpoint: data.level 'char' -> 'word'"),
    ("resume-other-batch-size", lambda r, d: ["train", "--resume", r["char"], *sets("train.batch_size=2")],
     "changed since its checkpoint: train.batch_size 4 -> 2"),
    ("resume-other-model", lambda r, d: ["train", "--resume", r["char"], *sets("model.hidden=9")],
     "changed since its checkpoint: model.hidden 8 -> 9"),
    ("resume-bad-key", lambda r, d: ["train", "--resume", r["char"], *sets("train.max_stpes=5")],
     "(did you mean 'train.max_steps'?)"),
]


@pytest.mark.parametrize("argv,fragment", [c[1:] for c in RUN_CASES], ids=[c[0] for c in RUN_CASES])
def test_bad_use_of_a_run_is_one_line_exit_2_and_changes_nothing(capsys, runs, data, argv, fragment):
    before = {level: snapshot(run) for level, run in runs.items()}, snapshot(data)
    code, _, err = run_cli(argv(runs, data), capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("rnnlab: error: ") and fragment in err[0], err
    assert ({level: snapshot(run) for level, run in runs.items()}, snapshot(data)) == before


@pytest.mark.parametrize("command", ["eval", "generate", "resume"])
def test_a_damaged_or_missing_checkpoint_is_one_line(tmp_path, capsys, runs, command):
    run = tmp_path / "run"
    shutil.copytree(runs["char"], run)
    argv = ["train", "--resume", run] if command == "resume" else [command, run, "--checkpoint", "last"]
    tensors = next((run / "checkpoints").glob("last-*")) / checkpoint.TENSORS
    tensors.write_bytes(tensors.read_bytes()[:100])
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and len(err) == 1 and "is corrupted" in err[0], err
    shutil.rmtree(run / "checkpoints")
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and len(err) == 1 and "has no 'last' checkpoint" in err[0], err


def test_unknown_prompt_words_become_unk_with_a_warning(capsys, runs):
    with pytest.warns(UserWarning, match="prompt words not in the vocabulary, mapped to <unk>: qwertyuiop"):
        code, out, _ = run_cli(["generate", runs["word"], "--prompt", "the king qwertyuiop", "--length", "5",
                                "--seed", "1"], capsys)
    assert code == 0 and out.strip()


def test_invalid_utf8_is_replaced_with_a_warning_and_training_goes_on(tmp_path, capsys, data):
    corpus = tmp_path / "latin1.txt"
    raw = (data / "tiny.txt").read_bytes()
    corpus.write_bytes(raw[:1000] + "Grüße, café".encode("latin-1") + raw[1000:])
    with pytest.warns(UserWarning, match=r"3 invalid UTF-8 byte sequence\(s\) replaced by U\+FFFD"):
        code, _, err = run_cli(["train", *sets(f"data.path={corpus}", *TINY), "--run-dir", tmp_path / "run",
                                "--no-progress"], capsys)
    assert code == 0, err
    assert "\ufffd" in checkpoint.load(tmp_path / "run")[1]["vocab"]["tokens"]


def test_a_real_process_exits_2_with_one_line_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "rnnlab", "config", "--set", "model.hiden=8"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == "rnnlab: error: unknown setting 'model.hiden' (did you mean 'model.hidden'?)\n"
