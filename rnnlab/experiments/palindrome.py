"""`rnnlab experiment palindrome`: how far back can each cell remember one digit?

For each cell, length T and seed a fresh classifier (one-hot digits → 1-layer
recurrent net → linear) learns to predict the last digit of a palindrome from
the first T−1 (the last digit equals the first). Every training batch is
freshly drawn; training stops when accuracy on the validation palindromes
reaches the target or the step budget is spent; the score is the accuracy on
10,000 held-out palindromes of that length (chance: 10%).

Each training run is a run directory (OUT/runs/CELL-TLENGTH-seedSEED) trained
by the Trainer: `task.kind = "palindrome"`, `model.arch = "classifier"`, so
`rnnlab eval` reports its accuracy and `rnnlab train --resume` continues it.
A finished run of the same configuration already there is kept, not trained
again, so re-running the experiment with more lengths or seeds, or after it
was stopped, trains only what is missing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab import argtypes as at
from rnnlab import cell_registry, safejson
from rnnlab.errors import UserError
from rnnlab.experiments import (
    Budget,
    add_task_arguments,
    command_line,
    out_dir,
    print_results,
    run_jobs,
    task_config,
    task_run_config,
    time_note,
    train_task,
    workers,
    write_results,
)

HELP = "accuracy vs length on the palindrome task, per cell"


def __getattr__(name: str):
    if name == "chrono_init":  # re-exported (where the palindrome study needs it), imported on use: torch
        from rnnlab.models.classifier import chrono_init

        return chrono_init
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

COLUMNS = ["cell", "length", "accuracy", "std", "min", "max", "seeds", "reached", "steps", "seconds"]


@dataclass
class PalindromeConfig:
    cells: list[str] = field(default_factory=lambda: ["rnn", "lstm", "gru"])
    lengths: list[int] = field(default_factory=lambda: list(range(5, 41, 5)))
    seeds: int = 3
    hidden: int = 128
    batch_size: int = 128
    # "onehot": each digit one-hot (10 inputs) | "scalar": one float (the course's template, input_dim 1)
    encoding: str = "onehot"
    chrono: bool = True  # chrono init of the LSTM/GRU gate biases (Tallec & Ollivier 2018), horizon T−1
    budget: Budget = field(default_factory=lambda: Budget(max_steps=1500, check_every=50, target=0.995, patience=500))
    check_samples: int = 1000
    test_samples: int = 10_000
    backend: str = "torch"
    runs: Path = Path("runs/experiments/palindrome/runs")  # where each training run's directory goes

    @classmethod
    def quick(cls) -> PalindromeConfig:
        return cls(cells=["rnn", "lstm"], lengths=[5, 8], seeds=1, hidden=32, batch_size=64,
                   budget=Budget(max_steps=120, check_every=20, target=0.99), check_samples=256, test_samples=1000)

    def run_config(self, cell: str, length: int, seed: int):
        """The run configuration of one training run (`rnnlab train --config` takes it as TOML too)."""
        entry, options = cell_registry.resolve(cell)  # an alias (rnn_relu) names a cell and its options
        return task_run_config(f"palindrome-{cell}-T{length}-seed{seed}", {
            "model.cell": entry.name, **{f"model.{k}": v for k, v in options.items()},
            "model.hidden": self.hidden, "model.backend": self.backend,
            "model.chrono": length - 1 if self.chrono else 0,
            "task.kind": "palindrome", "task.length": length, "task.encoding": self.encoding,
            "task.train_size": self.batch_size * self.budget.check_every,
            "task.valid_size": self.check_samples, "task.test_size": self.test_samples,
            "train.batch_size": self.batch_size, "train.seed": seed, **self.budget.settings()})


def parse_lengths(text: str) -> list[int]:
    """A comma list whose items are lengths or start:stop:step ranges (stop included, step 1 if left out):
    '5:40:5', '5,10,20', '5:20,22:40:2'. Sorted, each length once."""
    lengths: set[int] = set()
    try:
        for item in (p.strip() for p in text.split(",") if p.strip()):
            if ":" in item:
                parts = [int(p) for p in item.split(":")]
                if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] < 1):
                    raise ValueError(item)
                start, stop, step = (parts + [1])[:3]
                lengths.update(range(start, stop + 1, step))
            else:
                lengths.add(int(item))
    except ValueError:
        expected = "lengths and start:stop:step ranges separated by commas"
        raise UserError(f"--lengths expects {expected}, got '{text}'") from None
    if not lengths or min(lengths) < 2:
        raise UserError(f"--lengths must give lengths >= 2, got '{text}'")
    return sorted(lengths)


def finished(run_dir: Path, run_cfg) -> dict | None:
    """The summary of a finished run of exactly this configuration in run_dir, else None: a re-run of
    the experiment (more lengths or seeds, or after it was stopped) trains only what is missing."""
    summary, config = run_dir / "summary.json", run_dir / "config.toml"
    if summary.is_file() and config.is_file() and config.read_text(encoding="utf-8") == run_cfg.to_toml():
        return safejson.read(summary)
    return None


def train_one(cell: str, length: int, seed: int, cfg: PalindromeConfig) -> dict:
    """Train one classifier by the Trainer (unless run_dir holds this finished run); its test accuracy,
    the steps it took and whether it reached the target. With cfg.backend = "numpy" the recurrent
    layer runs in the NumPy reference (hand-written BPTT), on the same data."""
    run_cfg, run_dir = cfg.run_config(cell, length, seed), cfg.runs / f"{cell}-T{length}-seed{seed}"
    summary = finished(run_dir, run_cfg) or train_task(run_cfg, run_dir)
    return {"accuracy": summary["final"]["test"]["accuracy"], "steps": summary["steps"],
            "seconds": summary["wall_seconds"], "stop": summary["early_stop"] or "budget"}


def add_arguments(p) -> None:
    add_task_arguments(p, "palindrome")
    p.add_argument("--cells", type=at.cells,
                   help="comma list of cells of the cell table, e.g. rnn, rnn_relu, lstm, gru (default rnn,lstm,gru)")
    p.add_argument("--lengths", help="lengths and start:stop:step ranges (stop included), comma-separated, e.g. "
                                      "5:20,22:40:2 (default 5:40:5)")
    p.add_argument("--backend", choices=["torch", "numpy"], default="torch")
    p.add_argument("--max-steps", type=at.positive, help="step budget per training run")
    p.add_argument("--optimizer", choices=["sgd", "adagrad", "rmsprop", "adam"], help="(default rmsprop)")
    p.add_argument("--lr", type=at.positive_number, help="learning rate (default 1e-3)")
    p.add_argument("--clip", type=at.nonnegative_number, help="max global gradient norm (default 5; 0: none)")
    p.add_argument("--encoding", choices=["onehot", "scalar"],
                   help="each digit as a one-hot vector (default) or as one float, as the course's template does")
    p.add_argument("--no-chrono", action="store_true", help="PyTorch's default init instead of chrono init")
    p.add_argument("--target", type=at.number(0.0, 1.0),
                   help="stop a run once its validation accuracy reaches this (default 0.995; 0: never)")
    p.add_argument("--patience", type=at.count,
                   help="stop a run after this many steps without a 1-point gain in that accuracy (default 500; 0: "
                        "never)")


def run(args) -> int:
    cfg = task_config(args, PalindromeConfig)
    if args.cells:
        timed = [c for c in args.cells if cell_registry.get(c).needs_times]
        if timed:
            raise UserError(f"--cells: {', '.join(timed)} needs timestamps, which the palindrome task has not")
        cfg.cells = args.cells
    if args.lengths:
        cfg.lengths = parse_lengths(args.lengths)
    cfg.backend = args.backend
    if args.max_steps is not None:
        cfg.budget.max_steps = args.max_steps
    if args.optimizer:
        cfg.budget.optimizer = args.optimizer
    if args.lr is not None:
        cfg.budget.lr = args.lr  # checked with the other train.* settings (train.lr must be positive)
    if args.clip is not None:
        cfg.budget.clip = args.clip
    if args.encoding:
        cfg.encoding = args.encoding
    if args.target is not None:
        cfg.budget.target = args.target
    if args.patience is not None:
        cfg.budget.patience = args.patience
    cfg.chrono = cfg.chrono and not args.no_chrono
    cfg.runs = out_dir(args) / "runs"
    rows, paths = measure(cfg, out_dir(args), command_line(args), not args.no_progress, workers(args))
    return print_results(rows, paths, COLUMNS)


def measure(cfg: PalindromeConfig, out: Path, command: str, progress: bool = True,
            workers: int = 1) -> tuple[list[dict], dict]:
    import numpy as np

    jobs = [(c, T, s) for c in cfg.cells for T in cfg.lengths for s in range(cfg.seeds)]
    results: dict[tuple, list[dict]] = {}
    start = time.perf_counter()
    for job, r in zip(jobs, run_jobs(train_one, jobs, cfg, workers, progress)):
        results.setdefault(job[:2], []).append(r)
    rows = []
    for (cell, length), rs in results.items():
        acc = np.array([r["accuracy"] for r in rs])
        rows.append({"cell": cell, "length": length, "accuracy": float(acc.mean()), "std": float(acc.std()),
                     "min": float(acc.min()), "max": float(acc.max()), "seeds": len(rs),
                     "reached": sum(r["stop"] == "accuracy" for r in rs),
                     "steps": float(np.mean([r["steps"] for r in rs])),
                     "seconds": float(np.mean([r["seconds"] for r in rs])), "per_seed": acc.tolist(),
                     "run_seconds": [r["seconds"] for r in rs]})
    wall = time.perf_counter() - start
    paths = write_results(out, "palindrome", rows, COLUMNS, command, lambda p: plot(rows, cfg, p),
                          notes=summary(rows, cfg, wall, workers))
    return rows, paths


def first_below(rows: list[dict], cell: str, level: float = 0.5) -> int | None:
    """The shortest length at which the cell's mean accuracy is below `level`."""
    below = [r["length"] for r in rows if r["cell"] == cell and r["accuracy"] < level]
    return min(below) if below else None


