"""`rnnlab experiment lm-study`: the Zaremba et al. (2014) comparison — LSTM
and GRU language models, with and without dropout — on any corpus directory.

Each model is a preset (`lstm`, `lstm-dropout`, `gru`, `gru-dropout`, or any
other) trained into OUT/MODEL as a normal run; a finished run (summary.json
present) is not trained again, so re-running the command only fills gaps.
Then the study writes lm_study.{json,csv,md} (train/valid/test perplexity,
epochs, wall time, parameters), one convergence plot per model
(OUT/MODEL/plots/curves.png: train, valid and test perplexity per epoch) and
one overlay per split (lm_study_{train,valid,test}.png).
"""

from __future__ import annotations

import math
from pathlib import Path

from rnnlab import safejson
from rnnlab.config import load_config
from rnnlab.experiments import train_unless_finished, write_results
from rnnlab.report.plots import COLORS, new_figure, save
from rnnlab.runs import read_jsonl

MODELS = ("lstm", "lstm-dropout", "gru", "gru-dropout")
COLUMNS = ["model", "train_ppl", "valid_ppl", "test_ppl", "epochs", "train_minutes", "parameters"]
# --quick: the same presets, shrunk so the whole study takes seconds (for tests).
QUICK = ["model.hidden=24", "model.layers=1", "train.batch_size=8", "train.seq_len=12", "train.epochs=2",
         "train.max_steps=40", "train.eval_batch_size=8", "train.samples=0", "data.max_vocab=500",
         "model.softmax=full"]  # a tiny vocabulary has no tail for an adaptive softmax


def epoch_curves(run_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """Perplexity per evaluation, by split: {split: [(epoch, perplexity), ...]}."""
    curves: dict[str, list] = {"train": [], "valid": [], "test": []}
    for r in read_jsonl(run_dir / "metrics.jsonl"):
        if r.get("split") in curves:
            curves[r["split"]].append((r["epoch"], r["perplexity"]))
    return curves


def row_for(model: str, run_dir: Path) -> dict:
    summary = safejson.read(run_dir / "summary.json")
    curves = epoch_curves(run_dir)
    final = summary["final"]
    return {"model": model,
            "train_ppl": curves["train"][-1][1] if curves["train"] else math.nan,
            "valid_ppl": final["valid"]["perplexity"],
            "test_ppl": final["test"]["perplexity"] if "test" in final else math.nan,
            "epochs": round(summary["epochs"], 2), "train_minutes": round(summary["wall_seconds"] / 60, 2),
            "parameters": summary["parameters"]}


def plot_model(model: str, run_dir: Path) -> Path:
    fig, (ax,) = new_figure(1, width=5.0)
    for i, (split, points) in enumerate(epoch_curves(run_dir).items()):
        if points:
            ax.plot(*zip(*points), marker="o", color=COLORS[i], label=split)
    ax.set(yscale="log", xlabel="epoch", ylabel="perplexity", title=f"{model}: perplexity per epoch")
    ax.legend()
    return save(fig, run_dir / "plots" / "curves.png")


def plot_overlay(split: str, runs: dict[str, Path], path: Path) -> Path:
    fig, (ax,) = new_figure(1, width=5.0)
    for i, (model, run_dir) in enumerate(runs.items()):
        points = epoch_curves(run_dir)[split]
        if points:
            ax.plot(*zip(*points), marker="o", color=COLORS[i % len(COLORS)], label=model)
    ax.set(yscale="log", xlabel="epoch", ylabel=f"{split} perplexity", title=f"{split} perplexity per epoch")
    ax.legend()
    return save(fig, path)


def run(data: str, out: Path, models=MODELS, epochs: int | None = None, quick: bool = False,
        overrides=(), command: str = "", progress: bool = True) -> tuple[list[dict], dict]:
    out = Path(out)
    runs = {}
    for model in models:
        runs[model] = out / model
        settings = [f"data.path={data}", *(QUICK if quick else []), *overrides]
        if epochs is not None:
            settings.append(f"train.epochs={epochs}")
        train_unless_finished(model, load_config(model, None, settings), runs[model], progress)
    rows = [row_for(model, run_dir) for model, run_dir in runs.items()]
    for model, run_dir in runs.items():
        plot_model(model, run_dir)
    for split in ("train", "valid", "test"):
        plot_overlay(split, runs, out / f"lm_study_{split}.png")
    best = min(rows, key=lambda r: r["test_ppl"] if not math.isnan(r["test_ppl"]) else math.inf)
    notes = (f"Best test perplexity: **{best['test_ppl']:.1f}** ({best['model']}, {best['train_minutes']:.1f} minutes "
             "of training).\n\nOverlays: ![train](lm_study_train.png) ![valid](lm_study_valid.png) "
             "![test](lm_study_test.png)\n\nPer-model curves: " +
             " ".join(f"![{m}]({m}/plots/curves.png)" for m in runs))
    paths = write_results(out, "lm_study", rows, COLUMNS, command, notes=notes)
    return rows, paths
