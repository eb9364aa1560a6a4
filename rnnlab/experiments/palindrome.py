"""`rnnlab experiment palindrome`: how far back can each cell remember one digit?

For each cell, length T and seed a fresh classifier (one-hot digits → 1-layer
recurrent net → linear) learns to predict the last digit of a palindrome from
the first T−1 (the last digit equals the first). Every training batch is
freshly drawn; training stops when accuracy on fresh samples reaches the
target or the step budget is spent; the score is the accuracy on 10,000
fresh palindromes of that length (chance: 10%).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnlab import argtypes as at
from rnnlab.data.tasks import DIGITS, palindromes
from rnnlab.errors import UserError
from rnnlab.experiments import (Budget, SequenceClassifier, accuracy, add_task_arguments, command_line, fit, out_dir,
                                parse_cells, positive, print_results, run_jobs, task_config, workers, write_results)

HELP = "accuracy vs length on the palindrome task, per cell"

COLUMNS = ["cell", "length", "accuracy", "std", "min", "max", "seeds", "reached", "steps", "seconds"]


@dataclass
class PalindromeConfig:
    cells: list[str] = field(default_factory=lambda: ["rnn", "lstm", "gru"])
    lengths: list[int] = field(default_factory=lambda: list(range(5, 41, 5)))
    seeds: int = 3
    hidden: int = 128
    batch_size: int = 128
    chrono: bool = True  # chrono init of the LSTM/GRU gate biases (Tallec & Ollivier 2018)
    budget: Budget = field(default_factory=lambda: Budget(max_steps=1500, check_every=50, target=0.995, patience=500))
    check_samples: int = 1000
    test_samples: int = 10_000
    backend: str = "torch"

    @classmethod
    def quick(cls) -> PalindromeConfig:
        return cls(cells=["rnn", "lstm"], lengths=[5, 8], seeds=1, hidden=32, batch_size=64,
                   budget=Budget(max_steps=120, check_every=20, target=0.99), check_samples=256, test_samples=1000)


def parse_lengths(text: str) -> list[int]:
    """'5:40:5' (start:stop:step, stop included) or '5,10,20'."""
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            start, stop, step = (parts + [1])[:3] if len(parts) == 2 else parts
            lengths = list(range(start, stop + 1, step))
        else:
            lengths = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UserError(f"--lengths expects start:stop:step or a comma list of integers, got '{text}'") from None
    if not lengths or min(lengths) < 2:
        raise UserError(f"--lengths must give lengths >= 2, got '{text}'")
    return lengths


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple:
    return torch.as_tensor(x.T.copy()), {}, torch.as_tensor(y)


def _test_batches(length: int, n: int, chunk: int = 2500):
    rng = np.random.default_rng([7919, length])  # one fixed test set per length, shared by every cell and seed
    for start in range(0, n, chunk):
        yield _tensors(*palindromes(min(chunk, n - start), length, rng))


def chrono_init(cell: str, bias_ih, bias_hh, horizon: int, u) -> None:
    """Chrono initialization (Tallec & Ollivier 2018) of a gated cell's biases, in place:
    the carry gate's bias is log(U(1, horizon − 1)), so at init units keep their
    state for 1 to `horizon` steps instead of about 2 (σ(0) = ½ per step).

        LSTM (rows i, f, g, o): b_f = log(1 + u (horizon − 2)), b_i = −b_f
        GRU  (rows r, z, n; h = (1 − z) n + z h_prev): b_z = log(1 + u (horizon − 2))

    `u` ~ U(0, 1) per unit; the RNN has no gate, so it is left alone.
    """
    if cell not in ("lstm", "gru"):
        return
    H = len(u)
    if isinstance(bias_ih, torch.Tensor):
        b = torch.log1p(torch.as_tensor(u) * max(horizon - 2, 0)).to(bias_ih.dtype)
    else:
        b = np.log1p(np.asarray(u) * max(horizon - 2, 0)).astype(bias_ih.dtype)
    rows = slice(H, 2 * H)  # f (LSTM) and z (GRU) are both the second block
    bias_ih[rows] = b
    if bias_hh is not None:
        bias_hh[rows] = 0.0
    if cell == "lstm":
        bias_ih[:H] = -b
        if bias_hh is not None:
            bias_hh[:H] = 0.0


def train_one(cell: str, length: int, seed: int, cfg: PalindromeConfig, on_step=None) -> dict:
    """Train one classifier; return its test accuracy and the steps it took.
    With cfg.backend = "numpy" the recurrent layer runs in the NumPy reference
    (hand-written BPTT), trained by the same loop on the same data streams."""
    torch.manual_seed(seed)
    model = SequenceClassifier(cell, 0, cfg.hidden, DIGITS, vocab=DIGITS, backend=cfg.backend)
    if cfg.chrono:
        for layer in model.rnn.layers:
            with torch.no_grad():
                chrono_init(cell, layer.bias_ih, layer.bias_hh, length - 1, torch.rand(cfg.hidden))
    train_rng = np.random.default_rng([seed, length])
    check_rng = np.random.default_rng([seed, length, 1])
    result = fit(model, lambda step: _tensors(*palindromes(cfg.batch_size, length, train_rng)), cfg.budget,
                 check=lambda: accuracy(model, [_tensors(*palindromes(cfg.check_samples, length, check_rng))]),
                 on_step=on_step)
    result["accuracy"] = accuracy(model, _test_batches(length, cfg.test_samples))
    return result


def add_arguments(p) -> None:
    add_task_arguments(p, "palindrome")
    p.add_argument("--cells", help="comma list of cells (default rnn,lstm,gru)")
    p.add_argument("--lengths", help="start:stop:step (stop included) or a comma list (default 5:40:5)")
    p.add_argument("--backend", choices=["torch", "numpy"], default="torch")
    p.add_argument("--max-steps", type=at.positive, help="step budget per training run")


def run(args) -> int:
    cfg = task_config(args, PalindromeConfig)
    if args.cells:
        cfg.cells = parse_cells(args.cells, ("rnn", "lstm", "gru"))
    if args.lengths:
        cfg.lengths = parse_lengths(args.lengths)
    cfg.backend = args.backend
    if args.max_steps is not None:
        cfg.budget.max_steps = positive("--max-steps", args.max_steps)
    rows, paths = measure(cfg, out_dir(args), command_line(args), not args.no_progress, workers(args))
    return print_results(rows, paths, COLUMNS)


def measure(cfg: PalindromeConfig, out: Path, command: str, progress: bool = True,
            workers: int = 1) -> tuple[list[dict], dict]:
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
                     "reached": sum(r["stop"] == "target" for r in rs),
                     "steps": float(np.mean([r["steps"] for r in rs])),
                     "seconds": float(np.mean([r["seconds"] for r in rs])), "per_seed": acc.tolist()})
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
    lines += ["", f"Settings: {cfg.backend} backend, hidden {cfg.hidden}, batch {cfg.batch_size}, {b.optimizer} "
              f"lr {b.lr:g}, gradient clip {b.clip:g}, "
              f"{'chrono init of the LSTM/GRU gate biases (horizon T−1)' if cfg.chrono else 'PyTorch default init'}; "
              f"at most {b.max_steps} steps, stopping early once accuracy on {cfg.check_samples} fresh samples "
              f"(checked every {b.check_every} steps) reaches {b.target:.1%}"
              f"{f', or after {b.patience} steps without a 1-point gain' if b.patience else ''}; `reached` counts "
              f"the seeds that hit that target. Accuracy: {cfg.test_samples} fresh "
              f"palindromes per length, mean over {cfg.seeds} seed(s); std/min/max over seeds. "
              f"`steps` and `seconds` are per training run (mean over seeds).",
              "", f"Wall time: {wall / 60:.1f} min ("
              f"{f'{workers} processes x 1 torch thread' if workers > 1 else f'{torch.get_num_threads()} torch threads'})."]
    return "\n".join(lines)


def plot(rows: list[dict], cfg: PalindromeConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for cell in cfg.cells:
        rs = sorted((r for r in rows if r["cell"] == cell), key=lambda r: r["length"])
        x = [r["length"] for r in rs]
        ax.plot(x, [r["accuracy"] for r in rs], marker="o", label=cell)
        ax.fill_between(x, [r["min"] for r in rs], [r["max"] for r in rs], alpha=0.2)
    ax.axhline(0.1, color="grey", lw=0.8, ls=":", label="chance")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="palindrome length T", ylabel="accuracy on fresh palindromes", ylim=(0, 1.02),
           title=f"Palindrome task ({cfg.seeds} seed(s); band: min–max)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
