"""The thread policy (rnnlab/threads.py): a pure rule, the wait policy, and its use."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from rnnlab import threads
from rnnlab.config import load_config
from rnnlab.data.corpus import load_corpus
from rnnlab.models import build_model


def test_auto_threads_follows_the_work_and_never_exceeds_the_cores():
    small = threads.MIN_WORK_PER_THREAD - 1
    assert threads.auto_threads(small, cores=16) == 1  # too little work to share
    assert threads.auto_threads(2 * threads.MIN_WORK_PER_THREAD, cores=16) == 2
    assert threads.auto_threads(3 * threads.MIN_WORK_PER_THREAD, cores=2) == 2
    assert threads.auto_threads(10**12, cores=2) == 2  # never more than the cores
    assert threads.auto_threads(10**12, cores=64) == threads.MAX_THREADS
    assert threads.auto_threads(10**12, cores=1) == 1
    assert threads.auto_threads(0, cores=4) == 1


def test_usable_cores_is_the_affinity_capped_by_omp_num_threads():
    cores = len(os.sched_getaffinity(0))
    assert threads.usable_cores({}) == cores
    assert threads.usable_cores({"OMP_NUM_THREADS": "1"}) == 1
    assert threads.usable_cores({"OMP_NUM_THREADS": str(cores + 5)}) == cores
    assert threads.usable_cores({"OMP_NUM_THREADS": "lots"}) == cores  # not a number: ignored


def test_passive_wait_is_set_unless_the_user_chose():
    env = {}
    threads.prefer_passive_wait(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    for chosen in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "300000"}):
        env = dict(chosen)
        threads.prefer_passive_wait(env)
        assert env == chosen


def test_the_cli_sets_the_wait_policy_before_torch_loads():
    code = ("import os, sys; import rnnlab.cli; "
            "print('torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "PASSIVE"]


def test_model_work_counts_dense_weights_not_the_embedding():
    cfg = load_config("grimm-char", None, ["model.hidden=32", "model.layers=2"])
    vocab = len(load_corpus(cfg.data).vocab)
    model = build_model(cfg.model, vocab)
    lstm = 4 * 32 * (32 + 32) * 2  # weight_ih + weight_hh of two layers (embed = hidden)
    assert threads.model_work(model, batch_size=10) == 10 * (lstm + 32 * vocab)


def test_configure_sets_torch_threads():
    before = torch.get_num_threads()
    model = torch.nn.Linear(4, 4)
    try:
        assert threads.configure(1, model, 8) == 1 and torch.get_num_threads() == 1
        assert threads.configure(0, model, 8) == 1  # 128 multiply-adds: one thread
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("hidden", [128, 512])
def test_the_default_job_and_a_2x512_model_get_one_thread(hidden):
    """The measured rule (benchmarks/results/contention*.md): on 2 cores a second thread
    gains at most ~10 % alone (2x512) and collapses beside other work, so both get one."""
    cfg = load_config("grimm-char-2x128", None, [f"model.hidden={hidden}"])
    model = build_model(cfg.model, 75)
    assert threads.auto_threads(threads.model_work(model, cfg.train.batch_size), 2) == 1


def test_jobs_default_to_one_per_usable_core(monkeypatch):
    """`--jobs 0` starts one worker per core this process may use (its affinity),
    not per core of the machine: with one usable core the jobs run in this process."""
    from rnnlab import experiments

    monkeypatch.setattr(threads, "usable_cores", lambda environ=None: 1)
    seen = []

    def train_one(job, cfg, on_step=None):  # a local function: a worker process could not even receive it
        seen.append(job)
        return {"job": job}

    assert experiments.run_jobs(train_one, [(1,), (2,)], cfg=None, workers=0, progress=False) == [{"job": 1}, {"job": 2}]
    assert seen == [1, 2]
