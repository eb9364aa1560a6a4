"""Brown corpus: the LSTM/GRU ± dropout study (Zaremba et al. 2014), packaged
for benchmarks/results/ with the embedding analysis of the best model.

Trains (or reuses) `rnnlab experiment lm-study` runs in --work, then writes
benchmarks/results/brown_lm_study.{json,md} (rows: model, train/valid/test
perplexity, epochs, train_minutes, parameters), the overlay plots, the
nearest neighbours of a few frequent words and a 2-D map of the best model's
embeddings.

    python benchmarks/brown_lm_study.py --epochs 6             # trains the five models one after another
    python benchmarks/brown_lm_study.py --render-only          # results from finished runs in --work

The five runs are independent: to use both cores, start two streams in
parallel first (each with one thread), then render:

    rnnlab experiment lm-study --data ../shared/data/brown --epochs 6 --models lstm,gru \\
        --out runs/brown-lm-study --set train.threads=1 &
    rnnlab experiment lm-study --data ../shared/data/brown --epochs 6 \\
        --models lstm-dropout,gru-dropout,gru-dropout-adam --out runs/brown-lm-study --set train.threads=1
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402
from rnnlab.experiments import markdown_table  # noqa: E402
from rnnlab.experiments.lm_study import COLUMNS, MODELS, study  # noqa: E402
from rnnlab.report.embeddings import nearest_neighbors, plot_embeddings, run_embedding  # noqa: E402

WORDS = ("Monday", "three", "said", "man", "John", "city")  # frequent words of different kinds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "brown"))
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--work", default="runs/brown-lm-study", help="the study's run directories")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--render-only", action="store_true", help="train nothing; every run must be finished")
    p.add_argument("--ran", action="append", default=[], metavar="COMMAND", help="commands that produced the runs")
    args = p.parse_args(argv)
    work, results = Path(args.work), Path(args.results)
    if args.render_only:
        missing = [m for m in MODELS if not (work / m / "summary.json").is_file()]
        if missing:
            sys.exit(f"brown_lm_study: unfinished runs in {work}: {', '.join(missing)}")
    command = f"rnnlab experiment lm-study --data {args.data} --epochs {args.epochs} --out {work}"
    rows, _ = study(args.data, work, MODELS, args.epochs, overrides=["train.threads=1"], command=command)
    best = min(rows, key=lambda r: r["best_test_ppl"])

    results.mkdir(parents=True, exist_ok=True)
    (results / "brown_lm_study.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    for split in ("train", "valid", "test"):
        shutil.copyfile(work / f"lm_study_{split}.png", results / f"brown_lm_study_{split}.png")
    embedding, tokens = run_embedding(work / best["model"])
    neighbours = {w: nearest_neighbors(embedding, tokens, w, k=5, top_n=5000) for w in WORDS if w in tokens}
    plot_embeddings(embedding, tokens, top=300, method="pca", path=results / "brown_lm_study_embeddings.png",
                    title=f"{best['model']}: the 300 most frequent words' input embeddings (PCA)")

    by = {r["model"]: r for r in rows}
    def effect(column: str) -> str:
        return ", ".join(f"{cell.upper()} {by[cell][column]:.1f} → {by[cell + '-dropout'][column]:.1f} "
                         f"({by[cell + '-dropout'][column] / by[cell][column] - 1:+.1%})" for cell in ("lstm", "gru"))

    ran = args.ran or [command, f"python benchmarks/brown_lm_study.py {shlex.join(sys.argv[1:])}".strip()]
    md = ["# Brown: LSTM and GRU language models with and without dropout", "", "```", *ran, "```", "",
          markdown_table(rows, COLUMNS), "",
          f"Best test perplexity: **{best['best_test_ppl']:.1f}** ({best['model']} at its best-validation "
          f"checkpoint, epoch {best['best_epoch']:g}; {best['train_minutes']:.1f} minutes of training on one core). "
          "`best_*` columns: the checkpoint with the lowest validation perplexity (chosen without looking at the "
          "test split; the course reports do not say at which checkpoint their figures were taken); the others: after "
          "the last epoch. Interpolated Kneser-Ney trigram on the same data: 217.6 "
          "([ngram_assignment.md](ngram_assignment.md)).", "",
          f"Dropout's effect on test perplexity at the best-validation checkpoint: {effect('best_test_ppl')}; "
          f"after the last epoch: {effect('test_ppl')}.", "",
          "![train](brown_lm_study_train.png) ![valid](brown_lm_study_valid.png) ![test](brown_lm_study_test.png)", "",
          f"## What {best['model']}'s embeddings learned", "",
          "Nearest neighbours by cosine similarity among the 5,000 most frequent words "
          f"(`rnnlab inspect {work / best['model']} neighbors {' '.join(neighbours)} --top 5000`):", ""]
    md += [f"- **{w}**: " + ", ".join(f"{n} ({c:.2f})" for n, c in found) for w, found in neighbours.items()]
    md += ["", "![embeddings](brown_lm_study_embeddings.png)", "",
           "## Setup", "",
           "Presets `lstm`, `lstm-dropout`, `gru`, `gru-dropout` (rnnlab/presets): 2×200 layers, embedding 200, "
           "adaptive softmax (cutoffs 2,000 / 10,000, exact full-vocabulary perplexities), batch 20 × 35 steps, "
           "SGD with Zaremba et al.'s loss convention (summed over the 35 steps, averaged over the batch) at lr 1 "
           "(GRU 0.5), clip 5, lr halved every epoch after epoch 4, init ±0.1; dropout 0.3 on non-recurrent "
           "connections for the `-dropout` models. `gru-dropout-adam`, the course report's best: the GRU with "
           "dropout 0.5, Adam lr 1e-3 on the per-token loss, halved every epoch after epoch 4. "
           f"{args.epochs} epochs each. Perplexities per epoch are in each "
           "run's metrics.jsonl; `train` is the running training loss of the epoch (dropout on).",
           f"Machine: {harness.machine()['cpu']}, the {len(rows)} runs as two parallel streams of one thread each."]
    (results / "brown_lm_study.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
