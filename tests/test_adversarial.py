"""What a hostile user tried (issue 15), each kept as a test: a full disk during
a checkpoint, two writers on one run, resumes that change what a run computes,
degenerate sampling, deeply nested JSON, forged checkpoint metadata, absurd
sizes, and every command's numbers. Each ends as one line on stderr, exit
status 2 and nothing lost (the browser half of the playground's safety is in
test_browser.py, its HTTP half in test_serve.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, TINY

from rnnlab import checkpoint, cli, safejson
from rnnlab.generate import choose
from rnnlab.trainer import NOTES

ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def run_cli(argv, capsys) -> tuple[int, list[str]]:
    threads = torch.get_num_threads()
    code = cli.main([str(a) for a in argv])
    torch.set_num_threads(threads)
    return code, capsys.readouterr().err.splitlines()


def one_error(code: int, err: list[str], fragment: str) -> None:
    """Exit 2 and a single `rnnlab: error:` line containing `fragment` (progress lines aside)."""
    errors = [line for line in err if not line.startswith(NOTES)]
    assert code == 2 and len(errors) == 1 and errors[0].startswith("rnnlab: error: "), err
    assert fragment in errors[0], errors[0]


def train_tiny(corpus: Path, run: Path, capsys, *extra: str) -> None:
    code, err = run_cli(["train", *sets(f"data.path={corpus}", *TINY, "train.max_steps=4", "train.checkpoint_every=2",
                                        "train.threads=1", *extra), "--run-dir", run, "--no-progress"], capsys)
    assert code == 0, err


def resign(run: Path, change, tag: str = "last") -> None:
    """Edit a checkpoint's meta.json and recompute its checksum, as a forger would."""
    where = json.loads((run / "checkpoints" / f"{tag}.json").read_text())
    path = run / "checkpoints" / where["dir"] / checkpoint.META
    meta = json.loads(path.read_text())
    change(meta)
    meta["meta_sha256"] = checkpoint._meta_checksum(meta)
    path.write_text(json.dumps(meta))
    (run / "checkpoints" / f"{tag}.json").write_text(json.dumps(dict(where, step=meta.get("step"))))


# ------------------------------------------------------------ 1. full disk
@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs (root only); unmounted afterwards."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_previous_one(small_disk, tiny_text, capsys):
    # ~150k parameters: one checkpoint (weights + Adam moments) is ~1.8 MB, so the second does not fit in 3 MB.
    run = small_disk / "run"
    code, err = run_cli(["train", *sets(f"data.path={tiny_text}", "model.hidden=128", "model.layers=1",
                                        "train.batch_size=8", "train.seq_len=16", "train.samples=0", "train.bf16=off",
                                        # no evaluation, hence no 'best' checkpoint, before the end
                                        "train.eval_every=1000", "train.checkpoint_every=10", "train.max_steps=40",
                                        "train.threads=1"),
                         "--run-dir", run, "--no-progress"], capsys)
    one_error(code, err, f"cannot write checkpoint in {run / 'checkpoints'} (disk {small_disk})")
    assert "the previous checkpoint is intact" in err[-1]
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".") or "tmp" in p.name]
    assert leftovers == []
    assert [p.name for p in (run / "checkpoints").iterdir() if p.is_dir()] == ["last-00000010"]
    assert checkpoint.load(run)[1]["step"] == 10


def test_train_errors_are_one_line_without_a_run_directory_line_before_them(tmp_path, capsys):
    code, err = run_cli(["train", *sets(f"data.path={tmp_path / 'missing.txt'}"), "--run-dir", tmp_path / "run",
                         "--no-progress"], capsys)
    assert code == 2 and len(err) == 1 and "corpus not found" in err[0], err


