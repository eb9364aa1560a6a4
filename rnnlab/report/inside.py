"""The report's look inside a recurrent language model (issue 25, rnnlab/states): over the start of
the run's validation split (REPORT_TOKENS tokens, a few seconds per run), the strongest unit for
each text feature with its correlation, the gate saturation plot, and an excerpt shaded by each
token's loss. `rnnlab inspect RUN units|saturation|surprise` does the same over more text.

A run it does not apply to (a neural n-gram model, a sequence classifier, a run whose validation
text cannot be read) gets a one-line note instead.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from rnnlab.errors import UserError
from rnnlab.report.document import Image, Shaded, Table

REPORT_TOKENS = {"char": 3000, "word": 1000}  # the validation slice recorded per run
EXCERPT_TOKENS = {"char": 600, "word": 150}  # the part of it shown shaded by loss
LN2 = math.log(2)


def not_applicable(loaded) -> str | None:
    """Why the run has no states to show, or None."""
    model, vocab, cfg, _ = loaded
    if cfg.model.arch != "rnn" or vocab is None:
        return f"not a recurrent language model (model.arch={cfg.model.arch}): it has no states to record"
    return None


def validation_excerpt(cfg, level: str) -> tuple[str, str]:
    """(text, where it comes from): the first REPORT_TOKENS tokens of the run's validation split."""
    from rnnlab.data.corpus import read_split_texts
    from rnnlab.states.command import excerpt

    text, cut = excerpt(read_split_texts(cfg.data)[0]["valid"], level, REPORT_TOKENS[level])
    unit = "characters" if level == "char" else "words"
    return text, f"the first {REPORT_TOKENS[level]:,} {unit} of the validation split" if cut else "the validation split"


def inside_views(label: str, loaded, names, group: str) -> tuple[list[Image], list[Table], list[Shaded]]:
    """(images, tables, shaded texts) for one run; a run where it does not apply: one Shaded note, no text."""
    import torch

    from rnnlab.states.features import descriptions, text_features
    from rnnlab.states.record import record_model
    from rnnlab.states.saturation import plot_saturation, saturation
    from rnnlab.states.surprise import summary, surprise_rows
    from rnnlab.states.units import strongest_units, top_contexts, unit_feature_table

    why = not_applicable(loaded)
    model, vocab, cfg, _ = loaded
    if why is None:
        try:
            text, source = validation_excerpt(cfg, vocab.level)
        except (UserError, OSError) as e:
            why = f"the validation text cannot be read: {e}"
    if why:
        return [], [], [Shaded(f"Inside {label}", [], f"not shown: {why}")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one sequence, step by step: more threads only add synchronisation
    try:
        rec = record_model(model, vocab, text, top_k=3, max_tokens=REPORT_TOKENS[vocab.level])
    except UserError as e:
        return [], [], [Shaded(f"Inside {label}", [], f"not shown: {e}")]
    finally:
        torch.set_num_threads(threads)
    features = text_features(rec.tokens, rec.level)
    about = descriptions(rec.level)
    rows = []
    for name, (row, *_) in strongest_units(unit_feature_table(rec, features), 1).items():
        where = top_contexts(rec, row["layer"], row["signal"], row["unit"], k=1, sign=1 if row["r"] > 0 else -1)
        rows.append([name, about[name], f"layer {row['layer']} {row['signal']}[{row['unit']}]",
                     f"{row['r']:+.3f}", where[0]["context"].replace("\n", "↵")])
    tables = [Table(f"Inside {label}: the strongest unit per feature",
                    ["feature", "what it is", "unit", "r", "where it is most extreme"], rows,
                    f"Pearson's r over {source} ({len(rec):,} tokens), the largest |r| among every layer's h, c and "
                    "gates; a feature constant over the text has no row. `rnnlab inspect RUN units` for more.")]
    images = []
    if saturation(rec):
        with tempfile.TemporaryDirectory() as tmp:
            png = plot_saturation(rec, Path(tmp) / "saturation.png").read_bytes()
        images.append(Image(f"{label}: gate saturation", png, names(group, label, "saturation"),
                            f"over {source}: each dot a gate unit, the fraction of steps it is below 0.1 (x) and "
                            "above 0.9 (y) (tanh signals: −0.8 and 0.8); under each panel, all its activations"))
    shown = EXCERPT_TOKENS[vocab.level]
    join = "" if vocab.level == "char" else " "
    pieces = []
    for row in surprise_rows(rec)[:shown]:
        token = row["token"]
        piece = "\n" if token == "<eos>" else token + join
        pieces.append((piece, row["bits"]))
    s = summary(rec, worst=3)
    worst = "; ".join(f"{w['token']!r} {w['bits']:.1f} bits" for w in s["worst"])
    unit = "char" if vocab.level == "char" else "word"
    shaded = Shaded(f"Inside {label}: surprise", pieces,
                    f"the first {min(shown, len(rec))} tokens of {source}. Over all {len(rec):,}: {s['bits']:.3f} "
                    f"bits/{unit}; the most surprising: {worst}.")
    return images, tables, [shaded]
