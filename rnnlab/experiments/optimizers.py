"""`rnnlab experiment optimizers`: SGD, SGD with momentum, AdaGrad, RMSprop and
Adam on the same two problems, each at its own tuned learning rate.

The problems are the course's character job (the `grimm-char-2x128` model on
the bundled Grimm text, constant learning rate so that only the optimizer
differs) and the palindrome task at T = 20 (the `palindrome-course` preset
with an LSTM, no early stopping). Every (problem, optimizer, learning rate) of
the grids below is one run directory, OUT/runs/PROBLEM-OPTIMIZER-lrLR, trained
by the Trainer; a finished one is kept, so re-running only fills gaps. An
optimizer's tuned learning rate is the grid point with the lowest validation
loss at the end of the budget (a run that diverges counts as infinitely bad).
Writes optimizers.{json,csv,md,png}: the table and the validation-loss
curves of every optimizer at its tuned rate.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from rnnlab import argtypes as at
from rnnlab.config import load_config
from rnnlab.errors import UserError
from rnnlab.experiments import (
    command_line,
    out_dir,
    parse_names,
    print_results,
    run_jobs,
    train_task,
    workers,
    write_results,
)

HELP = "SGD, momentum, AdaGrad, RMSprop and Adam at tuned learning rates (char job, palindromes T=20)"

OPTIMIZERS = {
    "sgd": {"train.optimizer": "sgd"},
    "sgd-momentum": {"train.optimizer": "sgd", "train.momentum": 0.9},
    "adagrad": {"train.optimizer": "adagrad"},
    "rmsprop": {"train.optimizer": "rmsprop"},
    "adam": {"train.optimizer": "adam"},
}
# Learning rates about 3x apart around each optimizer's usual range, per problem.
GRIDS = {
    "char": {"sgd": (0.3, 1.0, 3.0), "sgd-momentum": (0.03, 0.1, 0.3), "adagrad": (0.03, 0.1, 0.3),
             "rmsprop": (3e-4, 1e-3, 3e-3), "adam": (1e-3, 3e-3, 1e-2)},
    "palindrome": {"sgd": (0.03, 0.1, 0.3), "sgd-momentum": (0.01, 0.03, 0.1), "adagrad": (0.01, 0.03, 0.1),
                   "rmsprop": (3e-4, 1e-3, 3e-3), "adam": (3e-4, 1e-3, 3e-3)},
}
PROBLEMS = ("char", "palindrome")
COLUMNS = ["problem", "optimizer", "lr", "valid_loss", "valid_bpc", "valid_accuracy", "test_accuracy", "lrs_tried",
           "seconds"]


@dataclass
class OptimizersConfig:
    steps: int = 1500  # per run, the same for every optimizer of a problem
    seed: int = 0
    quick: bool = False  # tiny models, one learning rate per optimizer (seconds; the tests)
    runs: Path = Path("runs/experiments/optimizers/runs")

    def grid(self, problem: str, optimizer: str) -> tuple[float, ...]:
        lrs = GRIDS[problem][optimizer]
        return lrs[len(lrs) // 2:][:1] if self.quick else lrs

    def settings(self, problem: str, optimizer: str, lr: float) -> tuple[str, list[str]]:
        """(preset, --set items) of one run."""
        common = [f"train.lr={lr}", f"train.max_steps={self.steps}", f"train.seed={self.seed}", "train.samples=0",
                  "train.schedule=constant", "train.threads=1", "train.checkpoint_every=0",
                  f"train.eval_every={max(self.steps // 10, 1)}",
                  *(f"{k}={v}" for k, v in OPTIMIZERS[optimizer].items())]
        if problem == "char":
            tiny = ["model.hidden=16", "train.batch_size=8", "train.seq_len=16", "train.eval_batch_size=4",
                    "train.eval_seq_len=64"] if self.quick else []
            # train.bf16=off: float32 everywhere, the same numbers on every CPU
            return "grimm-char-2x128", [*common, "train.bf16=off", *tiny]
        tiny = ["model.hidden=16", "task.length=5", "task.train_size=2048", "task.valid_size=256",
                "task.test_size=256", "train.batch_size=32"] if self.quick else ["task.length=20"]
        # one-hot digits and clip 5, as optimizers.md was measured (the preset now feeds scalar digits, clip 10)
        return "palindrome-course", [*common, "model.cell=lstm", "task.encoding=onehot", "train.clip=5",
                                     "train.stop_at_accuracy=0", *tiny]


def run_name(problem: str, optimizer: str, lr: float) -> str:
    return f"{problem}-{optimizer}-lr{lr:g}"


def train_one(problem: str, optimizer: str, lr: float, cfg: OptimizersConfig) -> dict:
    run_dir = cfg.runs / run_name(problem, optimizer, lr)
    preset, settings = cfg.settings(problem, optimizer, lr)
    start = time.perf_counter()
    run_cfg = load_config(preset, None, settings)
    summary = finished(run_dir, run_cfg)
    try:
        summary = summary or train_task(run_cfg, run_dir)
    except UserError as e:  # too large a rate: the run stops after repeated non-finite losses
        return {"valid_loss": math.inf, "diverged": str(e), "seconds": time.perf_counter() - start}
    final = summary["final"]
    return {"valid_loss": final["valid"]["loss"], "valid_bpc": final["valid"].get("bpc") if problem == "char" else None,
            "valid_accuracy": final["valid"].get("accuracy"),
            "test_accuracy": final.get("test", {}).get("accuracy") if problem == "palindrome" else None,
            "seconds": summary["wall_seconds"]}


def finished(run_dir: Path, cfg) -> dict | None:
    """The summary of a finished run in run_dir trained with the same [train] settings, else None:
    re-running the experiment only trains what is missing or was set differently."""
    if not (run_dir / "summary.json").is_file() or not (run_dir / "config.toml").is_file():
        return None
    done = load_config(None, str(run_dir / "config.toml"))
    if done.to_dict()["train"] != cfg.to_dict()["train"]:
        return None
    return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))


def curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, validation loss) of every evaluation of a run."""
    from rnnlab.runs import read_jsonl  # torch: not at import (rnnlab/experiments/__init__.py)

    return [(r["step"], r["loss"]) for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("split") == "valid"]


