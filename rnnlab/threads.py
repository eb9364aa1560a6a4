"""How many torch threads a training process uses (`train.threads = 0`, "auto").

Why a rule at all: on a machine whose cores are shared (a laptop, a CI
runner, two runs side by side), PyTorch's default of one intra-op thread per
core collapses. Each step is hundreds of small parallel regions; when the OS
deschedules one thread, its sibling spins at the barrier and the step waits
for both. Measured on a 2-core machine, the default job ran 2.5x slower
beside one busy process (benchmarks/results/contention.md).

The policy has two parts:

1. The OpenMP wait policy. libgomp, PyTorch's thread pool on Linux, spins
   for ~300,000 iterations at every barrier before it sleeps. We ask it to
   sleep at once (OMP_WAIT_POLICY=PASSIVE), which costs nothing measurable
   alone and removes the collapse. It is read once, when torch loads
   libgomp, so `prefer_passive_wait()` must run before `import torch`: the
   CLI calls it first thing. A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT
   wins.
2. The thread count, a pure function of the work per step and the cores
   this process may use (`auto_threads`). It deliberately ignores the load
   average: the count must not depend on what else happens to run, so that
   a run and its resumption make the same choice.
"""

from __future__ import annotations

import os

# Below this many multiply-adds per time step (batch x dense weights) a second
# thread costs more in synchronisation than it saves (measured; see
# benchmarks/results/contention.md).
MIN_WORK_PER_THREAD = 2_000_000
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
