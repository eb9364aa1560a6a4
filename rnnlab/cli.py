"""The `rnnlab` command line.

Errors caused by input (bad config, missing corpus, corrupt checkpoint, ...)
print one line and exit with status 2; Ctrl-C during training saves a
checkpoint and exits with 130.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from rnnlab import threads
from rnnlab.errors import Interrupted, UserError

threads.prefer_passive_wait()  # before anything imports torch: libgomp reads it once, at load

EPILOG_TRAIN = """examples:
  rnnlab train                                   # preset grimm-char: 2x128 char LSTM on Grimm
  rnnlab train --preset grimm-char --set model.hidden=256 --set train.max_steps=2000
  rnnlab train --config my.toml --run-dir runs/mine
  rnnlab train --resume runs/mine                # continue from the last checkpoint
  rnnlab config                                  # every setting, its default and type
"""


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set model.hidden=256 (repeatable; see 'rnnlab config')")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnlab", description="Train, evaluate, sample and understand recurrent networks.")
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
    p.add_argument("--max-steps", type=int, help="shorthand for --set train.max_steps=N")
    p.add_argument("--max-minutes", type=float, help="shorthand for --set train.max_minutes=M")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="shorthand for --set train.device=D")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="data-parallel training in N local processes (torch.distributed; see docs/distributed.md)")

    p = sub.add_parser("eval", help="evaluate a run on a split")
    p.add_argument("run_dir")
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--data", help="evaluate on another corpus path (same vocabulary)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--backend", default="torch", choices=["torch", "numpy"],
                   help="compute with PyTorch or the NumPy reference (any run loads into either)")

    p = sub.add_parser("generate", help="sample text from a run")
    p.add_argument("run_dir")
    p.add_argument("--prompt", default="", help="text to continue")
    p.add_argument("--temperature", type=float, nargs="+", default=None,
                   help="one or more temperatures (0 = greedy); default from the run's [generate]")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--length", type=int, nargs="+", default=None, help="tokens to generate (one or more lengths)")
    p.add_argument("--num", type=int, default=1, help="samples per setting")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--backend", default="torch", choices=["torch", "numpy"],
                   help="compute with PyTorch or the NumPy reference (any run loads into either)")

    sub.add_parser("presets", help="list the presets")
    p = sub.add_parser("config", help="list every setting with its default (or show a preset resolved)")
    p.add_argument("--preset", help="show this preset's resolved configuration as TOML")
    _add_set(p)

    p = sub.add_parser("report", help="one HTML (or markdown) report for runs and experiment directories")
    p.add_argument("paths", nargs="+", metavar="RUN_OR_EXPERIMENT_DIR")
    p.add_argument("--out", help="output file (default: report.html, or report.md with --format md)")
    p.add_argument("--format", choices=["html", "md"], help="html: one self-contained file; md: markdown + PNG files")
    p.add_argument("--title", help="report title")
    p.add_argument("--prompt", default="", help="prompt for the samples")
    p.add_argument("--sample-length", type=int, help="tokens per sample (default 300 characters / 60 words)")
    p.add_argument("--no-samples", action="store_true", help="skip sampling from the models")

    p = sub.add_parser("serve", help="a local web page to generate text with a run")
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
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
    f = kinds.add_parser("fetch", help="download (once), check and prepare a dataset; prints the path to use as data.path")
    f.add_argument("name", help="dataset name (see 'rnnlab data list')")
    f.add_argument("--cache-dir", help="cache directory (default $RNNLAB_DATA or ~/.cache/rnnlab)")
    p = sub.add_parser("inspect", help="a word model's embeddings: nearest neighbours, 2-D map")
    p.add_argument("run_dir", help="a run directory (rnnlab train, or a neural n-gram run)")
    what = p.add_subparsers(dest="inspect_command", metavar="WHAT", required=True)
    n = what.add_parser("neighbors", help="the words whose embeddings are closest (cosine) to each WORD")
    n.add_argument("words", nargs="+", metavar="WORD")
    n.add_argument("-k", type=int, default=5, help="neighbours per word (default 5)")
    n.add_argument("--top", type=int, default=10000, help="search among the TOP most frequent words (0: all; default 10000)")
    e = what.add_parser("embeddings", help="2-D map (PCA or t-SNE) of the most frequent words' embeddings")
    e.add_argument("--top", type=int, default=500, help="words to plot (default 500)")
    e.add_argument("--method", choices=["pca", "tsne"], default="pca")
    e.add_argument("--out", help="PNG file (default RUN_DIR/plots/embeddings.png)")


def _add_numpy_parsers(sub) -> None:
    """Commands of the NumPy reference backend: gradcheck, params, gradflow."""
    p = sub.add_parser("gradcheck", help="check every hand-written NumPy gradient against finite differences")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("params", help="closed-form parameter count of a recurrent stack, checked against the models")
    p.add_argument("--cell", required=True, choices=["rnn", "lstm", "gru"])
    p.add_argument("--input", type=int, required=True, metavar="M", help="input size")
    p.add_argument("--hidden", type=int, required=True, metavar="N", help="hidden units")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--bias", choices=["single", "double"], default="single",
                   help="single: one bias per gate (the textbook count); double: PyTorch's b_ih and b_hh")
    p = sub.add_parser("gradflow", help="the vanishing-gradient picture: ||dL_T/dh_t|| against T - t")
    p.add_argument("--cells", default="rnn_tanh,lstm,gru", help="comma list of rnn_tanh, rnn_relu, lstm, gru")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--steps", type=int, default=50, metavar="T")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="gradflow.png", help="PNG file (default gradflow.png)")
    p.add_argument("--json", action="store_true")


def _add_word_experiment_parsers(names) -> None:
    from rnnlab.experiments.ngram import add_arguments as add_ngram_arguments

    e = names.add_parser("lm-study", help="LSTM and GRU language models with and without dropout (Zaremba et al. 2014)")
    e.add_argument("--data", required=True, help="corpus directory with train/valid/test.txt, or a dataset name (ptb, brown, ...)")
    e.add_argument("--models", default="lstm,lstm-dropout,gru,gru-dropout", help="comma list of presets (default: the four)")
    e.add_argument("--epochs", type=int, help="epochs per model (default: each preset's)")
    e.add_argument("--out", default="runs/experiments/lm-study", help="output directory (finished runs there are kept)")
    e.add_argument("--quick", action="store_true", help="tiny models for a few steps (seconds), as the tests run it")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_set(e)
    e = names.add_parser("ngram", help="Bengio et al.'s neural n-gram model (linear vs tanh, sizes) against a Kneser-Ney trigram")
    add_ngram_arguments(e)


def _add_experiment_parsers(sub) -> None:
    """`rnnlab experiment NAME` (sequence tasks) and `rnnlab plot kgate`."""
    p = sub.add_parser("experiment", help="experiments: palindrome, frequency, varlen, lm-study, ngram")
    names = p.add_subparsers(dest="experiment", metavar="NAME", required=True)
    _add_word_experiment_parsers(names)
    helps = {"palindrome": "accuracy vs length on the palindrome task, per cell",
             "frequency": "LSTM vs Phased LSTM on regularly / irregularly sampled sine waves",
             "varlen": "pad vs bucket vs pack batching of variable-length sequences"}
    for name, text in helps.items():
        e = names.add_parser(name, help=text)
        e.add_argument("--out", help=f"output directory (default: runs/experiments/{name})")
        e.add_argument("--seeds", type=int, help="seeds per setting (mean and spread are reported)")
        e.add_argument("--quick", action="store_true", help="a tiny version (seconds), as the tests run it")
        e.add_argument("--hidden", type=int, help="hidden units")
        e.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: PyTorch's choice)")
        e.add_argument("--no-progress", action="store_true", help="no progress bar")
        if name != "varlen":
            e.add_argument("--jobs", type=int, default=0,
                           help="training runs in parallel, one process and torch thread each (default 0: one per core)")
        if name == "palindrome":
            e.add_argument("--cells", help="comma list of cells (default rnn,lstm,gru)")
            e.add_argument("--lengths", help="start:stop:step (stop included) or a comma list (default 5:40:5)")
            e.add_argument("--backend", choices=["torch", "numpy"], default="torch")
            e.add_argument("--max-steps", type=int, help="step budget per training run")
        elif name == "frequency":
            e.add_argument("--cells", help="comma list of cells (default lstm,phased_lstm)")
            e.add_argument("--max-steps", type=int, help="step budget, the same for every cell")
        else:
            e.add_argument("--epochs", type=int, help="training epochs per strategy")
    p = sub.add_parser("plot", help="figures that need no run: kgate (the Phased LSTM time gate)")
    kinds = p.add_subparsers(dest="plot", metavar="KIND", required=True)
    k = kinds.add_parser("kgate", help="the Phased LSTM time gate k(t), with tau, shift and r_on marked")
    k.add_argument("--tau", type=float, default=5.0, help="period (default 5)")
    k.add_argument("--r-on", type=float, default=0.2, help="open ratio (default 0.2)")
    k.add_argument("--s", "--shift", dest="shift", type=float, default=1.0, help="phase shift (default 1)")
    k.add_argument("--alpha", type=float, default=0.0, help="leak while closed (1e-3 in training; default 0)")
    k.add_argument("--periods", type=float, default=3.0, help="periods to draw (default 3)")
    k.add_argument("--out", default="kgate.png", help="PNG file (default kgate.png)")


def cmd_train(args) -> int:
    from rnnlab import distributed
    from rnnlab.config import load_config
    from rnnlab.train import resume, train

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
        if distributed.is_main():
            print(f"run directory: {run_dir}", file=sys.stderr)
        with distributed.guard():
            summary = train(cfg, run_dir, progress=not args.no_progress, overwrite=args.overwrite)
    if not distributed.is_main():
        return 0
    final = summary["final"]
    for split in ("valid", "test"):
        if split in final:
            m = final[split]
            print(f"{split}: loss {m['loss']:.4f}  perplexity {m['perplexity']:.2f}  bits/token {m['bpc']:.4f}  "
                  f"accuracy {m['accuracy']:.4f}  ({m['tokens']} tokens)")
    print(f"{summary['steps']} steps in {summary['wall_seconds']:.0f} s ({summary['tokens_per_s']:.0f} tokens/s); run: {run_dir}")
    return 0


def default_run_dir(name: str) -> Path:
    import time

    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_eval(args) -> int:
    from rnnlab.data.corpus import load_corpus
    from rnnlab.evaluate import evaluate
    from rnnlab.runs import load_run
    from rnnlab.train import resolve_device

    device = resolve_device(args.device)
    model, vocab, cfg, meta = load_run(Path(args.run_dir), args.checkpoint, device, backend=args.backend)
    if args.data:
        cfg.data.path = args.data
    corpus = load_corpus(cfg.data, vocab)
    m = evaluate(model, corpus.split(args.split), cfg.train.eval_batch_size, cfg.train.eval_seq_len, device)
    result = {"split": args.split, **m, "step": meta["step"], "checkpoint": args.checkpoint}
    if args.json:
        print(json.dumps(result))
    else:
        unit = "bits/char" if vocab.level == "char" else "bits/word"
        print(f"{args.split}: loss {m['loss']:.4f}  perplexity {m['perplexity']:.2f}  {unit} {m['bpc']:.4f}  "
              f"accuracy {m['accuracy']:.4f}  ({m['tokens']} tokens, checkpoint '{args.checkpoint}' at step {meta['step']})")
    return 0


def cmd_generate(args) -> int:
    from rnnlab.generate import generate
    from rnnlab.runs import load_run
    from rnnlab.train import resolve_device

    device = resolve_device(args.device)
    model, vocab, cfg, _ = load_run(Path(args.run_dir), args.checkpoint, device, backend=args.backend)
    g = cfg.generate
    temperatures = args.temperature if args.temperature is not None else [g.temperature]
    lengths = args.length if args.length is not None else [g.length]
    top_k = g.top_k if args.top_k is None else args.top_k
    top_p = g.top_p if args.top_p is None else args.top_p
    if args.num < 1:
        raise UserError(f"--num must be positive, got {args.num}")
    rows = []
    for length in lengths:
        for temperature in temperatures:
            texts = generate(model, vocab, args.prompt, length, temperature, top_k, top_p, args.num, args.seed, device)
            rows.append({"temperature": temperature, "length": length, "prompt": args.prompt, "samples": texts})
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        for text in row["samples"]:
            print(f"── temperature {row['temperature']}, {row['length']} tokens ──")
            print(args.prompt + text)
    return 0


def cmd_presets(args) -> int:
    from rnnlab.config import preset_description, preset_names

    names = preset_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {preset_description(name)}")
    return 0


def cmd_config(args) -> int:
    from rnnlab.config import all_keys, load_config

    if args.preset or args.overrides:
        print(load_config(args.preset, None, args.overrides).to_toml())
        return 0
    for key, default, typ in all_keys():
        print(f"{key:<28} {typ:<6} {default!r}")
    return 0


def cmd_report(args) -> int:
    import shlex

    from rnnlab.report.build import build_report

    if args.sample_length is not None and args.sample_length < 1:
        raise UserError(f"--sample-length must be positive, got {args.sample_length}")
    out = Path(args.out) if args.out else Path("report.md" if args.format == "md" else "report.html")
    command = shlex.join(["rnnlab", *getattr(args, "argv", sys.argv[1:])])  # shown in the report, to redo it
    out = build_report(args.paths, out, args.format, title=args.title, samples=not args.no_samples,
                       prompt=args.prompt, sample_length=args.sample_length, command=command)
    print(f"report written to {out}")
    return 0


def cmd_serve(args) -> int:
    from rnnlab.train import resolve_device

    try:
        from rnnlab.serve import serve
    except ModuleNotFoundError as e:
        raise UserError(f"rnnlab serve needs {e.name}: pip install 'rnnlab[serve]'") from None

    serve(Path(args.run_dir), args.host, args.port, args.checkpoint, resolve_device(args.device))
    return 0


def cmd_experiment(args) -> int:
    import shlex

    command = "rnnlab " + shlex.join(args.argv)
    if args.experiment == "ngram":
        from rnnlab.experiments.ngram import main_from_args

        main_from_args(args, command)
        return 0
    if args.experiment == "lm-study":
        from rnnlab.experiments import markdown_table
        from rnnlab.experiments.lm_study import COLUMNS, run

        models = [m.strip() for m in args.models.split(",") if m.strip()]
        if not models:
            raise UserError("--models takes a comma list of presets, e.g. lstm,gru")
        if args.epochs is not None and args.epochs < 1:
            raise UserError(f"--epochs must be positive, got {args.epochs}")
        rows, paths = run(args.data, Path(args.out), models, args.epochs, args.quick, args.overrides, command,
                          progress=not args.no_progress)
        print(markdown_table(rows, COLUMNS))
        print("wrote " + ", ".join(str(p) for p in paths.values()))
        return 0
    from rnnlab.experiments import main as run_experiment

    return run_experiment(args)


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
    print(fetch(args.name, args.cache_dir, log=lambda text: print(text, file=sys.stderr)))
    return 0


def cmd_inspect(args) -> int:
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
    from rnnlab.report.kgate import plot_kgate

    print(plot_kgate(args.tau, args.r_on, args.shift, Path(args.out), args.alpha, args.periods))
    return 0


def cmd_gradcheck(args) -> int:
    from rnnlab.numpy import format_table, run_gradcheck

    rows = run_gradcheck(seed=args.seed)
    print(json.dumps(rows) if args.json else format_table(rows))
    return 0 if max(r["max_rel_error"] for r in rows) <= 1e-6 else 1


def cmd_params(args) -> int:
    import torch

    from rnnlab.numpy import count_params

    if min(args.input, args.hidden, args.layers) < 1:
        raise UserError("--input, --hidden and --layers must be positive")
    count, formula = count_params(args.cell, args.input, args.hidden, args.layers, args.bias)
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[args.cell](
        args.input, args.hidden, args.layers)
    actual = sum(p.numel() for n, p in module.named_parameters() if args.bias == "double" or "bias_hh" not in n)
    print(f"{args.cell}, input {args.input}, hidden {args.hidden}, {args.layers} layer(s), {args.bias} bias:")
    print(f"  {formula}")
    print(f"  counted in torch.nn.{type(module).__name__}: {actual:,} ({'matches' if actual == count else 'MISMATCH'})")
    return 0 if actual == count else 1


def cmd_gradflow(args) -> int:
    from rnnlab.numpy import gradient_flow, plot_gradient_flow

    cells = tuple(c.strip() for c in args.cells.split(",") if c.strip())
    bad = [c for c in cells if c not in ("rnn", "rnn_tanh", "rnn_relu", "lstm", "gru")]
    if bad or not cells:
        raise UserError(f"--cells takes a comma list of rnn_tanh, rnn_relu, lstm, gru; got '{args.cells}'")
    rows = gradient_flow(cells, hidden=args.hidden, T=args.steps, seed=args.seed)
    if args.json:
        print(json.dumps(rows))
        return 0
    plot_gradient_flow(rows, Path(args.out))
    distances = sorted({r["distance"] for r in rows})
    shown = [d for d in distances if d in (0, 1, 2, 5, 10, 20, 30, 40, 50, 100) or d == distances[-1]]
    print("T-t  " + "  ".join(f"{c:>10}" for c in cells))
    table = {(r["cell"], r["distance"]): r["grad_norm"] for r in rows}
    for d in shown:
        print(f"{d:>3}  " + "  ".join(f"{table.get((c, d), float('nan')):>10.3e}" for c in cells))
    print(f"wrote {args.out}")
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "generate": cmd_generate, "presets": cmd_presets,
            "config": cmd_config, "gradcheck": cmd_gradcheck, "params": cmd_params, "gradflow": cmd_gradflow,
            "report": cmd_report, "serve": cmd_serve, "experiment": cmd_experiment, "plot": cmd_plot,
            "data": cmd_data, "inspect": cmd_inspect, "sweep": cmd_sweep}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --nproc` re-runs it in N processes
    if args.command is None:
        parser.print_help()
        return 0
    warnings.formatwarning = lambda message, category, *rest: f"rnnlab: warning: {message}\n"
    try:
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"rnnlab: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # disk full, permissions, ... while writing a run
        where = f": {e.filename}" if e.filename else ""
        print(f"rnnlab: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
