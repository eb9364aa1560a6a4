"""The `rnnlab` command line.

Errors caused by input (bad config, missing corpus, corrupt checkpoint, ...)
print one line and exit with status 2; Ctrl-C during training saves a
checkpoint and exits with 130.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import warnings
from pathlib import Path

from rnnlab import argtypes as at
from rnnlab import console, threads
from rnnlab.errors import UserError, run_command

threads.prefer_short_spin()  # before anything imports torch: libgomp reads it once, at load

EPILOG_TRAIN = """examples:
  rnnlab train                                   # preset grimm-char: 2x256 char LSTM on Grimm
  rnnlab train --preset grimm-char --set model.hidden=256 --set train.max_steps=2000
  rnnlab train --config my.toml --run-dir runs/mine
  rnnlab train --resume runs/mine                # continue from the last checkpoint
  rnnlab config                                  # every setting: its value, meaning and allowed values
"""


FIGURES = "runs/figures"  # where figures that belong to no run go by default (gradflow, kgate, report --format md)


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are UserErrors, so that they end like every other
    one: one line, exit status 2 (argparse would print the usage too and exit
    from inside parse_args); subcommand parsers inherit it."""

    def error(self, message: str):
        raise UserError(f"{self.prog.removeprefix('rnnlab ')}: {message}")


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set model.hidden=256 (repeatable; see 'rnnlab config')")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rnnlab", description="Train, evaluate, sample and understand recurrent networks.")
    parser.add_argument("--version", action="version", version=f"rnnlab {__import__('rnnlab').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a model (default: preset grimm-char)", epilog=EPILOG_TRAIN,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--preset", help="a named preset (see 'rnnlab presets')")
    source.add_argument("--config", help="a TOML file with [model], [data], [train], [generate] sections")
    source.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    _add_set(p)
    p.add_argument("--run-dir", help="where to write the run (default: runs/NAME-TIMESTAMP)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--max-steps", type=at.count, help="shorthand for --set train.max_steps=N")
    p.add_argument("--max-minutes", type=at.nonnegative_number, help="shorthand for --set train.max_minutes=M")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="shorthand for --set train.device=D")
    p.add_argument("--nproc", type=at.processes, default=1, metavar="N",
                   help="data-parallel training in N local processes (torch.distributed; see docs/distributed.md); "
                        "at most 4 per usable CPU")

    p = sub.add_parser("eval", help="evaluate a run on a split")
    p.add_argument("run_dir")
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--data", help="evaluate on another corpus path (same vocabulary)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--backend", default="torch", choices=["torch", "numpy"],
                   help="compute with PyTorch or the NumPy reference (any run loads into either)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("generate", help="sample text from a run")
    p.add_argument("run_dir")
    p.add_argument("--prompt", default="", help="text to continue")
    p.add_argument("--temperature", type=at.finite, nargs="+", default=None,
                   help="one or more temperatures (0 = greedy); default from the run's [generate]")
    p.add_argument("--top-k", type=at.count, default=None)
    p.add_argument("--top-p", type=at.finite, default=None)
    p.add_argument("--length", type=at.length, nargs="+", default=None, help="tokens to generate (one or more lengths)")
    p.add_argument("--num", type=at.positive, default=1, help="samples per setting (at most 1,000)")
    p.add_argument(
        "--stop",
        default="",
        metavar="TEXT",
        help='end each sample where TEXT appears (not printed; at most 1,000 characters); "\\n" is a newline, '
        'so "\\n\\n" ends it at a paragraph break (Grimm\'s lines are hard-wrapped: "\\n" would end '
        "mid-sentence)",
    )
    p.add_argument("--seed", type=at.seed, default=None)
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--backend", default="torch", choices=["torch", "numpy"],
                   help="compute with PyTorch or the NumPy reference (any run loads into either)")

    sub.add_parser("presets", help="list the presets")
    p = sub.add_parser("config", help="every setting: its value, meaning and allowed values (those 'rnnlab train' "
                                      "would use)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--preset", help="the values of this preset (default grimm-char, as 'rnnlab train'; "
                                         "none: the built-in defaults below every preset)")
    source.add_argument("--config", help="the values of this TOML file over the built-in defaults (as 'rnnlab train')")
    _add_set(p)
    p.add_argument("--toml", action="store_true", help="print the resolved configuration as TOML (a --config file)")

    p = sub.add_parser("report", help="one HTML (or markdown) report for runs and experiment directories")
    p.add_argument("paths", nargs="+", metavar="RUN_OR_EXPERIMENT_DIR")
    p.add_argument("--out", help=f"output file (default: report.html, or {FIGURES}/report/report.md with --format md: "
                                 "the PNG files go beside the markdown file)")
    p.add_argument("--format", choices=["html", "md"], help="html: one self-contained file; md: markdown + PNG files")
    p.add_argument("--title", help="report title")
    p.add_argument("--prompt", default="", help="prompt for the samples")
    p.add_argument("--sample-length", type=at.length, help="tokens per sample (default 300 characters / 60 words)")
    p.add_argument("--no-samples", action="store_true", help="skip sampling from the models")
    p.add_argument("--no-states", action="store_true",
                   help="skip the look inside each recurrent language model (strongest units, saturation, surprise "
                        "over the start of its validation split; a few seconds per run)")

    p = sub.add_parser("serve", help="a local web page to generate text with a run, and one to explore its states")
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=at.port, default=8000)
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also accept requests whose Host header is NAME (repeatable; needed for a non-loopback "
                        "--host, e.g. the machine's name; the check stops DNS-rebinding pages)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    _add_experiment_parsers(sub)
    _add_numpy_parsers(sub)
    _add_data_parsers(sub)
    p = sub.add_parser("sweep", help="train one preset at every point of a grid of settings; table and plot",
                       epilog="examples:\n  rnnlab sweep --preset lstm --set data.path=../shared/data/brown "
                              "--grid model.embed=16,32,64,128\n  rnnlab sweep --grid train.seq_len=5,10,20,40,80   "
                              "# truncated BPTT length on grimm-char",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--preset", help="a named preset (default grimm-char)")
    source.add_argument("--config", help="a TOML configuration file")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a setting and its values (repeatable: every combination is trained)")
    _add_set(p)
    p.add_argument("--out", default="runs/sweep", help="output directory (finished runs there are kept)")
    p.add_argument("--quick", action="store_true", help="tiny models for a few steps (seconds), as the tests run it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _add_data_parsers(sub) -> None:
    """`rnnlab data list|fetch` (dataset recipes) and `rnnlab inspect` (what a word model learned)."""
    p = sub.add_parser("data", help="dataset recipes: list them, or download and prepare one")
    kinds = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    kinds.add_parser("list", help="known datasets and whether they are in the cache")
    f = kinds.add_parser(
        "fetch", help="download (once), check and prepare a dataset; prints the path to use as data.path"
    )
    f.add_argument("name", help="dataset name (see 'rnnlab data list')")
    f.add_argument("--cache-dir", help="cache directory (default $RNNLAB_DATA or ~/.cache/rnnlab)")
    g = kinds.add_parser("ngrams", help="the most frequent n-grams of a corpus's training split, and their histogram")
    g.add_argument("path", help="a corpus directory, a text file, or a dataset name (as data.path)")
    g.add_argument("-n", type=at.positive, default=4, help="n-gram order (default 4)")
    g.add_argument("--top", type=at.positive, default=50, help="how many of the most frequent to print (default 50)")
    g.add_argument("--level", choices=["word", "char"], default="word")
    g.add_argument("--min-count", type=at.positive, default=1,
                   help="words seen fewer times become <unk> (default 1: Brown's files already have <unk>)")
    g.add_argument("--plot", metavar="PNG", help="also draw the frequency histogram (count of counts) to this file")
    p = sub.add_parser("inspect", help="look inside a run: units, saturation, surprise (recurrent models); "
                                         "neighbors, embeddings (word models)")
    p.add_argument("run_dir", help="a run directory (rnnlab train, or a neural n-gram run)")
    what = p.add_subparsers(dest="inspect_command", metavar="WHAT", required=True)
    _add_states_parsers(what)
    n = what.add_parser("neighbors", help="the words whose embeddings are closest (cosine) to each WORD")
    n.add_argument("words", nargs="+", metavar="WORD")
    n.add_argument("-k", type=at.positive, default=5, help="neighbours per word (default 5)")
    n.add_argument(
        "--top", type=at.count, default=10000, help="search among the TOP most frequent words (0: all; default 10000)"
    )
    e = what.add_parser("embeddings", help="2-D map (PCA or t-SNE) of the most frequent words' embeddings")
    e.add_argument("--top", type=at.positive, default=500, help="words to plot (default 500)")
    e.add_argument("--method", choices=["pca", "tsne", "raw"], default="pca",
                   help="pca, tsne, or raw: a 2-dimensional embedding as it is (model.embed=2)")
    e.add_argument("--out", help="PNG file (default RUN_DIR/plots/embeddings.png)")


def _add_states_parsers(what) -> None:
    """`rnnlab inspect RUN units|saturation|surprise`: a recording of the run's states over a text (rnnlab/states)."""
    from rnnlab.bounds import MAX_RECORD

    helps = {
        "units": "each unit's correlation with features of the text (quotes, brackets, line position, capitals, "
        "...): the strongest units per feature, and a JSON table of all",
        "saturation": "how often each gate unit is below 0.1 or above 0.9 (Karpathy et al. 2016): a plot and a JSON",
        "surprise": "the loss of every token of a text (nats, bits) and the model's top predictions: a JSON, "
        "the text coloured by surprise, optionally an HTML page",
    }
    defaults = {"units": 5000, "saturation": 5000, "surprise": 1000}
    for name, text in helps.items():
        q = what.add_parser(name, help=text, description=text + ". The states come from the cell's explicit "
                            "equations with the run's weights (rnnlab/states/record.py).")
        q.add_argument(
            "--text", metavar="FILE", help="a UTF-8 text file (default: the start of the run's validation split)"
        )
        q.add_argument("--length", type=at.integer(2, MAX_RECORD), default=defaults[name], metavar="N",
                       help=f"record the first N tokens of the text (default {defaults[name]}, at most {MAX_RECORD:,}; "
                            "word models: whole lines)")
        q.add_argument("--checkpoint", choices=["best", "last"], default="best",
                       help="best (lowest validation loss; last where there is none yet) or last")
        q.add_argument("--backend", choices=["torch", "numpy"], default="torch",
                       help="the layers that compute the states: PyTorch's explicit cells or the NumPy reference")
        q.add_argument("--no-progress", action="store_true", help="no progress bar")
        if name == "units":
            q.add_argument("--per-feature", type=at.positive, default=3, metavar="K",
                           help="units printed per feature (default 3)")
            q.add_argument("--out", help="JSON file (default RUN_DIR/inspect/units.json)")
        elif name == "saturation":
            q.add_argument("--out", help="PNG file (default RUN_DIR/inspect/saturation.png)")
            q.add_argument(
                "--json", metavar="FILE", help="JSON file of the fractions (default RUN_DIR/inspect/saturation.json)"
            )
        else:
            q.add_argument("--top-k", type=at.integer(1, 100), default=5, metavar="K",
                           help="the model's top predictions kept per token (default 5)")
            q.add_argument("--out", help="JSON file (default RUN_DIR/inspect/surprise.json)")
            q.add_argument("--html", metavar="FILE", help="also write the text shaded by surprise as an HTML page")
            q.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                           help="print the text coloured by surprise (auto: when stdout is a terminal)")
            q.add_argument("--kneser-ney", action="store_true",
                           help="compare with a Kneser-Ney trigram fitted on the run's training split (seconds)")


def _add_numpy_parsers(sub) -> None:
    """Commands of the NumPy reference backend: gradcheck, params, gradflow."""
    p = sub.add_parser("gradcheck", help="check every hand-written NumPy gradient against finite differences")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--seed", type=at.seed, default=0)
    p.add_argument("--gru-by-hand", action="store_true",
                   help="instead: the hand-derived dE2/dW of a bias-free reset-before GRU next to autograd's")

    p = sub.add_parser("params", help="closed-form parameter count of a recurrent stack, checked against the models")
    p.add_argument("--cell", required=True, type=at.cell,
                   help="a cell of the cell table (rnnlab/cell_registry.py); checked against torch.nn where it "
                        "has a fused kernel, else against the cell's own PyTorch layers")
    p.add_argument("--input", type=at.positive, required=True, metavar="M", help="input size")
    p.add_argument("--hidden", type=at.positive, required=True, metavar="N", help="hidden units")
    p.add_argument("--layers", type=at.positive, default=1)
    p.add_argument("--bias", choices=["single", "double"], default="single",
                   help="single: one bias per gate (the textbook count); double: PyTorch's b_ih and b_hh")
    p = sub.add_parser("gradflow", help="the vanishing-gradient picture: ||dL_T/dh_t|| against T - t")
    p.add_argument(
        "--cells",
        type=at.cells,
        default="rnn_tanh,lstm,gru",
        help="comma list of cells of the cell table: rnn (= rnn_tanh), rnn_relu, lstm, gru (default rnn_tanh,lstm,gru)",
    )
    p.add_argument("--hidden", type=at.positive, default=64)
    p.add_argument("--steps", type=at.positive, default=50, metavar="T")
    p.add_argument("--seed", type=at.seed, default=0)
    p.add_argument("--out", default=f"{FIGURES}/gradflow.png", help=f"PNG file (default {FIGURES}/gradflow.png)")
    p.add_argument("--json", action="store_true")


def _add_experiment_parsers(sub) -> None:
    """`rnnlab experiment NAME`, one per entry of the registry (rnnlab/experiments/__init__.py),
    and `rnnlab plot kgate`."""
    from rnnlab.experiments import EXPERIMENTS, experiment

    p = sub.add_parser("experiment", help="experiments: " + ", ".join(EXPERIMENTS))
    names = p.add_subparsers(dest="experiment", metavar="NAME", required=True)
    for name in EXPERIMENTS:
        module = experiment(name)
        module.add_arguments(names.add_parser(name, help=module.HELP))
    p = sub.add_parser("plot", help="figures that need no run: kgate (the Phased LSTM time gate), cell (a diagram)")
    kinds = p.add_subparsers(dest="plot", metavar="KIND", required=True)
    k = kinds.add_parser("kgate", help="the Phased LSTM time gate k(t), with tau, shift and r_on marked")
    k.add_argument("--tau", type=at.positive_number, default=5.0, help="period (default 5)")
    k.add_argument("--r-on", type=at.number(0.0, 1.0, low_open=True), default=0.2, help="open ratio (default 0.2)")
    k.add_argument("--s", "--shift", dest="shift", type=at.finite, default=1.0, help="phase shift (default 1)")
    k.add_argument(
        "--alpha", type=at.nonnegative_number, default=0.0, help="leak while closed (1e-3 in training; default 0)"
    )
    k.add_argument("--periods", type=at.positive_number, default=3.0, help="periods to draw (default 3)")
    k.add_argument("--out", default=f"{FIGURES}/kgate.png", help=f"PNG file (default {FIGURES}/kgate.png)")
    c = kinds.add_parser("cell", help="a diagram of one cell's step, with the cell's equations")
    c.add_argument("--cell", required=True, type=at.cell, help="a cell of the cell table (rnnlab/cell_registry.py)")
    c.add_argument("--gru-z", choices=["old", "new"], default="old", help="the GRU's z convention (default old)")
    c.add_argument("--out", required=True, help="image file; .png or .svg")
    c.add_argument("--gru-reset", choices=["after", "before"], default="after",
                   help="the GRU's reset gate: after the recurrent product (PyTorch) or before it (Cho et al.)")


def cmd_train(args) -> int:
    with console.waiting("loading PyTorch", not args.no_progress):
        from rnnlab import distributed
        from rnnlab.config import load_config
        from rnnlab.runs import default_run_dir
        from rnnlab.trainer import resume, train_config

    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.max_minutes is not None:
        overrides.append(f"train.max_minutes={args.max_minutes}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    relaunch = args.nproc != 1 and not distributed.launched()  # under torchrun, --nproc is ignored
    if args.resume:
        if relaunch:
            return distributed.launch(args.nproc, args.argv)
        with distributed.guard():
            summary = resume(Path(args.resume), overrides, progress=not args.no_progress)
        run_dir = Path(args.resume)
    else:
        cfg = load_config(args.preset, args.config, overrides)
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(cfg.name)
        if relaunch:  # all processes must agree on the (time-stamped) directory
            distributed.preflight(cfg.train.batch_size, args.nproc, run_dir, args.overwrite)
            return distributed.launch(args.nproc, [*args.argv, "--run-dir", str(run_dir)])
        with distributed.guard():  # the trainer prints "run directory: ..." once the directory is ready
            summary = train_config(cfg, run_dir, progress=not args.no_progress, overwrite=args.overwrite)
    if not distributed.is_main():
        return 0
    final = summary["final"]
    for split in ("valid", "test"):
        if split in final:
            m = final[split]
            if summary.get("task"):
                print(f"{split}: loss {m['loss']:.4f}  accuracy {m['accuracy']:.4f}  ({m['sequences']} sequences)")
            else:
                unit = "bits/char" if summary.get("level") == "char" else "bits/word"
                print(f"{split}: loss {m['loss']:.4f}  perplexity {m['perplexity']:.2f}  {unit} {m['bpc']:.4f}  "
                      f"accuracy {m['accuracy']:.4f}  ({m['tokens']} tokens)")
    unit = "sequences" if summary.get("task") else "tokens"
    print(
        f"{summary['steps']} steps in {summary['wall_seconds']:.0f} s ({summary['tokens_per_s']:.0f} {unit}/s); "
        f"run: {run_dir}"
    )
    return 0


def cmd_eval(args) -> int:
    with console.waiting("loading PyTorch and the run", not args.no_progress):
        from rnnlab.data.corpus import load_corpus
        from rnnlab.devices import resolve_device
        from rnnlab.evaluate import evaluate
        from rnnlab.runs import load_run

        device = resolve_device(args.device)
        model, vocab, cfg, meta = load_run(Path(args.run_dir), args.checkpoint, device, backend=args.backend,
                                           task_ok=True)
    if cfg.task.kind:
        return _eval_task(args, model, cfg, meta, device)
    if args.data:
        cfg.data.path = args.data
    with console.waiting(f"reading {cfg.data.path or 'the bundled corpus'}", not args.no_progress):
        corpus = load_corpus(cfg.data, vocab)
    tokens = corpus.split(args.split)  # a missing split is refused before any bar is drawn
    with console.counter(f"evaluating {args.split}", not args.no_progress) as on_batch:
        m = evaluate(model, tokens, cfg.train.eval_batch_size, cfg.train.eval_seq_len, device, on_batch)
    result = {"split": args.split, **m, "step": meta["step"], "checkpoint": args.checkpoint}
    if args.json:
        print(json.dumps(result))
    else:
        unit = "bits/char" if vocab.level == "char" else "bits/word"
        print(
            f"{args.split}: loss {m['loss']:.4f}  perplexity {m['perplexity']:.2f}  {unit} {m['bpc']:.4f}  "
            f"accuracy {m['accuracy']:.4f}  "
            f"({m['tokens']} tokens, checkpoint '{args.checkpoint}' at step {meta['step']})"
        )
    return 0


def _eval_task(args, model, cfg, meta, device) -> int:
    """A sequence task's run: loss and accuracy on the task's fixed valid or test set (drawn from its config)."""
    from rnnlab.data.tasks import TaskData
    from rnnlab.evaluate import evaluate_task

    if args.data:
        raise UserError(f"--data does not apply to a {cfg.task.kind} task run: its sets are drawn from its config")
    if args.split not in ("valid", "test"):
        raise UserError(f"a {cfg.task.kind} task run has valid and test sets, not '{args.split}'")
    m = evaluate_task(model, TaskData(cfg.task, cfg.train.batch_size, cfg.train.seed), args.split, device=device)
    result = {"split": args.split, "task": cfg.task.kind, **m, "step": meta["step"], "checkpoint": args.checkpoint}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.split}: loss {m['loss']:.4f}  accuracy {m['accuracy']:.4f}  ({m['sequences']} {cfg.task.kind} "
              f"sequences, checkpoint '{args.checkpoint}' at step {meta['step']})")
    return 0


def cmd_generate(args) -> int:
    from rnnlab.devices import resolve_device
    from rnnlab.generate import check_stop, generate, unescape, with_prompt
    from rnnlab.runs import load_run

    device = resolve_device(args.device)
    stop = unescape(args.stop)
    check_stop(stop)  # before the model is loaded
    model, vocab, cfg, _ = load_run(Path(args.run_dir), args.checkpoint, device, backend=args.backend)
    g = cfg.generate
    temperatures = args.temperature if args.temperature is not None else [g.temperature]
    lengths = args.length if args.length is not None else [g.length]
    top_k = g.top_k if args.top_k is None else args.top_k
    top_p = g.top_p if args.top_p is None else args.top_p
    if args.num > 1 and 0 in temperatures:
        warnings.warn(f"temperature 0 is greedy: its {args.num} samples would be the same text; one is printed",
                      stacklevel=1)
    rows = []
    for length in lengths:
        for temperature in temperatures:
            num = 1 if temperature == 0 else args.num
            texts = generate(model, vocab, args.prompt, length, temperature, top_k, top_p, num, args.seed, device,
                             stop=stop)
            rows.append({"temperature": temperature, "length": length, "prompt": args.prompt, "samples": texts})
    if args.json:
        print(json.dumps(rows))
        return 0
    unit = "characters" if vocab.level == "char" else "words"
    for row in rows:
        for text in row["samples"]:
            print(f"── temperature {row['temperature']}, {row['length']} {unit} ──")
            print(with_prompt(vocab, args.prompt, text))
    return 0


def cmd_presets(args) -> int:
    from rnnlab.config import preset_description, preset_names

    names = preset_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {preset_description(name)}")
    return 0


def cmd_config(args) -> int:
    from rnnlab.config import DEFAULT_PRESET, describe, load_config

    cfg = load_config(args.preset, args.config, args.overrides)
    if args.toml:
        print(cfg.to_toml())
        return 0
    source = (f"the file {args.config}" if args.config else "the built-in defaults" if args.preset == "none"
              else f"preset {args.preset or DEFAULT_PRESET}")
    print(f"# the values of {source}" + (" with --set" if args.overrides else "")
          + ("" if args.preset or args.config else " (what 'rnnlab train' uses without --preset or --config)"))
    for row in describe(cfg):
        allowed = f" [{' | '.join(repr(c) if c == '' else c for c in row['choices'])}]" if row["choices"] else ""
        print(f"{row['key']:<26} {row['type']:<5} {row['value']!r:<12} {row['meaning']}{allowed}")
    return 0


def cmd_report(args) -> int:
    import shlex

    from rnnlab.report.build import build_report

    out = Path(args.out) if args.out else Path(f"{FIGURES}/report/report.md" if args.format == "md" else "report.html")
    command = shlex.join(["rnnlab", *getattr(args, "argv", sys.argv[1:])])  # shown in the report, to redo it
    out = build_report(args.paths, out, args.format, title=args.title, samples=not args.no_samples,
                       prompt=args.prompt, sample_length=args.sample_length, command=command,
                       states=not args.no_states)
    print(f"report written to {out}")
    return 0


def cmd_serve(args) -> int:
    from rnnlab.devices import resolve_device

    try:
        from rnnlab.serve import serve
    except ModuleNotFoundError as e:
        raise UserError(f"rnnlab serve needs {e.name}: pip install 'rnnlab[serve]'") from None

    serve(Path(args.run_dir), args.host, args.port, args.checkpoint, resolve_device(args.device),
          allow_hosts=args.allow_host)
    return 0


def cmd_experiment(args) -> int:
    from rnnlab.experiments import experiment

    return experiment(args.experiment).run(args)


def cmd_sweep(args) -> int:
    import shlex

    from rnnlab.experiments import markdown_table
    from rnnlab.experiments.sweep import parse_grid, run

    rows, paths = run(args.preset, args.config, args.grid, Path(args.out), args.overrides, args.quick,
                      "rnnlab " + shlex.join(args.argv), progress=not args.no_progress)
    keys = [k for k, _ in parse_grid(args.grid)]
    print(markdown_table(rows, keys + ["valid", "test", "epochs", "train_minutes", "parameters"]))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_data(args) -> int:
    from rnnlab.data.recipes import describe, fetch

    if args.data_command == "list":
        for name, level, description, cached in describe():
            print(f"{name:16s} {level:5s} {'cached ' if cached else 'not yet'}  {description}")
        return 0
    if args.data_command == "ngrams":
        from rnnlab.ngram.counts import corpus_ngrams, count_of_counts, plot_histogram

        counts, tokens = corpus_ngrams(args.path, args.n, args.level, args.min_count)
        total = sum(counts.values())
        print(f"{total:,} {args.n}-grams in the training split, {len(counts):,} distinct, "
              f"{sum(1 for c in counts.values() if c == 1):,} of them seen once")
        for rank, (gram, c) in enumerate(counts.most_common(args.top), 1):
            print(f"{rank:4d}  {c:8,d}  {' '.join(tokens[t] for t in gram)}")
        if args.plot:
            print(plot_histogram(count_of_counts(counts), args.n, Path(args.plot)))
        return 0
    print(fetch(args.name, args.cache_dir, log=lambda text: print(text, file=sys.stderr)))
    return 0


def cmd_inspect(args) -> int:
    if args.inspect_command in ("units", "saturation", "surprise"):
        from rnnlab.states.command import inspect_states

        return inspect_states(args)
    from rnnlab.report.embeddings import nearest_neighbors, plot_embeddings, run_embedding

    embedding, tokens = run_embedding(args.run_dir)
    if args.inspect_command == "neighbors":
        for word in args.words:
            found = nearest_neighbors(embedding, tokens, word, args.k, args.top or None)
            print(f"{word}: " + ", ".join(f"{w} ({cos:.2f})" for w, cos in found))
        return 0
    out = Path(args.out) if args.out else Path(args.run_dir) / "plots" / "embeddings.png"
    print(plot_embeddings(embedding, tokens, args.top, args.method, out))
    return 0


def cmd_plot(args) -> int:
    if args.plot == "cell":
        from rnnlab import cell_registry
        from rnnlab.report.diagrams import plot_cell

        print(plot_cell(cell_registry.get(args.cell).name, Path(args.out), args.gru_z, gru_reset=args.gru_reset))
        return 0
    from rnnlab.report.kgate import plot_kgate

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    print(plot_kgate(args.tau, args.r_on, args.shift, Path(args.out), args.alpha, args.periods))
    return 0


def cmd_gradcheck(args) -> int:
    if args.gru_by_hand:
        from rnnlab.numpy.gru_by_hand import compare, format_rows

        rows = compare(seed=args.seed)
        print(json.dumps(rows) if args.json else format_rows(rows))
        return 0 if max(r["max_abs_error"] for r in rows) <= 1e-6 else 1
    from rnnlab.numpy import format_table, run_gradcheck

    rows = run_gradcheck(seed=args.seed)
    print(json.dumps(rows) if args.json else format_table(rows))
    return 0 if max(r["max_rel_error"] for r in rows) <= 1e-6 else 1




def cmd_params(args) -> int:
    import torch

    from rnnlab import cell_registry
    from rnnlab.models.stack import RecurrentStack
    from rnnlab.numpy import count_params

    count, formula = count_params(args.cell, args.input, args.hidden, args.layers, args.bias)
    entry, options = cell_registry.resolve(args.cell)  # an alias (rnn_relu) names a cell and its options
    kernel = entry.fused_kernel(options)  # torch.lstm, torch.rnn_tanh, ...: nn.LSTM, nn.RNN
    if kernel:
        module = getattr(torch.nn, kernel.split("_")[0].upper())(args.input, args.hidden, args.layers)
        where = f"torch.nn.{type(module).__name__}"
        actual = sum(p.numel() for n, p in module.named_parameters() if args.bias == "double" or "bias_hh" not in n)
    else:  # no PyTorch module computes it: the cell's own layers (rnnlab/models)
        module = RecurrentStack(entry.name, args.input, args.hidden, args.layers, bias=args.bias)
        where = f"{args.layers} × {type(module.layers[0]).__name__}"
        actual = sum(p.numel() for p in module.parameters())
    print(f"{args.cell}, input {args.input}, hidden {args.hidden}, {args.layers} layer(s), {args.bias} bias:")
    print(f"  {formula}")
    print(f"  counted in {where}: {actual:,} ({'matches' if actual == count else 'MISMATCH'})")
    return 0 if actual == count else 1


def cmd_gradflow(args) -> int:
    from rnnlab import cell_registry
    from rnnlab.numpy import gradient_flow, plot_gradient_flow

    cells = args.cells
    timed = [c for c in cells if cell_registry.get(c).needs_times]
    if timed:
        raise UserError(f"--cells: {', '.join(timed)} needs timestamps; gradflow feeds none")
    # one call per cell: its rows carry the layer's name (rnn -> rnn_tanh), the table the name asked for
    per_cell = {c: gradient_flow(c, hidden=args.hidden, T=args.steps, seed=args.seed) for c in cells}
    rows = [r for c in cells for r in per_cell[c]]
    if args.json:
        print(json.dumps(rows))
        return 0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    plot_gradient_flow(rows, Path(args.out))
    distances = sorted({r["distance"] for r in rows})
    shown = [d for d in distances if d in (0, 1, 2, 5, 10, 20, 30, 40, 50, 100) or d == distances[-1]]
    print("T-t  " + "  ".join(f"{c:>10}" for c in cells))
    table = {(c, r["distance"]): r["grad_norm"] for c in cells for r in per_cell[c]}
    for d in shown:
        print(f"{d:>3}  " + "  ".join(f"{table[c, d]:>10.3e}" for c in cells))
    print(f"wrote {args.out}")
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "generate": cmd_generate, "presets": cmd_presets,
            "config": cmd_config, "gradcheck": cmd_gradcheck, "params": cmd_params, "gradflow": cmd_gradflow,
            "report": cmd_report, "serve": cmd_serve, "experiment": cmd_experiment, "plot": cmd_plot,
            "data": cmd_data, "inspect": cmd_inspect, "sweep": cmd_sweep}


def _stop_on_signals() -> None:
    """SIGTERM ends a command like Ctrl-C (KeyboardInterrupt: a message and status 130, not a
    kill by signal), and so does the first of several: the ones that follow are ignored while
    the process is on its way out. Training catches both signals itself (rnnlab/stop_signals.py) and
    gives them back to this handler on its way out, with stop_signals.STOPPING set."""
    if threading.current_thread() is not threading.main_thread():
        return
    received = []

    def stop(signum, frame):
        training = sys.modules.get("rnnlab.stop_signals")  # loaded by a training run
        stopping = received or (training is not None and training.STOPPING.is_set())
        received.append(signum)
        if not stopping:
            raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UserError as e:
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --nproc` re-runs it in N processes
    if args.command is None:
        parser.print_help()
        return 0
    warnings.formatwarning = lambda message, category, *rest: f"rnnlab: warning: {message}\n"
    if argv is None:  # the process's own command line (not a caller's, a test's or a script's)
        _stop_on_signals()
    return run_command(lambda: COMMANDS[args.command](args), "rnnlab")
