"""`rnnlab experiment lm-study`: the Zaremba et al. (2014) comparison — LSTM
and GRU language models, with and without dropout — on any corpus directory.

Each model is a preset (`lstm`, `lstm-dropout`, `gru`, `gru-dropout`, or any
other) trained into OUT/MODEL as a normal run; a finished run (summary.json
present) is not trained again, so re-running the command only fills gaps.
Then the study writes lm_study.{json,csv,md} (train/valid/test perplexity
after the last epoch; valid and test perplexity of the best-validation
checkpoint, as Zaremba et al. and the course report it; epochs, wall time,
parameters), one convergence plot per model
(OUT/MODEL/plots/curves.png: train, valid and test perplexity per epoch) and
one overlay per split (lm_study_{train,valid,test}.png).
"""

from __future__ import annotations

import math
from pathlib import Path

from rnnlab import argtypes as at
from rnnlab import safejson
from rnnlab.config import load_config
from rnnlab.errors import UserError
from rnnlab.experiments import command_line, markdown_table, train_unless_finished, write_results

HELP = "LSTM and GRU language models with and without dropout (Zaremba et al. 2014)"
MODELS = ("lstm", "lstm-dropout", "gru", "gru-dropout", "gru-dropout-adam")
COLUMNS = ["model", "best_epoch", "best_valid_ppl", "best_test_ppl", "train_ppl", "valid_ppl", "test_ppl", "epochs",
           "train_minutes", "parameters"]
# --quick: the same presets, shrunk so the whole study takes seconds (for tests).
# (word presets: model.cutoffs=auto gives a tiny vocabulary the full softmax)
QUICK = ["model.hidden=24", "model.layers=1", "train.batch_size=8", "train.seq_len=12", "train.epochs=2",
         "train.max_steps=40", "train.eval_batch_size=8", "train.samples=0", "data.max_vocab=500"]



MARKERS = ("o", "s", "^", "D", "v")
DASHES = ("-", "--", "-.", ":", (0, (6, 2)))


def epoch_curves(run_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """Perplexity per evaluation, by split: {split: [(epoch, perplexity), ...]}."""
    from rnnlab.runs import read_jsonl  # torch: not at import (rnnlab/experiments/__init__.py)

    curves: dict[str, list] = {"train": [], "valid": [], "test": []}
    for r in read_jsonl(run_dir / "metrics.jsonl"):
        if r.get("split") in curves:
            curves[r["split"]].append((r["epoch"], r["perplexity"]))
    return curves


def best_checkpoint_test(run_dir: Path) -> float:
    """Test perplexity of the run's 'best' checkpoint (its lowest validation loss)."""
    from rnnlab.data.corpus import load_corpus
    from rnnlab.evaluate import evaluate
    from rnnlab.runs import load_run

    model, vocab, cfg, _ = load_run(run_dir, "best")
    test = load_corpus(cfg.data, vocab).split("test")
    return evaluate(model, test, cfg.train.eval_batch_size, cfg.train.eval_seq_len)["perplexity"]


def row_for(model: str, run_dir: Path) -> dict:
    summary = safejson.read(run_dir / "summary.json")
    curves = epoch_curves(run_dir)
    final = summary["final"]
    best_epoch, best_valid = min(curves["valid"], key=lambda point: point[1]) if curves["valid"] else (math.nan,) * 2
    return {"model": model, "best_epoch": round(best_epoch, 2), "best_valid_ppl": best_valid,
            "best_test_ppl": best_checkpoint_test(run_dir) if curves["valid"] else math.nan,
            "train_ppl": curves["train"][-1][1] if curves["train"] else math.nan,
            "valid_ppl": final["valid"]["perplexity"],
            "test_ppl": final["test"]["perplexity"] if "test" in final else math.nan,
            "epochs": round(summary["epochs"], 2), "train_minutes": round(summary["wall_seconds"] / 60, 2),
            "parameters": summary["parameters"]}


def plot_model(model: str, run_dir: Path) -> Path:
    from rnnlab.report.plots import COLORS, new_figure, save

    fig, (ax,) = new_figure(1, width=5.0)
    for i, (split, points) in enumerate(epoch_curves(run_dir).items()):
        if points:
            ax.plot(*zip(*points), marker="o", color=COLORS[i], label=split)
    ax.set(yscale="log", xlabel="epoch", ylabel="perplexity", title=f"{model}: perplexity per epoch")
    ax.legend()
    return save(fig, run_dir / "plots" / "curves.png")


def plot_overlay(split: str, runs: dict[str, Path], path: Path) -> Path:
    from rnnlab.report.plots import COLORS, new_figure, save

    fig, (ax,) = new_figure(1, width=5.0)
    for i, (model, run_dir) in enumerate(runs.items()):
        points = epoch_curves(run_dir)[split]
        if points:  # dashes and markers differ too: models that converge alike would hide each other
            ax.plot(*zip(*points), marker=MARKERS[i % len(MARKERS)], linestyle=DASHES[i % len(DASHES)],
                    color=COLORS[i % len(COLORS)], label=model)
    ax.set(yscale="log", xlabel="epoch", ylabel=f"{split} perplexity", title=f"{split} perplexity per epoch")
    ax.legend()
    return save(fig, path)


def add_arguments(p) -> None:
    p.add_argument("--data", required=True,
                   help="corpus directory with train/valid/test.txt, or a dataset name (ptb, brown, ...)")
    p.add_argument("--models", default=",".join(MODELS),
                   help="comma list of presets (default: " + ",".join(MODELS) + ")")
    p.add_argument("--epochs", type=at.positive, help="epochs per model (default: each preset's)")
    p.add_argument("--out", default="runs/experiments/lm-study", help="output directory (finished runs there are kept)")
    p.add_argument("--quick", action="store_true", help="tiny models for a few steps (seconds), as the tests run it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of every model, e.g. --set train.max_steps=100 (repeatable)")


def run(args) -> int:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise UserError("--models takes a comma list of presets, e.g. lstm,gru")
    rows, paths = study(args.data, Path(args.out), models, args.epochs, args.quick, args.overrides, command_line(args),
                        progress=not args.no_progress)
    print(markdown_table(rows, COLUMNS))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def study(data: str, out: Path, models=MODELS, epochs: int | None = None, quick: bool = False,
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
    best = min(rows, key=lambda r: r["best_test_ppl"] if not math.isnan(r["best_test_ppl"]) else math.inf)
    notes = (f"Best test perplexity: **{best['best_test_ppl']:.1f}** ({best['model']}, at its best-validation "
             f"checkpoint, epoch {best['best_epoch']:g}; {best['train_minutes']:.1f} minutes of training). best_*: the "
             "checkpoint with the lowest validation loss (as Zaremba et al. report); train/valid/test_ppl: after the "
             "last epoch.\n\nOverlays: ![train](lm_study_train.png) ![valid](lm_study_valid.png) "
             "![test](lm_study_test.png)\n\nPer-model curves: " +
             " ".join(f"![{m}]({m}/plots/curves.png)" for m in runs))
    paths = write_results(out, "lm_study", rows, COLUMNS, command, notes=notes)
    return rows, paths
