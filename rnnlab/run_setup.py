"""Building a run from its configuration: the parts the training loop turns.

`build_parts` makes, in this order, what a run needs besides its data source
(rnnlab/data/source.py) and its progress: the model (after the memory check),
the torch thread setting, the optimizer, the distributed wrapper, the batcher
(sharded over processes) and the learning-rate schedule. `eval_interval`
decides how often the loop evaluates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rnnlab import distributed, threads
from rnnlab.config import Config

AUTO_EVALS = 10  # train.eval_every = 0: about this many evaluations over a language model's step budget


@dataclass
class RunParts:
    model: torch.nn.Module
    governor: object  # rnnlab/threads.py's ThreadGovernor for threads=auto (called between steps), or None
    names: list[str]  # parameter names, in the order of `params`
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    ddp: torch.nn.Module  # the model, wrapped to average gradients over processes (itself in one process)
    batcher: object  # make_batcher's interface: batch(epoch, index), steps_per_epoch, batch_size, carries_state
    total_steps: float  # the step budget (inf: bounded by time or early stopping only)
    schedule: object  # rnnlab/optim.py's Schedule


def build_parts(cfg: Config, source, device: torch.device, show_progress: bool = True) -> RunParts:
    from rnnlab.bounds import check_model_memory
    from rnnlab.console import waiting
    from rnnlab.data.source import vocab_size
    from rnnlab.models import build_model
    from rnnlab.optim import Schedule, build_optimizer

    t = cfg.train
    dtype = getattr(torch, t.dtype)
    check_model_memory(cfg.model, vocab_size(source), torch.finfo(dtype).bits // 8)
    model = build_model(cfg.model, vocab_size(source), cfg.task).to(device, dtype)
    governor = threads.configure(t.threads, model, t.batch_size)  # 0: auto (rnnlab/threads.py)
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    with waiting("building the optimizer", show_progress):  # torch's first optimizer loads torch._dynamo: seconds
        optimizer = build_optimizer(params, t)
    ddp = distributed.wrap(model)
    distributed.seed_rank(t.seed)
    batcher = distributed.shard(source.batcher(t))
    total_steps = min(t.max_steps or math.inf, t.epochs * batcher.steps_per_epoch)
    return RunParts(model, governor, names, params, optimizer, ddp, batcher, total_steps, Schedule(t, total_steps))


def auto_eval_every(total_steps: int, steps_per_epoch: int, tokens_per_step: int, eval_tokens: int) -> int:
    """The steps between evaluations for train.eval_every = 0: about AUTO_EVALS evaluations over
    the budget, whatever its length (so that a short run's curves have points), but never fewer
    than one per epoch (a budget of 10 or more epochs is evaluated at each epoch end), and no more
    evaluations than leave the tokens evaluated below the tokens trained on (a large validation
    set beside a short run: fewer, at least one, the final one)."""
    evals = max(1, min(AUTO_EVALS, total_steps * tokens_per_step // max(eval_tokens, 1)))
    return max(1, min(math.ceil(total_steps / evals), steps_per_epoch))


def eval_interval(cfg: Config, source, parts: RunParts, stored_interval: int, resumed: bool) -> int:
    """Steps between evaluations: train.eval_every; for 0 (auto) the interval the run began with
    (`stored_interval`, from its checkpoint), else auto_eval_every's. A checkpoint from before auto
    evaluated at each epoch end, and so does a sequence task's run."""
    t = cfg.train
    if t.eval_every:
        return t.eval_every
    if stored_interval:
        return stored_interval
    per_epoch = parts.batcher.steps_per_epoch
    if resumed or source.eval_each_epoch:
        return per_epoch
    return auto_eval_every(parts.total_steps, per_epoch, source.tokens_per_step(t), source.eval_tokens())
