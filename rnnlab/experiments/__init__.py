"""Experiments (`rnnlab experiment NAME`) and what they share.

The registry, `EXPERIMENTS`, maps each name to one module that defines
`HELP` (one line), `add_arguments(parser)` and `run(args) -> int` (the exit
status); the CLI builds `rnnlab experiment ...` from it. Adding an
experiment is adding its module and one line here.

Shared here: the sequence-task classifier (input → `RecurrentStack` → a
linear layer on the last valid step), the training loop with early stopping
on fresh samples, the flags every sequence task takes, and the writer that
leaves NAME.{csv,md,json,png} in the output directory. Each experiment
module only says what data to draw, what to vary and what to report.
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence

from tqdm import tqdm

from rnnlab.config import TrainConfig
from rnnlab.errors import UserError
from rnnlab.models.stack import RecurrentStack
from rnnlab.optim import build_optimizer
from rnnlab import argtypes as at

# name → module (imported when the CLI builds its parser or runs the experiment)
EXPERIMENTS = {
    "lm-study": "rnnlab.experiments.lm_study",
    "ngram": "rnnlab.experiments.ngram",
    "palindrome": "rnnlab.experiments.palindrome",
    "frequency": "rnnlab.experiments.frequency",
    "varlen": "rnnlab.experiments.varlen",
}


def experiment(name: str):
    """The module registered as `name`."""
    return importlib.import_module(EXPERIMENTS[name])


class _NumpyLayer(torch.autograd.Function):
    """One recurrent layer by the NumPy reference: its forward pass and its
    hand-written BPTT (rnnlab/numpy/cells.py), on this layer's own tensors."""

    @staticmethod
    def forward(ctx, layer, names, x, *tensors):
        params = {name: t.detach().numpy() for name, t in zip(names, tensors)}
        out, _, cache = layer.forward(params, x.detach().numpy(), None, train=True)
        ctx.layer, ctx.names, ctx.params, ctx.cache = layer, names, params, cache
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, dout):
        grads = ctx.layer.backward(ctx.params, ctx.cache, np.ascontiguousarray(dout.numpy())).params
        ctx.cache = None
        return (None, None, None) + tuple(torch.from_numpy(grads[name]) for name in ctx.names)


