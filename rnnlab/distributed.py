"""Data-parallel training on several processes (torch.distributed, DDP).

`rnnlab train` runs unchanged under `torchrun --nproc-per-node N -m rnnlab
train ...` (several hosts: add --nnodes and --rdzv-endpoint); `rnnlab train
--nproc N` starts the N local processes itself. Every process runs the whole
Trainer; this module holds what differs between them.

Sharding. The batchers lay a batch out as B columns (B streams of truncated
BPTT, or B random windows). Rank r of W takes columns r·B/W … (r+1)·B/W − 1
and carries only their recurrent state. Each rank's loss is the mean over its
B/W·T tokens and DDP averages the gradients over ranks, so with equal shards
the averaged gradient is exactly the single-process gradient over B·T tokens:
W processes with global batch B follow the one-process run with batch B (up to
rounding), and clipping sees the same global norm.

Rank 0 alone writes the run directory (metrics, samples, checkpoints,
summary) and prints. Evaluation is sharded the same way (rank r evaluates
streams r·B/W … of the evaluation batcher) and the token totals are summed.
Checkpoints do not depend on W: the carried state is gathered in stream
order and every rank's RNG state is kept, so a run resumes on any number of
processes that divides train.batch_size.

A process that crashes closes its connections and the others fail at their
next collective; one that stalls makes them fail after train.dist_timeout
seconds. `guard` turns either into one line instead of a hang.

Exit. destroy_process_group does not stop gloo's threads (pt_gloo_runloop,
gloo_tcp_loop) once DDP has wrapped a model: DDP keeps references to the
process group that nothing releases, so the threads run until the process
ends. A process that then finalizes the interpreter and runs the C++ static
destructors beside them can abort ("terminate called without an active
exception", SIGABRT), and the launcher then stops the other processes, seen
as an interruption of rank 0 during its final evaluation. So a process that
joined a group leaves through `exit_process`: output flushed, then _exit,
without tearing down the interpreter under those threads. Every file a run
writes is closed (and checkpoints fsynced) before that point.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import signal
import sys
import uuid
from contextlib import contextmanager
from typing import NoReturn

import numpy as np
import torch
import torch.distributed as dist

from rnnlab import threads
from rnnlab.errors import Interrupted, UserError

_timeout_s = 0.0  # train.dist_timeout of the current process group, for messages
_joined = False  # this process joined a process group (its threads outlive it: see `exit_process`)


# ------------------------------------------------------------- who am I
def launched() -> bool:
    """Started by torchrun (or `rnnlab train --nproc`): it sets RANK and WORLD_SIZE."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_active() else int(os.environ.get("RANK", 0))


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def is_main() -> bool:
    return rank() == 0


# ---------------------------------------------------------------- set-up
def setup(device: torch.device, timeout_s: float) -> None:
    """Join the process group that torchrun described in the environment
    (gloo on CPU, NCCL on GPU). Nothing happens in a single process."""
    global _timeout_s, _joined
    if is_active() or not launched() or int(os.environ["WORLD_SIZE"]) < 2:
        return
    if not dist.is_available():
        raise UserError("this PyTorch build has no torch.distributed; train with a single process")
    backend = "gloo"
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        if local >= torch.cuda.device_count():
            raise UserError(f"process {local} on this host has no GPU of its own ({torch.cuda.device_count()} "
                            "visible); use as many processes per host as GPUs, or train.device=cpu")
        torch.cuda.set_device(local)  # so that torch.device("cuda") is this process's GPU
        backend = "nccl"
    _timeout_s = timeout_s
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    _joined = True


def shutdown() -> None:
    if is_active():
        dist.destroy_process_group()


def exit_process(code: int) -> NoReturn:
    """End `python -m rnnlab` with this status. A process that joined a process group
    flushes its output and leaves with os._exit: gloo's threads are still running
    (see the module docstring) and must not see the interpreter torn down."""
    if not _joined:
        raise SystemExit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said
            pass
    os._exit(code)


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)  # gloo prefixes its source file and line
    return text.split(". ")[0].rstrip(".")


def _is_comm_error(error: BaseException) -> bool:
    return isinstance(error, dist.DistError) or bool(
        re.search(r"gloo|nccl|connection (closed|reset)|timed out|broken pipe", str(error), re.IGNORECASE))


