"""The course's neural n-gram assignment (../shared/course/001_*.txt), reproduced
on Brown with the `nplm` presets: every run is a normal rnnlab run directory.

Runs (all 3 words of context, full softmax, Adam 1e-3 cosine, EPOCHS epochs).
On all of Brown's training text:

    linear-h128   the assignment's model: D 16, 128 linear hidden units (preset nplm)
    rnn-e16       the RNN extension: a vanilla RNN (128 units) reads the same
                  three words (preset nplm-rnn)
    linear-h256, linear-h512, rnn-e128   the report's hidden sizes and the RNN's
                  largest embedding (ngram_sizes.md)

The sweeps, on the first SUBSET_LINES lines of the training text (~137,000
words; the validation and test text unchanged), so that ten of them fit in
the time one full run takes (a full-softmax epoch of all of Brown is ~5
minutes on one core here):

    small-linear-h128, small-linear-h256, small-linear-h512   hidden sizes
    small-tanh-h128                                           tanh vs linear
    small-linear-d2                                           D = 2, for the raw 2-D embedding plot
    small-rnn-e16, small-rnn-e32, small-rnn-e64, small-rnn-e128   the RNN's embedding size
    small-rnn-e16-bptt1                                       truncated BPTT: gradient through the last step only

    python benchmarks/ngram_assignment.py --train linear-h128   # one run (finished runs are kept)
    python benchmarks/ngram_assignment.py --train all           # every missing run, one after another
    python benchmarks/ngram_assignment.py --render              # tables, curves, samples, neighbours, maps
    python benchmarks/ngram_assignment.py --render-sizes        # ngram_sizes.md: the sizes on all of Brown

Rendering writes benchmarks/results/ngram_assignment.{json,md} and its figures
(curves, embedding maps, the 4-gram histogram) next to them.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rnnlab  # noqa: E402
from benchmarks import harness  # noqa: E402
from rnnlab.config import load_config  # noqa: E402
from rnnlab.data.corpus import load_corpus  # noqa: E402
from rnnlab.errors import run_command  # noqa: E402
from rnnlab.experiments import markdown_table, train_unless_finished  # noqa: E402
from rnnlab.experiments.ngram import kn_row  # noqa: E402
from rnnlab.ngram.counts import count_of_counts, ngram_counts, plot_histogram  # noqa: E402
from rnnlab.report.collect import read_run  # noqa: E402
from rnnlab.report.embeddings import nearest_neighbors, plot_embeddings, run_embedding  # noqa: E402
from rnnlab.report.plots import epoch_curves_figure, save  # noqa: E402

EPOCHS = 3
SUBSET_LINES = 6400
FULL = {  # name: (preset, overrides)
    "linear-h128": ("nplm", []),
    "rnn-e16": ("nplm-rnn", []),
    # the report's hidden sizes and the RNN's largest embedding on all of Brown (the subset sweeps below are cheaper)
    "linear-h256": ("nplm", ["model.hidden=256"]),
    "linear-h512": ("nplm", ["model.hidden=512"]),
    "rnn-e128": ("nplm-rnn", ["model.embed=128"]),
}
SMALL = {
    "small-linear-h128": ("nplm", []),
    "small-linear-h256": ("nplm", ["model.hidden=256"]),
    "small-linear-h512": ("nplm", ["model.hidden=512"]),
    "small-tanh-h128": ("nplm-tanh", []),
    "small-linear-d2": ("nplm", ["model.embed=2"]),
    "small-rnn-e16": ("nplm-rnn", []),
    "small-rnn-e32": ("nplm-rnn", ["model.embed=32"]),
    "small-rnn-e64": ("nplm-rnn", ["model.embed=64"]),
    "small-rnn-e128": ("nplm-rnn", ["model.embed=128"]),
    "small-rnn-e16-bptt1": ("nplm-rnn", ["model.bptt=1"]),
}
RUNS = {**FULL, **SMALL}
PREFIXES = ("the man said", "it was a", "there is no", "he did not", "in the first")
NEIGHBOUR_WORDS = ("day", "three", "said", "man", "could", "American")
FIGURES = {  # figure: (title, runs side by side)
    "linear": ("NPLM, linear, D 16, H 128", ["linear-h128"]),
    "rnn": ("NPLM vs RNN on 3 words", ["linear-h128", "rnn-e16"]),
    "hidden": ("subset: NPLM hidden units", ["small-linear-h128", "small-linear-h256", "small-linear-h512"]),
    "activation": ("subset: NPLM linear vs tanh", ["small-linear-h128", "small-tanh-h128"]),
    "rnn_embed": ("subset: RNN embedding size", ["small-rnn-e16", "small-rnn-e32", "small-rnn-e64", "small-rnn-e128"]),
    "bptt": ("subset: RNN full vs truncated BPTT", ["small-rnn-e16", "small-rnn-e16-bptt1"]),
}
COLUMNS = ["run", "model", "size", "parameters", "epochs", "train_ppl", "valid_ppl", "test_ppl", "valid_accuracy",
           "test_accuracy", "train_minutes"]
COMMAND = """python benchmarks/ngram_assignment.py --train NAME   # for each run; two at a time, one thread each
python benchmarks/ngram_assignment.py --render"""


@functools.cache  # once per process: every sweep run configured after the first reads the same files
def subset(data: str, work: Path) -> Path:
    """WORK/brown-subset: the first SUBSET_LINES lines of the training text, validation and test as they are."""
    out = work / "brown-subset"
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        lines = (Path(data) / f"{split}.txt").read_text(encoding="utf-8").splitlines(keepends=True)
        tmp = out / f".{split}.txt.{os.getpid()}"  # runs side by side may write it at once: replace, never truncate
        tmp.write_text("".join(lines[:SUBSET_LINES] if split == "train" else lines), encoding="utf-8")
        os.replace(tmp, out / f"{split}.txt")
    return out


def run_config(name: str, data: str, extra: list[str], work: Path | None = None):
    preset, overrides = RUNS[name]
    if name in SMALL:
        data = str(subset(data, work or Path("runs/ngram-assignment")))
    return load_config(preset, None, [f"data.path={data}", f"train.epochs={EPOCHS}", "train.threads=1",
                                      f"name={name}", *overrides, *extra])


def row(name: str, run_dir: Path) -> dict:
    run = read_run(run_dir, name)
    final, summary = run.summary["final"], run.summary
    train = run.curve("train")
    kind, size = run.config.model.kind_and_size()
    return {"run": name, "model": kind, "size": size, "parameters": summary["parameters"], "epochs": summary["epochs"],
            "train_ppl": train[-1]["perplexity"] if train else None, "valid_ppl": final["valid"]["perplexity"],
            "test_ppl": final.get("test", {}).get("perplexity"), "valid_accuracy": final["valid"]["accuracy"],
            "test_accuracy": final.get("test", {}).get("accuracy"), "train_minutes": summary["wall_seconds"] / 60}


def sentences(run_dir: Path) -> list[str]:
    """One sampled continuation (temperature 1, up to 15 words or the end of the line) per prefix."""
    run = rnnlab.load(run_dir)
    out = []
    for i, prefix in enumerate(PREFIXES):
        text = run.generate(prefix, length=15, temperature=1.0, seed=i)[0]
        out.append(f"{prefix} **{text.split(chr(10))[0].strip()}**")
    return out


def render(work: Path, results: Path, data: str) -> None:
    runs = {name: work / name for name in RUNS if (work / name / "summary.json").is_file()}
    missing = sorted(set(RUNS) - set(runs))
    rows = [row(name, d) for name, d in runs.items()]
    corpus = load_corpus(run_config("linear-h128", data, []).data)
    kn = kn_row(corpus)
    rows.append({"run": "kn3", "model": "Kneser-Ney trigram", "size": "D=0.75", "valid_ppl": kn["valid_ppl"],
                 "test_ppl": kn["test_ppl"], "train_minutes": kn["train_minutes"]})
    figures = {}
    for key, (title, names) in FIGURES.items():
        present = [n for n in names if n in runs]  # a missing run is listed under "Not run yet"
        if len(present) >= min(2, len(names)):  # a comparison needs two of its runs
            path = results / f"ngram_assignment_{key}.png"
            save(epoch_curves_figure([read_run(runs[n], n) for n in present], title=title, linear=True), path)
            figures[key] = path.name
    md = ["# The neural n-gram assignment on Brown", "", "```", COMMAND, "```", "",
          f"Brown ({data}, {len(corpus.vocab):,} words), 3 words of context, full softmax, "
          f"Adam lr 1e-3 with cosine decay, batch 64 x 4 positions, {EPOCHS} epochs per run, one thread each, "
          f"two runs at a time on {harness.machine()['cpu']}. "
          "Perplexities are per word over the whole split; `train_ppl` is the epoch's running training loss. "
          f"`small-*` runs train on the first {SUBSET_LINES:,} lines of the training text only (their vocabulary is "
          "that text's, so their perplexities compare with each other, not with the full runs); the KN row is "
          "on the full data.", "",
          markdown_table(rows, COLUMNS), ""]
    if missing:
        md += [f"Not run yet: {', '.join(missing)}.", ""]
    for key, name in figures.items():
        md += [f"![{FIGURES[key][0]}]({name})", ""]
    if "linear-h128" in runs:
        md += ["## Sentences from three-word prefixes (linear-h128, temperature 1)", ""]
        md += [f"- {s}" for s in sentences(runs["linear-h128"])] + [""]
        emb, tokens = run_embedding(runs["linear-h128"])
        md += ["## Nearest neighbours among the 1,000 most frequent words (linear-h128, cosine)", ""]
        for word in NEIGHBOUR_WORDS:
            near = nearest_neighbors(emb, tokens, word, k=5, top_n=1000)
            md.append(f"- **{word}**: " + ", ".join(f"{w} ({c:.2f})" for w, c in near))
        plot_embeddings(emb, tokens, 500, "pca", results / "ngram_assignment_pca_d16.png",
                        "D = 16 (linear-h128): PCA of the 500 most frequent words")
        md += ["", "## Embedding maps", "", "![PCA of D=16](ngram_assignment_pca_d16.png)"]
    if "small-linear-d2" in runs:
        emb, tokens = run_embedding(runs["small-linear-d2"])
        for top in (100, 500):
            plot_embeddings(emb, tokens, top, "raw", results / f"ngram_assignment_d2_{top}.png",
                            f"D = 2 (small-linear-d2), as learned: the {top} most frequent words")
        md += ["", "![D=2, 100 words](ngram_assignment_d2_100.png) ![D=2, 500 words](ngram_assignment_d2_500.png)"]
    counts = ngram_counts(corpus.train, 4)
    itos = corpus.vocab.itos
    top = counts.most_common(50)
    hist = count_of_counts(counts)
    plot_histogram(hist, 4, results / "ngram_assignment_4grams.png")
    md += ["", "## The 50 most frequent 4-grams of the training text", "",
           f"{len(counts):,} distinct 4-grams; {hist.get(1, 0):,} of them ({hist.get(1, 0) / len(counts):.0%}) occur "
           "once (`rnnlab data ngrams ../shared/data/brown -n 4 --top 50` prints the same list).", "",
           ", ".join(f"`{' '.join(itos[i] for i in g)}` ({c})" for g, c in top), "",
           "![4-gram histogram](ngram_assignment_4grams.png)", ""]
    results.mkdir(parents=True, exist_ok=True)
    (results / "ngram_assignment.md").write_text("\n".join(md), encoding="utf-8")
    (results / "ngram_assignment.json").write_text(json.dumps({"rows": rows, "machine": harness.machine(),
                                                               "epochs": EPOCHS},
                                                              indent=1) + "\n", encoding="utf-8")
    print("\n".join(md[:12 + len(rows)]))


SIZES = {  # the sizes comparison on all of Brown: (the question, its runs)
    "hidden units of the linear model (report 001 §3.2)": ["linear-h128", "linear-h256", "linear-h512"],
    "embedding size of the RNN (report 001 §3.6.2)": ["rnn-e16", "rnn-e128"],
}


def render_sizes(work: Path, results: Path) -> None:
    """ngram_sizes.{md,json}: the hidden sizes and the RNN's embedding sizes on all of Brown. A run that is not
    under WORK is taken from the committed ngram_assignment.json, with the CPU that file names."""
    here = harness.machine()["cpu"]
    committed = json.loads((results / "ngram_assignment.json").read_text(encoding="utf-8"))
    earlier = {r["run"]: {**r, "cpu": committed["machine"]["cpu"]} for r in committed["rows"]}
    rows, missing = [], []
    for question, names in SIZES.items():
        for name in names:
            if (work / name / "summary.json").is_file():
                rows.append({**row(name, work / name), "cpu": here, "question": question})
            elif name in earlier:
                rows.append({**earlier[name], "question": question})
            else:
                missing.append(name)
    columns = ["run", "model", "size", "parameters", "epochs", "train_ppl", "valid_ppl", "test_ppl",
               "test_accuracy", "train_minutes", "cpu"]
    md = ["# The neural n-gram model on all of Brown: hidden and embedding sizes", "", "```",
          "python benchmarks/ngram_assignment.py --train NAME   # for each run below", "python benchmarks/"
          "ngram_assignment.py --render-sizes", "```", "",
          f"The settings of ngram_assignment.md (3 words of context, full softmax, Adam 1e-3 with cosine decay, "
          f"{EPOCHS} epochs, one thread per run), on all of Brown's training text rather than the "
          f"{SUBSET_LINES:,}-line subset of that file's sweeps. One seed per size. Rows trained on different CPUs "
          "(the `cpu` column) compare in perplexity, not in `train_minutes`.", ""]
    for question in SIZES:
        part = [r for r in rows if r["question"] == question]
        if part:
            best = min(part, key=lambda r: r["valid_ppl"])
            md += [f"## The {question}", "", markdown_table(part, columns), "",
                   f"Lowest validation perplexity: **{best['run']}** ({best['valid_ppl']:.1f}).", ""]
    if missing:
        md += [f"Not run yet: {', '.join(missing)}.", ""]
    (results / "ngram_sizes.md").write_text("\n".join(md), encoding="utf-8")
    (results / "ngram_sizes.json").write_text(json.dumps({"rows": rows, "epochs": EPOCHS}, indent=1) + "\n",
                                              encoding="utf-8")
    print("\n".join(md))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "brown"))
    ap.add_argument("--work", default=str(ROOT / "runs" / "ngram-assignment"), help="run directories")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--train", metavar="NAME", help="train one run (or 'all'): " + ", ".join(RUNS))
    ap.add_argument("--render", action="store_true", help="write the results from the finished runs")
    ap.add_argument("--render-sizes", action="store_true", help="write ngram_sizes.md: the sizes on all of Brown")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting of every run")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    work = Path(args.work)
    if args.train:
        for name in RUNS if args.train == "all" else [args.train]:
            train_unless_finished(name, run_config(name, args.data, args.set, work), work / name, progress=False)
    if args.render:
        render(work, Path(args.results), args.data)
    if args.render_sizes:
        render_sizes(work, Path(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main, "ngram_assignment"))
