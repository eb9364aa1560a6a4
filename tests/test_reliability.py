"""Crash-safe training: a run killed at any moment and resumed ends bit for bit
where an uninterrupted run ends; Ctrl-C / SIGTERM save and exit 130; numerical
faults are skipped, logged, slow the learning rate and finally abort without
writing a poisoned checkpoint; a full disk stops the run with one line and
leaves it resumable.

Every run here is tiny (a 3000-character slice of the bundled Grimm, 2x16
LSTM with dropout, so that dropout masks and the RNG state matter) and runs
in-process, except the SIGKILL test, which needs a real process to kill.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import rnnlab.trainer
from rnnlab import checkpoint, cli
from rnnlab.data.text import bundled_path, read_text, strip_gutenberg
from rnnlab.runs import read_jsonl
from rnnlab.trainer import TIMING_KEYS, Trainer

ROOT = Path(__file__).resolve().parents[1]
MAX_STEPS = 30  # one epoch is 22 steps: every run crosses an epoch boundary


def settings(corpus: Path, *extra: str) -> list[str]:
    sets = [f"data.path={corpus}", "model.hidden=16", "model.layers=2", "model.dropout=0.3",
            "train.batch_size=8", "train.seq_len=16", f"train.max_steps={MAX_STEPS}", "train.checkpoint_every=5",
            "train.eval_every=10", "train.eval_seq_len=64", "train.samples=2", "train.sample_length=20",
            "train.threads=1", *extra]
    return [arg for s in sets for arg in ("--set", s)]


def train(run: Path, corpus: Path, *extra: str) -> int:
    return cli.main(["train", "--preset", "grimm-char", *settings(corpus, *extra), "--run-dir", str(run),
                     "--no-progress"])


def resume(run: Path) -> int:
    return cli.main(["train", "--resume", str(run), "--no-progress"])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(strip_gutenberg(read_text(bundled_path()))[:3000], encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def keep_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, corpus):
    """Uninterrupted runs, one per batcher, trained once for the whole module."""
    runs = {}

    def get(batcher: str = "stream") -> Path:
        if batcher not in runs:
            threads = torch.get_num_threads()
            run = tmp_path_factory.mktemp(f"baseline-{batcher}") / "run"
            assert train(run, corpus, f"data.batcher={batcher}") == 0
            torch.set_num_threads(threads)
            runs[batcher] = run
        return runs[batcher]

    return get


def assert_identical(run: Path, reference: Path) -> None:
    """Same weights, optimizer state, RNG and carried state (bitwise), same logs."""
    for tag in ("last", "best"):
        got, got_meta = checkpoint.load(run, tag)
        want, want_meta = checkpoint.load(reference, tag)
        assert got.keys() == want.keys()
        for key in want:
            assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), f"{tag}: {key} differs"
        volatile = {"elapsed", "step_seconds", "logs", "meta_sha256"}
        assert {k: v for k, v in got_meta.items() if k not in volatile} == \
               {k: v for k, v in want_meta.items() if k not in volatile}
    for name in ("metrics.jsonl", "samples.jsonl"):
        got, want = read_jsonl(run / name), read_jsonl(reference / name)
        strip = lambda records: [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]
        assert strip(got) == strip(want), name
    got, want = (json.loads((r / "summary.json").read_text()) for r in (run, reference))
    for key in ("wall_seconds", "tokens_per_s", "step_seconds"):
        got.pop(key), want.pop(key)
    assert got == want


class Crash(BaseException):
    """Stands for SIGKILL inside the process: no except clause, no cleanup that saves."""


def crash_on_call(monkeypatch, owner, name: str, at: int) -> list:
    original, calls = getattr(owner, name), []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            raise Crash
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)
    return calls


def last_step(run: Path) -> int:
    return json.loads((run / "checkpoints" / "last.json").read_text())["step"]


# ------------------------------------------------------------------ kill and resume

def test_sigkill_at_a_random_step_then_resume_is_bitwise_identical(tmp_path, corpus, baseline):
    target = random.randrange(3, MAX_STEPS - 8)
    run, log = tmp_path / "run", tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "rnnlab", "train", "--preset", "grimm-char", *settings(corpus),
               "--run-dir", str(run), "--no-progress"]
    with open(log, "w") as stderr:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if last_step(run) >= target:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.001)
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        f"the run ended before the kill (target step {target}): {log.read_text()}"
    )
    killed_at = last_step(run)
    assert target <= killed_at < MAX_STEPS
    assert resume(run) == 0
    assert_identical(run, baseline("stream"))


@pytest.mark.parametrize("batcher,where,at", [
    ("window", "step", 24),        # a training step just after the epoch boundary (22)
    ("stream", "step", 23),
    ("stream", "save", 9),         # inside a checkpoint write (the 9th rename)
    ("stream", "final-eval", 4),   # after the loop, during the final evaluation
])
def test_a_crash_anywhere_then_resume_is_bitwise_identical(tmp_path, corpus, baseline, monkeypatch, batcher, where, at):
    reference = baseline(batcher)
    owner, name = {"step": (Trainer, "_update"), "save": (checkpoint.os, "replace"),
                   "final-eval": (Trainer, "_evaluate")}[where]
    crash_on_call(monkeypatch, owner, name, at)
    run = tmp_path / "run"
    with pytest.raises(Crash):
        train(run, corpus, f"data.batcher={batcher}")
    monkeypatch.undo()
    assert resume(run) == 0
    assert_identical(run, reference)


def test_resuming_a_finished_run_changes_nothing(tmp_path, baseline, capsys):
    run = tmp_path / "run"
    shutil.copytree(baseline("stream"), run)
    assert resume(run) == 0
    assert_identical(run, baseline("stream"))
    assert "valid: loss" in capsys.readouterr().out


# ----------------------------------------------------------------- Ctrl-C, SIGTERM

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_saves_at_that_step_exits_130_and_resumes_exactly(tmp_path, corpus, baseline, monkeypatch, capsys,
                                                                   signum):
    original, calls = Trainer._update, []

    def step_then_signal(self, x, y):
        calls.append(1)
        if len(calls) == 13:
            signal.raise_signal(signum)  # arrives in the middle of step 13
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "_update", step_then_signal)
    run, handlers = tmp_path / "run", (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    assert train(run, corpus) == 130
    assert (
        capsys.readouterr().err.splitlines()[-1]
        == f"rnnlab: interrupted at step 13; resume with: rnnlab train --resume {run}"
    )
    assert last_step(run) == 13 and not (run / "summary.json").exists()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored
    monkeypatch.undo()
    assert resume(run) == 0
    assert_identical(run, baseline("stream"))


def test_a_second_ctrl_c_quits_at_once_and_the_last_checkpoint_stays_valid(tmp_path, corpus, baseline, monkeypatch,
                                                                           capsys):
    original, calls = Trainer._update, []

    def step_then_two_signals(self, x, y):
        calls.append(1)
        if len(calls) == 13:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
        return original(self, x, y)

    monkeypatch.setattr(Trainer, "_update", step_then_two_signals)
    run = tmp_path / "run"
    assert train(run, corpus) == 130
    assert capsys.readouterr().err.splitlines()[-1].startswith("rnnlab: interrupted; resume from the last checkpoint")
    assert last_step(run) == 10
    monkeypatch.undo()
    assert resume(run) == 0
    assert_identical(run, baseline("stream"))


# -------------------------------------------------------------------- disk full

def test_disk_full_during_a_checkpoint_stops_with_one_line_and_resumes_exactly(tmp_path, corpus, baseline, monkeypatch,
                                                                               capsys):
    original, calls = checkpoint.save_file, []

    def save_file(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # last@5, best@10, then last@10 finds the disk full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    run = tmp_path / "run"
    assert train(run, corpus) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("rnnlab: error: cannot write checkpoint") and "No space left on device" in err
    assert last_step(run) == 5
    monkeypatch.undo()
    assert resume(run) == 0
    assert_identical(run, baseline("stream"))


def test_disk_full_while_logging_leaves_a_torn_line_that_resume_repairs(tmp_path, corpus, baseline, monkeypatch,
                                                                        capsys):
    original, calls = rnnlab.trainer.append_jsonl, []

    def append_jsonl(path, record):
        if Path(path).name == "metrics.jsonl":
            calls.append(1)
            if len(calls) == 5:  # the third evaluation (step 30): half a line, then the disk is full
                with open(path, "a") as f:
                    f.write(json.dumps(record)[:25])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return original(path, record)

    monkeypatch.setattr(rnnlab.trainer, "append_jsonl", append_jsonl)
    run = tmp_path / "run"
    assert train(run, corpus) == 2
    assert (
        capsys.readouterr().err.splitlines()[-1] == f"rnnlab: error: No space left on device: {run / 'metrics.jsonl'}"
    )
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [10, 10, 20, 20]  # the torn line is skipped
    monkeypatch.undo()
    assert resume(run) == 0
    assert_identical(run, baseline("stream"))


# ----------------------------------------------------------------------- faults

def test_non_finite_losses_are_skipped_logged_slow_the_lr_then_abort(tmp_path, corpus, monkeypatch, capsys):
    bad = {4, 10, 11, 12, 20, 21}  # training steps whose loss becomes NaN
    real, calls = F.cross_entropy, []

    def cross_entropy(*args, **kwargs):
        loss = real(*args, **kwargs)
        if torch.is_grad_enabled():  # training, not evaluation
            calls.append(1)
            if len(calls) in bad:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(F, "cross_entropy", cross_entropy)
    run = tmp_path / "run"
    assert train(run, corpus, "train.schedule=constant", "train.lr=0.002", "train.max_faults=5",
                 "train.eval_every=5") == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == ("rnnlab: error: training aborted: 6 non-finite losses or gradients (limit train.max_faults=5); "
                       "try a lower train.lr or train.clip")
    assert sum("non-finite loss or gradient at step" in line for line in err) == 6
    records = read_jsonl(run / "metrics.jsonl")
    faults = [r for r in records if r.get("event") == "fault"]
    assert [r["step"] for r in faults] == sorted(bad)
    # Three faults in a row (steps 10-12) halve the learning rate.
    assert [r["lr"] for r in faults] == [0.002] * 4 + [0.001] * 2
    assert ({r["step"]: r["lr"] for r in records if r.get("split") == "valid"}
            == {5: 0.002, 10: 0.002, 15: 0.001, 20: 0.001})
    tensors, meta = checkpoint.load(run, "last")
    assert meta["step"] == 20 and meta["faults"] == 5
    assert tensors["optim.embedding.weight.step"].item() == 20 - 5  # skipped steps did not move the optimizer
    for tag in ("last", "best"):
        assert all(torch.isfinite(t).all() for t in checkpoint.load(run, tag)[0].values() if t.is_floating_point())
    assert not (run / "summary.json").exists()


def test_diverging_weights_abort_at_once_and_are_never_checkpointed(tmp_path, corpus, monkeypatch, capsys):
    original, calls = Trainer._update, []

    def step_that_overflows(self, x, y):
        loss = original(self, x, y)
        calls.append(1)
        if len(calls) == 3:  # as if the update of step 3 had overflowed
            with torch.no_grad():
                self.model.decoder.bias[0] = float("inf")
        return loss

    monkeypatch.setattr(Trainer, "_update", step_that_overflows)
    run = tmp_path / "run"
    assert train(run, corpus, "train.checkpoint_every=1") == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == ("rnnlab: error: training diverged: the weights are no longer finite at step 4; "
                       "try a lower train.lr or train.clip")
    assert any("at step 3; 'last' checkpoint not written" in line for line in err)
    tensors, meta = checkpoint.load(run, "last")
    assert meta["step"] == 2 and all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


# ------------------------------------------------------------ checkpoint timing

def test_checkpoints_every_n_minutes(tmp_path, corpus, monkeypatch):
    saves = []
    original = checkpoint.save
    monkeypatch.setattr(checkpoint, "save",
                        lambda run, tag, *a: saves.append((tag, a[1]["step"])) or original(run, tag, *a))
    assert train(tmp_path / "run", corpus, "train.max_steps=6", "train.checkpoint_every=0",
                 "train.checkpoint_minutes=1e-9", "train.eval_every=0") == 0
    assert [step for tag, step in saves if tag == "last"] == [1, 2, 3, 4, 5, 6]
