"""How many torch threads a training process uses (`train.threads = 0`, "auto").

Why not PyTorch's default, one intra-op thread per core: it collapses when the
cores are shared (a laptop, a CI runner, two runs side by side). A training
step is hundreds of small parallel regions, and a thread that waits at a
barrier for a sibling the OS has descheduled burns the very core the sibling
needs. Measured on this 2-core Xeon (benchmarks/results/contention.md), the
default job on 2 spinning threads kept 30 % of its speed beside a busy loop,
18 % beside a second training run and 6 % beside two.

Why not always one thread: alone, a second thread pays (the default char
job ran at 0.71 of its 2-thread speed on one; the Brown word model, whose
output-layer products split well, at 0.62), and a machine is often quiet.
With this policy the default job kept 0.94 of the fastest setting alone,
0.92 beside a busy loop, 0.79 beside a second run and 0.48 beside two.

So the count follows the load, with a ceiling from the model:

1. The ceiling. One thread for a model under MIN_WORK_FOR_THREADS
   multiply-adds per time step (batch x dense weights): the small models of
   the tests and the tutorials, where the barriers cost more than the split
   saves. Otherwise the cores this process may use (its CPU affinity, and
   OMP_NUM_THREADS if set), at most MAX_THREADS.
2. The governor. A run starts on one thread; every INTERVAL seconds
   `ThreadGovernor` reads how much CPU time *other* processes took on those
   cores (/proc/stat minus this process's own CPU time) and uses the cores
   they left free, at most the ceiling. Beside a busy loop or a second
   training run it drops to one thread within one interval; when the other
   work ends it takes the second core back. Two governed runs side by side
   settle on one thread each.
3. Idle threads spin only briefly at a barrier (GOMP_SPINCOUNT=1000 instead
   of libgomp's 300,000, set by the CLI before torch loads): alone within
   ~6 % of the long spin, and an explicit `train.threads=2` on a busy machine, or the
   seconds before the governor reacts, degrade instead of collapse. A user's
   own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.

What the load-following count costs: a thread count changes float32 results
in the last bits (bf16 autocast, the default job's mode on CPUs with native
bf16, gave bit-identical weights on 1 and 2 threads here), so a float32 run
whose machine got busier or quieter mid-run may differ from its twin in the
last bits. `train.threads = N` fixes the count for bit-exact float32 reruns.
Without /proc/stat (not Linux) the governor is off and auto means one thread.
"""

from __future__ import annotations

import os
import time

# Below this many multiply-adds per time step, one thread: the test and tutorial
# models (a 2x32 char LSTM at batch 16 does ~0.2M); the default job does 68M.
MIN_WORK_FOR_THREADS = 4_000_000
# More threads than this have not been measured to pay for these models.
MAX_THREADS = 8
# Seconds between two looks at the load: the time a collapse can last before
# the governor reacts, and the window its CPU-time figures average over. The
# first look comes sooner, so that a run on a quiet machine soon has its cores.
INTERVAL = 2.0
FIRST_LOOK = 0.25
# A core counts as free when other processes used less than this share of it.
SPARE = 0.3
# libgomp's spin at a barrier before a thread sleeps (iterations; libgomp's own default: 300,000).
SPIN_COUNT = "1000"
STAT = "/proc/stat"


def prefer_short_spin(environ=os.environ) -> None:
    """Make idle OpenMP threads sleep after a short spin, unless the user chose.
    Has an effect only before torch is first imported."""
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        environ["GOMP_SPINCOUNT"] = SPIN_COUNT


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its CPU affinity, which containers and
    `taskset` narrow)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return list(range(os.cpu_count() or 1))


def usable_cores(environ=os.environ) -> int:
    """How many cores this process may use: its CPUs, at most OMP_NUM_THREADS
    when that is set, as `rnnlab train --nproc` does for each of its processes."""
    cores = len(usable_cpus())
    limit = environ.get("OMP_NUM_THREADS", "")
    if limit.isdigit() and int(limit) > 0:
        cores = min(cores, int(limit))
    return max(cores, 1)


def thread_ceiling(work_per_step: int, cores: int) -> int:
    """The most threads auto gives a model doing `work_per_step` multiply-adds
    per time step on `cores` cores: one for a small model, else the cores
    (at most MAX_THREADS)."""
    return 1 if work_per_step < MIN_WORK_FOR_THREADS else max(1, min(cores, MAX_THREADS))


def model_work(model, batch_size: int) -> int:
    """Multiply-adds per time step: the batch times the dense weights (every
    matrix but the embedding, which is a lookup)."""
    weights = sum(p.numel() for name, p in model.named_parameters()
                  if p.dim() >= 2 and not name.startswith("embedding."))
    return batch_size * weights


def busy_seconds(cpus: list[int], path: str = STAT) -> float | None:
    """CPU seconds spent busy (user, nice, system, irq, softirq) on `cpus`
    since boot, from /proc/stat; None where it cannot be read."""
    wanted = {f"cpu{i}" for i in cpus}
    total = 0
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                fields = line.split()
                if fields and fields[0] in wanted:
                    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[1:8])
                    total += user + nice + system + irq + softirq
    except (OSError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


def free_cores(cores: int, others_busy: float) -> int:
    """Whole cores left when other processes keep `others_busy` cores busy
    (a core they use less than SPARE of counts as free); at least one."""
    return max(1, int(cores - others_busy + SPARE))


class ThreadGovernor:
    """Keeps torch's intra-op thread count at the cores other processes leave
    free, at most `ceiling`. Call it between training steps: it looks at the
    load every `interval` seconds and costs a clock read otherwise."""

    def __init__(self, ceiling: int, cpus: list[int] | None = None, interval: float = INTERVAL,
                 set_threads=None, clock=time.monotonic, cpu_clock=time.process_time, stat: str = STAT):
        import torch

        self.ceiling, self.cpus, self.interval = ceiling, cpus or usable_cpus(), interval
        self.cores = len(self.cpus)
        self.set_threads = set_threads or torch.set_num_threads
        self.clock, self.cpu_clock, self.stat = clock, cpu_clock, stat
        self.threads = 1  # start safe: a collapse at start-up would cost more than a second thread gains
        self.set_threads(1)
        self._mark()
        self.wait = min(FIRST_LOOK, interval)

    def _mark(self) -> None:
        self.last = (self.clock(), self.cpu_clock(), busy_seconds(self.cpus, self.stat))

    def __call__(self) -> int:
        """The thread count for the next step (set in torch when it changes)."""
        now = self.clock()
        if now - self.last[0] >= self.wait:
            (then, own_then, busy_then), own, busy = self.last, self.cpu_clock(), busy_seconds(self.cpus, self.stat)
            if busy is not None and busy_then is not None:
                others = max(0.0, (busy - busy_then) - (own - own_then)) / (now - then)
                wanted = min(self.ceiling, free_cores(self.cores, others))
                if wanted != self.threads:
                    self.set_threads(wanted)
                    self.threads = wanted
            self._mark()
            self.wait = self.interval
        return self.threads


def configure(requested: int, model, batch_size: int) -> ThreadGovernor | None:
    """Set torch's intra-op threads for training `model`: `requested` if
    positive; else (auto) one thread for a small model, and otherwise a
    ThreadGovernor, returned for the training loop to call between steps."""
    import torch

    if requested > 0:
        torch.set_num_threads(requested)
        return None
    ceiling = thread_ceiling(model_work(model, batch_size), usable_cores())
    if ceiling == 1 or busy_seconds(usable_cpus()) is None:
        torch.set_num_threads(1)
        return None
    return ThreadGovernor(ceiling)