def add_arguments(p) -> None:
    p.add_argument("--out", help="output directory (default: runs/experiments/optimizers)")
    p.add_argument("--problems", default=",".join(PROBLEMS), help="comma list of char, palindrome (default both)")
    p.add_argument("--optimizers", default=",".join(OPTIMIZERS), help=f"comma list (default {','.join(OPTIMIZERS)})")
    p.add_argument("--steps", type=at.positive, help="steps per run (default 1500; quick 30)")
    p.add_argument("--seed", type=at.seed, default=0)
    p.add_argument("--quick", action="store_true",
                   help="tiny models, one learning rate each (seconds), as the tests run it")
    p.add_argument("--jobs", type=at.threads, default=0,
                   help="training runs in parallel, one process and torch thread each (default 0: one per core; "
                        "at most 4 per usable CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    cfg = OptimizersConfig(steps=args.steps or (30 if args.quick else 1500), seed=args.seed, quick=args.quick)
    cfg.runs = out_dir(args) / "runs"
    problems = parse_names(args.problems, PROBLEMS, "--problems")
    optimizers = parse_names(args.optimizers, tuple(OPTIMIZERS), "--optimizers")
    rows, paths = measure(cfg, problems, optimizers, out_dir(args), command_line(args), not args.no_progress,
                          workers(args))
    return print_results(rows, paths, COLUMNS)


def measure(cfg: OptimizersConfig, problems, optimizers, out: Path, command: str, progress: bool = True,
            workers: int = 1) -> tuple[list[dict], dict]:
    jobs = [(p, o, lr) for p in problems for o in optimizers for lr in cfg.grid(p, o)]
    results = dict(zip(jobs, run_jobs(train_one, jobs, cfg, workers, progress)))
    rows, edge = [], []  # edge: tuned at an end of a grid of several rates
    for p in problems:
        for o in optimizers:
            tried = {lr: results[(p, o, lr)] for lr in cfg.grid(p, o)}
            lr, best = min(tried.items(), key=lambda item: item[1]["valid_loss"])
            rows.append({"problem": p, "optimizer": o, "lr": lr, **best, "run": run_name(p, o, lr),
                         "lrs_tried": ", ".join(f"{x:g}: {r['valid_loss']:.3f}" for x, r in tried.items())})
            if len(tried) > 1 and lr in (min(tried), max(tried)):
                edge.append(f"{p}/{o}")
    edge_note = f" Tuned at the edge of its grid (a rate beyond it might be better): {', '.join(edge)}." if edge else ""
    paths = write_results(out, "optimizers", rows, COLUMNS, command, lambda path: plot(rows, cfg, path),
                          notes=notes(cfg) + edge_note)
    return rows, paths


def notes(cfg: OptimizersConfig) -> str:
    return (f"Each run: {cfg.steps} steps, constant learning rate, seed {cfg.seed}, one torch thread. lr: the tuned "
            "rate (lowest final validation loss of the grid, `lrs_tried`: rate: final validation loss; inf = "
            "diverged). char: the grimm-char-2x128 model (no dropout) on Grimm (valid_bpc: bits per character); "
            "palindrome: an LSTM on palindromes of length 20 (the palindrome-course preset with model.cell=lstm, "
            "one-hot digits and clip 5; valid/test accuracy of the last digit). Curves: validation loss at every "
            "evaluation, each optimizer at its tuned rate.")


def plot(rows: list[dict], cfg: OptimizersConfig, path: Path) -> None:
    from rnnlab.report.plots import COLORS, new_figure, save

    problems = list(dict.fromkeys(r["problem"] for r in rows))
    fig, axes = new_figure(len(problems), width=5.0)
    for ax, problem in zip(axes, problems):
        for i, r in enumerate(x for x in rows if x["problem"] == problem):
            points = curve(cfg.runs / r["run"])
            if points:
                ax.plot(*zip(*points), marker="o", ms=3, color=COLORS[i % len(COLORS)],
                        label=f"{r['optimizer']} (lr {r['lr']:g})")
        ax.set(xlabel="step", ylabel="validation loss", title=f"{problem}: validation loss per step")
        ax.legend(fontsize=8)
    save(fig, path)
