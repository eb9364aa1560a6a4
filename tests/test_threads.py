"""The thread policy (rnnlab/threads.py): a pure rule, the wait policy, and its use."""

import os
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch
from conftest import REPO

from rnnlab import threads
from rnnlab.config import load_config
from rnnlab.data.corpus import load_corpus
from rnnlab.models import build_model


def test_the_ceiling_is_one_thread_for_small_models_else_the_cores():
    small = threads.MIN_WORK_FOR_THREADS - 1
    assert threads.thread_ceiling(small, cores=16) == 1  # too little work to share
    assert threads.thread_ceiling(threads.MIN_WORK_FOR_THREADS, cores=2) == 2
    assert threads.thread_ceiling(10**12, cores=64) == threads.MAX_THREADS
    assert threads.thread_ceiling(10**12, cores=1) == 1
    assert threads.thread_ceiling(0, cores=4) == 1


def test_free_cores_counts_what_other_processes_leave():
    assert threads.free_cores(2, 0.0) == 2
    assert threads.free_cores(2, 0.2) == 2  # a light background process leaves the core free
    assert threads.free_cores(2, 0.5) == 1
    assert threads.free_cores(2, 1.0) == 1  # a busy loop or a second training run
    assert threads.free_cores(2, 3.0) == 1  # never fewer than one
    assert threads.free_cores(8, 2.9) == 5


class FakeMachine:
    """A /proc/stat file, a wall clock and this process's CPU clock, moved by hand."""

    def __init__(self, tmp_path, cpus=2):
        self.path, self.cpus = tmp_path / "stat", cpus
        self.now, self.own, self.busy = 0.0, 0.0, [0.0] * cpus
        self.write()

    def write(self):
        tick = os.sysconf("SC_CLK_TCK")
        lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]  # the all-CPU line: not read
        lines += [f"cpu{i} {round(b * tick)} 0 0 999999 0 0 0 0 0 0" for i, b in enumerate(self.busy)]
        self.path.write_text("\n".join(lines) + "\nintr 1 2 3\n")

    def run(self, seconds, own_cores, other_cores):
        """`seconds` pass; this process keeps `own_cores` busy, others `other_cores`."""
        self.now += seconds
        self.own += seconds * own_cores
        for i in range(self.cpus):
            self.busy[i] += seconds * (own_cores + other_cores) / self.cpus
        self.write()

    def governor(self, ceiling):
        chosen = []
        g = threads.ThreadGovernor(ceiling, cpus=list(range(self.cpus)), interval=1.5, set_threads=chosen.append,
                                   clock=lambda: self.now, cpu_clock=lambda: self.own, stat=str(self.path))
        return g, chosen


def test_the_governor_uses_free_cores_and_gives_them_back_when_others_need_them(tmp_path):
    m = FakeMachine(tmp_path)
    g, chosen = m.governor(ceiling=2)
    counts = []

    def step():
        counts.append(g())
        return counts[-1]

    assert chosen == [1] and step() == 1  # starts on one thread, before it has looked
    m.run(0.3, own_cores=1, other_cores=0.0)
    assert step() == 2  # the first look comes soon: the machine is quiet
    m.run(1.0, own_cores=2, other_cores=0.0)
    assert step() == 2  # not yet time to look again
    m.run(1.5, own_cores=1.2, other_cores=0.8)  # a second job arrived and takes its share
    assert step() == 1
    m.run(2.0, own_cores=1.0, other_cores=1.0)
    assert step() == 1  # the other job still runs: stay on one core
    m.run(2.0, own_cores=1.0, other_cores=0.05)  # it ended
    assert step() == 2
    assert chosen == [1, 2, 1, 2]  # torch's count set only when it changes
    assert Counter(counts) == {1: 3, 2: 3}  # steps run at each count


def test_the_governor_never_exceeds_its_ceiling(tmp_path):
    m = FakeMachine(tmp_path, cpus=4)
    g, chosen = m.governor(ceiling=2)
    m.run(0.3, own_cores=1, other_cores=0.0)
    assert g() == 2
    m.run(2.0, own_cores=2, other_cores=1.0)  # 4 cores, 1 busy elsewhere: 3 free, the ceiling is 2
    assert g() == 2
    m.run(2.0, own_cores=2, other_cores=2.6)
    assert g() == 1


def test_without_proc_stat_the_governor_keeps_its_count(tmp_path):
    assert threads.busy_seconds([0], str(tmp_path / "missing")) is None
    clock = [0.0]
    chosen = []
    g = threads.ThreadGovernor(2, cpus=[0, 1], set_threads=chosen.append, clock=lambda: clock[0],
                               stat=str(tmp_path / "missing"))
    clock[0] = 10.0
    assert g() == 1 and chosen == [1]


@pytest.mark.skipif(len(threads.usable_cpus()) < 2, reason="needs two usable cores")
def test_the_governor_leaves_a_core_to_a_busy_process():
    """On this machine: a busy loop in another process takes a core; the governor sees it in /proc/stat."""
    cores = len(threads.usable_cpus())
    chosen = []
    g = threads.ThreadGovernor(cores, interval=0.5, set_threads=chosen.append)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline, calls = time.monotonic() + 10, 0
        while len(chosen) < 2 and time.monotonic() < deadline:
            time.sleep(0.6)
            g()
            calls += 1
            if calls >= 3:
                break
    finally:
        busy.kill()
        busy.wait()
    assert g.threads <= cores - 1


