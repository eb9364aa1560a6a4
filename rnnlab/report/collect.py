"""Find what a report is about: runs and experiment outputs on disk.

A *run* is a directory with a `config.toml` (see rnnlab.runs). An
*experiment* is a directory that holds runs and/or result files (PNG plots,
CSV tables, markdown notes) written by `rnnlab experiment ...`. Runs are
grouped by the directory they sit in, so `runs/lm-study/{lstm,gru}` form one
group "lm-study", and a run given on its own forms a group named after its
parent directory.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab import safejson
from rnnlab.config import Config
from rnnlab.errors import UserError
from rnnlab.runs import is_run, read_config, read_jsonl

SKIP_DIRS = {"checkpoints", "__pycache__", ".git"}
SPLITS = ("train", "valid", "test")


@dataclass
class Run:
    dir: Path
    label: str
    config: Config
    summary: dict
    metrics: list[dict]  # evaluation records only (faults dropped)
    samples: list[dict]
    plots: list[Path]  # RUN_DIR/plots/*.png written by training or analysis tools

    @property
    def level(self) -> str:
        """char | word, or task for a sequence task's classifier (task.kind)."""
        return "task" if self.config.task.kind else self.config.data.level

    @property
    def score_name(self) -> str:
        """The headline measure: bits/char for character models, perplexity for word models,
        the loss (nats per sequence) for a sequence task."""
        return {"char": "bits/char", "task": "loss"}.get(self.level, "perplexity")

    def score(self, record: dict) -> float:
        return record[{"char": "bpc", "task": "loss"}.get(self.level, "perplexity")]

    def curve(self, split: str) -> list[dict]:
        return [r for r in self.metrics if r.get("split") == split]

    def best(self, split: str, key: str | None = None) -> float | None:
        """Best value of `key` (default: the headline score) over the run's evaluations."""
        values = [r[key] if key else self.score(r) for r in self.curve(split)]
        values = [v for v in values if v is not None and math.isfinite(v)]
        if not values:
            return None
        return max(values) if key == "accuracy" else min(values)

    @property
    def tokens_per_step(self) -> int:
        return self.config.train.batch_size * (1 if self.level == "task" else self.config.train.seq_len)

    def has_checkpoint(self) -> bool:
        return (self.dir / "checkpoints" / "best.json").is_file() or (self.dir / "checkpoints" / "last.json").is_file()


@dataclass
class Experiment:
    name: str
    dir: Path
    runs: list[Run] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)  # PNG files
    tables: list[Path] = field(default_factory=list)  # CSV files
    notes: list[Path] = field(default_factory=list)  # markdown files


def read_run(run_dir: Path, label: str | None = None) -> Run:
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    try:
        summary = safejson.read(summary_path) if summary_path.is_file() else {}
        metrics = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "split" in r]
        samples = read_jsonl(run_dir / "samples.jsonl")
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{run_dir} has an unreadable results file: {e}") from None
    plots = sorted((run_dir / "plots").glob("*.png")) if (run_dir / "plots").is_dir() else []
    return Run(run_dir, label or run_dir.name, read_config(run_dir), summary, metrics, samples, plots)


def _artefacts(directory: Path) -> tuple[list[Path], list[Path], list[Path]]:
    files = sorted(p for p in directory.iterdir() if p.is_file())
    pick = lambda suffix: [p for p in files if p.suffix.lower() == suffix]  # noqa: E731
    return pick(".png"), pick(".csv"), pick(".md")


def _walk(directory: Path):
    """`directory` and every directory below it, except run directories and
    what is inside them (a run's own plots are read with the run)."""
    yield directory
    for d in sorted(directory.iterdir()):
        if d.is_dir() and not d.is_symlink() and d.name not in SKIP_DIRS and not is_run(d):
            yield from _walk(d)


def find_experiments(paths: list[Path]) -> list[Experiment]:
    """Group the given run and experiment directories, in the order given."""
    groups: dict[Path, Experiment] = {}

    def group(directory: Path, name: str) -> Experiment:
        key = directory.resolve()  # the directory as given is kept for display
        if key not in groups:
            groups[key] = Experiment(name or key.name, directory)
        return groups[key]

    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"no such run or experiment directory: {path}")
        if not path.is_dir():
            raise UserError(f"{path} is not a directory (give run directories or experiment output directories)")
        if is_run(path):
            group(path.parent, path.resolve().parent.name).runs.append(read_run(path, path.resolve().name))
            continue
        found = False
        for directory in _walk(path):
            rel = directory.relative_to(path)
            runs = sorted(d for d in directory.iterdir() if d.is_dir() and is_run(d))
            figures, tables, notes = _artefacts(directory)
            if not (runs or figures or tables or notes):
                continue
            name = path.name if directory == path else f"{path.name}/{rel.as_posix()}"
            exp = group(directory, name)
            exp.runs += [read_run(d, d.name) for d in runs]
            exp.figures += figures
            exp.tables += tables
            exp.notes += notes
            found = True
        if not found:
            raise UserError(f"{path} holds no runs (directories with config.toml) and no experiment results")
    return list(groups.values())


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV file."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read table {path}: {e}") from None
    if not rows:
        return [], []
    return rows[0], rows[1:]
