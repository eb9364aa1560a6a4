"""`rnnlab experiment varlen`: three ways to batch sequences of varying length.

The task (`rnnlab.data.tasks.varlen`): does token A occur anywhere in a
sequence whose length is log-normal (median 40, up to 400)? One LSTM
classifier per strategy, same init, same training set, same number of epochs,
each a run directory (OUT/runs/STRATEGY-seedSEED) trained by the Trainer with
`task.kind = "varlen"` and `task.batching = STRATEGY` (the batcher is
rnnlab/data/tasks.py:TaskBatcher):

* pad:    random batches, padded to the longest sequence in the batch; the
          prediction is read at each sequence's last valid step (masking), so
          padding never changes the result — it only costs time.
* bucket: batches of sequences of similar length (sorted with random ties,
          cut into batches, batch order shuffled), then padded the same way.
* pack:   the same random batches as pad, as `pack_padded_sequence`: the
          fused kernel runs each step only on the sequences still going.

Reported per strategy: the fraction of processed positions that are padding,
training throughput (sequences per second of training steps, the run's
`step_seconds`: evaluation excluded; the strategies' runs train one after the
other) and test accuracy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rnnlab import argtypes as at
from rnnlab.experiments import (
    add_task_arguments,
    command_line,
    out_dir,
    print_results,
    task_config,
    task_run_config,
    train_task,
    write_results,
)

if TYPE_CHECKING:
    from rnnlab.data.tasks import VarlenSpec

HELP = "pad vs bucket vs pack batching of variable-length sequences"

COLUMNS = ["strategy", "pad_fraction", "seqs_per_s", "accuracy", "std", "seeds", "train_seconds"]
STRATEGIES = ("pad", "bucket", "pack")


def _spec(**settings) -> VarlenSpec:
    from rnnlab.data.tasks import VarlenSpec  # torch: not at import (rnnlab/experiments/__init__.py)

    return VarlenSpec(**settings)


@dataclass
class VarlenConfig:
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))
    seeds: int = 1
    hidden: int = 32
    batch_size: int = 64
    epochs: int = 6
    train_size: int = 4000
    test_size: int = 2000
    optimizer: str = "adam"
    lr: float = 3e-3
    clip: float = 5.0
    spec: VarlenSpec = field(default_factory=lambda: _spec())
    runs: Path = Path("runs/experiments/varlen/runs")  # where each training run's directory goes

    @classmethod
    def quick(cls) -> VarlenConfig:
        return cls(hidden=16, batch_size=32, epochs=1, train_size=256, test_size=128,
                   spec=_spec(median=12, sigma=0.8, min_len=2, max_len=60))

    def run_config(self, strategy: str, seed: int):
        """One strategy's run: the same seed, hence the same initial weights and training set, for every
        strategy; evaluated (on the test-sized validation set) at the end of every epoch."""
        sp = self.spec
        return task_run_config(f"varlen-{strategy}-seed{seed}", {
            "model.cell": "lstm", "model.hidden": self.hidden,
            "task.kind": "varlen", "task.batching": strategy, "task.median": sp.median, "task.sigma": sp.sigma,
            "task.min_len": sp.min_len, "task.max_len": sp.max_len, "task.symbols": sp.vocab,
            "task.train_size": self.train_size, "task.valid_size": self.test_size, "task.test_size": self.test_size,
            "train.batch_size": self.batch_size, "train.seed": seed, "train.epochs": self.epochs,
            "train.optimizer": self.optimizer, "train.lr": self.lr, "train.clip": self.clip,
            "train.checkpoint_every": 0})


def pad_fraction(cfg, epochs: int) -> float:
    """Padded / processed positions over the training batches of `epochs` epochs (pack pads none)."""
    from rnnlab.data.tasks import TaskBatcher

    if cfg.task.batching == "pack":
        return 0.0
    batcher = TaskBatcher(cfg.task, cfg.train.batch_size, cfg.train.seed)
    lengths = batcher.lengths
    valid = processed = 0
    for epoch in range(epochs):
        for idx in batcher.order(epoch):
            valid += int(lengths[idx].sum())
            processed += int(lengths[idx].max()) * len(idx)
    return 1 - valid / processed


def run_seed(seed: int, cfg: VarlenConfig, bar=None) -> dict[str, dict]:
    results = {}
    for strategy in cfg.strategies:
        run_cfg = cfg.run_config(strategy, seed)
        summary = train_task(run_cfg, cfg.runs / f"{strategy}-seed{seed}")
        results[strategy] = {"pad_fraction": pad_fraction(run_cfg, cfg.epochs),
                             "seqs_per_s": cfg.train_size * cfg.epochs / summary["step_seconds"],
                             "train_seconds": summary["step_seconds"],
                             "accuracy": summary["final"]["test"]["accuracy"]}
        if bar is not None:
            bar.update(1)
    return results


def add_arguments(p) -> None:
    add_task_arguments(p, "varlen", jobs=False)  # strategies share initial weights and train in turn: one process
    p.add_argument("--epochs", type=at.positive, help="training epochs per strategy")


def run(args) -> int:
    cfg = task_config(args, VarlenConfig)
    if args.epochs is not None:
        cfg.epochs = args.epochs
    cfg.runs = out_dir(args) / "runs"
    rows, paths = measure(cfg, out_dir(args), command_line(args), not args.no_progress)
    return print_results(rows, paths, COLUMNS)


def measure(cfg: VarlenConfig, out: Path, command: str, progress: bool = True) -> tuple[list[dict], dict]:
    import numpy as np

    from rnnlab.console import bar as progress_bar

    start = time.perf_counter()
    bar = progress_bar(total=cfg.seeds * len(cfg.strategies), unit="run", disable=not progress,
               dynamic_ncols=True, desc="varlen")
    per_seed = [run_seed(seed, cfg, bar) for seed in range(cfg.seeds)]
    bar.close()
    rows = []
    for s in cfg.strategies:
        rs = [p[s] for p in per_seed]
        acc = np.array([r["accuracy"] for r in rs])
        rows.append({"strategy": s, "pad_fraction": float(np.mean([r["pad_fraction"] for r in rs])),
                     "seqs_per_s": float(np.mean([r["seqs_per_s"] for r in rs])), "accuracy": float(acc.mean()),
                     "std": float(acc.std()), "seeds": len(rs),
                     "train_seconds": float(np.mean([r["train_seconds"] for r in rs])), "per_seed": acc.tolist()})
    wall = time.perf_counter() - start
    paths = write_results(out, "varlen", rows, COLUMNS, command, lambda p: plot(rows, p),
                          notes=summary(rows, cfg, wall))
    return rows, paths


def summary(rows: list[dict], cfg: VarlenConfig, wall: float) -> str:
    import torch

    by = {r["strategy"]: r for r in rows}
    lines = []
    if "pad" in by:
        base = by["pad"]
        for s in ("bucket", "pack"):
            if s in by:
                cut = 1 - by[s]["pad_fraction"] / base["pad_fraction"] if base["pad_fraction"] else 0.0
                lines.append(f"- {s} vs pad: {cut:.0%} fewer padded positions, "
                             f"{by[s]['seqs_per_s'] / base['seqs_per_s']:.2f}× the throughput, accuracy "
                             f"{100 * (by[s]['accuracy'] - base['accuracy']):+.1f} points")
    sp = cfg.spec
    lines += ["", f"Task: does token A occur anywhere? Lengths round(LogNormal(log {sp.median:g}, {sp.sigma:g})) "
              f"clipped to [{sp.min_len}, {sp.max_len}], {sp.vocab} symbols. {cfg.train_size} training and "
              f"{cfg.test_size} test sequences; one-hot → LSTM (hidden {cfg.hidden}, fused kernel) → linear; batch "
              f"{cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}, {cfg.epochs} epochs, the same initial weights for "
              "every strategy. pad_fraction: padded / processed positions (pack processes none); seqs_per_s: training "
              f"sequences per second of training steps (batch assembly included, evaluation not).",
              "", f"Wall time: {wall / 60:.1f} min ({torch.get_num_threads()} torch threads)."]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    names = [r["strategy"] for r in rows]
    for ax, key, label in zip(axes, ("pad_fraction", "seqs_per_s", "accuracy"),
                              ("padded fraction", "sequences / s", "test accuracy")):
        ax.bar(names, [r[key] for r in rows], color=["C0", "C1", "C2"][: len(rows)])
        ax.set_title(label)
    axes[2].set_ylim(0.5, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
