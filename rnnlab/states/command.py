"""`rnnlab inspect RUN units|saturation|surprise`: record a run's states over a text, then analyse them.

The text is --text FILE, or else the start of the run's validation split; either is cut to its
first --length tokens (word models: whole lines). Results go to RUN_DIR/inspect/ unless --out
says otherwise; stdout gets a summary. `surprise --kneser-ney` also scores the text with a Kneser-Ney trigram
fitted on the run's training split (counting takes seconds on Brown's million words).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from rnnlab import console
from rnnlab.errors import UserError

MAX_TEXT_BYTES = 64 * 2**20  # a --text file larger than this is refused before it is read


def excerpt(text: str, level: str, length: int) -> tuple[str, bool]:
    """The first `length` tokens of `text` (a word model's: whole lines, as many as fit, or the
    first words of a first line longer than that) and whether anything was cut."""
    if level == "char":
        return text[:length], len(text) > length
    from rnnlab.data.vocab import tokenize

    kept, count = [], 0
    lines = text.split("\n")
    for line in lines:
        n = len(line.split()) + 1 if line.split() else 0  # its words and <eos>
        if count + n > length:
            if not kept:  # one long first line: its first words
                kept.append(" ".join(line.split()[: length - 1]))
            break
        kept.append(line)
        count += n
    cut = "\n".join(kept)
    return cut, len(tokenize(cut, "word")) < len(tokenize(text, "word"))


def read_source(args, cfg, level: str) -> tuple[str, str]:
    """(text, where it comes from): --text FILE, or the run's validation split; the first --length tokens."""
    from rnnlab.data.text import read_text

    unit = "characters" if level == "char" else "words"
    if args.text:
        path = Path(args.text)
        if not path.is_file():
            raise UserError(f"text file not found: {path}" if not path.exists() else f"{path} is not a file")
        if path.stat().st_size > MAX_TEXT_BYTES:
            raise UserError(f"{path} is larger than {MAX_TEXT_BYTES // 2**20} MiB; give an excerpt of it")
        text, where = read_text(path), str(path)
    else:
        from rnnlab.data.corpus import read_split_texts

        with console.waiting(f"reading {cfg.data.path or 'the bundled corpus'}", not args.no_progress):
            text, where = read_split_texts(cfg.data)[0]["valid"], "the validation split"
    text, cut = excerpt(text, level, args.length)
    return text, (f"the first {args.length:,} {unit} of {where}" if cut else where)


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, allow_nan=False, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def inspect_states(args) -> int:
    with console.waiting("loading PyTorch and the run", not args.no_progress):
        from rnnlab.states.record import load_recordable, record_model

        model, vocab, cfg, meta = load_recordable(args.run_dir, args.checkpoint)
    text, source = read_source(args, cfg, vocab.level)
    top_k = getattr(args, "top_k", 5)
    with console.counter(f"recording {cfg.model.cell} states", not args.no_progress, unit="token") as update:
        rec = record_model(model, vocab, text, backend=args.backend, top_k=top_k, progress=update)
    run = {"run": str(args.run_dir), "checkpoint": args.checkpoint, "step": meta["step"], "cell": rec.cell,
           "backend": args.backend, "source": source, "level": rec.level, "tokens": len(rec)}
    print(f"{args.run_dir} (checkpoint '{args.checkpoint}' at step {meta['step']}, {cfg.model.layers} × "
          f"{cfg.model.hidden} {rec.cell}) over {source} ({len(rec):,} tokens):")
    inspect_dir = Path(args.run_dir) / "inspect"
    return {"units": units, "saturation": saturation, "surprise": surprise}[args.inspect_command](
        args, rec, run, inspect_dir, vocab, cfg)


