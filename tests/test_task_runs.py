"""The sequence tasks train through the one Trainer: a task run is a normal run
directory (config.toml, metrics.jsonl, checkpoints/) that resumes bit for bit,
stops early at train.stop_at_accuracy, trains with the NumPy backend to the
same numbers, and `rnnlab eval` reports its held-out accuracy."""

import json

import pytest
import torch

from rnnlab import checkpoint
from rnnlab.cli import main
from rnnlab.experiments import task_run_config
from rnnlab.runs import read_jsonl
from rnnlab.trainer import TIMING_KEYS, Trainer, resume

pytestmark = pytest.mark.usefixtures("one_thread")


def palindrome(**settings):
    return task_run_config("palindrome-test", {
        "model.cell": "lstm", "model.hidden": 16, "task.kind": "palindrome", "task.length": 4,
        "task.train_size": 320, "task.valid_size": 200, "task.test_size": 500, "train.batch_size": 32,
        "train.max_steps": 40, "train.eval_every": 10, "train.checkpoint_every": 10, "train.lr": 1e-2, **settings})


def run(cfg, run_dir, **kwargs):
    return Trainer(cfg, run_dir, progress=False, echo=lambda text: None, **kwargs).run()


class Crash(BaseException):
    """Stands for SIGKILL inside the process."""


def test_a_task_run_is_a_run_directory_and_resumes_bitwise(tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    run(palindrome(), reference)
    assert {"config.toml", "metrics.jsonl", "summary.json", "checkpoints"} <= {p.name for p in reference.iterdir()}
    splits = [r["split"] for r in read_jsonl(reference / "metrics.jsonl")]
    assert splits.count("valid") == 5 and splits.count("test") == 1  # every 10 steps, test once at the end

    calls = []
    original = Trainer._update

    def crash_at_step_25(self, x, y):
        calls.append(1)
        if len(calls) == 25:
            raise Crash
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "_update", crash_at_step_25)
    crashed = tmp_path / "crashed"
    with pytest.raises(Crash):
        run(palindrome(), crashed)
    monkeypatch.undo()
    assert json.loads((crashed / "checkpoints" / "last.json").read_text())["step"] == 20
    resume(crashed, progress=False)
    for tag in ("last", "best"):
        got, want = checkpoint.load(crashed, tag)[0], checkpoint.load(reference, tag)[0]
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), tag
    def untimed(run_dir):
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in read_jsonl(run_dir / "metrics.jsonl")]

    assert untimed(crashed) == untimed(reference)


def test_the_palindrome_learns_and_stops_at_the_accuracy_target(tmp_path):
    """LSTM, T = 4, 16 units: from chance (10%) to >= 95% on the validation set within 200 steps,
    where the run stops; resuming the finished run trains no further."""
    cfg = palindrome(**{"train.max_steps": 200, "train.stop_at_accuracy": 0.95})
    summary = run(cfg, tmp_path / "run")
    assert summary["early_stop"] == "accuracy" and summary["steps"] < 200
    # Stopping at >= 0.95 on validation is by construction; the test set follows it with a margin measured
    # over train.seed 0-4 (AVX-512 and AVX2): test accuracy 0.924-1.0 at the stop (steps 60-90), so > 0.85.
    assert summary["final"]["valid"]["accuracy"] >= 0.95 and summary["final"]["test"]["accuracy"] > 0.85
    again = resume(tmp_path / "run", progress=False)
    assert again["steps"] == summary["steps"] and again["final"] == summary["final"]


def test_a_run_that_stops_learning_stops_after_its_patience(tmp_path):
    """lr 1e-9 leaves the accuracy where it starts: no 1-point gain after the first evaluation
    (step 10), so with patience 30 the run ends at step 40, not at its budget of 200."""
    summary = run(palindrome(**{"train.lr": 1e-9, "train.max_steps": 200, "train.patience": 30}), tmp_path / "run")
    assert summary["early_stop"] == "plateau" and summary["steps"] == 40


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_numpy_backend_task_training_equals_torch(tmp_path, cell):
    """The same task run (float64) with the recurrent layer's forward and BPTT in NumPy: the same
    losses at every evaluation and the same weights, within float64 rounding."""
    settings = {"model.cell": cell, "train.dtype": "float64", "train.max_steps": 20}
    torch_run = run(palindrome(**settings), tmp_path / "torch")
    numpy_run = run(palindrome(**settings, **{"model.backend": "numpy"}), tmp_path / "numpy")
    for split in ("valid", "test"):
        assert numpy_run["final"][split]["loss"] == pytest.approx(torch_run["final"][split]["loss"], rel=1e-9)
        assert numpy_run["final"][split]["accuracy"] == torch_run["final"][split]["accuracy"]
    got, want = checkpoint.load(tmp_path / "numpy", "last")[0], checkpoint.load(tmp_path / "torch", "last")[0]
    for key in (k for k in want if k.startswith("model.")):
        assert torch.allclose(got[key], want[key], rtol=0, atol=1e-9), key