# ------------------------------------------------------------ 2. the lock
def _wait_for(condition, timeout: float = 120, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_one_writer_per_run_readers_unaffected_and_no_stale_lock_after_sigkill(tmp_path, tiny_text, capsys):
    run = tmp_path / "run"
    writer = subprocess.Popen(
        [sys.executable, "-m", "rnnlab", "train", *sets(f"data.path={tiny_text}", *TINY, "train.max_steps=1000000",
                                                        "train.checkpoint_every=5", "train.threads=1"),
         "--run-dir", str(run), "--no-progress"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:  # the other writers and the reader run in this process: the lock is the writer process's
        _wait_for(lambda: checkpoint.exists(run, "last"), proc=writer)
        code, err = run_cli(["train", "--resume", run, "--no-progress", *sets("train.max_steps=1")], capsys)
        assert code == 2 and err == [f"rnnlab: error: run directory {run} is in use by another rnnlab process "
                                     f"(PID {writer.pid}); wait for it to finish or stop it"], err
        code, err = run_cli(["train", *sets(f"data.path={tiny_text}", *TINY, "train.max_steps=2"), "--run-dir", run,
                             "--overwrite", "--no-progress"], capsys)
        one_error(code, err, f"(PID {writer.pid})")
        assert (run / "config.toml").is_file()  # --overwrite did not empty a run that is being written
        code, err = run_cli(["eval", run, "--checkpoint", "last"], capsys)
        assert code == 0, err
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    step = checkpoint.load(run)[1]["step"]
    code, err = run_cli(["train", "--resume", run, "--no-progress", *sets(f"train.max_steps={step + 2}")], capsys)
    assert code == 0, err  # the killed holder's lock went with it
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evaluations = [(m["step"], m["split"]) for m in metrics if "split" in m]
    assert len(set(evaluations)) == len(evaluations)


SIGTERM_IN_FINAL_EVALUATION = """
import os, signal, sys
from rnnlab import cli, trainer
real = trainer.Trainer._evaluate
def evaluate(self, final=False):
    if final:
        os.kill(os.getpid(), signal.SIGTERM)
    return real(self, final)
trainer.Trainer._evaluate = evaluate
sys.exit(cli.main(sys.argv[1:]))
"""


def test_sigterm_during_the_final_evaluation_exits_130_and_the_run_resumes(tmp_path, tiny_text):
    run = tmp_path / "run"
    argv = ["train", *sets(f"data.path={tiny_text}", *TINY, "train.max_steps=4", "train.threads=1"),
            "--run-dir", str(run), "--no-progress"]
    done = subprocess.run([sys.executable, "-c", SIGTERM_IN_FINAL_EVALUATION, *argv], env=ENV, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines()[-1] == (f"rnnlab: interrupted during the final evaluation; "
                                            f"resume with: rnnlab train --resume {run}")
    assert not (run / "summary.json").exists()
    again = subprocess.run([sys.executable, "-m", "rnnlab", "train", "--resume", str(run), "--no-progress"], env=ENV,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and json.loads((run / "summary.json").read_text())["steps"] == 4, again.stderr


# ------------------------------------------------------ 3, 4. resume changes
@pytest.fixture
def corpora(tmp_path) -> tuple[Path, str]:
    """A corpus file and another text with exactly the same characters and length."""
    lines = [f"line {i}: the cat sat on the mat, the dog sat on the log.\n" for i in range(120)]
    path = tmp_path / "corpus.txt"
    path.write_text("".join(lines), encoding="utf-8")
    return path, "".join(reversed(lines))


def test_resume_refuses_another_corpus_with_the_same_characters(tmp_path, corpora, capsys):
    corpus, shuffled = corpora
    run = tmp_path / "run"
    train_tiny(corpus, run, capsys)
    config_before = (run / "config.toml").read_text()
    corpus.write_text(shuffled, encoding="utf-8")  # same vocabulary, same size, other text
    code, err = run_cli(["train", "--resume", run, "--no-progress", *sets("train.max_steps=6")], capsys)
    one_error(code, err, "changed since its checkpoint: the corpus's train split (size or SHA-256)")
    assert (run / "config.toml").read_text() == config_before


@pytest.mark.parametrize("change, listed", [
    ("train.batch_size=4", "train.batch_size 8 -> 4"),
    ("train.optimizer=sgd", "train.optimizer 'adam' -> 'sgd'"),
    ("train.dtype=float64", "train.dtype 'float32' -> 'float64'"),
    ("model.backend=numpy", "model.backend 'torch' -> 'numpy'"),
    ("train.lr=0.01", "train.lr 0.002 -> 0.01"),
])
def test_resume_refuses_every_change_to_the_computation_and_names_it(tmp_path, corpora, capsys, change, listed):
    run = tmp_path / "run"
    train_tiny(corpora[0], run, capsys, "data.batcher=window")  # window batchers carry no state to betray a batch size
    code, err = run_cli(["train", "--resume", run, "--no-progress", *sets(change, "train.max_steps=6")], capsys)
    one_error(code, err, listed)
    assert "(only train.max_steps, train.epochs, train.max_minutes" in err[-1]


def test_resume_accepts_the_allow_list(tmp_path, corpora, capsys):
    run = tmp_path / "run"
    train_tiny(corpora[0], run, capsys)
    moved = tmp_path / "moved.txt"  # the same corpus at another path is the same corpus
    shutil.copy(corpora[0], moved)
    code, err = run_cli(["train", "--resume", run, "--no-progress",
                         *sets("train.max_steps=6", "train.epochs=50", "train.max_minutes=5", "train.eval_every=3",
                               "train.checkpoint_every=3", "train.checkpoint_minutes=1", "train.threads=1",
                               f"data.path={moved}")], capsys)
    assert code == 0, err
    assert checkpoint.load(run)[1]["step"] == 6


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="needs a CPU with native bf16")
def test_carried_state_is_stored_in_the_model_dtype_and_bf16_runs_refuse_the_numpy_backend(tmp_path, corpora, capsys):
    run = tmp_path / "run"
    train_tiny(corpora[0], run, capsys, "train.bf16=on")
    tensors, meta = checkpoint.load(run)
    states = {k: v.dtype for k, v in tensors.items() if k.startswith("state.")}
    assert states and set(states.values()) == {torch.float32}, states
    assert meta["fingerprint"]["bf16"] is True
    code, err = run_cli(["train", "--resume", run, "--no-progress", *sets("model.backend=numpy", "train.bf16=off")],
                        capsys)
    one_error(code, err, "model.backend 'torch' -> 'numpy'")


# ------------------------------------------------------ 5. degenerate sampling
@pytest.mark.parametrize("logits", [
    [[-np.inf, -np.inf, -np.inf]],  # every token masked
    [[np.inf, 0.0, 1.0]],  # a diverged model
    [[np.nan, 2.0, 1.0]],
    [[3e38, -3e38, 0.0]],  # finite, but the differences overflow
])
def test_the_sampler_falls_back_to_argmax_when_the_distribution_degenerates(logits):
    logits = np.asarray(logits, np.float32)
    expected = np.where(np.isnan(logits), -np.inf, logits).argmax(-1)
    u = np.array([0.5])
    for temperature in (1.0, 1e-50, 1e300, np.inf):  # the last three are refused by validation; choose copes anyway
        with np.errstate(all="ignore"):
            assert choose(logits, temperature, 0, 1.0, u).tolist() == expected.tolist()
    with np.errstate(all="ignore"):
        assert choose(logits, 1.0, 0, 1e-300, u).tolist() == expected.tolist()


@pytest.mark.parametrize("argv, fragment", [
    (["--temperature", "1e-50"], "temperature must be 0 (greedy) or in [0.001, 100], got 1e-50"),
    (["--temperature", "1e300"], "temperature must be 0 (greedy) or in [0.001, 100]"),
    (["--temperature", "inf"], "argument --temperature: must be a finite number, got 'inf'"),
    (["--top-p", "1e-300"], "top_p must be in [1e-06, 1], got 1e-300"),
    (["--seed", str(2**70)], "argument --seed: must be between 0 and 9223372036854775807"),
    (["--length", "1000001"], "argument --length: must be between 1 and 1000000"),
])
def test_generate_refuses_parameters_that_cannot_be_sampled(tmp_path, corpora, capsys, argv, fragment):
    run = tmp_path / "run"
    train_tiny(corpora[0], run, capsys)
    code, err = run_cli(["generate", run, "--length", "5", *argv], capsys)
    one_error(code, err, fragment)


@pytest.mark.parametrize("setting, fragment", [
    ("data.max_vocab=1", "data.max_vocab=1 leaves no token to sample"),
    ("generate.temperature=1e-50", "generate.temperature must be 0 (greedy) or in [0.001, 100]"),
    ("generate.top_p=1e-300", "generate.top_p must be in [1e-06, 1]"),
    ("train.seed=-1", "train.seed must be between 0 and 2**63-1"),
    ("train.sample_length=2000000", "train.sample_length must be between 1 and 1,000,000"),
    ("name=../../escaped", "name must not contain '/'"),
    ("model.hidden=1000000000", "the model is too large for this machine"),
    ("train.threads=1000000", "train.threads must be at most"),  # issue 21: libgomp crashed (exit 139)
    ("train.threads=20000", "train.threads must be at most"),
])
def test_bad_configurations_are_refused_before_the_run_directory_exists(tmp_path, corpora, capsys, setting, fragment):
    run = tmp_path / "run"
    code, err = run_cli(["train", *sets(f"data.path={corpora[0]}", *TINY, "train.max_steps=4", "train.samples=1",
                                        setting), "--run-dir", run, "--no-progress"], capsys)
    one_error(code, err, fragment)
    assert not run.exists()


def test_a_run_name_with_separators_cannot_leave_the_runs_directory(tmp_path, corpora, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(["train", *sets(f"data.path={corpora[0]}", *TINY, "name=../../x"), "--no-progress"], capsys)
    one_error(code, err, "name must not")
    assert list(tmp_path.iterdir()) == [corpora[0]]


# -------------------------------------------- 6, 11. JSON and forged metadata
def test_bounded_json_measures_depth_without_recursion():
    assert safejson.depth('{"a": [1, {"b": "[[[["}]}') == 3  # brackets inside strings do not count
    assert safejson.loads('{"x": "\\"]"}') == {"x": '"]'}
    for bad in ["[" * 100_000, "[" * 65 + "]" * 65, "x" * 10, b"\xff"]:
        with pytest.raises(safejson.BadJSON):
            safejson.loads(bad)
    with pytest.raises(safejson.BadJSON, match="too large"):
        safejson.loads("[1]", max_bytes=2)


@pytest.fixture
def run(tmp_path, corpora, capsys) -> Path:
    run = tmp_path / "run"
    train_tiny(corpora[0], run, capsys)
    return run


def _plant_deep_meta(run: Path) -> None:
    where = json.loads((run / "checkpoints" / "last.json").read_text())
    (run / "checkpoints" / where["dir"] / checkpoint.META).write_text("[" * 100_000)


def _plant_deep_pointer(run: Path) -> None:
    (run / "checkpoints" / "last.json").write_text("[" * 100_000)


def _plant_deep_metrics(run: Path) -> None:
    with open(run / "metrics.jsonl", "a") as f:
        f.write("[" * 100_000 + "\n")


def _plant_deep_config(run: Path) -> None:
    (run / "config.toml").write_text("name = " + "[" * 100_000 + "]" * 100_000 + "\n")


@pytest.mark.parametrize("plant, argv, fragment", [
    (_plant_deep_config, ["eval", "{run}"], "config.toml is not valid TOML: nested too deeply"),
    (_plant_deep_config, ["train", "--config", "{run}/config.toml"],
     "config.toml is not valid TOML: nested too deeply"),
    (_plant_deep_meta, ["eval", "{run}", "--checkpoint", "last"], "is corrupted or incomplete"),
    (_plant_deep_meta, ["generate", "{run}", "--checkpoint", "last", "--length", "3"], "is corrupted or incomplete"),
    (_plant_deep_meta, ["train", "--resume", "{run}"], "is corrupted or incomplete"),
    (_plant_deep_pointer, ["eval", "{run}", "--checkpoint", "last"], "is corrupted or incomplete"),
    (_plant_deep_metrics, ["report", "{run}", "--out", "{run}/r.md", "--format", "md", "--no-samples"],
     "metrics.jsonl"),
])
def test_deeply_nested_json_in_a_run_is_one_line(run, capsys, plant, argv, fragment):
    plant(run)
    code, err = run_cli([a.format(run=run) for a in argv], capsys)
    one_error(code, err, fragment)


@pytest.mark.parametrize("change, fragment", [
    (lambda m: m.update(step="<img src=x onerror=alert(1)>"), "'step' has an invalid value"),
    (lambda m: m.update(step=-5), "'step' has an invalid value"),
    (lambda m: m.pop("vocab"), "'vocab' is missing"),
    (lambda m: m.update(vocab={"level": "char", "tokens": [1, 2]}), "'vocab' has an invalid value"),
    (lambda m: m.update(epoch=1.5), "'epoch' has an invalid value"),
    (lambda m: m.update(train_totals=["a"]), "'train_totals' has an invalid value"),
    (lambda m: m.update(logs={"metrics.jsonl": 10**12}), "'logs' puts the end of metrics.jsonl at byte 1000000000000"),
    (lambda m: m.update(logs={"../../etc/passwd.jsonl": 0}), "'logs' names '../../etc/passwd.jsonl'"),
    (lambda m: m.update(optimizer=[]), "'optimizer' has an invalid value"),
    (lambda m: m.update(fingerprint={"corpus": [], "bf16": False}), "'fingerprint' has an invalid value"),
    (lambda m: m.pop("fingerprint"), "'fingerprint' is missing"),  # issue 21: the corpus check was skipped
])
def test_forged_checkpoint_metadata_is_refused_with_one_line(run, capsys, change, fragment):
    for tag in ("last", "best"):
        if tag == "best" and "logs" in fragment:
            continue  # offsets are checked where they are used: resuming 'last'
        resign(run, change, tag)
    for argv in (["eval", run, "--checkpoint", "last"], ["train", "--resume", run]):
        code, err = run_cli(argv, capsys)
        one_error(code, err, fragment)


def test_non_finite_weights_are_refused_with_one_line(run, capsys):
    from safetensors.torch import load_file, save_file

    where = json.loads((run / "checkpoints" / "last.json").read_text())
    path = run / "checkpoints" / where["dir"] / checkpoint.TENSORS
    tensors = load_file(str(path))
    name = next(k for k in tensors if k.startswith("model.") and tensors[k].is_floating_point())
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(path))
    resign(run, lambda m: m.update(sha256=checkpoint._sha256(path)))
    code, err = run_cli(["generate", run, "--checkpoint", "last", "--length", "3"], capsys)
    one_error(code, err, f"has non-finite values in {name}")


def test_checkpoint_files_share_one_mode(tmp_path):
    old = os.umask(0o002)
    try:
        checkpoint.save(tmp_path, "last", {"model.w": torch.zeros(3)},
                        {"step": 1, "vocab": {"level": "char", "tokens": ["<unk>", "a"]}, "config": {}})
    finally:
        os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path / "checkpoints").rglob("*") if p.is_file()}
    assert set(modes.values()) == {"0o664"}, modes


def test_summary_and_run_files_are_written_atomically(run, monkeypatch):
    written = []
    real = checkpoint.write_atomic
    monkeypatch.setattr(checkpoint, "write_atomic",
                        lambda path, data: (written.append(Path(path).name), real(path, data)))
    from rnnlab.config import load_config
    from rnnlab.trainer import train_config

    cfg = load_config(None, str(run / "config.toml"), ["train.max_steps=2", "train.checkpoint_every=0"])
    train_config(cfg, run.parent / "again", progress=False)
    assert {"config.toml", "vocab.json", "summary.json"} <= set(written)


# ------------------------------------------------------ 9, 10. sizes, arguments
@pytest.mark.parametrize("argv, fragment", [
    (["gradflow", "--steps", "0"], "gradflow: argument --steps: must be >= 1, got 0"),
    (["gradflow", "--steps", "-5"], "gradflow: argument --steps: must be >= 1, got -5"),
    (["gradflow", "--hidden", "0"], "gradflow: argument --hidden: must be >= 1, got 0"),
    (["plot", "kgate", "--tau", "nan"], "plot kgate: argument --tau: must be a finite number, got 'nan'"),
    (["plot", "kgate", "--r-on", "0"], "argument --r-on: must be in (0, 1], got 0"),
    (["experiment", "palindrome", "--threads", "-1"], "argument --threads: must be >= 0 (0 = automatic), got -1"),
    (["experiment", "frequency", "--jobs", "-2"], "argument --jobs: must be >= 0 (0 = automatic), got -2"),
    (["experiment", "ngram", "--seed", "-1"], "argument --seed: must be between 0 and 9223372036854775807"),
    (["gradcheck", "--seed", str(2**64)], "argument --seed: must be between 0 and"),
    (["report", "x", "--sample-length", "1000001"], "argument --sample-length: must be between 1 and 1000000"),
    (["serve", "x", "--port", "70000"], "argument --port: must be between 0 and 65535"),
    (["train", "--nproc", "0"], "argument --nproc: must be >= 1"),
    (["train", "--nproc", "1000000"], "argument --nproc: must be at most"),  # issue 21: no upper bound
    (["experiment", "frequency", "--jobs", "1000000"], "argument --jobs: must be at most"),
    (["experiment", "palindrome", "--threads", "20000"], "argument --threads: must be at most"),
    (["experiment", "optimizers", "--jobs", "1000000"], "argument --jobs: must be at most"),
    (["train", "--max-steps", "1.5"], "argument --max-steps: expects an integer, got '1.5'"),
    (["params", "--cell", "lstm", "--input", "3", "--hidden", "1e1", "--layers", "0"],
     "argument --layers: must be >= 1"),
])
def test_every_command_checks_its_numbers_like_set(capsys, argv, fragment):
    code, err = run_cli(argv, capsys)
    one_error(code, err, fragment)


def test_a_model_too_large_for_memory_is_refused_before_loading(run, capsys):
    text = (run / "config.toml").read_text().replace("hidden = 16", "hidden = 1000000000")
    (run / "config.toml").write_text(text)
    code, err = run_cli(["eval", run], capsys)
    one_error(code, err, "the model is too large for this machine")


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="needs a CPU with native bf16")
def test_a_bf16_run_resumes_bitwise_with_its_state_in_float32(tmp_path, corpora, capsys, monkeypatch):
    from rnnlab.trainer import Trainer

    class Crash(BaseException):
        """SIGKILL inside the process: nothing saves on the way out."""

    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train_tiny(corpora[0], whole, capsys, "train.bf16=on", "train.max_steps=6")
    real, calls = Trainer._update, []

    def step(self, *args):
        calls.append(1)
        if len(calls) == 6:  # after the step-4 checkpoint
            raise Crash
        return real(self, *args)

    monkeypatch.setattr(Trainer, "_update", step)
    with pytest.raises(Crash):
        train_tiny(corpora[0], parts, capsys, "train.bf16=on", "train.max_steps=6")
    monkeypatch.undo()
    assert checkpoint.load(parts)[1]["step"] == 4
    code, err = run_cli(["train", "--resume", parts, "--no-progress"], capsys)
    assert code == 0, err
    a, b = checkpoint.load(whole)[0], checkpoint.load(parts)[0]
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []


# ------------------------------------------------- issue 21: seven more breaks
def _symlink_to_victim(lock: Path) -> Path:
    victim = lock.parent.parent / "victim.txt"
    victim.write_text("precious\n")
    lock.symlink_to(victim)
    return victim


def _symlink_to_dev_null(lock: Path) -> None:
    lock.symlink_to("/dev/null")


def _dangling_symlink(lock: Path) -> Path:
    lock.symlink_to(lock.parent.parent / "created-by-the-lock")
    return lock.parent.parent / "created-by-the-lock"


def _fifo(lock: Path) -> None:
    os.mkfifo(lock)


@pytest.mark.parametrize("plant", [_symlink_to_victim, _symlink_to_dev_null, _dangling_symlink, _fifo])
def test_a_lock_that_is_not_a_regular_file_is_never_followed_and_named(run, capsys, plant):
    """Break 1 and 6: the lock is opened with O_NOFOLLOW and must be a regular file; the line names it;
    nothing outside the run directory is written (the victim keeps its text, the dangling target stays absent).
    --overwrite replaces such a .lock with a regular one instead of writing through it."""
    lock = run / ".lock"
    lock.unlink()
    plant(lock)
    outside = {p: p.read_bytes() for p in run.parent.iterdir() if p.is_file() and not p.is_symlink()}
    code, err = run_cli(["train", "--resume", run, "--no-progress", *sets("train.max_steps=6")], capsys)
    one_error(code, err, str(lock))
    assert "symbolic link" in err[-1] or "not a regular file" in err[-1]
    assert {p: p.read_bytes() for p in run.parent.iterdir() if p.is_file() and not p.is_symlink()} == outside
    assert not (run.parent / "created-by-the-lock").exists()
    config = (run / "config.toml").read_text()
    code, err = run_cli(["train", *sets(f"data.path={run.parent / 'corpus.txt'}", *TINY, "train.max_steps=2",
                                        "train.threads=1"), "--run-dir", run, "--overwrite", "--no-progress"], capsys)
    assert code == 0, err
    assert not lock.is_symlink() and lock.is_file() and lock.read_text() == f"{os.getpid()}\n"
    assert {p: p.read_bytes() for p in run.parent.iterdir() if p.is_file() and not p.is_symlink()} == outside
    assert not (run.parent / "created-by-the-lock").exists()
    assert (run / "config.toml").read_text() != config  # it was overwritten: max_steps=2


def test_a_full_disk_when_a_run_starts_names_the_file_and_leaves_no_half_made_run(tmp_path, corpora, capsys,
                                                                                 monkeypatch):
    """Break 6: ENOSPC while writing vocab.json (after config.toml) is one line naming vocab.json, and the
    run directory this process created is gone (no config.toml without vocab.json)."""
    import errno

    real = checkpoint.write_atomic

    def full(path, data):
        if Path(path).name == "vocab.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    monkeypatch.setattr(checkpoint, "write_atomic", full)
    run = tmp_path / "new" / "run"
    code, err = run_cli(["train", *sets(f"data.path={corpora[0]}", *TINY, "train.max_steps=2", "train.threads=1"),
                         "--run-dir", run, "--no-progress"], capsys)
    one_error(code, err, f"cannot write {run / 'vocab.json'}: No space left on device")
    assert not any(line.startswith("run directory: ") for line in err)  # printed only once the run is ready
    assert not run.exists()
    existing = tmp_path / "existing"
    existing.mkdir()  # a directory the user made: emptied of what this process wrote, kept
    code, err = run_cli(["train", *sets(f"data.path={corpora[0]}", *TINY, "train.max_steps=2", "train.threads=1"),
                         "--run-dir", existing, "--no-progress"], capsys)
    one_error(code, err, f"cannot write {existing / 'vocab.json'}")
    assert existing.is_dir() and not (existing / "config.toml").exists()


def test_thread_and_process_bounds_follow_the_usable_cpus(monkeypatch, capsys):
    """Break 2: the bound is PARALLEL_PER_CPU per CPU of this process's affinity: exactly that many is accepted."""
    from rnnlab import argtypes, bounds, threads
    from rnnlab.config import Config, validate
    from rnnlab.errors import UserError

    monkeypatch.setattr(threads, "usable_cpus", lambda: [0, 1, 2])
    assert bounds.max_parallel() == 3 * bounds.PARALLEL_PER_CPU
    assert argtypes.processes(str(bounds.max_parallel())) == bounds.max_parallel()
    cfg = Config()
    cfg.train.threads = bounds.max_parallel()
    validate(cfg)
    cfg.train.threads += 1
    with pytest.raises(UserError, match=f"train.threads must be at most {bounds.max_parallel()}"):
        validate(cfg)
    code, err = run_cli(["train", "--nproc", str(bounds.max_parallel() + 1)], capsys)
    one_error(code, err, f"argument --nproc: must be at most {bounds.max_parallel()} (4 per usable CPU)")


def test_the_stop_matcher_finds_the_first_occurrence_and_holds_back_exactly_a_partial_one():
    """Break 5: the incremental matcher agrees with str.find on every split of the text into pieces, and its
    state is the longest end of the text that begins the stop string (what the stream holds back)."""
    from rnnlab.generate import StopMatcher

    rng = np.random.default_rng(0)
    for _ in range(300):
        stop = "".join(rng.choice(list("ab"), rng.integers(1, 6)))
        text = "".join(rng.choice(list("ab "), rng.integers(0, 30)))
        matcher, state, seen, found = StopMatcher(stop), 0, "", -1
        while len(seen) < len(text) and found < 0:
            piece = text[len(seen):len(seen) + int(rng.integers(1, 4))]
            state, end = matcher.feed(state, piece)
            if end >= 0:
                found = len(seen) + end - len(stop)
            seen += piece
            if found < 0:
                assert state == max(
                    k for k in range(len(stop)) if k <= len(seen) and stop.startswith(seen[len(seen) - k :])
                )
        assert found == text.find(stop), (stop, text)


def test_a_long_stop_string_is_refused_above_the_bound_and_costs_little_below_it(run, capsys):
    """Break 5: a 100,000-character stop is one line (CLI) / UserError (API); a stop string at the bound
    (1,000 characters, never found) costs little next to sampling the same text without one: the old
    matcher re-checked every end of the text against the stop string at each token: 10.0 s against 1.7 s
    without a stop string on the loaded 2-core EPYC, where the linear one takes about the same as none."""
    import rnnlab
    from rnnlab.bounds import MAX_STOP
    from rnnlab.errors import UserError

    code, err = run_cli(["generate", run, "--checkpoint", "last", "--length", "16000", "--stop", "x" * 100_000], capsys)
    one_error(code, err, "the stop string has 100,000 characters; at most 1,000 are allowed")
    loaded = rnnlab.load(run, "last")
    with pytest.raises(UserError, match="at most 1,000"):
        loaded.generate(length=10, stop="x" * (MAX_STOP + 1))

    def seconds(stop: str) -> float:
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            texts = loaded.generate(length=8000, temperature=1.0, seed=1, stop=stop)
            best = min(best, time.perf_counter() - start)
        assert len(texts[0]) >= 8000  # the stop string never appeared: all 8,000 characters were matched
        return best

    plain, long_stop = seconds(""), seconds("\x01" * MAX_STOP)
    assert long_stop < 2 * plain + 0.5, (plain, long_stop)  # the same sampling and an O(1) matcher step a character


@pytest.mark.parametrize("change, fragment", [
    (lambda m: m.update(index=10**6), "'index' 1000000 is outside an epoch of"),  # issue 21: a traceback
    (lambda m: m.update(epoch=10**6), "'epoch' 1000000 and 'index'"),
    (lambda m: m.update(best_accuracy_step=m["step"] + 1), "'best_accuracy_step' (5) is more than 'step' (4)"),
    (lambda m: m.update(faults=m["step"] + 1), "'faults' (5) is more than 'step' (4)"),
    (lambda m: m.update(consecutive_faults=1), "'consecutive_faults' (1) is more than 'faults' (0)"),
    (lambda m: m.update(thread_steps={"1": m["step"] + 1}), "'thread_steps' (5) is more than 'step' (4)"),
])
def test_forged_positions_in_a_checkpoint_are_refused_on_resume(run, capsys, change, fragment):
    """Break 3: every position field is checked against the run's batches an epoch and its step count."""
    resign(run, change)
    code, err = run_cli(["train", "--resume", run, "--no-progress", *sets("train.max_steps=6")], capsys)
    one_error(code, err, f"the 'last' checkpoint in {run} cannot be resumed: {fragment}")


def test_a_forged_integer_tensor_is_refused_with_one_line(run, capsys):
    """Break 3: a checkpoint whose embedding is int64 (valid safetensors, checksums recomputed) loaded and
    trained; every tensor's dtype is now checked: uint8 for RNG states, floating point for the rest."""
    from safetensors.torch import load_file, save_file

    where = json.loads((run / "checkpoints" / "last.json").read_text())
    path = run / "checkpoints" / where["dir"] / checkpoint.TENSORS
    tensors = load_file(str(path))
    name = next(k for k in tensors if k.startswith("model.") and "embed" in k)
    tensors[name] = tensors[name].round().long()
    save_file(tensors, str(path))
    resign(run, lambda m: m.update(sha256=checkpoint._sha256(path)))
    for argv in (["train", "--resume", run, "--no-progress", *sets("train.max_steps=6")],
                 ["generate", run, "--checkpoint", "last", "--length", "3"]):
        code, err = run_cli(argv, capsys)
        one_error(code, err, f"{name} has dtype int64, expected float32 or float64")


SIGNALS_DURING_TRAINING = """
import os, signal, sys, threading, time
from rnnlab import cli, trainer
count, signum, gap = int(sys.argv[1]), getattr(signal, sys.argv[2]), float(sys.argv[3])
real = trainer.Trainer.train_next_batch
def send():
    for _ in range(count):
        os.kill(os.getpid(), signum)
        time.sleep(gap)
def train_next_batch(self):
    if self.progress.step == 2:
        if gap:
            threading.Thread(target=send).start()
        else:
            send()  # both signals arrive inside this step, before any checkpoint
    return real(self)
trainer.Trainer.train_next_batch = train_next_batch
sys.argv = ["rnnlab", *sys.argv[4:]]
sys.exit(cli.main())  # as the rnnlab program runs it (its own command line)
"""


def _signalled_run(tmp_path, corpus, count: int, signum: str, gap: float, *extra: str):
    run = tmp_path / "run"
    argv = ["train", *sets(f"data.path={corpus}", *TINY, "train.max_steps=100000", "train.threads=1", *extra),
            "--run-dir", str(run), "--no-progress"]
    done = subprocess.run([sys.executable, "-c", SIGNALS_DURING_TRAINING, str(count), signum, str(gap), *argv],
                          env=ENV, capture_output=True, text=True, timeout=120)
    return run, done


def test_two_sigints_before_any_checkpoint_do_not_promise_a_resume(tmp_path, corpora):
    """Break 7: the second SIGINT quits inside step 3, before anything was saved: the line says that nothing
    can be resumed (it used to print "resume with: rnnlab train --resume ...")."""
    run, done = _signalled_run(tmp_path, corpora[0], 2, "SIGINT", 0.0, "train.checkpoint_every=0")
    assert done.returncode == 130, done.stderr
    assert not checkpoint.exists(run, "last")
    assert done.stderr.splitlines()[-1] == (f"rnnlab: interrupted; no checkpoint was written yet, so nothing can be "
                                            f"resumed: start again (--run-dir {run} --overwrite reuses the directory)")


@pytest.mark.parametrize("trial", range(3))
def test_three_sigterms_10_ms_apart_always_end_with_status_130_and_a_true_line(tmp_path, corpora, trial):
    """Break 7: the third SIGTERM arrived after the handlers were restored and killed the process (status -15).
    Whichever signal lands where, the run ends with 130, and offers a resume exactly when a checkpoint exists."""
    run, done = _signalled_run(tmp_path, corpora[0], 3, "SIGTERM", 0.01)
    assert done.returncode == 130, (done.returncode, done.stderr)
    last = done.stderr.splitlines()[-1]
    if checkpoint.exists(run, "last"):
        checkpoint.load(run)  # complete and readable
        assert last.endswith(f" with: rnnlab train --resume {run}") and "resume" in last, last
    else:
        assert "nothing can be resumed" in last, last
