"""Sequence-task experiments (`rnnlab experiment NAME`).

What they share lives here: the classifier (input → `RecurrentStack` → a
linear layer on the last valid step), the training loop with early stopping
on fresh samples, and the writer that leaves NAME.{csv,md,json,png} in the
output directory. Each experiment module (palindrome, frequency, varlen) only
says what data to draw, what to vary and what to report.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence

from rnnlab import threads
from rnnlab.config import TrainConfig
from rnnlab.models.stack import RecurrentStack
from rnnlab.optim import build_optimizer
from tqdm import tqdm

EXPERIMENTS = ("palindrome", "frequency", "varlen")


class SequenceClassifier(nn.Module):
    """x → RecurrentStack → W h_last + b.

    x is token ids [T, B] (one-hot encoded over `vocab` symbols), real-valued
    features [T, B, I], or a PackedSequence of either. h_last is the output at
    each sequence's last valid step (`lengths`), or the final step.
    """

    def __init__(self, cell: str, input_size: int, hidden: int, classes: int, vocab: int = 0,
                 layers: int = 1, impl: str = "fused"):
        super().__init__()
        self.vocab = vocab
        self.rnn = RecurrentStack(cell, vocab or input_size, hidden, layers, impl=impl)
        self.head = nn.Linear(hidden, classes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(x, self.vocab).float() if self.vocab else x

    def forward(self, x, lengths: torch.Tensor | None = None, times: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(x, PackedSequence):
            return self.head(self._last_packed(x))
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
        if rnn.cell == "lstm":
            h = torch.lstm(data, x.batch_sizes, h0, *args)[1]
        else:
            kernel = torch.gru if rnn.cell == "gru" else getattr(torch, f"rnn_{rnn.layers[0].nonlinearity}")
            h = kernel(data, x.batch_sizes, h0[0], *args)[1]
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
    processes, one torch thread each, by default one per usable core, so that they never
    oversubscribe the cores) gives the same results, sooner."""
    workers = min(workers if workers > 0 else threads.usable_cores(), len(jobs))
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


def main(args) -> int:
    """`rnnlab experiment NAME ...`: build the config from the flags, run, print the table."""
    import shlex

    from rnnlab.errors import UserError

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"--seeds must be positive, got {args.seeds}")
    name = args.experiment
    if name == "palindrome":
        from rnnlab.experiments.palindrome import COLUMNS, PalindromeConfig as Config, parse_lengths, run
    elif name == "frequency":
        from rnnlab.experiments.frequency import COLUMNS, FrequencyConfig as Config, run
    else:
        from rnnlab.experiments.varlen import COLUMNS, VarlenConfig as Config, run
    cfg = Config.quick() if args.quick else Config()
    if args.seeds is not None:
        cfg.seeds = args.seeds
    if args.hidden is not None:
        cfg.hidden = _positive("--hidden", args.hidden)
    if getattr(args, "cells", None):
        cfg.cells = _cells(args.cells, ("rnn", "lstm", "gru") if name == "palindrome" else ("lstm", "gru", "rnn", "phased_lstm"))
    if getattr(args, "lengths", None):
        cfg.lengths = parse_lengths(args.lengths)
    if getattr(args, "backend", None):
        cfg.backend = args.backend
    if getattr(args, "max_steps", None) is not None:
        cfg.budget.max_steps = _positive("--max-steps", args.max_steps)
    if getattr(args, "epochs", None) is not None:
        cfg.epochs = _positive("--epochs", args.epochs)
    out = Path(args.out) if args.out else Path("runs") / "experiments" / name
    command = "rnnlab " + shlex.join(getattr(args, "argv", None) or ["experiment", name])
    if name == "varlen":  # strategies share initial weights and train in turn: one process
        rows, paths = run(cfg, out, command, progress=not args.no_progress)
    else:
        workers = args.jobs if args.jobs > 0 else threads.usable_cores()
        rows, paths = run(cfg, out, command, progress=not args.no_progress, workers=workers)
    print(markdown_table(rows, COLUMNS))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _positive(flag: str, value: int) -> int:
    from rnnlab.errors import UserError

    if value < 1:
        raise UserError(f"{flag} must be positive, got {value}")
    return value


def _cells(text: str, allowed: tuple[str, ...]) -> list[str]:
    from rnnlab.errors import UserError

    cells = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in cells if c not in allowed]
    if not cells or bad:
        raise UserError(f"--cells takes a comma list of {', '.join(allowed)}; got '{text}'")
    return cells