def varlen(batching: str, **settings):
    return task_run_config(f"varlen-{batching}", {
        "model.cell": "lstm", "model.hidden": 16, "task.kind": "varlen", "task.batching": batching,
        "task.median": 8, "task.min_len": 2, "task.max_len": 30, "task.symbols": 8, "task.train_size": 512,
        "task.valid_size": 256, "task.test_size": 512, "train.batch_size": 32, "train.epochs": 4,
        "train.lr": 1e-2, "train.checkpoint_every": 0, **settings})


def test_varlen_batching_strategies_reach_the_same_accuracy(tmp_path):
    """pad and pack see the same batches and compute the same function: the same weights (to float
    rounding) and the same accuracy; bucket sees other batches of the same set and ends within 5 points."""
    results = {b: run(varlen(b), tmp_path / b) for b in ("pad", "bucket", "pack")}
    acc = {b: r["final"]["test"]["accuracy"] for b, r in results.items()}
    # Margins from train.seed 0-4 (AVX-512 and AVX2 alike): pad 0.998-1.0, pack - pad exactly 0,
    # bucket - pad -0.031 to 0.
    assert acc["pad"] > 0.9, acc  # chance (the majority class) is ~0.64 here
    assert (acc["pack"] == pytest.approx(acc["pad"], abs=0.002)
            and acc["bucket"] == pytest.approx(acc["pad"], abs=0.05)), acc
    pad, pack = checkpoint.load(tmp_path / "pad", "last")[0], checkpoint.load(tmp_path / "pack", "last")[0]
    for key in (k for k in pad if k.startswith("model.")):
        assert torch.allclose(pad[key], pack[key], atol=1e-4), key


def test_eval_reports_a_task_runs_accuracy_and_other_commands_refuse_it(tmp_path, capsys):
    summary = run(palindrome(), tmp_path / "run")
    assert main(["eval", str(tmp_path / "run"), "--split", "test", "--checkpoint", "last", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "palindrome" and result["sequences"] == 500
    assert result["accuracy"] == summary["final"]["test"]["accuracy"]
    assert result["loss"] == pytest.approx(summary["final"]["test"]["loss"], rel=1e-6)
    assert main(["generate", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "palindrome task run" in err[0] and "rnnlab eval" in err[0]


def test_task_settings_are_checked(capsys):
    assert main(["train", "--set", "task.kind=palindrome", "--set", "train.max_steps=1"]) == 2
    assert "model.arch=classifier and task.kind go together" in capsys.readouterr().err
    assert main(["train", "--set", "task.kind=varlen", "--set", "model.arch=classifier",
                 "--set", "task.batching=pack", "--set", "model.cell=phased_lstm"]) == 2
    assert "task.batching=pack runs the fused kernel" in capsys.readouterr().err


def test_palindrome_course_preset_is_the_course_setting(tmp_path, capsys):
    """The course report's setting (vanilla RNN, 128 units, scalar digits, batch 128, clip 10, RMSprop,
    10,000 steps at most); trained here for 30 steps of T = 5 through `rnnlab train`, then scored by `rnnlab eval`."""
    from rnnlab.config import load_config

    cfg = load_config("palindrome-course")
    assert ((cfg.model.arch, cfg.model.cell, cfg.model.hidden, cfg.model.layers, cfg.model.chrono)
            == ("classifier", "rnn", 128, 1, 0))
    assert ((cfg.train.optimizer, cfg.train.lr, cfg.train.batch_size, cfg.train.max_steps)
            == ("rmsprop", 1e-3, 128, 10000))
    assert ((cfg.train.clip, cfg.task.encoding, cfg.train.stop_at_accuracy, cfg.task.kind)
            == (10.0, "scalar", 1.0, "palindrome"))
    run_dir = tmp_path / "run"
    assert main(["train", "--preset", "palindrome-course", "--set", "task.length=5", "--set", "train.max_steps=30",
                 "--set", "task.test_size=500", "--run-dir", str(run_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "test: loss" in out and "(500 sequences)" in out
    assert main(["eval", str(run_dir), "--split", "test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sequences"] == 500