@contextmanager
def guard():
    """Around a training run: a lost or stalled peer becomes one UserError
    line (not a traceback, not a hang), and the process group is closed."""
    try:
        yield
    except Interrupted:
        if is_active() and not is_main():
            raise SystemExit(130) from None  # rank 0 says where to resume
        raise
    except RuntimeError as e:
        if not (is_active() and _is_comm_error(e)):
            raise
        raise UserError(f"process {rank()} of {world_size()} lost contact with the others ({_reason(e)}): another "
                        f"process crashed or stalled for more than train.dist_timeout={_timeout_s:g} s") from None
    finally:
        shutdown()


# ------------------------------------------------------------- the model
def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """DistributedDataParallel around the model (it averages the gradients
    during backward); the model itself in a single process."""
    if not is_active():
        return model
    if not isinstance(model, torch.nn.Module) or not any(p.requires_grad for p in model.parameters()):
        raise UserError("distributed training needs a PyTorch model (model.backend=torch)")
    device = next(model.parameters()).device
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    # An adaptive softmax gives no gradient to a tail cluster that no target of the step fell
    # into, which may differ between processes; DDP must then look for unused parameters.
    unused = getattr(getattr(model, "cfg", None), "softmax", "full") != "full"
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)


def _rank_seed(seed: int, rank_: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, rank_, step]).generate_state(1, dtype=np.uint64)[0])


def seed_rank(seed: int) -> None:
    """Each rank draws its own dropout masks, reproducibly (after the model,
    which every rank must initialise identically, has been built)."""
    if is_active():
        torch.manual_seed(_rank_seed(seed, rank(), 0))


# ------------------------------------------------------------- the data
def shard_columns(batch_size: int, rank_: int, world: int) -> slice:
    """The columns (streams or windows) of a B-column batch that rank r of W owns."""
    if batch_size % world:
        raise UserError(f"train.batch_size={batch_size} must be divisible by the number of processes ({world})")
    per = batch_size // world
    return slice(rank_ * per, (rank_ + 1) * per)