def units(args, rec, run: dict, inspect_dir: Path, vocab, cfg) -> int:
    from rnnlab.states.features import descriptions, text_features
    from rnnlab.states.units import strongest_units, top_contexts, unit_feature_table

    with console.waiting("correlating units with the text's features", not args.no_progress):
        features = text_features(rec.tokens, rec.level)
        table = unit_feature_table(rec, features)
        best = strongest_units(table, args.per_feature)
    about = descriptions(rec.level)
    width = max(map(len, features))
    for name, values in features.items():
        if name not in best:
            print(f"{name:<{width}}  constant over this text: no correlation")
            continue
        print(f"{name:<{width}}  {about[name]} (mean {values.mean():.3g})")
        for row in best[name]:
            example = top_contexts(rec, row["layer"], row["signal"], row["unit"], k=1,
                                   sign=1 if row["r"] > 0 else -1)[0]
            row["top"] = top_contexts(rec, row["layer"], row["signal"], row["unit"], k=5)
            row["bottom"] = top_contexts(rec, row["layer"], row["signal"], row["unit"], k=5, sign=-1)
            print(f"  layer {row['layer']} {row['signal']}[{row['unit']}]  r = {row['r']:+.3f}   "
                  f"{'highest' if row['r'] > 0 else 'lowest'} at {example['context']!r}")
    out = Path(args.out) if args.out else inspect_dir / "units.json"
    data = {**run, "features": {name: {"description": about[name], "mean": float(values.mean())}
                                for name, values in features.items()},
            "strongest": best, "table": table}
    print(f"wrote {write_json(out, data)} ({len(table):,} correlations)")
    return 0


def saturation(args, rec, run: dict, inspect_dir: Path, vocab, cfg) -> int:
    from rnnlab.states.saturation import THRESHOLDS, plot_saturation
    from rnnlab.states.saturation import saturation as fractions

    rows = fractions(rec)
    if not rows:
        raise UserError(f"cell {rec.cell} has no bounded gate to measure (every signal is unbounded)")
    for row in rows:
        left, right = np.asarray(row["left"]), np.asarray(row["right"])
        print(f"  layer {row['layer']} {row['signal']:<8} < {row['low']:g}: {left.mean():6.1%} of steps   "
              f"> {row['high']:g}: {right.mean():6.1%}   units saturated more than half the time: "
              f"{int((left > 0.5).sum())} left, {int((right > 0.5).sum())} right (of {len(left)})")
    png = Path(args.out) if args.out else inspect_dir / "saturation.png"
    data = write_json(Path(args.json) if args.json else inspect_dir / "saturation.json",
                      {**run, "thresholds": THRESHOLDS, "rows": rows})
    with console.waiting("drawing the saturation plot", not args.no_progress):
        png = plot_saturation(rec, png, rows)
    print(f"wrote {png} and {data}")
    return 0


def kneser_ney_reference(args, rec, vocab, cfg):
    """The Kneser-Ney trigram's nats on the recorded text, fitted on the run's training split."""
    from rnnlab.data.corpus import load_corpus
    from rnnlab.states.surprise import kneser_ney_nats

    with console.waiting("fitting a Kneser-Ney trigram on the training split", not args.no_progress):
        return kneser_ney_nats(rec, vocab, load_corpus(cfg.data, vocab).train)


def surprise(args, rec, run: dict, inspect_dir: Path, vocab, cfg) -> int:
    from rnnlab.states.surprise import render_ansi, render_html, summary, surprise_rows

    reference = kneser_ney_reference(args, rec, vocab, cfg) if args.kneser_ney else None
    s = summary(rec, reference=reference)
    unit = "char" if rec.level == "char" else "word"
    if args.color == "always" or (args.color == "auto" and sys.stdout.isatty()):
        print(render_ansi(rec))
    print(f"{s['tokens']:,} tokens scored: {s['nats']:.4f} nats, {s['bits']:.4f} bits/{unit} on average")
    if reference is not None:
        print(f"the Kneser-Ney trigram of the training split: {s['kn_bits']:.4f} bits/{unit}; the network gives "
              f"{s['network_better']:.1%} of the tokens a higher probability")
    print("the most surprising:")
    for row in s["worst"]:
        expected = ", ".join(f"{w!r} {p:.2f}" for w, p in row["expected"])
        shown = rec.tokens[max(0, row["position"] - 20) : row["position"]]
        before = ("" if rec.level == "char" else " ").join(shown)
        kn = f" (Kneser-Ney {row['kn_bits']:.2f})" if reference is not None else ""
        print(f"  {row['bits']:6.2f} bits{kn}  {row['token']!r} after {before[-30:]!r}; expected {expected}")
    out = write_json(Path(args.out) if args.out else inspect_dir / "surprise.json",
                     {**run, "summary": s, "rows": surprise_rows(rec, reference)})
    wrote = [str(out)]
    if args.html:
        page = Path(args.html)
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(render_html(rec, f"surprise: {run['run']}"), encoding="utf-8")
        wrote.append(str(page))
    print("wrote " + " and ".join(wrote))
    return 0
