"""`rnnlab sweep`: one preset trained at every point of a grid of settings.

    rnnlab sweep --preset lstm --set data.path=../shared/data/brown --grid model.embed=16,32,64,128
    rnnlab sweep --preset grimm-char --grid train.seq_len=5,10,20,40,80      # truncated BPTT, k steps
    rnnlab sweep --preset grimm-char --grid data.batcher=stream,window     # state carried across segments or not

Each point is an ordinary run in OUT/KEY=VALUE[,KEY=VALUE...] (a finished run,
one with summary.json, is not trained again, so re-running fills gaps), and
the sweep writes sweep.{json,csv,md} — one row per point with its final
validation and test score (bits/char for character models, perplexity for
word models), epochs, wall time and parameter count — and sweep.png, the
scores against the swept value.

About BPTT: with the stream batcher every segment of `train.seq_len` = k
tokens starts from the state the previous one ended in, and gradients flow
back k steps (truncated BPTT); with `data.batcher = "window"` each window
starts from a zero state. Full BPTT through a whole corpus is not a thing one
can run; sweeping k shows how the score approaches it as k grows.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from rnnlab import safejson
from rnnlab.config import load_config
from rnnlab.errors import UserError
from rnnlab.experiments import train_unless_finished, write_results
from rnnlab.report.plots import COLORS, new_figure, save

# --quick: the same grid on a tiny model for a few steps (seconds; for tests).
# (word presets: model.cutoffs=auto gives a tiny vocabulary the full softmax)
QUICK = ["model.hidden=16", "model.layers=1", "train.batch_size=8", "train.max_steps=40", "train.eval_every=0",
         "train.samples=0", "train.eval_batch_size=8", "train.eval_seq_len=64", "train.threads=1"]



def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """["model.embed=16,32", ...] → [("model.embed", ["16", "32"]), ...]."""
    grid = []
    for item in items:
        key, sep, values = item.partition("=")
        key, choices = key.strip(), [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not choices:
            raise UserError(f"--grid expects KEY=V1,V2,... such as model.embed=16,32,64; got '{item}'")
        if key in (k for k, _ in grid):
            raise UserError(f"--grid names {key} twice")
        grid.append((key, choices))
    if not grid:
        raise UserError("rnnlab sweep needs at least one --grid KEY=V1,V2,...")
    return grid


def points(grid: list[tuple[str, list[str]]]) -> list[list[str]]:
    """Every combination, as lists of KEY=VALUE settings, first key slowest."""
    keys = [k for k, _ in grid]
    return [[f"{k}={v}" for k, v in zip(keys, combo)] for combo in itertools.product(*(vs for _, vs in grid))]


def _row(settings: list[str], run_dir: Path) -> dict:
    summary = safejson.read(run_dir / "summary.json")
    final, char = summary["final"], summary["level"] == "char"
    measure = "bpc" if char else "perplexity"
    row = dict(s.split("=", 1) for s in settings)
    row.update({"measure": "bits/char" if char else "perplexity",
                "valid": final["valid"][measure], "test": final["test"][measure] if "test" in final else math.nan,
                "valid_accuracy": final["valid"]["accuracy"], "epochs": round(summary["epochs"], 2),
                "train_minutes": round(summary["wall_seconds"] / 60, 2), "parameters": summary["parameters"],
                "run": run_dir.name})
    return row


def plot(rows: list[dict], grid: list[tuple[str, list[str]]], path: Path) -> Path:
    """Score against the first swept key (one line per value of the others)."""
    key, values = grid[0]
    numeric = all(_is_number(v) for v in values)
    x_of = {v: (float(v) if numeric else i) for i, v in enumerate(values)}
    fig, (ax,) = new_figure(1, width=5.0)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple((k, r[k]) for k, _ in grid[1:]), []).append(r)
    for i, (rest, rs) in enumerate(groups.items()):
        label = ", ".join(f"{k}={v}" for k, v in rest)
        for split, style in (("valid", "-"), ("test", ":")):
            ys = [r[split] for r in rs]
            if not all(math.isnan(y) for y in ys):
                ax.plot([x_of[r[key]] for r in rs], ys, style, marker="o", color=COLORS[i % len(COLORS)],
                        label=f"{split}{' ' + label if label else ''}")
    if numeric and max(x_of.values()) / max(min(x_of.values()), 1e-12) > 8:
        ax.set_xscale("log", base=2)
    if not numeric:
        ax.set_xticks(range(len(values)), values)
    ax.set(xlabel=key, ylabel=rows[0]["measure"], title=f"sweep over {key}")
    ax.legend()
    return save(fig, path)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def run(preset: str | None, config_file: str | None, grid_items: list[str], out: Path, overrides=(),
        quick: bool = False, command: str = "", progress: bool = True) -> tuple[list[dict], dict]:
    grid = parse_grid(grid_items)
    swept = {k for k, _ in grid}
    clash = sorted(swept & {o.partition("=")[0].strip() for o in overrides})
    if clash:
        raise UserError(f"{', '.join(clash)} is both swept (--grid) and fixed (--set)")
    settings_per_point = points(grid)
    # Check every point's configuration before training any of them.
    configs = [
        load_config(preset, config_file, [*(QUICK if quick else []), *overrides, *s]) for s in settings_per_point
    ]
    out = Path(out)
    rows = []
    for settings, cfg in zip(settings_per_point, configs):
        run_dir = out / ",".join(settings)
        train_unless_finished(run_dir.name, cfg, run_dir, progress)
        rows.append(_row(settings, run_dir))
    columns = [k for k, _ in grid] + ["valid", "test", "valid_accuracy", "epochs", "train_minutes", "parameters"]
    best = min(rows, key=lambda r: r["valid"])
    notes = (f"Score: {rows[0]['measure']} (lower is better). Best on validation: "
             f"{', '.join(f'{k}={best[k]}' for k, _ in grid)} ({best['valid']:.4g} valid, {best['test']:.4g} test).")
    paths = write_results(out, "sweep", rows, columns, command, lambda p: plot(rows, grid, p), notes=notes)
    return rows, paths
