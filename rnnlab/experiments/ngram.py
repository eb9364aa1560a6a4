"""`rnnlab experiment ngram`: neural n-gram models (Bengio et al. 2003) against
an interpolated Kneser-Ney trigram, on the same word corpus and vocabulary.

Grid: hidden sizes x hidden activations (linear, tanh), each model a normal
run of the Trainer (presets nplm / nplm-tanh, `model.arch = "nplm"`) trained
for the same time budget. Then, optionally (`best_minutes` > 0), the hidden
size of the best grid model (by validation perplexity) is trained again with
a longer budget with every activation, rows ``mlp-<activation>-h<size>-long``.
Every model is evaluated exactly (normalised probabilities over the whole
vocabulary) on the full valid and test streams at the end of its training.
The Kneser-Ney row is ``kn3``.

Output directory: summary.{json,csv,md,png}, runs/<model>/ (a run directory
each: config.toml, metrics.jsonl, checkpoints/, summary.json, ...; a finished
run there is not trained again), and details.json (every figure of every
model: epochs, steps, parameters, configuration). `--quick` trains on the first
lines of each split, written to quick-data/.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rnnlab.config import DataConfig, load_config
from rnnlab.errors import UserError
from rnnlab.experiments import command_line, markdown_table, train_unless_finished, write_results

if TYPE_CHECKING:  # numpy: not at import (rnnlab/experiments/__init__.py)
    from rnnlab.data.corpus import Corpus

COLUMNS = ["model", "valid_ppl", "test_ppl", "train_minutes"]
PRESETS = {"linear": "nplm", "tanh": "nplm-tanh"}

# What the Brown benchmark uses (chosen for a 2-core CPU; benchmarks/brown_ngram.py):
# settings on top of the presets, as --set would give them.
DEFAULT_BASE = ["model.context=4", "model.embed=100", "model.dropout=0.2", "model.softmax=adaptive",
                "model.cutoffs=auto", "train.batch_size=128", "train.seq_len=4", "train.lr=2e-3",
                "train.eval_batch_size=32", "train.eval_seq_len=256",
                # a time budget has no step count for cosine to decay over
                "train.schedule=constant"]
QUICK = ["model.embed=16", "train.batch_size=16", "train.eval_batch_size=16", "train.eval_seq_len=256",
         "train.samples=0", "train.checkpoint_every=0"]
QUICK_LINES = {"train": 1000, "valid": 250, "test": 250}  # ~20k training and ~5k evaluation tokens of Brown


def kn_row(corpus: Corpus, order: int = 3, discount: float = 0.75, log=print, progress: bool = False) -> dict:
    from rnnlab.console import counter
    from rnnlab.ngram.kneser_ney import KneserNey

    log(f"kn{order}: counting the {order}-grams of {len(corpus.train):,} training tokens")
    start = time.perf_counter()
    model = KneserNey(len(corpus.vocab), order, discount).fit(corpus.train)
    minutes = (time.perf_counter() - start) / 60.0
    ppl = {}
    for split, ids in (("valid", corpus.valid), ("test", corpus.test)):
        if ids is not None and len(ids) > 1:
            with counter(f"kn{order}: scoring {split}", progress, unit="chunk") as on_chunk:
                ppl[split] = model.perplexity(ids, on_chunk)
    return {"model": f"kn{order}", "valid_ppl": ppl["valid"], "test_ppl": ppl.get("test"), "train_minutes": minutes}


def row_from_run(name: str, run_dir: Path) -> tuple[dict, dict]:
    """(table row, details) of a finished n-gram run: its final evaluation."""
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    config = load_config(None, str(run_dir / "config.toml")).to_dict()
    final = summary["final"]
    test = final.get("test")
    row = {"model": name, "valid_ppl": final["valid"]["perplexity"], "test_ppl": test and test["perplexity"],
           "train_minutes": summary["wall_seconds"] / 60.0}
    details = dict(row, epochs=summary["epochs"], steps=summary["steps"], params=summary["parameters"],
                   valid_accuracy=final["valid"]["accuracy"], test_accuracy=test and test["accuracy"], config=config)
    return row, details


def _quick_data(data_dir: Path, out: Path) -> Path:
    """The first lines of each split, as a corpus directory of its own."""
    from rnnlab.data.corpus import load_corpus

    quick = out / "quick-data"
    quick.mkdir(parents=True, exist_ok=True)
    source = load_corpus(DataConfig(path=str(data_dir), level="word")).source
    for split, lines in QUICK_LINES.items():
        path = next((p for p in (Path(data_dir) / f"{split}.txt", Path(data_dir) / f"ptb.{split}.txt") if p.is_file()),
                    None)
        if path is not None:
            with path.open(encoding="utf-8", errors="replace") as f:
                (quick / f"{split}.txt").write_text("".join(line for _, line in zip(range(lines), f)), encoding="utf-8")
    if not (quick / "train.txt").is_file():
        raise UserError(f"--quick needs a corpus directory with train.txt and valid.txt, not {source}")
    return quick


def run_ngram_experiment(data_dir: str | Path, out_dir: str | Path, hidden_sizes=(128, 256, 512),
                         activations=("linear", "tanh"), minutes: float = 3.0, best_minutes: float = 0.0,
                         quick: bool = False, base: list[str] | None = None, threads: int = 1, seed: int = 0,
                         command: str = "", log=print, progress: bool = False) -> list[dict]:
    """Train the grid and the KN trigram on `data_dir` (a word corpus directory);
    write the summary files into `out_dir`; return the rows
    ``{"model", "valid_ppl", "test_ppl", "train_minutes"}`` (KN first).

    `minutes` is each grid model's training budget (train.max_minutes);
    `best_minutes` > 0 retrains the best grid model's hidden size, with every
    activation, for that long. `base`: --set overrides for every model (default
    DEFAULT_BASE). `quick`: a 20k-token training subset, 5k-token evaluation
    subsets and a few seconds per model (for tests; the numbers mean nothing)."""
    from rnnlab.data.corpus import load_corpus

    for a in activations:
        if a not in PRESETS:
            raise UserError(f"activation must be linear or tanh, got '{a}'")
    if not hidden_sizes or not activations:
        raise UserError("the n-gram experiment needs at least one hidden size and one activation")
    out = Path(out_dir)
    settings = list(DEFAULT_BASE if base is None else base)
    if quick:
        data_dir = _quick_data(Path(data_dir), out)
        settings += QUICK
        minutes, best_minutes = min(minutes, 0.05), min(best_minutes, 0.05)
    settings += [f"data.path={data_dir}", f"train.threads={threads}", f"train.seed={seed}"]
    corpus = load_corpus(load_config("nplm", None, settings).data)  # the vocabulary every run builds
    log(f"corpus {corpus.source}: {len(corpus.train)} train, {len(corpus.valid)} valid, "
        f"{0 if corpus.test is None else len(corpus.test)} test tokens, vocabulary {len(corpus.vocab)}")
    rows, details = [], []
    kn = kn_row(corpus, log=log, progress=progress)
    log(f"kn3: valid ppl {kn['valid_ppl']:.1f}, test ppl "
        f"{kn['test_ppl'] if kn['test_ppl'] is None else round(kn['test_ppl'], 1)}")
    rows.append(kn)
    details.append(dict(kn, kind="interpolated Kneser-Ney, D=0.75"))

    def train_one(activation: str, hidden: int, budget: float, name: str) -> dict:
        cfg = load_config(PRESETS[activation], None,
                          [*settings, f"model.hidden={hidden}", f"train.max_minutes={budget}"])
        cfg.name = name
        train_unless_finished(name, cfg, out / "runs" / name, progress)
        row, detail = row_from_run(name, out / "runs" / name)
        rows.append(row)
        details.append(detail)
        log(f"{name}: valid ppl {row['valid_ppl']:.1f} after {row['train_minutes']:.1f} min")
        return row

    grid = [(train_one(a, int(h), minutes, f"mlp-{a}-h{int(h)}"), int(h)) for a in activations for h in hidden_sizes]
    if best_minutes > 0:
        _, best_hidden = min(grid, key=lambda rh: rh[0]["valid_ppl"])
        for activation in activations:
            train_one(activation, best_hidden, best_minutes, f"mlp-{activation}-h{best_hidden}-long")

    out.mkdir(parents=True, exist_ok=True)
    (out / "details.json").write_text(json.dumps(details, indent=1, default=str) + "\n", encoding="utf-8")
    notes = _notes(rows, settings, minutes, best_minutes, quick, corpus)
    write_results(out, "summary", rows, COLUMNS, command or "run_ngram_experiment(...)",
                  plot=lambda path: plot_rows(rows, path), notes=notes)
    return rows


def _notes(rows, settings, minutes, best_minutes, quick, corpus) -> str:
    kn = next(r for r in rows if r["model"].startswith("kn"))
    neural = [r for r in rows if not r["model"].startswith("kn")]
    best = min(neural, key=lambda r: r["test_ppl"] if r["test_ppl"] is not None else r["valid_ppl"])
    lines = [f"Vocabulary {len(corpus.vocab)} (built from train; `<eos>` per line); "
             f"{len(corpus.train)} training tokens.",
             f"Neural models: presets nplm (linear) and nplm-tanh with "
             f"{' '.join(x for x in settings if not x.startswith(('train.threads', 'train.seed', 'data.path')))}, "
             f"{minutes:g} min each" + (f"; the best model's hidden size again for {best_minutes:g} min with each "
                                         "activation (-long)" if best_minutes else "") + ".",
             f"Best neural model: {best['model']} (test ppl {_f(best['test_ppl'])}) vs KN trigram "
             f"(test ppl {_f(kn['test_ppl'])})."]
    if quick:
        lines.append("QUICK RUN: tiny subsets and seconds of training; the numbers mean nothing.")
    return "\n".join(lines)


def setup_text(config: dict, summary: dict) -> str:
    """A run's settings in a few words: context, embedding, dropout and the
    budget that ended it (epochs or minutes of training)."""
    m, t = config["model"], config["train"]
    by_epochs = summary.get("epochs", 0) >= t["epochs"] - 1e-6
    budget = f"{t['epochs']:g} epochs" if by_epochs else f"{t['max_minutes']:g} min"
    init = f"±{m['init']:g}" if m["init"] else "±0.1"
    return (f"{m['context']} words × D {m['embed']} (init {init}), dropout {m['dropout']:g}, {budget}, seed "
            f"{t['seed']}")


def _f(x) -> str:
    return "—" if x is None else f"{x:.1f}"


def plot_rows(rows: list[dict], path: Path) -> None:
    """Valid and test perplexity per neural model (bars), KN as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kn = [r for r in rows if r["model"].startswith("kn")]
    neural = [r for r in rows if not r["model"].startswith("kn")]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(neural) + 2), 4.5))
    xs = range(len(neural))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], [r["valid_ppl"] for r in neural], width, label="valid", color="#4c72b0")
    ax.bar([x + width / 2 for x in xs], [r["test_ppl"] or 0 for r in neural], width, label="test", color="#dd8452")
    for r in kn:
        ax.axhline(r["valid_ppl"], color="#4c72b0", linestyle="--", linewidth=1, label=f"{r['model']} valid")
        if r["test_ppl"] is not None:
            ax.axhline(r["test_ppl"], color="#dd8452", linestyle="--", linewidth=1, label=f"{r['model']} test")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([r["model"] for r in neural], rotation=30, ha="right")
    ax.set_ylabel("perplexity")
    values = [r["valid_ppl"] for r in rows] + [r["test_ppl"] for r in rows if r["test_ppl"] is not None]
    ax.set_ylim(min(values) * 0.8, max(values) * 1.05)
    ax.legend(fontsize=8)
    ax.set_title("Neural n-gram models vs Kneser-Ney trigram")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- command line (used by benchmarks/brown_ngram.py; the CLI can call add_arguments/main) --


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rnnlab import argtypes as at

    p.add_argument("--data", required=False, default=None,
                   help="word corpus directory with train.txt/valid.txt/test.txt, or a dataset recipe name "
                        "(ptb, wikitext-2, brown) (default: ../shared/data/brown)")
    p.add_argument("--out", default="runs/experiments/ngram", help="output directory (finished runs there are kept)")
    p.add_argument("--hidden", default="128,256,512", help="comma list of hidden sizes")
    p.add_argument("--activations", default="linear,tanh", help="comma list of linear, tanh")
    p.add_argument("--minutes", type=at.positive_number, default=3.0, help="training minutes per grid model")
    p.add_argument("--best-minutes", type=at.nonnegative_number, default=0.0,
                   help="retrain the best grid model this long (0: no)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of every model on top of the benchmark's, e.g. --set model.embed=60 (repeatable)")
    p.add_argument("--threads", type=at.threads, default=1, help="torch threads (default 1)")
    p.add_argument("--seed", type=at.seed, default=0)
    p.add_argument("--quick", action="store_true", help="seconds on tiny subsets (smoke test)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_overrides(items: list[str]) -> list[str]:
    """--set items, checked against the configuration (unknown keys, bad values: one-line errors)."""
    load_config("nplm", None, items)
    return list(items)


HELP = "Bengio et al.'s neural n-gram model (linear vs tanh, sizes) against a Kneser-Ney trigram"


def run(args) -> int:
    data = args.data
    if data is None:
        data = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "brown"
    elif not Path(data).exists():
        from rnnlab.data.recipes import RECIPES, fetch

        if data in RECIPES:  # a recipe name: download once into the cache
            data = fetch(data, log=print)
    try:
        hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
    except ValueError:
        raise UserError(f"--hidden takes a comma list of integers, got '{args.hidden}'") from None
    activations = tuple(a.strip() for a in args.activations.split(",") if a.strip())
    rows = run_ngram_experiment(data, args.out, hidden, activations, args.minutes, args.best_minutes, args.quick,
                                DEFAULT_BASE + parse_overrides(args.set), args.threads, args.seed, command_line(args),
                                progress=not args.no_progress)
    print(markdown_table(rows, COLUMNS))
    return 0
