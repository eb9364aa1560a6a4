"""`rnnlab experiment varlen`: three ways to batch sequences of varying length.

The task (`rnnlab.data.tasks.varlen`): does token A occur anywhere in a
sequence whose length is log-normal (median 40, up to 400)? One LSTM
classifier per strategy, same init, same training set, same number of epochs:

* pad:    random batches, padded to the longest sequence in the batch; the
          prediction is read at each sequence's last valid step (masking), so
          padding never changes the result — it only costs time.
* bucket: batches of sequences of similar length (sorted with random ties,
          cut into batches, batch order shuffled), then padded the same way.
* pack:   the same random batches as pad, as `pack_padded_sequence`: the
          fused kernel runs each step only on the sequences still going.

Reported per strategy: the fraction of processed positions that are padding,
training throughput (sequences/s; the three models train epoch by epoch in
turn so that load on a shared machine hits them alike) and test accuracy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence
from tqdm import tqdm

from rnnlab.config import TrainConfig
from rnnlab.data.tasks import VarlenSpec, varlen
from rnnlab.experiments import (SequenceClassifier, accuracy, add_task_arguments, command_line, out_dir, positive,
                                print_results, task_config, write_results)

HELP = "pad vs bucket vs pack batching of variable-length sequences"
from rnnlab.optim import build_optimizer
from rnnlab import argtypes as at

COLUMNS = ["strategy", "pad_fraction", "seqs_per_s", "accuracy", "std", "seeds", "train_seconds"]
STRATEGIES = ("pad", "bucket", "pack")


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
    spec: VarlenSpec = field(default_factory=VarlenSpec)

    @classmethod
    def quick(cls) -> VarlenConfig:
        return cls(hidden=16, batch_size=32, epochs=1, train_size=256, test_size=128,
                   spec=VarlenSpec(median=12, sigma=0.8, min_len=2, max_len=60))


def batches(lengths: np.ndarray, batch_size: int, strategy: str, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of index batches."""
    if strategy == "bucket":
        order = np.lexsort((rng.random(len(lengths)), lengths))  # by length, random among equals
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        return [chunks[i] for i in rng.permutation(len(chunks))]
    order = rng.permutation(len(lengths))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(seqs: list[np.ndarray], idx: np.ndarray, strategy: str):
    """Model inputs for one batch: (x, kwargs), plus (valid, processed) positions."""
    lengths = torch.as_tensor([len(seqs[i]) for i in idx])
    padded = pad_sequence([torch.as_tensor(seqs[i]) for i in idx])  # [T_max, B]
    valid = int(lengths.sum())
    if strategy == "pack":
        return pack_padded_sequence(padded, lengths, enforce_sorted=False), {}, valid, valid
    return padded, {"lengths": lengths}, valid, padded.numel()


def evaluation(seqs, labels, batch_size: int = 500):
    order = np.argsort([len(s) for s in seqs])  # sorted: cheap, and the result does not depend on batching
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        x, kwargs, _, _ = collate(seqs, idx, "pad")
        yield x, kwargs, torch.as_tensor(labels[idx])


def run_seed(seed: int, cfg: VarlenConfig, bar=None) -> dict[str, dict]:
    rng = np.random.default_rng([seed, 0])
    train_x, train_y = varlen(cfg.train_size, rng, cfg.spec)
    test_x, test_y = varlen(cfg.test_size, np.random.default_rng([seed, 1]), cfg.spec)
    lengths = np.array([len(s) for s in train_x])
    models, optimizers, stats = {}, {}, {}
    for strategy in cfg.strategies:
        torch.manual_seed(seed)  # the same initial weights for every strategy
        models[strategy] = SequenceClassifier("lstm", 0, cfg.hidden, 2, vocab=cfg.spec.vocab)
        optimizers[strategy] = build_optimizer(models[strategy].parameters(), TrainConfig(optimizer=cfg.optimizer, lr=cfg.lr))
        stats[strategy] = {"seconds": 0.0, "seqs": 0, "valid": 0, "processed": 0}
    for epoch in range(cfg.epochs):
        for strategy in cfg.strategies:  # in turn, so machine load hits every strategy alike
            model, optimizer, st = models[strategy], optimizers[strategy], stats[strategy]
            model.train()
            order = batches(lengths, cfg.batch_size, strategy, np.random.default_rng([seed, 2, epoch]))
            start = time.perf_counter()
            for idx in order:
                x, kwargs, valid, processed = collate(train_x, idx, strategy)
                loss = torch.nn.functional.cross_entropy(model(x, **kwargs), torch.as_tensor(train_y[idx]))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                optimizer.step()
                st["seqs"] += len(idx)
                st["valid"] += valid
                st["processed"] += processed
                if bar is not None:
                    bar.set_postfix_str(f"{strategy} epoch {epoch + 1} loss {loss.item():.3f}", refresh=False)
            st["seconds"] += time.perf_counter() - start
            if bar is not None:
                bar.update(1)
    return {s: {"pad_fraction": 1 - st["valid"] / st["processed"], "seqs_per_s": st["seqs"] / st["seconds"],
                "train_seconds": st["seconds"], "accuracy": accuracy(models[s], evaluation(test_x, test_y))}
            for s, st in stats.items()}


def add_arguments(p) -> None:
    add_task_arguments(p, "varlen", jobs=False)  # strategies share initial weights and train in turn: one process
    p.add_argument("--epochs", type=at.positive, help="training epochs per strategy")


def run(args) -> int:
    cfg = task_config(args, VarlenConfig)
    if args.epochs is not None:
        cfg.epochs = positive("--epochs", args.epochs)
    rows, paths = measure(cfg, out_dir(args), command_line(args), not args.no_progress)
    return print_results(rows, paths, COLUMNS)


def measure(cfg: VarlenConfig, out: Path, command: str, progress: bool = True) -> tuple[list[dict], dict]:
    start = time.perf_counter()
    bar = tqdm(total=cfg.seeds * cfg.epochs * len(cfg.strategies), unit="epoch", disable=not progress,
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
    by = {r["strategy"]: r for r in rows}
    lines = []
    if "pad" in by:
        base = by["pad"]
        for s in ("bucket", "pack"):
            if s in by:
                cut = 1 - by[s]["pad_fraction"] / base["pad_fraction"] if base["pad_fraction"] else 0.0
                lines.append(f"- {s} vs pad: {cut:.0%} fewer padded positions, {by[s]['seqs_per_s'] / base['seqs_per_s']:.2f}× "
                             f"the throughput, accuracy {100 * (by[s]['accuracy'] - base['accuracy']):+.1f} points")
    sp = cfg.spec
    lines += ["", f"Task: does token A occur anywhere? Lengths round(LogNormal(log {sp.median:g}, {sp.sigma:g})) "
              f"clipped to [{sp.min_len}, {sp.max_len}], {sp.vocab} symbols. {cfg.train_size} training and "
              f"{cfg.test_size} test sequences; one-hot → LSTM (hidden {cfg.hidden}, fused kernel) → linear; batch "
              f"{cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}, {cfg.epochs} epochs, the same initial weights for every "
              f"strategy. pad_fraction: padded / processed positions (pack processes none); seqs_per_s: training "
              f"sequences per second of training (batch assembly included).",
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
