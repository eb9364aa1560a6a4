"""How many torch threads a training process uses (`train.threads = 0`, "auto").

Why a rule at all: PyTorch's default, one intra-op thread per core,
collapses when the cores are shared (a laptop, a CI runner, two runs side by
side). Each step is hundreds of small parallel regions; libgomp, PyTorch's
thread pool on Linux, spins ~300,000 iterations at every barrier, so a
thread whose sibling the OS has descheduled burns the very core the sibling
needs. Measured on this 2-core Xeon (benchmarks/results/contention.md), the
default job with 2 spinning threads kept 25 % of its speed beside a busy
loop, 24 % beside a second training run and 4 % beside two.

What the measurements say, and so the rule:

1. One thread unless the work per step is very large. Alone, a second
   thread gained nothing for the default job (2x128: 96k vs 98k tokens/s)
   and 11 % for a 2x512 model, and beside other work one thread held 97 %
   (default job beside a second one) and 82 % (2x512). `auto_threads` gives
   one thread per MIN_WORK_PER_THREAD multiply-adds per time step (batch x
   dense weights): 1 for every preset here; more only for models far larger
   than any measured, on machines with the cores for them.
2. Where more than one thread runs (the rule on a huge model, or an explicit
   train.threads), idle threads sleep instead of spin (OMP_WAIT_POLICY=
   PASSIVE): no collapse, at a price alone (the default job on 2 sleeping
   threads: 62 % of its speed; 2x512: 83 %). libgomp reads the policy once,
   when torch loads it, so `prefer_passive_wait()` runs before `import
   torch`: the CLI calls it first thing. A user's own OMP_WAIT_POLICY or
   GOMP_SPINCOUNT wins (GOMP_SPINCOUNT=300000 restores the spinning pool).

The count is a function of the model and of the cores this process may use,
never of the load average: the thread count changes float32 results in the
last bits, so a run and its resumption must make the same choice.
"""

from __future__ import annotations

import os

# Multiply-adds per time step (batch x dense weights) per thread. The default job
# does 17M, a 2x512 char model at batch 64 270M: one thread each, as measured
# (benchmarks/results/contention*.md). Above it the value is a guess, unmeasured.
MIN_WORK_PER_THREAD = 500_000_000
# More threads than this have not been measured to pay for these models.
MAX_THREADS = 8


def prefer_passive_wait(environ=os.environ) -> None:
    """Make idle OpenMP threads sleep instead of spin, unless the user chose.
    Has an effect only before torch is first imported."""
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        environ["OMP_WAIT_POLICY"] = "PASSIVE"


def usable_cores(environ=os.environ) -> int:
    """Cores this process may run on (its CPU affinity, which containers and
    `taskset` narrow), at most OMP_NUM_THREADS when that is set, as
    `rnnlab train --nproc` does for each of its processes."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    limit = environ.get("OMP_NUM_THREADS", "")
    if limit.isdigit() and int(limit) > 0:
        cores = min(cores, int(limit))
    return max(cores, 1)


def auto_threads(work_per_step: int, cores: int) -> int:
    """The thread count for `work_per_step` multiply-adds per time step on
    `cores` cores: one thread per MIN_WORK_PER_THREAD of work, at least one,
    at most the cores (and MAX_THREADS)."""
    return max(1, min(cores, MAX_THREADS, work_per_step // MIN_WORK_PER_THREAD))


def model_work(model, batch_size: int) -> int:
    """Multiply-adds per time step: the batch times the dense weights (every
    matrix but the embedding, which is a lookup)."""
    weights = sum(p.numel() for name, p in model.named_parameters()
                  if p.dim() >= 2 and not name.startswith("embedding."))
    return batch_size * weights


def configure(requested: int, model, batch_size: int) -> int:
    """Set torch's intra-op threads for training `model`: `requested` if
    positive, else the auto rule. Returns the count in use."""
    import torch

    threads = requested if requested > 0 else auto_threads(model_work(model, batch_size), usable_cores())
    torch.set_num_threads(threads)
    return threads
