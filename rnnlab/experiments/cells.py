"""`rnnlab experiment cells`: RNN, LSTM, GRU, MGU, minGRU and minLSTM compared
at equal parameter count and equal training wall time.

Two tasks, each cell at the hidden size whose parameter count is closest to
the reference cell's (the LSTM by default; within ~2 %, by the closed-form
counts of the cell table):

* **char**: the default character job (preset grimm-char: 2 layers,
  batch 64 × 30 characters, Adam 4e-3) trained for the same wall time per
  cell, in rounds: in round r of R every cell trains on (resumes, which is
  bitwise exact) until its training time reaches r/R of the budget, so that a
  change in the machine's load during the command falls on every cell alike;
  with a constant learning rate (a cosine schedule over steps would
  reach a different point for cells of different speeds) and float32 (no bf16
  autocast, which the log-space scan of minGRU/minLSTM should not run in).
  The table gives validation bits/char after that time, training tokens/s
  (over the time spent in training steps) and the parameters; the curves are
  validation bits/char against training time.
* **palindrome**: the palindrome task (rnnlab experiment palindrome) at a few
  lengths, chrono init where the cell table gives the cell a carry gate, the
  same step budget for every cell; test accuracy (chance 10 %).

Every training run is a run directory under OUT/runs (`rnnlab eval RUN`); a
run finished earlier (its summary.json present) is not trained again, so
re-running the command only fills the gaps.
Writes OUT/cells.{json,csv,md,png}. The cells default to every cell of the
table that needs no timestamps; `--cells` takes any of the table's.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab import argtypes as at
from rnnlab import cell_registry, safejson
from rnnlab.errors import UserError
from rnnlab.experiments import Budget, command_line, markdown_table, parse_names, run_jobs, write_results

HELP = "every cell at equal parameters and equal wall time: the char job and palindromes"

COLUMNS = ["task", "cell", "hidden", "parameters", "bpc", "accuracy", "steps", "tokens_per_s", "seconds"]


def default_cells() -> list[str]:
    return [name for name, cell in cell_registry.CELLS.items() if not cell.needs_times]


@dataclass
class CellsConfig:
    cells: list[str] = field(default_factory=default_cells)
    reference: str = "lstm"  # every cell gets this cell's parameter count
    preset: str = "grimm-char"
    seconds: float = 240.0  # training wall time per cell on the char job
    rounds: int = 6  # the char job's budget is trained in this many interleaved rounds
    eval_every: int = 40  # steps between validation evaluations (the curves)
    char_settings: list[str] = field(default_factory=lambda: [
        "train.schedule=constant", "train.bf16=off", "train.samples=0", "train.max_steps=1000000",
        "train.checkpoint_every=1000000"])
    char_hidden: int = 0  # the reference cell's hidden size; 0: the preset's
    lengths: list[int] = field(default_factory=lambda: [10, 25])  # palindrome lengths
    palindrome_hidden: int = 64  # the reference cell's hidden size on palindromes
    budget: Budget = field(default_factory=lambda: Budget(max_steps=600, check_every=50, target=0.995, patience=200))
    seed: int = 0
    runs: Path = Path("runs/experiments/cells/runs")

    @classmethod
    def quick(cls) -> CellsConfig:
        return cls(seconds=1.0, rounds=2, eval_every=10, char_hidden=16, lengths=[4], palindrome_hidden=8,
                   char_settings=cls().char_settings + ["train.max_steps=20", "train.batch_size=8", "train.seq_len=12",
                                                        "model.layers=1", "train.eval_batch_size=64",
                                                        "train.eval_seq_len=64"],
                   budget=Budget(max_steps=20, check_every=10))


def matched_hidden(cell: str, target: int, count) -> int:
    """The hidden size whose parameter count `count(cell, hidden)` is closest to `target`."""
    best, hidden = None, 1
    while True:
        n = count(cell, hidden)
        if best is None or abs(n - target) < abs(best[1] - target):
            best = (hidden, n)
        if n > target:
            return best[0]
        hidden += 1


def lm_count(vocab: int, layers: int):
    """Parameters of the untied language model: embedding V·H, the stack, decoder V·H + V."""
    def count(cell: str, hidden: int) -> int:
        spec = cell_registry.get(cell)
        stack = spec.count_params(hidden, hidden, "double") * layers
        return 2 * vocab * hidden + vocab + stack
    return count


def classifier_count(inputs: int, classes: int):
    """Parameters of the one-layer classifier: the layer, the head H·C + C."""
    def count(cell: str, hidden: int) -> int:
        return cell_registry.get(cell).count_params(inputs, hidden, "double") + hidden * classes + classes
    return count


def char_config(cfg: CellsConfig, cell: str, hidden: int, seconds: float):
    from rnnlab.config import load_config

    return load_config(cfg.preset, None, [*cfg.char_settings, f"model.cell={cell}", f"model.hidden={hidden}",
                                          f"train.max_minutes={seconds / 60}", f"train.eval_every={cfg.eval_every}",
                                          f"train.seed={cfg.seed}", f"name=cells-{cell}"])


def train_char_until(cfg: CellsConfig, cell: str, hidden: int, seconds: float, progress: bool) -> None:
    """Train the cell's char run until its training time reaches `seconds`: start it, or resume it
    with that time limit; a run already that far is left as it is (a re-run only fills the gaps)."""
    from rnnlab import checkpoint
    from rnnlab.runs import read_config
    from rnnlab.trainer import Trainer, resume

    run_dir = cfg.runs / f"char-{cell}"
    if (run_dir / "summary.json").is_file():
        done = safejson.read(run_dir / "summary.json")
        if done["wall_seconds"] >= seconds or done["steps"] >= read_config(run_dir).train.max_steps:
            return
    quiet = dict(progress=progress, echo=lambda text: None)
    if checkpoint.exists(run_dir, "last"):
        resume(run_dir, [f"train.max_minutes={seconds / 60}"], **quiet)
    else:
        Trainer(char_config(cfg, cell, hidden, seconds), run_dir, overwrite=True, **quiet).run()


def char_row(cfg: CellsConfig, cell: str, hidden: int) -> dict:
    from rnnlab.runs import read_jsonl

    run_dir = cfg.runs / f"char-{cell}"
    summary = safejson.read(run_dir / "summary.json")
    run_cfg = char_config(cfg, cell, hidden, cfg.seconds)
    tokens_per_step = run_cfg.train.batch_size * run_cfg.train.seq_len
    curve = [[r["elapsed"], r["bpc"]] for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("split") == "valid"]
    return {"task": "char", "cell": cell, "hidden": hidden, "parameters": summary["parameters"],
            "bpc": summary["final"]["valid"]["bpc"], "accuracy": summary["final"]["valid"]["accuracy"],
            "steps": summary["steps"], "seconds": summary["wall_seconds"],
            "tokens_per_s": summary["steps"] * tokens_per_step / max(summary["step_seconds"], 1e-9), "curve": curve}


def palindrome_row(cell: str, length: int, hidden: int, cfg: CellsConfig, progress: bool) -> dict:
    from rnnlab.experiments.palindrome import PalindromeConfig, train_one

    pcfg = PalindromeConfig(cells=[cell], lengths=[length], seeds=1, hidden=hidden, budget=cfg.budget,
                            runs=cfg.runs)
    if cfg.budget.max_steps <= 20:  # --quick
        pcfg.check_samples, pcfg.test_samples, pcfg.batch_size = 64, 200, 16
    run_dir = cfg.runs / f"{cell}-T{length}-seed{cfg.seed}"
    if (run_dir / "summary.json").is_file():  # finished earlier: a re-run only fills the gaps
        print(f"cells: finished run found in {run_dir}, not retrained", flush=True)
        summary = safejson.read(run_dir / "summary.json")
        r = {"accuracy": summary["final"]["test"]["accuracy"], "steps": summary["steps"],
             "seconds": summary["wall_seconds"]}
    else:
        r = run_jobs(train_one, [(cell, length, cfg.seed)], pcfg, 1, progress)[0]
    parameters = safejson.read(run_dir / "summary.json")["parameters"]
    return {"task": f"palindrome T={length}", "cell": cell, "hidden": hidden, "parameters": parameters,
            "accuracy": r["accuracy"], "steps": r["steps"], "seconds": r["seconds"], "length": length}


def measure(cfg: CellsConfig, out: Path, command: str, progress: bool = True) -> tuple[list[dict], dict]:
    from rnnlab.config import load_config
    from rnnlab.data.corpus import load_corpus

    load_before, start = os.getloadavg(), time.perf_counter()
    base = load_config(cfg.preset, None, cfg.char_settings)
    hidden0 = cfg.char_hidden or base.model.hidden
    count = lm_count(len(load_corpus(base.data).vocab), base.model.layers)
    target = count(cfg.reference, hidden0)
    hiddens = {cell: hidden0 if cell == cfg.reference else matched_hidden(cell, target, count) for cell in cfg.cells}
    for r in range(1, cfg.rounds + 1):
        seconds = cfg.seconds * r / cfg.rounds
        for cell, hidden in hiddens.items():
            print(f"cells: char job, round {r} of {cfg.rounds}: {cell} at hidden {hidden} "
                  f"({count(cell, hidden):,} parameters) to {seconds:g} s of training", flush=True)
            train_char_until(cfg, cell, hidden, seconds, progress)
    rows = [char_row(cfg, cell, hidden) for cell, hidden in hiddens.items()]
    pcount = classifier_count(10, 10)  # one-hot digits in, a digit out
    ptarget = pcount(cfg.reference, cfg.palindrome_hidden)
    for cell in cfg.cells:
        hidden = cfg.palindrome_hidden if cell == cfg.reference else matched_hidden(cell, ptarget, pcount)
        for length in cfg.lengths:
            print(f"cells: palindrome T={length}, {cell} at hidden {hidden}", flush=True)
            rows.append(palindrome_row(cell, length, hidden, cfg, progress))
    wall = time.perf_counter() - start
    notes = summary(rows, cfg, wall, load_before, os.getloadavg())
    paths = write_results(out, "cells", rows, COLUMNS, command, lambda p: plot(rows, cfg, p), notes=notes)
    return rows, paths


def summary(rows: list[dict], cfg: CellsConfig, wall: float, load_before, load_after) -> str:
    import torch

    from rnnlab.devices import cpu_name

    char = {r["cell"]: r for r in rows if r["task"] == "char"}
    ref = char.get(cfg.reference)
    lines = [f"Every cell has the parameter count of the {cfg.reference} (char job: hidden "
             f"{ref['hidden'] if ref else '?'}; palindromes: hidden {cfg.palindrome_hidden}) to within the "
             f"closest hidden size; `parameters` is the model's own count."]
    if ref:
        lines += ["", "Char job, relative to the " + cfg.reference + ":", ""]
        for cell, r in char.items():
            lines.append(f"- {cell}: {r['bpc']:.3f} bits/char ({r['bpc'] - ref['bpc']:+.3f}), "
                         f"{r['tokens_per_s'] / 1000:.1f}k tokens/s ({r['tokens_per_s'] / ref['tokens_per_s']:.2f}x), "
                         f"{r['steps']} steps, {r['parameters']:,} parameters")
    b = cfg.budget
    lines += ["", f"Settings: char job = preset {cfg.preset} with {' '.join(cfg.char_settings)}, "
              f"{cfg.seconds:g} s of training per cell in {cfg.rounds} interleaved rounds (evaluations every "
              f"{cfg.eval_every} steps included), "
              f"validation every {cfg.eval_every} steps; tokens/s counts the time in training steps only. "
              f"Palindromes: one seed, {b.optimizer} lr {b.lr:g}, at most {b.max_steps} steps, early stop at "
              f"{b.target:.1%} validation accuracy or after {b.patience} steps without a 1-point gain; chrono init "
              f"(horizon T−1) where the cell table names a carry gate (not the RNN).",
              "", f"Machine: {cpu_name()}, {torch.get_num_threads()} torch thread(s); load average "
              f"{load_before[0]:.1f} before and {load_after[0]:.1f} after ({os.cpu_count()} logical CPUs). "
              f"On a shared machine tokens/s is noisy: compare cells within this table, not across machines.",
              "", f"Wall time: {wall / 60:.1f} min."]
    return "\n".join(lines)


def plot(rows: list[dict], cfg: CellsConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_char, ax_pal) = plt.subplots(1, 2, figsize=(11, 4))
    for r in (r for r in rows if r["task"] == "char"):
        if r["curve"]:
            ax_char.plot([c[0] for c in r["curve"]], [c[1] for c in r["curve"]], marker=".", label=r["cell"])
    ax_char.set(xlabel="training time (s)", ylabel="validation bits/char",
                title=f"char job, equal parameters, {cfg.seconds:g} s each")
    ax_char.legend()
    for cell in cfg.cells:
        rs = sorted((r for r in rows if r["cell"] == cell and r["task"] != "char"), key=lambda r: r["length"])
        ax_pal.plot([r["length"] for r in rs], [r["accuracy"] for r in rs], marker="o", label=cell)
    ax_pal.axhline(0.1, color="grey", lw=0.8, ls=":", label="chance")
    ax_pal.set(xlabel="palindrome length T", ylabel="test accuracy", ylim=(0, 1.02),
               title="palindromes, equal parameters")
    ax_pal.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(p) -> None:
    p.add_argument("--out", help="output directory (default: runs/experiments/cells)")
    p.add_argument("--cells", help="comma list of cells of the cell table (default: every cell without timestamps)")
    p.add_argument("--seconds", type=at.positive_number,
                   help="training wall time per cell on the char job (default 240)")
    p.add_argument("--rounds", type=at.integer(1),
                   help="the char job's budget is trained in this many rounds, the cells interleaved (default 6)")
    p.add_argument("--lengths", help="palindrome lengths, a comma list (default 10,25)")
    p.add_argument("--quick", action="store_true", help="a tiny version (seconds), as the tests run it")
    p.add_argument("--threads", type=at.threads, default=1, help="torch threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    import torch

    from rnnlab.experiments.palindrome import parse_lengths

    cfg = CellsConfig.quick() if args.quick else CellsConfig()
    if args.cells:
        cfg.cells = parse_names(args.cells, tuple(cell_registry.CELLS))
    if cfg.reference not in cfg.cells:
        raise UserError(f"--cells must include the reference cell {cfg.reference}")
    if args.seconds is not None:
        cfg.seconds = args.seconds
    if args.rounds is not None:
        cfg.rounds = args.rounds
    if args.lengths:
        cfg.lengths = parse_lengths(args.lengths)
    if args.threads:
        torch.set_num_threads(args.threads)
        cfg.char_settings = [*cfg.char_settings, f"train.threads={args.threads}"]
    out = Path(args.out) if args.out else Path("runs/experiments/cells")
    cfg.runs = out / "runs"
    rows, paths = measure(cfg, out, command_line(args), not args.no_progress)
    print(markdown_table(rows, COLUMNS))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
