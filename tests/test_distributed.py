"""Data-parallel training (rnnlab.distributed): sharding, and real 2-process
runs on CPU with gloo compared with 1-process runs in float64."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import TINY

from rnnlab import checkpoint
from rnnlab.cli import main
from rnnlab.config import load_config
from rnnlab.data.batching import StreamBatcher, WindowBatcher
from rnnlab.distributed import Shard, eval_shard, shard_columns
from rnnlab.errors import UserError
from rnnlab.evaluate import evaluate
from rnnlab.models import build_model
from rnnlab.runs import read_jsonl
from rnnlab.trainer import resume, train_config

TOL = 1e-6  # float64; the differences actually seen are ~1e-15
EXACT = ["train.dtype=float64", "train.schedule=constant", "train.checkpoint_every=0", "train.eval_every=4"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _overrides(text, cell: str, steps: int) -> list[str]:
    return [*TINY, *EXACT, f"data.path={text}", f"model.cell={cell}", f"train.max_steps={steps}"]


def _cli(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", **env)
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=timeout)


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def _tensors(run_dir, tag: str = "last") -> dict[str, torch.Tensor]:
    tensors, _ = checkpoint.load(run_dir, tag)
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "optim.", "state."))}


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys() and any(k.startswith("state.") for k in a)
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def _same_metrics(a, b) -> None:
    """The same records (one writer) with the same numbers (sharded evaluation = whole evaluation)."""
    ra, rb = (read_jsonl(d / "metrics.jsonl") for d in (a, b))
    assert [(r["step"], r["split"]) for r in ra] == [(r["step"], r["split"]) for r in rb]
    # evaluate() takes the cross-entropy in float32: valid losses agree to ~1e-8, train losses to ~1e-15
    assert all(abs(x["loss"] - y["loss"]) < 1e-6 and x["tokens"] == y["tokens"] for x, y in zip(ra, rb))


# ----------------------------------------------------------------- sharding
@pytest.mark.parametrize("world", [1, 2, 4])
def test_shards_partition_every_batch(world):
    data = np.arange(1000) % 37
    for batcher in (StreamBatcher(data, 8, 5), WindowBatcher(data, 8, 5, seed=3)):
        for epoch, index in [(0, 0), (0, 7), (2, 3)]:
            x, y = batcher.batch(epoch, index)
            parts = [Shard(batcher, r, world).batch(epoch, index) for r in range(world)]
            assert all(p[0].shape == (5, 8 // world) for p in parts)
            assert torch.equal(torch.cat([p[0] for p in parts], 1), x)
            assert torch.equal(torch.cat([p[1] for p in parts], 1), y)


def test_batch_size_must_divide():
    with pytest.raises(UserError, match="train.batch_size=6 must be divisible by the number of processes \\(4\\)"):
        shard_columns(6, 0, 4)


@pytest.mark.parametrize("length,batch_size", [(3001, 16), (2000, 8), (41, 16)])
def test_sharded_evaluation_sums_to_the_whole(length, batch_size):
    torch.manual_seed(0)
    cfg = load_config(overrides=["model.hidden=8", "model.layers=1"])
    model = build_model(cfg.model, 37).double()
    data = (np.arange(length) * 7) % 37
    whole = evaluate(model, data, batch_size, 32)
    for world in (2, 4):
        nll = correct = tokens = 0.0
        for r in range(world):
            start, stop, streams = eval_shard(length, batch_size, r, world)
            m = evaluate(model, data[start:stop], streams, 32)
            nll, correct, tokens = (nll + m["loss"] * m["tokens"], correct + m["accuracy"] * m["tokens"],
                                    tokens + m["tokens"])
        assert tokens == whole["tokens"]
        assert round(correct) == round(whole["accuracy"] * whole["tokens"])
        assert abs(nll / tokens - whole["loss"]) < 1e-6  # evaluate() takes the cross-entropy in float32


@pytest.mark.parametrize("nproc,message",
                         [("0", "train: argument --nproc: must be >= 1, got 0"),
                          ("3", "train.batch_size=8 must be divisible by the number of processes (3)")])
def test_nproc_is_checked_before_starting_processes(tmp_path, tiny_text, capsys, nproc, message):
    argv = ["train", "--nproc", nproc, "--run-dir", str(tmp_path / "run"), *_sets([*TINY, f"data.path={tiny_text}"])]
    start = time.monotonic()
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"rnnlab: error: {message}"  # once, from this process
    assert time.monotonic() - start < 5 and not (tmp_path / "run").exists()


def test_dtype_is_validated():
    with pytest.raises(UserError, match="train.dtype must be one of float32, float64"):
        load_config(overrides=["train.dtype=float16"])


# ----------------------------------------------------- 2 processes vs 1
@pytest.mark.timeout(240)
def test_lstm_two_processes_match_one_and_resume_across_world_sizes(tmp_path, tiny_text, capsys):
    """1 process, global batch 8  ==  2 processes x 4 streams, after 4 and 8
    steps; a 2-process checkpoint resumes in 1 process and vice versa."""
    a8, a4, b = tmp_path / "a8", tmp_path / "a4", tmp_path / "b"
    train_config(load_config(overrides=_overrides(tiny_text, "lstm", 8)), a8, progress=False)
    train_config(load_config(overrides=_overrides(tiny_text, "lstm", 4)), a4, progress=False)
    ref4, ref8 = _tensors(a4), _tensors(a8)
    assert ref8["model.embedding.weight"].dtype == torch.float64
    assert _max_diff(ref4, ref8) > 1e-3  # training moves the weights far more than the tolerance

    p = _cli("rnnlab", "train", "--nproc", "2", "--run-dir", str(b), "--no-progress",
             *_sets(_overrides(tiny_text, "lstm", 4)))
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("valid: loss") == 1  # only rank 0 reports
    assert _max_diff(_tensors(b), ref4) < TOL
    _same_metrics(b, a4)

    # The 2-process checkpoint in 1-process eval and generate.
    assert main(["eval", str(b), "--checkpoint", "last", "--json", "--device", "auto"]) == 0
    final = json.loads((b / "summary.json").read_text())["final"]["valid"]
    assert abs(json.loads(capsys.readouterr().out)["loss"] - final["loss"]) < 1e-6  # float32 model
    samples = []
    for run in (b, a4):  # greedy: the same weights write the same text
        assert main(["generate", str(run), "--checkpoint", "last", "--length", "25", "--temperature", "0",
                     "--json"]) == 0
        samples.append(json.loads(capsys.readouterr().out)[0]["samples"][0])
    assert samples[0] and samples[0] == samples[1]

    # 2 -> 1 process: resume b here; 1 -> 2 processes: resume a4 with --nproc 2.
    resume(b, ["train.max_steps=8"], progress=False)
    assert _max_diff(_tensors(b), ref8) < TOL
    p = _cli("rnnlab", "train", "--nproc", "2", "--resume", str(a4), "--no-progress", "--set", "train.max_steps=8")
    assert p.returncode == 0, p.stderr[-3000:]
    assert _max_diff(_tensors(a4), ref8) < TOL
    _same_metrics(a4, a8)
    _same_metrics(b, a8)


@pytest.mark.timeout(180)
def test_gru_two_processes_under_torchrun_match_one(tmp_path, tiny_text):
    one, two = tmp_path / "one", tmp_path / "two"
    overrides = _overrides(tiny_text, "gru", 6)
    train_config(load_config(overrides=overrides), one, progress=False)
    p = _cli("torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "rnnlab", "train",
             "--run-dir", str(two), "--no-progress", *_sets(overrides))
    assert p.returncode == 0, p.stderr[-3000:]
    assert _max_diff(_tensors(two), _tensors(one)) < TOL
    assert (two / "summary.json").is_file() and (two / "vocab.json").is_file()


# ------------------------------------------------------------ exit
AT_EXIT = """
import atexit, os, runpy
from pathlib import Path