def summary(rows: list[dict], cfg: PalindromeConfig, wall: float, workers: int = 1) -> str:
    b = cfg.budget
    lines = ["Where each cell falls below 50% accuracy (chance is 10%):", ""]
    for cell in cfg.cells:
        L = first_below(rows, cell)
        lines.append(f"- {cell}: " + (f"T = {L}" if L else f"not within T ≤ {max(cfg.lengths)}"))
    lines += [
        "",
        f"Settings: {cfg.backend} backend, {cfg.encoding} digits, hidden {cfg.hidden}, batch {cfg.batch_size}, "
        f"{b.optimizer} lr {b.lr:g}, gradient clip {b.clip:g}, "
        f"{'chrono init of the LSTM/GRU gate biases (horizon T−1)' if cfg.chrono else 'PyTorch default init'}; "
        f"at most {b.max_steps} steps"
        + (
            f", stopping early once accuracy on {cfg.check_samples} validation palindromes (checked every "
            f"{b.check_every} steps) reaches {b.target:.1%}; `reached` counts the seeds that hit that target"
            if b.target
            else ", no early stopping at an accuracy"
        )
        + (f"; stopping after {b.patience} steps without a 1-point gain in that accuracy" if b.patience else "")
        + f". Accuracy: {cfg.test_samples} held-out "
        f"palindromes per length, mean over {cfg.seeds} seed(s); std/min/max over seeds. "
        f"`steps` and `seconds` are per training run (mean over seeds); each run is a run directory "
        f"under runs/ (`rnnlab eval RUN --split test`).",
        "",
        time_note(wall, [s for r in rows for s in r["run_seconds"]], workers),
    ]
    return "\n".join(lines)


def plot(rows: list[dict], cfg: PalindromeConfig, path: Path) -> None:
    figure(rows, cfg).savefig(path, dpi=120)


def figure(rows: list[dict], cfg: PalindromeConfig):
    """Accuracy against length, one line per cell (a Figure on the Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.6, 4))  # wider: the legend sits outside the axes, off the lines
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for cell in cfg.cells:
        rs = sorted((r for r in rows if r["cell"] == cell), key=lambda r: r["length"])
        x = [r["length"] for r in rs]
        ax.plot(x, [r["accuracy"] for r in rs], marker="o", label=cell)
        ax.fill_between(x, [r["min"] for r in rs], [r["max"] for r in rs], alpha=0.2)
    ax.axhline(0.1, color="grey", lw=0.8, ls=":", label="chance")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--", label="50 %")
    ax.set(xlabel="palindrome length T", ylabel="accuracy on fresh palindromes", ylim=(0, 1.02),
           title=f"Palindrome task ({cfg.seeds} seed(s); band: min–max)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig
