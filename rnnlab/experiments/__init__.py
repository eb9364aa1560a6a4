"""Experiments (`rnnlab experiment NAME`) and what they share.

The registry, `EXPERIMENTS`, maps each name to one module that defines
`HELP` (one line), `add_arguments(parser)` and `run(args) -> int` (the exit
status); the CLI builds `rnnlab experiment ...` from it. Adding an
experiment is adding its module and one line here.

Shared here: how a sequence task's run is configured and trained (every
training run of an experiment is a normal run directory trained by the one
Trainer: `task.kind`, `model.arch = "classifier"`, early stopping as
`train.stop_at_accuracy`), the flags every sequence task takes, and the
writer that leaves NAME.{csv,md,json,png} in the output directory. Each
experiment module only says what to vary and what to report.

An experiment module's top level imports no torch, numpy or matplotlib (nor
modules that do): the CLI imports every module to build `rnnlab --help` and
`rnnlab experiment NAME --help`, which must answer at once
(tests/test_first_hour.py checks it). Its functions import what they use.
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib
import json
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rnnlab import argtypes as at
from rnnlab import threads
from rnnlab.config import Config, apply, validate
from rnnlab.errors import UserError

# name → module (imported when the CLI builds its parser or runs the experiment)
EXPERIMENTS = {
    "lm-study": "rnnlab.experiments.lm_study",
    "ngram": "rnnlab.experiments.ngram",
    "palindrome": "rnnlab.experiments.palindrome",
    "frequency": "rnnlab.experiments.frequency",
    "varlen": "rnnlab.experiments.varlen",
    "optimizers": "rnnlab.experiments.optimizers",
    "cells": "rnnlab.experiments.cells",
}


def experiment(name: str):
    """The module registered as `name`."""
    return importlib.import_module(EXPERIMENTS[name])


@dataclass
class Budget:
    """How a sequence task's classifier is trained: the train.* settings an experiment varies."""

    optimizer: str = "rmsprop"
    lr: float = 1e-3
    clip: float = 5.0
    max_steps: int = 2000
    check_every: int = 50  # steps between evaluations on the validation set (train.eval_every)
    target: float = 0.0  # stop when the validation accuracy reaches this (train.stop_at_accuracy; 0: never)
    patience: int = 0  # also stop after this many steps without a 1-point gain in it (train.patience; 0: never)

    def settings(self) -> dict:
        return {"train.optimizer": self.optimizer, "train.lr": self.lr, "train.clip": self.clip,
                "train.max_steps": self.max_steps, "train.eval_every": self.check_every,
                "train.stop_at_accuracy": self.target, "train.patience": self.patience}


def task_run_config(name: str, settings: dict) -> Config:
    """A sequence task's run configuration: the classifier (one layer unless set), no samples,
    float32, then `settings` ({"model.cell": "lstm", "task.kind": "palindrome", ...}), validated."""
    cfg = Config(name=name)
    for key, value in {"model.arch": "classifier", "model.layers": 1, "train.samples": 0, **settings}.items():
        apply(cfg, key, value)
    validate(cfg)
    return cfg


def train_task(cfg: Config, run_dir: Path) -> dict:
    """Train one task run into run_dir (replacing an earlier one) by the Trainer, quietly
    (experiments show their own progress, one bar over all runs); its summary."""
    from rnnlab.trainer import Trainer

    return Trainer(cfg, run_dir, progress=False, overwrite=True, echo=lambda text: None).run()


def _one_thread() -> None:
    # Workers share the cores: one thread each. OMP_NUM_THREADS=1 is the worker's share of the cores
    # for the auto policy too (rnnlab/threads.py), so a run with train.threads=0 stays on one thread.
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def _call(train_one: Callable, cfg, job: tuple) -> dict:
    return train_one(*job, cfg)


def run_jobs(train_one: Callable, jobs: list[tuple], cfg, workers: int = 1, progress: bool = True) -> list[dict]:
    """train_one(*job, cfg) for every job, results in job order. Jobs are independent
    training runs, each seeded by its own arguments, so `workers` > 1 (separate
    processes, one torch thread each, by default one per usable core, so that they never
    oversubscribe the cores) gives the same results, sooner."""
    from rnnlab.console import bar as progress_bar

    workers = min(workers if workers > 0 else threads.usable_cores(), len(jobs))
    bar = progress_bar(total=len(jobs), unit="run", disable=not progress, dynamic_ncols=True)
    results = []
    try:
        if workers <= 1:
            for job in jobs:
                bar.set_description(" ".join(map(str, job)))
                results.append(train_one(*job, cfg))
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
    from rnnlab.trainer import train_config

    if (run_dir / "summary.json").is_file():
        print(f"{name}: finished run found in {run_dir}, not retrained")
        return
    print(f"{name}: training into {run_dir}")
    train_config(cfg, run_dir, progress=progress, overwrite=True)


def time_note(wall: float, run_seconds: list[float], workers: int = 1) -> str:
    """The wall time of this command, and the training time summed over its runs (each run's
    summary.json): a run found finished is not retrained, so the two differ when runs are reused. In one process
    the runs' thread counts are their own (each summary.json records them), not this process's."""
    how = f"{workers} processes x 1 torch thread" if workers > 1 else "one process, one run after another"
    return (f"Wall time: {wall / 60:.1f} min for this command ({how}); training time summed over its "
            f"{len(run_seconds)} runs: {sum(run_seconds) / 60:.1f} min (a run found finished under runs/ is not "
            f"retrained, and counts with the time its summary records).")


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
                       help="training runs in parallel, one process and torch thread each (default 0: one per core; "
                            "at most 4 per usable CPU)")


def task_config(args, config_class):
    """A sequence task's configuration from the shared flags: --quick, --seeds, --hidden (and --threads)."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cfg = config_class.quick() if args.quick else config_class()
    if args.seeds is not None:
        cfg.seeds = args.seeds
    if args.hidden is not None:
        cfg.hidden = args.hidden
    return cfg


def out_dir(args) -> Path:
    return Path(args.out) if args.out else Path("runs") / "experiments" / args.experiment


def workers(args) -> int:
    return args.jobs if args.jobs > 0 else threads.usable_cores()  # never more processes than usable cores


def print_results(rows: list[dict], paths: dict, columns: list[str]) -> int:
    print(markdown_table(rows, columns))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def parse_names(text: str, allowed: tuple[str, ...], flag: str = "--cells") -> list[str]:
    """A comma list of names, each one of `allowed` (--cells, --optimizers, ...)."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in names if c not in allowed]
    if not names or bad:
        raise UserError(f"{flag} takes a comma list of {', '.join(allowed)}; got '{text}'")
    return names