class Shard:
    """A batcher seen by one rank: the same batches, only this rank's columns."""

    def __init__(self, batcher, rank_: int, world: int):
        self.inner, self.cols = batcher, shard_columns(batcher.batch_size, rank_, world)
        self.batch_size = self.cols.stop - self.cols.start
        self.seq_len, self.carries_state = batcher.seq_len, batcher.carries_state
        self.steps_per_epoch = batcher.steps_per_epoch

    def batch(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.inner.batch(epoch, index)
        return x[:, self.cols], y[:, self.cols]


def shard(batcher):
    return Shard(batcher, rank(), world_size()) if is_active() else batcher


def eval_shard(length: int, batch_size: int, rank_: int, world: int) -> tuple[int, int, int] | None:
    """(start, stop, streams) of the piece of an evaluation stream (length
    tokens, cut into batch_size streams as `evaluate` does) that rank r of W
    scores, or None when the streams cannot be split evenly.

    Stream b is data[b·n : (b+1)·n] (+1 target), so streams r·s … (r+1)·s − 1
    are the contiguous piece data[r·s·n : (r+1)·s·n + 1]: evaluated with s
    streams it gives exactly the same streams, hence the same sums."""
    streams = min(batch_size, max(1, (length - 1) // 2))  # what evaluate() uses
    if streams % world:
        return None
    per, n = streams // world, (length - 1) // streams
    return rank_ * per * n, (rank_ + 1) * per * n + 1, per


def evaluate(model, data: np.ndarray, batch_size: int, seq_len: int, device="cpu", on_batch=None) -> dict:
    """`rnnlab.evaluate.evaluate`, each rank scoring its share of the streams (`on_batch`: its progress)."""
    from rnnlab.evaluate import evaluate as evaluate_all
    from rnnlab.evaluate import metrics_from_totals

    if not is_active():
        return evaluate_all(model, data, batch_size, seq_len, device, on_batch)
    piece = eval_shard(len(data), batch_size, rank(), world_size())
    if piece is None:  # e.g. 16 streams on 3 processes: rank 0 does all of it
        m = evaluate_all(model, data, batch_size, seq_len, device, on_batch) if is_main() else None
        box = [m]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    start, stop, streams = piece
    m = evaluate_all(model, data[start:stop], streams, seq_len, device, on_batch)
    nll, correct, tokens = all_sum(m["loss"] * m["tokens"], m["accuracy"] * m["tokens"], m["tokens"])
    return metrics_from_totals(nll, round(correct), round(tokens))


# ------------------------------------------------------- collectives
def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_sum(*values: float) -> tuple[float, ...]:
    """Sum of each value over all ranks (the values themselves in one process)."""
    if not is_active():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return tuple(t.tolist())


def mean(value: float) -> float:
    """Average over ranks: the loss of the whole global batch."""
    return all_sum(value)[0] / world_size() if is_active() else value


def agree(flag) -> bool:
    """True on every rank if it is true on any: stop, checkpoint or time-limit
    decisions must be the same everywhere or the collectives fall out of step."""
    if not is_active():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    if is_active():
        dist.barrier()


def gather_state(state: tuple | None) -> tuple | None:
    """The carried state of all ranks, [L, B, H] in stream order (rank 0's
    streams first): what a single process would carry."""
    if state is None or not is_active():
        return state
    full = []
    for s in state:
        parts = [torch.empty_like(s) for _ in range(world_size())]
        dist.all_gather(parts, s.contiguous())
        full.append(torch.cat(parts, dim=1))
    return tuple(full)


def rng_states() -> dict[str, torch.Tensor]:
    """The CPU RNG state of ranks 1 … W−1 for the checkpoint (rank 0's is 'rng.torch')."""
    if not is_active():
        return {}
    device = _comm_device()
    mine = torch.get_rng_state().to(device)
    parts = [torch.empty_like(mine) for _ in range(world_size())]
    dist.all_gather(parts, mine)
    return {f"rng.torch.rank{r}": parts[r].cpu() for r in range(1, world_size())}


def localize(tensors: dict, meta: dict, seed: int) -> tuple[dict, dict]:
    """A checkpoint as this rank resumes it, whatever W wrote it: its own
    streams of the carried state, its own RNG state (saved by the rank of the
    same number, or derived from the seed), and no training totals except on
    rank 0 (they are sums over ranks)."""
    if not is_active():
        return tensors, meta
    r, w = rank(), world_size()
    out = dict(tensors)
    for key, value in tensors.items():
        if key.startswith("state.") and value.dim() == 3 and value.shape[1] % w == 0:
            out[key] = value[:, shard_columns(value.shape[1], r, w)].contiguous()
    if r > 0:
        saved = tensors.get(f"rng.torch.rank{r}")
        if saved is None:
            saved = torch.Generator().manual_seed(_rank_seed(seed, r, int(meta.get("step", 0)))).get_state()
        out["rng.torch"] = saved
        meta = dict(meta, train_totals=[0.0, 0.0, 0.0])
    return out, meta


# --------------------------------------------------------------- launcher
def preflight(batch_size: int, nproc: int, run_dir, overwrite: bool) -> None:
    """Check once, before starting N processes, what would otherwise fail in each of them."""
    from rnnlab.runs import prepare

    if nproc < 1:
        raise UserError(f"--nproc must be positive, got {nproc}")
    shard_columns(batch_size, 0, nproc)
    prepare(run_dir, overwrite=overwrite).release()  # rank 0 takes the lock itself


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"


def launch(nproc: int, argv: list[str]) -> int:
    """`rnnlab train --nproc N`: run this same command in N local processes
    under PyTorch's elastic launcher (what `torchrun --standalone` does)."""
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise UserError(f"--nproc must be positive, got {nproc}")
    # N processes share the cores: PyTorch would otherwise give each one all of them.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, threads.usable_cores() // nproc)))
    for name in list(logging.root.manager.loggerDict):  # we report failures ourselves, in one line
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    # Ctrl-C / SIGTERM: the launcher passes the signal on to every process (they run in
    # sessions of their own), which stop at the same step and write their checkpoint.
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    try:
        elastic_launch(config, sys.executable)("-m", "rnnlab", *argv)
    except ChildFailedError as e:
        # The first process to fail is the cause: once one fails, the launcher stops the others
        # (SIGTERM), and they exit with 130 as if interrupted.
        first, failure = e.get_first_failure()
        if failure.exitcode == 130:
            return 130  # interrupted: the workers said where to resume
        how = (f"was killed by signal {-failure.exitcode} ({_signal_name(-failure.exitcode)})" if failure.exitcode < 0
               else f"exited with status {failure.exitcode}")
        raise UserError(f"distributed training failed: process {first} of {nproc} {how} (its message, if "
                        "any, is above)") from None
    except SignalException:
        return 130  # the processes were stopped; rank 0 said where to resume
    return 0
