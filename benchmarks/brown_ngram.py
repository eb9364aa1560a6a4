"""Brown corpus: neural n-gram models (Bengio et al. 2003) vs an interpolated
Kneser-Ney trigram, on the same vocabulary and token streams (`<eos>` per line).

Grid: hidden 128/256/512 x activation linear/tanh, each trained for
--minutes of wall-clock time (evaluation not counted); then the hidden size of
the best of them (by validation perplexity) is trained again for
--best-minutes, once with each activation (rows `-long`). One thread
(torch.set_num_threads(1)), so one of the machine's two cores stays free.

    python benchmarks/brown_ngram.py                      # the real run (~40 min)
    python benchmarks/brown_ngram.py --quick              # seconds, tiny subsets: a smoke test

Writes benchmarks/results/brown_ngram.json (rows: model, valid_ppl, test_ppl,
train_minutes) and brown_ngram.md (the table, the settings, the exact command,
the machine's load); the models and the full summary go to --work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "1")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "brown"),
                    help="Brown directory with train.txt/valid.txt/test.txt (default: ../shared/data/brown)")
    ap.add_argument("--minutes", type=float, default=3.0, help="training minutes per grid model")
    ap.add_argument("--best-minutes", type=float, default=12.0,
                    help="training minutes for the best hidden size, with each activation")
    ap.add_argument("--hidden", default="128,256,512")
    ap.add_argument("--activations", default="linear,tanh")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting of every neural n-gram run, e.g. model.embed=60 (see rnnlab config)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny subsets, seconds per model")
    ap.add_argument("--results", default=None,
                    help="where brown_ngram.{json,md} go (default: benchmarks/results; --quick: runs/benchmarks)")
    ap.add_argument("--work", default=None,
                    help="run directories and summary files (default: runs/benchmarks/brown_ngram)")
    ap.add_argument("--render-only", action="store_true",
                    help="train nothing: rebuild the result files from the run directories in --work "
                         "(KN recomputed), e.g. after adding a run by hand")
    ap.add_argument("--ran", action="append", default=[], metavar="COMMAND",
                    help="with --render-only: a command that produced the runs, shown in the .md (repeatable)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from rnnlab.errors import UserError
    from rnnlab.experiments import markdown_table
    from rnnlab.experiments.ngram import COLUMNS, DEFAULT_BASE, parse_overrides, run_ngram_experiment, setup_text

    if not Path(args.data).is_dir():
        print(f"brown_ngram: no corpus directory at {args.data} (use --data DIR)", file=sys.stderr)
        return 2
    suffix = "-quick" if args.quick else ""
    results = Path(args.results) if args.results else (ROOT / "runs" / "benchmarks" if args.quick
                                                        else ROOT / "benchmarks" / "results")
    work = Path(args.work) if args.work else ROOT / "runs" / "benchmarks" / f"brown_ngram{suffix}"
    command = "python benchmarks/brown_ngram.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    load_before = os.getloadavg()
    start = time.time()
    commands = [command]
    try:
        overrides = parse_overrides(args.set)
        if args.render_only:
            rows, details = render_from_runs(args.data, work, command)
            commands = args.ran or [command]
        else:
            rows = run_ngram_experiment(args.data, work, tuple(int(h) for h in args.hidden.split(",")),
                                        tuple(a.strip() for a in args.activations.split(",")), args.minutes,
                                        args.best_minutes, args.quick, DEFAULT_BASE + overrides, args.threads,
                                        args.seed, command=command, log=lambda s: print(s, flush=True))
            details = json.loads((work / "details.json").read_text())
    except UserError as e:
        print(f"brown_ngram: error: {e}", file=sys.stderr)
        return 2
    wall = (time.time() - start) / 60.0
    load_after = os.getloadavg()

    results.mkdir(parents=True, exist_ok=True)
    name = f"brown_ngram{suffix}"
    kn = next(r for r in rows if r["model"] == "kn3")
    neural = [r for r in rows if r["model"] != "kn3"]
    best = min(neural, key=lambda r: r["test_ppl"])
    for row, detail in zip(rows, details):  # the KN row's detail has no config, but its kind
        row["setup"] = setup_text(detail["config"], detail) if "config" in detail else detail["kind"]
    (results / f"{name}.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    detail_cols = ["model", "valid_ppl", "test_ppl", "train_minutes", "cpu_minutes", "epochs", "params",
                   "valid_accuracy", "test_accuracy"]
    settings = DEFAULT_BASE + overrides
    md = [
        "# Brown: neural n-gram models vs Kneser-Ney trigram",
        "",
        "```",
        *commands,
        "```",
        "",
        markdown_table(rows, COLUMNS + ["setup"]),
        "",
        f"Best neural model: **{best['model']}**, test perplexity {best['test_ppl']:.1f} vs {kn['test_ppl']:.1f} "
        f"for the KN trigram ({'beats' if best['test_ppl'] < kn['test_ppl'] else 'does NOT beat'} it, "
        f"after {best['train_minutes']:.1f} minutes of training).",
        "",
        *([f"![valid and test perplexity per model, KN trigram as lines]({name}.png)", ""]
          if (work / "summary.png").is_file() else []),
        "## Details",
        "",
        markdown_table(details, detail_cols),
        "",
        "## Setup",
        "",
        f"- Data: {args.data} (Brown, split of Bengio et al. 2003, words seen <= 3 times -> `<unk>`); "
        "vocabulary built from train (`<unk>`, `<eos>` + every training word), `<eos>` appended to every line; "
        "each split is read as one token stream and every token but the first is predicted.",
        "- KN: interpolated Kneser-Ney trigram, discount 0.75 at every order, interpolated down to the uniform "
        "distribution (`rnnlab/ngram/kneser_ney.py`).",
        "- Neural n-gram (`rnnlab/models/nplm.py`, presets nplm / nplm-tanh, trained by the Trainer): "
        f"{' '.join(settings)}; "
        "context words, embedding size D, dropout and budget as in each row's `setup`; hidden size and "
        "activation as in the model name. `output=adaptive` is an adaptive softmax over the frequency-sorted "
        "vocabulary (head 2,000 words + 2 tail clusters): an exactly normalised distribution over all words, "
        "so perplexities are exact.",
        "- Budget (`setup`): a number of epochs (both activations then make the same number of updates) or "
        "minutes of training (wall clock, evaluation excluded); the learning rate decays linearly to 0 over the "
        "budget; the weights kept are the best on validation (evaluated every epoch and at the end).",
        f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{args.threads}" + ("" if args.render_only else
                             f"; load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end")
        + " (other jobs share the cores: `cpu_minutes` is each run's own CPU time, training and evaluation).",
        f"- Whole benchmark: {wall:.1f} minutes wall clock." if not args.render_only else
        "- Result files rebuilt with --render-only from the run directories (timings as recorded by each run).",
        "",
    ]
    if args.quick:
        md.insert(1, "\nQUICK RUN (tiny subsets, seconds of training): the numbers mean nothing.\n")
    (results / f"{name}.md").write_text("\n".join(md), encoding="utf-8")
    if (work / "summary.png").is_file():
        shutil.copyfile(work / "summary.png", results / f"{name}.png")
    print(markdown_table(rows, COLUMNS))
    print(f"wrote {results / (name + '.json')} and {results / (name + '.md')}")
    return 0


def render_from_runs(data: str, work: Path, command: str) -> tuple[list[dict], list[dict]]:
    """Rows and details from work/runs/*/summary.json, with the KN row
    recomputed. Run directories are named mlp-{activation}-h{hidden}[-variant]
    (rename runs added by hand to give them a variant); rows come by variant
    (the grid first), then hidden size, then activation."""
    from rnnlab.config import DataConfig
    from rnnlab.data.corpus import load_corpus
    from rnnlab.errors import UserError
    from rnnlab.experiments import write_results
    from rnnlab.experiments.ngram import COLUMNS, kn_row, plot_rows, row_from_run

    def order(path: Path):  # mlp-{activation}-h{hidden}[-variant]: by variant, then size, then activation
        _, activation, rest = path.parent.name.split("-", 2)
        hidden, _, variant = rest[1:].partition("-")
        return variant, int(hidden), activation

    summaries = sorted((work / "runs").glob("*/summary.json"), key=order)
    if not summaries:
        raise UserError(f"no runs in {work / 'runs'}")
    corpus = load_corpus(DataConfig(path=str(data), level="word"))
    kn = kn_row(corpus)
    rows, details = [kn], [dict(kn, kind="interpolated Kneser-Ney, D=0.75")]
    for path in summaries:
        row, detail = row_from_run(path.parent.name, path.parent)
        rows.append(row)
        details.append(detail)
    (work / "details.json").write_text(json.dumps(details, indent=1) + "\n", encoding="utf-8")
    write_results(work, "summary", rows, COLUMNS, command, plot=lambda p: plot_rows(rows, p))
    return rows, details


if __name__ == "__main__":
    sys.exit(main())
