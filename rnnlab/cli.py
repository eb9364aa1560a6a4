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

from rnnlab.errors import Interrupted, UserError

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

    p = sub.add_parser("eval", help="evaluate a run on a split")
    p.add_argument("run_dir")
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--data", help="evaluate on another corpus path (same vocabulary)")
    p.add_argument("--json", action="store_true", help="print JSON")

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

    sub.add_parser("presets", help="list the presets")
    p = sub.add_parser("config", help="list every setting with its default (or show a preset resolved)")
    p.add_argument("--preset", help="show this preset's resolved configuration as TOML")
    _add_set(p)
    return parser


def cmd_train(args) -> int:
    from rnnlab.config import load_config
    from rnnlab.train import resume, train

    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.max_minutes is not None:
        overrides.append(f"train.max_minutes={args.max_minutes}")
    if args.resume:
        summary = resume(Path(args.resume), overrides, progress=not args.no_progress)
        run_dir = Path(args.resume)
    else:
        cfg = load_config(args.preset, args.config, overrides)
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(cfg.name)
        print(f"run directory: {run_dir}", file=sys.stderr)
        summary = train(cfg, run_dir, progress=not args.no_progress, overwrite=args.overwrite)
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

    model, vocab, cfg, meta = load_run(Path(args.run_dir), args.checkpoint)
    if args.data:
        cfg.data.path = args.data
    corpus = load_corpus(cfg.data, vocab)
    m = evaluate(model, corpus.split(args.split), cfg.train.eval_batch_size, cfg.train.eval_seq_len)
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

    model, vocab, cfg, _ = load_run(Path(args.run_dir), args.checkpoint)
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
            texts = generate(model, vocab, args.prompt, length, temperature, top_k, top_p, args.num, args.seed)
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


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "generate": cmd_generate, "presets": cmd_presets,
            "config": cmd_config}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
