"""`rnnlab experiment frequency`: where the Phased LSTM's time gate matters.

The frequency-discrimination task of Neil et al. (2016, §3.1): a sine wave
with a random phase is sampled for `duration` ms; the label says whether its
period lies in the band [5, 6] ms. Sampling is either regular (every `step`
ms) or irregular (as many samples, at uniformly random times). Both cells get
the same inputs — the sample value and the time since the previous sample —
the same hidden size, data stream and step budget (no early stopping); the
Phased LSTM also gates every unit on the timestamps themselves.

Each training run is a run directory (OUT/runs/CELL-SAMPLING-seedSEED) trained
by the Trainer: `task.kind = "frequency"`, `model.arch = "classifier"`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rnnlab import argtypes as at
from rnnlab import cell_registry
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

if TYPE_CHECKING:
    from rnnlab.data.tasks import FrequencySpec

HELP = "LSTM vs Phased LSTM on regularly / irregularly sampled sine waves"

COLUMNS = ["cell", "sampling", "accuracy", "std", "seeds", "steps", "seconds"]
SAMPLINGS = ("regular", "irregular")


def _spec(**settings) -> FrequencySpec:
    from rnnlab.data.tasks import FrequencySpec  # torch: not at import (rnnlab/experiments/__init__.py)

    return FrequencySpec(**settings)


@dataclass
class FrequencyConfig:
    cells: list[str] = field(default_factory=lambda: ["lstm", "phased_lstm"])
    samplings: list[str] = field(default_factory=lambda: list(SAMPLINGS))
    seeds: int = 1
    hidden: int = 32
    batch_size: int = 32
    budget: Budget = field(default_factory=lambda: Budget(optimizer="adam", lr=3e-3, max_steps=600))
    spec: FrequencySpec = field(default_factory=lambda: _spec())
    test_samples: int = 2000
    runs: Path = Path("runs/experiments/frequency/runs")  # where each training run's directory goes

    @classmethod
    def quick(cls) -> FrequencyConfig:
        # Small and short, yet the finding shows: 60 samples a wave are enough for the
        # LSTM to stay at chance while the Phased LSTM learns (~0.9 / ~0.75 accuracy).
        return cls(seeds=1, hidden=16, batch_size=16, budget=Budget(optimizer="adam", lr=1e-2, max_steps=150),
                   spec=_spec(duration=15.0, step=0.25), test_samples=400)

    def run_config(self, cell: str, sampling: str, seed: int):
        """One training run: one epoch of exactly max_steps batches, evaluated at its end."""
        b = self.budget
        entry, options = cell_registry.resolve(cell)  # an alias (rnn_relu) names a cell and its options
        return task_run_config(f"frequency-{cell}-{sampling}-seed{seed}", {
            "model.cell": entry.name, **{f"model.{k}": v for k, v in options.items()}, "model.hidden": self.hidden,
            "task.kind": "frequency", "task.sampling": sampling, "task.duration": self.spec.duration,
            "task.step": self.spec.step, "task.train_size": self.batch_size * b.max_steps,
            "task.valid_size": self.test_samples, "task.test_size": self.test_samples,
            "train.batch_size": self.batch_size, "train.seed": seed, **b.settings(), "train.eval_every": 0})


def train_one(cell: str, sampling: str, seed: int, cfg: FrequencyConfig) -> dict:
    # The same training stream for every cell (it depends on the seed only): only the model differs.
    summary = train_task(cfg.run_config(cell, sampling, seed), cfg.runs / f"{cell}-{sampling}-seed{seed}")
    return {"accuracy": summary["final"]["test"]["accuracy"], "steps": summary["steps"],
            "seconds": summary["wall_seconds"]}


def add_arguments(p) -> None:
    add_task_arguments(p, "frequency")
    p.add_argument("--cells", type=at.cells, help="comma list of cells of the cell table (default lstm,phased_lstm)")
    p.add_argument("--max-steps", type=at.positive, help="step budget, the same for every cell")


def run(args) -> int:
    cfg = task_config(args, FrequencyConfig)
    if args.cells:
        cfg.cells = args.cells
    if args.max_steps is not None:
        cfg.budget.max_steps = args.max_steps
    cfg.runs = out_dir(args) / "runs"
    rows, paths = measure(cfg, out_dir(args), command_line(args), not args.no_progress, workers(args))
    return print_results(rows, paths, COLUMNS)


def measure(cfg: FrequencyConfig, out: Path, command: str, progress: bool = True,
            workers: int = 1) -> tuple[list[dict], dict]:
    import numpy as np

    jobs = [(c, s, seed) for s in cfg.samplings for c in cfg.cells for seed in range(cfg.seeds)]
    results: dict[tuple, list[dict]] = {}
    start = time.perf_counter()
    for job, r in zip(jobs, run_jobs(train_one, jobs, cfg, workers, progress)):
        results.setdefault(job[:2], []).append(r)
    rows = []
    for (cell, sampling), rs in results.items():
        acc = np.array([r["accuracy"] for r in rs])
        rows.append({"cell": cell, "sampling": sampling, "accuracy": float(acc.mean()), "std": float(acc.std()),
                     "seeds": len(rs), "steps": rs[0]["steps"], "seconds": float(np.mean([r["seconds"] for r in rs])),
                     "per_seed": acc.tolist(), "run_seconds": [r["seconds"] for r in rs]})
    wall = time.perf_counter() - start
    paths = write_results(out, "frequency", rows, COLUMNS, command, lambda p: plot(rows, cfg, p),
                          notes=summary(rows, cfg, wall, workers))
    return rows, paths


def gap(rows: list[dict], sampling: str) -> float | None:
    """Phased LSTM accuracy minus LSTM accuracy, in points."""
    acc = {r["cell"]: r["accuracy"] for r in rows if r["sampling"] == sampling}
    if "phased_lstm" in acc and "lstm" in acc:
        return 100 * (acc["phased_lstm"] - acc["lstm"])
    return None


def summary(rows: list[dict], cfg: FrequencyConfig, wall: float, workers: int = 1) -> str:

    s, b = cfg.spec, cfg.budget
    lines = []
    for sampling in cfg.samplings:
        g = gap(rows, sampling)
        if g is not None:
            lines.append(f"- {sampling}: Phased LSTM − LSTM = {g:+.1f} accuracy points")
    lines += [
        "",
        f"Task: {s.duration:g} ms of a sine wave, {s.samples} samples (regular: every {s.step:g} ms; "
        f"irregular: uniformly random times); class 1 iff the period is in [{s.band[0]:g}, {s.band[1]:g}] ms, "
        f"class 0 periods log-uniform in [{s.periods[0]:g}, {s.periods[1]:g}] ms outside it; balanced classes "
        f"(chance 50%). Inputs: value and Δt since the previous sample. Both cells: 1 layer, hidden "
        f"{cfg.hidden}, batch {cfg.batch_size}, {b.optimizer} lr {b.lr:g}, clip {b.clip:g}, exactly "
        f"{b.max_steps} steps on the same fresh-sample stream. Phased LSTM init (Neil et al.; "
        "rnnlab/models/phased.py): τ = exp(U(0, 3)) ms, s = U(0, τ), r_on = 0.05. Accuracy on "
        f"{cfg.test_samples} fresh test waves, mean over {cfg.seeds} seed(s); `seconds` is one training run.",
        "",
        time_note(wall, [s for r in rows for s in r["run_seconds"]], workers),
    ]
    return "\n".join(lines)


def plot(rows: list[dict], cfg: FrequencyConfig, path: Path) -> None:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    width = 0.8 / len(cfg.cells)
    for i, cell in enumerate(cfg.cells):
        accs = [next((r["accuracy"] for r in rows if r["cell"] == cell and r["sampling"] == s), np.nan)
                for s in cfg.samplings]
        stds = [next((r["std"] for r in rows if r["cell"] == cell and r["sampling"] == s), 0.0) for s in cfg.samplings]
        xs = np.arange(len(cfg.samplings)) + (i - (len(cfg.cells) - 1) / 2) * width
        ax.bar(xs, accs, width, yerr=stds, capsize=3, label=cell)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xticks(np.arange(len(cfg.samplings)), cfg.samplings)
    ax.set(ylabel="test accuracy", ylim=(0, 1), title="Frequency discrimination (same budget)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