class SequenceClassifier(nn.Module):
    """x → RecurrentStack → W h_last + b.

    x is token ids [T, B] (one-hot encoded over `vocab` symbols), real-valued
    features [T, B, I], or a PackedSequence of either. h_last is the output at
    each sequence's last valid step (`lengths`), or the final step.

    backend="numpy" (one layer): the recurrent layer runs in the NumPy
    reference, forward and backward by hand, on the same parameters; the
    linear head and the optimizer stay PyTorch's.
    """

    def __init__(self, cell: str, input_size: int, hidden: int, classes: int, vocab: int = 0,
                 layers: int = 1, impl: str = "fused", backend: str = "torch"):
        super().__init__()
        self.vocab = vocab
        self.rnn = RecurrentStack(cell, vocab or input_size, hidden, layers, impl=impl)
        self.head = nn.Linear(hidden, classes)
        self.numpy_layer = None
        if backend == "numpy":
            from rnnlab.cell_registry import numpy_layer as make_cell

            if layers != 1:
                raise ValueError("the NumPy-backed classifier has one recurrent layer")
            self.numpy_layer = make_cell(cell, vocab or input_size, hidden)

    def _numpy_rnn(self, x: torch.Tensor) -> torch.Tensor:
        names, tensors = zip(*self.rnn.layers[0].named_parameters())
        if torch.is_grad_enabled() and self.training:
            return _NumpyLayer.apply(self.numpy_layer, names, x, *tensors)
        params = {name: t.detach().numpy() for name, t in zip(names, tensors)}
        return torch.from_numpy(self.numpy_layer.forward(params, x.numpy(), None, train=False)[0])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(x, self.vocab).float() if self.vocab else x

    def forward(self, x, lengths: torch.Tensor | None = None, times: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(x, PackedSequence):
            return self.head(self._last_packed(x))
        if self.numpy_layer is not None:
            out = self._numpy_rnn(self.encode(x))
        else:
            out, _ = self.rnn(self.encode(x), None, times)
        if lengths is None:
            return self.head(out[-1])
        return self.head(out[lengths - 1, torch.arange(out.shape[1])])


    def _last_packed(self, x: PackedSequence) -> torch.Tensor:
        """Run the fused kernel (what nn.LSTM/GRU/RNN call) on a packed batch:
        each step only touches the sequences still going, and the final state
        is each sequence's last valid step."""
        rnn = self.rnn
        if rnn.impl != "fused":
            raise ValueError(f"packed sequences need a fused cell (rnn, lstm, gru), not {rnn.cell}")
        h0 = rnn.init_state(int(x.batch_sizes[0]))
        params = list(rnn.fused_parameters().values())  # nn.LSTM's flat order
        args = (params, True, rnn.num_layers, rnn.dropout if rnn.num_layers > 1 else 0.0, self.training, False)
        data = self.encode(x.data)
        kernel = getattr(torch, rnn.kernel)  # torch.lstm, torch.gru, torch.rnn_tanh, ...
        h = kernel(data, x.batch_sizes, h0 if rnn.n_states == 2 else h0[0], *args)[1]
        # The kernel saw the batch sorted by length; put it back in order.
        return h[-1] if x.unsorted_indices is None else h[-1][x.unsorted_indices]


@dataclass
class Budget:
    """How a classifier is trained: optimizer, step budget and early stop."""

    optimizer: str = "rmsprop"
    lr: float = 1e-3
    clip: float = 5.0
    max_steps: int = 2000
    check_every: int = 50  # steps between early-stopping checks
    target: float = 1.0  # stop when the check accuracy reaches this (1.0+: never)
    patience: int = 0  # also stop after this many steps without a 1-point gain in check accuracy (0: never)


def fit(model: nn.Module, batch: Callable[[int], tuple], budget: Budget,
        check: Callable[[], float] | None = None, on_step: Callable[[int, float], None] | None = None) -> dict:
    """Train on `batch(step) -> (inputs, kwargs, targets)` until `check()`
    reaches the target, stops improving (`patience`) or the step budget is spent."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, TrainConfig(optimizer=budget.optimizer, lr=budget.lr))
    model.train()
    start, step, reached, loss_value = time.perf_counter(), 0, math.nan, math.nan
    best, best_step, stop = -math.inf, 0, "budget"
    while step < budget.max_steps:
        x, kwargs, y = batch(step)
        loss = F.cross_entropy(model(x, **kwargs), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if budget.clip > 0:
            nn.utils.clip_grad_norm_(params, budget.clip)
        optimizer.step()
        step += 1
        loss_value = loss.item()
        if on_step:
            on_step(step, loss_value)
        if check is not None and (step % budget.check_every == 0 or step == budget.max_steps):
            reached = check()
            model.train()
            if reached >= best + 0.01:
                best, best_step = reached, step
            if reached >= budget.target:
                stop = "target"
                break
            if budget.patience and step - best_step >= budget.patience:
                stop = "plateau"
                break
    return {"steps": step, "seconds": time.perf_counter() - start, "loss": loss_value, "check": reached, "stop": stop}


@torch.no_grad()
def accuracy(model: nn.Module, batches) -> float:
    """Fraction of correct argmax predictions over `(inputs, kwargs, targets)` batches."""
    model.eval()
    correct = total = 0
    for x, kwargs, y in batches:
        correct += (model(x, **kwargs).argmax(-1) == y).sum().item()
        total += len(y)
    return correct / max(total, 1)


def _one_thread() -> None:
    torch.set_num_threads(1)  # workers share the cores: one thread each


def _call(train_one: Callable, cfg, job: tuple) -> dict:
    return train_one(*job, cfg)


def run_jobs(train_one: Callable, jobs: list[tuple], cfg, workers: int = 1, progress: bool = True) -> list[dict]:
    """train_one(*job, cfg) for every job, results in job order. Jobs are independent
    training runs, each seeded by its own arguments, so `workers` > 1 (separate
    processes, one torch thread each) gives the same results, sooner."""
    workers = min(workers if workers > 0 else (os.cpu_count() or 1), len(jobs))
    bar = tqdm(total=len(jobs), unit="run", disable=not progress, dynamic_ncols=True)
    results = []
    try:
        if workers <= 1:
            for job in jobs:
                bar.set_description(" ".join(map(str, job)))
                results.append(train_one(*job, cfg, on_step=lambda step, loss: bar.set_postfix_str(
                    f"step {step} loss {loss:.3f}", refresh=False)))
                bar.update(1)
        else:
            bar.set_description(f"{workers} processes")
            with multiprocessing.get_context("spawn").Pool(workers, initializer=_one_thread) as pool:
                for result in pool.imap(functools.partial(_call, train_one, cfg), jobs):
                    results.append(result)
                    bar.update(1)
    finally:
        bar.close()
    return results


def train_unless_finished(name: str, cfg, run_dir: Path, progress: bool = True) -> None:
    """Train `cfg` into run_dir, unless a finished run (summary.json) is already
    there: re-running a study or sweep only fills its gaps."""
    from rnnlab.train import train

    if (run_dir / "summary.json").is_file():
        print(f"{name}: finished run found in {run_dir}, not retrained")
        return
    print(f"{name}: training into {run_dir}")
    train(cfg, run_dir, progress=progress, overwrite=True)


def write_results(out: Path, name: str, rows: list[dict], columns: list[str], command: str,
                  plot: Callable[[Path], None] | None = None, notes: str = "") -> dict[str, Path]:
    """Write NAME.json (rows), NAME.csv, NAME.md (table, plot, command) and NAME.png."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: out / f"{name}.{ext}" for ext in ("json", "csv", "md")}
    paths["json"].write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    if plot is not None:
        paths["png"] = out / f"{name}.png"
        plot(paths["png"])
    md = [f"# {name}", "", "```", command, "```", "", markdown_table(rows, columns), ""]
    if plot is not None:
        md += [f"![{name}]({name}.png)", ""]
    if notes:
        md += [notes.strip(), ""]
    paths["md"].write_text("\n".join(md), encoding="utf-8")
    return paths


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return "—" if value is None else str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def command_line(args) -> str:
    """The command that ran, as the result files show it (to redo it)."""
    import shlex

    return "rnnlab " + shlex.join(getattr(args, "argv", None) or ["experiment", args.experiment])


def add_task_arguments(p: argparse.ArgumentParser, name: str, jobs: bool = True) -> None:
    """The flags every sequence task takes."""
    p.add_argument("--out", help=f"output directory (default: runs/experiments/{name})")
    p.add_argument("--seeds", type=at.positive, help="seeds per setting (mean and spread are reported)")
    p.add_argument("--quick", action="store_true", help="a tiny version (seconds), as the tests run it")
    p.add_argument("--hidden", type=at.positive, help="hidden units")
    p.add_argument("--threads", type=at.threads, default=1, help="torch threads (default 1; 0: PyTorch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    if jobs:
        p.add_argument("--jobs", type=at.threads, default=0,
                       help="training runs in parallel, one process and torch thread each (default 0: one per core)")


def task_config(args, config_class):
    """A sequence task's configuration from the shared flags: --quick, --seeds, --hidden (and --threads)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config_class.quick() if args.quick else config_class()
    if args.seeds is not None:
        cfg.seeds = positive("--seeds", args.seeds)
    if args.hidden is not None:
        cfg.hidden = positive("--hidden", args.hidden)
    return cfg


def out_dir(args) -> Path:
    return Path(args.out) if args.out else Path("runs") / "experiments" / args.experiment


def workers(args) -> int:
    return args.jobs if args.jobs > 0 else (os.cpu_count() or 1)


def print_results(rows: list[dict], paths: dict, columns: list[str]) -> int:
    print(markdown_table(rows, columns))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def positive(flag: str, value: int) -> int:
    if value < 1:
        raise UserError(f"{flag} must be positive, got {value}")
    return value


def parse_cells(text: str, allowed: tuple[str, ...]) -> list[str]:
    cells = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in cells if c not in allowed]
    if not cells or bad:
        raise UserError(f"--cells takes a comma list of {', '.join(allowed)}; got '{text}'")
    return cells
