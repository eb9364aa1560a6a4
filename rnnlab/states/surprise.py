"""Where the model is surprised: the loss of every token of a text and what the model expected.

    nats_t = −ln p(token_t | tokens_<t)      bits_t = nats_t / ln 2

Token 0 has no loss (nothing precedes it). With each token, the model's top-k predictions for
it (made after reading the tokens before it). `render_ansi` colours a token by its bits (a
terminal), `render_html` likewise with the predictions in a tooltip.

`kneser_ney_nats` gives a reference for the same tokens: the interpolated Kneser-Ney trigram
(rnnlab/ngram/kneser_ney.py) fitted on the run's training split, which reads the text as one
stream as the network does; `surprise_rows` and `summary` then report both.
"""

from __future__ import annotations

import html
import math

import numpy as np

from rnnlab.states.record import Recording

LN2 = math.log(2)
# bits at which a token's colour changes: below 1 plain, then yellow, orange, red (ANSI 256 colours)
BANDS = ((1.0, None), (3.0, 229), (6.0, 215), (math.inf, 203))


def kneser_ney_nats(rec: Recording, vocab, train_ids: np.ndarray, order: int = 3) -> np.ndarray:
    """−ln p_KN(token_t | the tokens before it) [T] (NaN at t = 0) of a Kneser-Ney model of
    `order` fitted on `train_ids` (the run's training split in the run's vocabulary)."""
    from rnnlab.ngram.kneser_ney import KneserNey

    model = KneserNey(len(vocab), order).fit(np.asarray(train_ids))
    return np.concatenate([[np.nan], -model.token_logprobs(vocab.encode(rec.tokens))])


def surprise_rows(rec: Recording, reference: np.ndarray | None = None) -> list[dict]:
    """One row per token: {"position", "token", "nats", "bits", "p", "expected": [[token, p], ...]}
    (nats, bits, p and expected are None for token 0), and "kn_bits", the reference's bits
    (`kneser_ney_nats`), where one is given."""
    rows = []
    for t, token in enumerate(rec.tokens):
        nats = float(rec.loss[t])
        scored = t > 0 and math.isfinite(nats)
        rows.append({"position": t, "token": token, "nats": nats if scored else None,
                     "bits": nats / LN2 if scored else None, "p": math.exp(-nats) if scored else None,
                     "expected": [[w, p] for w, p in rec.top[t - 1]] if t > 0 else None})
        if reference is not None:
            rows[-1]["kn_bits"] = float(reference[t]) / LN2 if scored else None
    return rows


def summary(rec: Recording, worst: int = 10, reference: np.ndarray | None = None) -> dict:
    """Mean loss over the scored tokens (1..T−1) in nats and bits, and the `worst` tokens (rows of
    `surprise_rows`); with a reference (`kneser_ney_nats`), its mean bits and the share of tokens
    the network gives a higher probability than the reference does."""
    scored = rec.loss[1:]
    rows = surprise_rows(rec, reference)[1:]
    order = np.argsort(-scored, kind="stable")[:worst]
    result = {"tokens": len(scored), "nats": float(scored.mean()), "bits": float(scored.mean() / LN2),
              "worst": [rows[i] for i in order]}
    if reference is not None:
        result["kn_bits"] = float(reference[1:].mean() / LN2)
        result["network_better"] = float((scored < reference[1:]).mean())
    return result


def _band(bits: float | None) -> int | None:
    if bits is None:
        return None
    return next(colour for limit, colour in BANDS if bits < limit)


def _shown(token: str, level: str) -> str:
    if level == "word":
        return "\n" if token == "<eos>" else token + " "
    return token


def render_ansi(rec: Recording) -> str:
    """The text with each token's background coloured by its bits (BANDS); newlines kept."""
    out = []
    for row in surprise_rows(rec):
        text, colour = _shown(row["token"], rec.level), _band(row["bits"])
        if colour is None or text.isspace():
            out.append(text)
        else:
            out.append(f"\x1b[48;5;{colour}m\x1b[30m{text}\x1b[0m")
    return "".join(out)


def render_html(rec: Recording, title: str = "surprise") -> str:
    """A standalone HTML page: the text, each token shaded by its bits, its loss and the model's
    expectations in a tooltip."""
    spans = []
    for row in surprise_rows(rec):
        text = html.escape(_shown(row["token"], rec.level))
        if row["bits"] is None:
            spans.append(text)
            continue
        expected = ", ".join(f"{w!r} {p:.2f}" for w, p in row["expected"])
        shade = min(row["bits"] / 8.0, 1.0)
        tip = html.escape(f"{row['bits']:.2f} bits (p = {row['p']:.3f}); expected {expected}")
        spans.append(f'<span title="{tip}" style="background: rgba(220, 60, 40, {shade:.2f})">{text}</span>')
    s = summary(rec)
    return (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            "pre{white-space:pre-wrap;font-size:15px;line-height:1.5}</style>"
            f"<h1>{html.escape(title)}</h1><p>{s['tokens']} tokens scored: {s['bits']:.3f} bits/"
            f"{'char' if rec.level == 'char' else 'word'} on average. Darker: more surprising "
            "(hover for the loss and the model's expectations).</p>"
            f"<pre>{''.join(spans)}</pre>")