def threads_at_exit():  # runs when the interpreter starts tearing down
    names = sorted(Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task"))
    Path(os.environ["OUT"], "rank" + os.environ["RANK"]).write_text(" ".join(names))

atexit.register(threads_at_exit)
runpy.run_module("rnnlab", run_name="__main__")
"""


@pytest.mark.timeout(180)
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc")
def test_processes_do_not_tear_down_the_interpreter_under_gloo_threads(tmp_path, tiny_text):
    """DDP keeps the process group, hence gloo's threads, alive past destroy_process_group; a
    process that finalized the interpreter beside them once aborted ("terminate called without an
    active exception") and the launcher stopped rank 0 in its final evaluation. Each process must
    leave without tearing down the interpreter while a gloo thread runs."""
    script = tmp_path / "at_exit.py"
    script.write_text(AT_EXIT, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    p = _cli("torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script), "train",
             "--run-dir", str(tmp_path / "run"), "--no-progress", *_sets(_overrides(tiny_text, "lstm", 4)),
             OUT=str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "run" / "summary.json").is_file() and "valid: loss" in p.stdout  # rank 0's output got out
    for rank in (0, 1):
        at_exit = out / f"rank{rank}"
        assert not at_exit.exists() or "gloo" not in at_exit.read_text(), at_exit.read_text()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_two_process_resume_repeated(tmp_path, tiny_text):
    """The 2-process resume of a finished 1-process checkpoint, again and again: every one ends
    with status 0 and the same weights (the exit race above showed up once in a full suite)."""
    base = tmp_path / "base"
    train_config(load_config(overrides=_overrides(tiny_text, "lstm", 4)), base, progress=False)
    first = None
    for i in range(10):
        run = tmp_path / f"r{i}"
        shutil.copytree(base, run)
        p = _cli("rnnlab", "train", "--nproc", "2", "--resume", str(run), "--no-progress", "--set", "train.max_steps=8")
        assert p.returncode == 0, (i, p.stderr[-3000:])
        first = first or _tensors(run)
        assert _max_diff(_tensors(run), first) == 0, i  # the same processes on the same machine: bitwise


# ------------------------------------------------------ a process fails
FAULTY = """
import os, sys, time
import rnnlab.trainer
from rnnlab.cli import main

if os.environ["RANK"] == "1":  # rank 1 joins the group, then leaves or stalls
    def run(self):
        if os.environ["FAULT"] == "exit":
            os._exit(0)
        time.sleep(300)
    rnnlab.trainer.Trainer.run = run
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fault", ["exit", pytest.param("stall", marks=pytest.mark.slow)])
def test_a_lost_process_fails_the_job_with_one_line(tmp_path, tiny_text, fault):
    script = tmp_path / "faulty.py"
    script.write_text(FAULTY, encoding="utf-8")
    start = time.monotonic()
    p = _cli("torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script), "train",
             "--run-dir", str(tmp_path / "run"), "--no-progress",
             *_sets(_overrides(tiny_text, "lstm", 50) + ["train.dist_timeout=3"]), timeout=150, FAULT=fault)
    elapsed = time.monotonic() - start
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("rnnlab: error:")]
    assert len(lines) == 1 and "process 0 of 2 lost contact with the others" in lines[0], p.stderr[-3000:]
    assert ("timed out" in lines[0].lower()) == (fault == "stall")
    assert elapsed < 120


# ------------------------------------------------------------ slower checks
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dropout_masks_are_per_process_and_resume_exactly(tmp_path, tiny_text):
    """Each process draws its own dropout masks from its own seed: a 2-process
    run is reproducible, and resuming it (on 2 processes) continues it exactly."""
    overrides = _overrides(tiny_text, "lstm", 8) + ["model.dropout=0.3", "model.layers=2"]
    runs = {}
    for name, steps in (("straight", 8), ("again", 8), ("resumed", 4)):
        p = _cli("rnnlab", "train", "--nproc", "2", "--run-dir", str(tmp_path / name), "--no-progress",
                 *_sets(overrides + [f"train.max_steps={steps}"]))
        assert p.returncode == 0, p.stderr[-3000:]
    p = _cli("rnnlab", "train", "--nproc", "2", "--resume", str(tmp_path / "resumed"), "--no-progress",
             "--set", "train.max_steps=8")
    assert p.returncode == 0, p.stderr[-3000:]
    for name in ("straight", "again", "resumed"):
        runs[name] = _tensors(tmp_path / name)
    assert _max_diff(runs["straight"], runs["again"]) == 0
    assert _max_diff(runs["straight"], runs["resumed"]) == 0
    one = tmp_path / "one"  # one process draws other masks: the weights differ
    train_config(load_config(overrides=overrides), one, progress=False)
    assert _max_diff(runs["straight"], _tensors(one)) > 1e-3


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_adaptive_softmax_two_processes_match_one(tmp_path, tiny_text):
    """Tail clusters without targets get no gradient on some process: DDP must find unused parameters."""
    overrides = _overrides(tiny_text, "lstm", 8) + ["model.softmax=adaptive", "model.cutoffs=4,12", "train.seq_len=4"]
    train_config(load_config(overrides=overrides), tmp_path / "one", progress=False)
    p = _cli("rnnlab", "train", "--nproc", "2", "--run-dir", str(tmp_path / "two"), "--no-progress", *_sets(overrides))
    assert p.returncode == 0, p.stderr[-3000:]
    assert _max_diff(_tensors(tmp_path / "two"), _tensors(tmp_path / "one")) < TOL
