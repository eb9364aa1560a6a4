"""`rnnlab experiment ngram`: neural n-gram models (Bengio et al. 2003) against
an interpolated Kneser-Ney trigram, on the same word corpus and vocabulary.

Grid: hidden sizes x hidden activations (linear, tanh), each model trained for
the same time budget. Then, optionally (`best_minutes` > 0), the hidden size of
the best grid model (by validation perplexity) is trained again with a longer
budget with every activation, rows ``mlp-<activation>-h<size>-long``: the best
configuration gets more time, and linear and tanh are compared once more at
equal size and equal (longer) time. Every model is evaluated exactly (normalised
probabilities over the whole vocabulary) on the full valid and test streams
with its best-on-valid weights. The Kneser-Ney row is ``kn3``.

Output directory: summary.{json,csv,md,png} and runs/<model>/ (a neural
n-gram run directory each: config.json, metrics.jsonl, vocab.json,
model.safetensors, summary.json), plus details.json (every figure of every
model: epochs, steps, parameters, CPU minutes, configuration).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from rnnlab.config import DataConfig
from rnnlab.data.corpus import Corpus, load_corpus
from rnnlab.errors import UserError
from rnnlab.experiments import markdown_table, write_results
from rnnlab.ngram.kneser_ney import KneserNey
from rnnlab.ngram.neural import NgramConfig
from rnnlab.ngram.neural import train as train_neural

COLUMNS = ["model", "valid_ppl", "test_ppl", "train_minutes"]

# What the Brown benchmark uses (chosen for a 2-core CPU; see benchmarks/brown_ngram.md).
DEFAULT_BASE = dict(context=4, embed=100, dropout=0.2, output="adaptive", batch_size=512, lr=2e-3,
                    schedule="linear", eval_batch_size=4096)
QUICK = dict(train_tokens=20_000, eval_tokens=5_000, batch_size=64, embed=16, eval_every=0)


def _subset(corpus: Corpus, train_tokens: int, eval_tokens: int) -> Corpus:
    test = None if corpus.test is None else corpus.test[:eval_tokens]
    return Corpus(corpus.vocab, corpus.train[:train_tokens], corpus.valid[:eval_tokens], test, corpus.source)


def kn_row(corpus: Corpus, order: int = 3, discount: float = 0.75) -> dict:
    start = time.perf_counter()
    model = KneserNey(len(corpus.vocab), order, discount).fit(corpus.train)
    minutes = (time.perf_counter() - start) / 60.0
    test = model.perplexity(corpus.test) if corpus.test is not None and len(corpus.test) > 1 else None
    return {"model": f"kn{order}", "valid_ppl": model.perplexity(corpus.valid), "test_ppl": test,
            "train_minutes": minutes}


def run_ngram_experiment(data_dir: str | Path, out_dir: str | Path, hidden_sizes=(128, 256, 512),
                         activations=("linear", "tanh"), minutes: float = 3.0, best_minutes: float = 0.0,
                         quick: bool = False, base: dict | None = None, threads: int = 1, seed: int = 0,
                         command: str = "", log=print) -> list[dict]:
    """Train the grid and the KN trigram on `data_dir` (a word corpus directory);
    write the summary files into `out_dir`; return the rows
    ``{"model", "valid_ppl", "test_ppl", "train_minutes"}`` (KN first).

    `minutes` is each grid model's training budget (wall clock, evaluation not
    counted); `best_minutes` > 0 retrains the best grid model's hidden size, with
    every activation, for that long.
    `quick`: a 20k-token training subset, 5k-token evaluation subsets and a
    few seconds per model (for tests; the numbers mean nothing)."""
    for a in activations:
        if a not in ("linear", "tanh"):
            raise UserError(f"activation must be linear or tanh, got '{a}'")
    if not hidden_sizes or not activations:
        raise UserError("the n-gram experiment needs at least one hidden size and one activation")
    out = Path(out_dir)
    corpus = load_corpus(DataConfig(path=str(data_dir), level="word"))
    settings = dict(DEFAULT_BASE, **(base or {}))
    if quick:
        settings.update(QUICK)
        minutes = min(minutes, 0.05)
        best_minutes = min(best_minutes, 0.05)
        corpus = _subset(corpus, QUICK["train_tokens"], QUICK["eval_tokens"])
    settings.update(threads=threads, seed=seed)

    log(f"corpus {corpus.source}: {len(corpus.train)} train, {len(corpus.valid)} valid, "
        f"{0 if corpus.test is None else len(corpus.test)} test tokens, vocabulary {len(corpus.vocab)}")
    rows, details = [], []
    kn = kn_row(corpus)
    log(f"kn3: valid ppl {kn['valid_ppl']:.1f}, test ppl {kn['test_ppl'] if kn['test_ppl'] is None else round(kn['test_ppl'], 1)}")
    rows.append(kn)
    details.append(dict(kn, kind="interpolated Kneser-Ney, D=0.75"))

    def train_one(cfg: NgramConfig, name: str) -> dict:
        summary = train_neural(corpus, cfg, out / "runs" / name, log=log)
        summary.pop("_model", None)
        row = {"model": name, "valid_ppl": summary["valid_ppl"], "test_ppl": summary["test_ppl"],
               "train_minutes": summary["train_minutes"]}
        rows.append(row)
        details.append(dict(summary, model=name, config=dataclasses.asdict(cfg)))
        return row

    grid = []
    for activation in activations:
        for hidden in hidden_sizes:
            cfg = NgramConfig(**dict(settings, hidden=int(hidden), activation=activation, max_minutes=minutes))
            grid.append((train_one(cfg, cfg.name), cfg))
    if best_minutes > 0:
        _, best_cfg = min(grid, key=lambda rc: rc[0]["valid_ppl"])
        for activation in activations:
            cfg = dataclasses.replace(best_cfg, activation=activation, max_minutes=best_minutes)
            train_one(cfg, f"{cfg.name}-long")

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
             f"Neural models: {json.dumps({k: v for k, v in settings.items() if k not in ('threads', 'seed')})}, "
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
    by_epochs = summary.get("epochs", 0) >= config["epochs"] - 1e-6
    budget = f"{config['epochs']:g} epochs" if by_epochs else f"{config['max_minutes']:g} min"
    return (f"{config['context']} words × D {config['embed']} (init ±{config.get('embed_init', 0.1):g}), "
            f"dropout {config['dropout']:g}, {budget}, seed {config.get('seed', 0)}")


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
    p.add_argument("--out", default="runs/experiments/ngram", help="output directory")
    p.add_argument("--hidden", default="128,256,512", help="comma list of hidden sizes")
    p.add_argument("--activations", default="linear,tanh", help="comma list of linear, tanh")
    p.add_argument("--minutes", type=at.positive_number, default=3.0, help="training minutes per grid model")
    p.add_argument("--best-minutes", type=at.nonnegative_number, default=0.0, help="retrain the best grid model this long (0: no)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a neural n-gram setting, e.g. --set embed=60 (repeatable)")
    p.add_argument("--threads", type=at.threads, default=1, help="torch threads (default 1)")
    p.add_argument("--seed", type=at.seed, default=0)
    p.add_argument("--quick", action="store_true", help="seconds on tiny subsets (smoke test)")


def parse_overrides(items: list[str]) -> dict:
    fields = {f.name: f for f in dataclasses.fields(NgramConfig)}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            raise UserError(f"--set expects KEY=VALUE with KEY one of {', '.join(fields)}; got '{item}'")
        default = fields[key].default
        try:
            if isinstance(default, bool):
                out[key] = value.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(default, tuple):
                out[key] = tuple(int(v) for v in value.split(",") if v.strip())
            else:
                out[key] = type(default)(value)
        except ValueError:
            raise UserError(f"--set {key} expects {type(default).__name__}, got '{value}'") from None
    return out


def main_from_args(args, command: str = "") -> list[dict]:
    data = getattr(args, "data", None)
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
                                parse_overrides(args.set), args.threads, args.seed, command)
    print(markdown_table(rows, COLUMNS))
    return rows