def test_usable_cores_is_the_affinity_capped_by_omp_num_threads():
    cores = len(os.sched_getaffinity(0))
    assert threads.usable_cores({}) == cores
    assert threads.usable_cores({"OMP_NUM_THREADS": "1"}) == 1
    assert threads.usable_cores({"OMP_NUM_THREADS": str(cores + 5)}) == cores
    assert threads.usable_cores({"OMP_NUM_THREADS": "lots"}) == cores  # not a number: ignored


def test_a_short_spin_is_set_unless_the_user_chose():
    env = {}
    threads.prefer_short_spin(env)
    assert env == {"GOMP_SPINCOUNT": threads.SPIN_COUNT}
    for chosen in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "300000"}):
        env = dict(chosen)
        threads.prefer_short_spin(env)
        assert env == chosen


def test_the_cli_sets_the_wait_policy_before_torch_loads():
    code = ("import os, sys; import rnnlab.cli; "
            "print('torch' in sys.modules, os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", threads.SPIN_COUNT]


def test_model_work_counts_dense_weights_not_the_embedding():
    cfg = load_config("grimm-char", None, ["model.hidden=32", "model.layers=2"])
    vocab = len(load_corpus(cfg.data).vocab)
    model = build_model(cfg.model, vocab)
    lstm = 4 * 32 * (32 + 32) * 2  # weight_ih + weight_hh of two layers (embed = hidden)
    assert threads.model_work(model, batch_size=10) == 10 * (lstm + 32 * vocab)


def test_configure_fixes_a_requested_count_and_governs_auto_for_big_models():
    before = torch.get_num_threads()
    try:
        assert threads.configure(1, torch.nn.Linear(4, 4), 8) is None and torch.get_num_threads() == 1
        assert threads.configure(0, torch.nn.Linear(4, 4), 8) is None  # 128 multiply-adds: one thread, no governor
        assert torch.get_num_threads() == 1
        big = torch.nn.Linear(1000, 1000)  # 1M weights x batch 8: over MIN_WORK_FOR_THREADS
        governor = threads.configure(0, big, 8)
        if threads.usable_cores() > 1:
            assert governor is not None and governor.ceiling == min(threads.usable_cores(), threads.MAX_THREADS)
            assert torch.get_num_threads() == 1  # it starts on one thread
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("preset", "sets", "governed"), [
    ("grimm-char", [], True), ("grimm-char-2x128", [], True), ("brown-word", ["model.cutoffs=2000,10000"], True),
    ("grimm-char", ["model.hidden=32", "train.batch_size=16"], False)])  # the size the tests train
def test_which_models_the_governor_may_give_more_threads(preset, sets, governed):
    cfg = load_config(preset, None, sets)
    model = build_model(cfg.model, 17_000 if cfg.data.level == "word" else 75)
    assert (threads.thread_ceiling(threads.model_work(model, cfg.train.batch_size), 2) == 2) == governed


def test_jobs_default_to_one_per_usable_core(monkeypatch):
    """`--jobs 0` starts one worker per core this process may use (its affinity),
    not per core of the machine: with one usable core the jobs run in this process."""
    from rnnlab import experiments

    monkeypatch.setattr(threads, "usable_cores", lambda environ=None: 1)
    seen = []

    def train_one(job, cfg, on_step=None):  # a local function: a worker process could not even receive it
        seen.append(job)
        return {"job": job}

    assert (experiments.run_jobs(train_one, [(1,), (2,)], cfg=None, workers=0, progress=False)
            == [{"job": 1}, {"job": 2}])
    assert seen == [1, 2]


def train_tiny_on_auto(run_dir) -> dict:
    """Six steps of a tiny char model with train.threads=0; its summary."""
    from conftest import TINY

    from rnnlab.trainer import train_config

    before = torch.get_num_threads()
    try:
        cfg = load_config("grimm-char", None, [*TINY, "train.max_steps=6", "train.eval_every=0", "train.threads=0"])
        return train_config(cfg, run_dir, progress=False)
    finally:
        torch.set_num_threads(before)  # the trainer sets it process-wide


def test_a_run_summary_records_the_steps_at_each_thread_count(tmp_path):
    summary = train_tiny_on_auto(tmp_path / "run")
    assert summary["threads"] == {"1": 6}  # a tiny model: auto keeps it on one thread, no governor


def test_the_trainer_consults_the_governor_before_every_step(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "MIN_WORK_FOR_THREADS", 0)  # govern even a tiny model
    if threads.thread_ceiling(1, threads.usable_cores()) < 2 or threads.busy_seconds(threads.usable_cpus()) is None:
        pytest.skip("needs two usable cores and /proc/stat")
    calls = []
    original = threads.ThreadGovernor.__call__
    monkeypatch.setattr(threads.ThreadGovernor, "__call__", lambda self: calls.append(1) or original(self))
    summary = train_tiny_on_auto(tmp_path / "run")
    assert len(calls) == 6  # once before each step
    assert sum(summary["threads"].values()) == 6 and set(summary["threads"]) <= {str(n) for n in range(1, 9)}
