"""The explorer of `rnnlab serve`: record a network's states over a text and find the units that
follow a span (issue 25; rnnlab/states, LSTMVis's select-and-match).

    GET  /explore       the explorer page (rnnlab/static/explore.html)
    GET  /explore.js    its script (rnnlab/static/explore.js)
    POST /api/record    JSON {"text", "layer", "signal"} ("layer" and "signal" optional: the last layer's h;
                        "signal": "all" sends every signal of every layer, within MAX_VALUES values)
                        → {"tokens", "level", "cell", "layers", "hidden", "signals": {name: kind}, "layer",
                           "signal", "values": [T][H] (or "all": per layer {signal: [T][H]}), "loss": [T] nats
                           (null at token 0), "top": [T] the top-5 predictions after each token, "warnings"}
    POST /api/units     JSON {"text", "layer", "signal", "start", "end", "threshold"}
                        → {"units": the units above threshold throughout tokens [start, end) of the text,
                           "here": their spans in the text, "valid": {"source", "tokens", "total",
                           "matches": [{"start", "end", "before", "span", "after"}, ...]}} (`units_on`,
                           `matches`; a long span is shown as its start … its end)
                           `matches` over the first VALID_TOKENS tokens of the run's validation split, recorded
                           once per server at the first request)

Values are sent rounded to DECIMALS places. Every input is validated before any work and refused
with a 400 and one line; a character the model has never seen is refused (as the playground
does), a word it does not know is read as <unk> with a warning. Recording uses a copy of the
model per request (the fused path must not be shared: rnnlab/serve.py), at most `max_workers`
at once; the last RECENT texts' recordings are kept, so changing the signal or finding units
does not record the text again.
"""

from __future__ import annotations

import copy
import math
import threading
from collections import OrderedDict

import numpy as np

from rnnlab.errors import UserError
from rnnlab.request_fields import BadRequest, integer, known_fields, number, shown

MAX_TEXT = 2000  # characters of one text
MAX_VALUES = 1_000_000  # activations in one answer with "signal": "all"
VALID_TOKENS = {"char": 5000, "word": 2000}  # the validation slice searched for matches
MAX_MATCHES = 50  # matches listed (the total is given too)
TOP_K = 5
DECIMALS = 4
RECENT = 4  # recordings kept, by text
RECORD_FIELDS = ("text", "layer", "signal")
UNITS_FIELDS = ("text", "layer", "signal", "start", "end", "threshold")
CONTEXT = {"char": (40, 20), "word": (12, 6)}  # tokens shown before and after a match
SPAN_SHOWN = {"char": (60, 20), "word": (15, 5)}  # a longer match is shown as its start … its end


def _rounded(values: np.ndarray) -> list:
    return np.round(values.astype(np.float64), DECIMALS).tolist()


class Explorer:
    """Recordings of one loaded run (`rnnlab.serve.Playground`'s model) for the explorer page."""

    def __init__(self, model, vocab, cfg, max_workers: int = 4):
        self.model, self.vocab, self.cfg = model, vocab, cfg
        self.slots = threading.BoundedSemaphore(max_workers)
        self.recordable = cfg.model.arch == "rnn"
        self.kinds: dict[str, str] = {}
        if self.recordable:
            from rnnlab.states.record import _signal_kinds

            self.kinds = _signal_kinds(model)
        self.layers, self.hidden = cfg.model.layers, cfg.model.hidden
        self._recent: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()
        self._valid_lock = threading.Lock()
        self._valid = None  # (Recording, source) once recorded

    # ------------------------------------------------------------- parsing
    def _text(self, body: dict) -> tuple[str, list[str]]:
        """The text to record, with unknown words as <unk> (word models), and warnings."""
        text = body.get("text")
        if not isinstance(text, str):
            raise BadRequest(f"text must be a string, got {shown(text)}")
        if len(text) > MAX_TEXT:
            raise BadRequest(f"text is too long: {len(text):,} characters, at most {MAX_TEXT:,}")
        from rnnlab.data.vocab import UNK, tokenize

        tokens = tokenize(text, self.vocab.level)
        if len(tokens) < 2:
            unit = "characters" if self.vocab.level == "char" else "words"
            raise BadRequest(f"text has {len(tokens)} {unit}; give at least 2")
        unknown = sorted({t for t in tokens if t not in self.vocab.stoi and t != UNK})
        if unknown and self.vocab.level == "char":
            listed = ", ".join(repr(c) for c in unknown[:10])
            raise BadRequest(f"text has characters the model has never seen: {listed}")
        if not unknown:
            return text, []
        lines = [" ".join(w if w in self.vocab.stoi else UNK for w in line.split()) for line in text.split("\n")]
        return "\n".join(lines), [f"words not in the vocabulary, read as {UNK}: {', '.join(unknown[:10])}"]

    def _where(self, body: dict, allow_all: bool = False) -> tuple[int, str]:
        """(layer, signal): the last layer's h unless the body names others."""
        layer = integer(body, "layer", self.layers - 1, 0, self.layers - 1)
        signal = body.get("signal", "h")
        if allow_all and signal == "all":
            return layer, signal
        if not isinstance(signal, str) or signal not in self.kinds:
            raise BadRequest(f"signal must be one of {', '.join(self.kinds)}"
                             f"{' or all' if allow_all else ''}, got {shown(signal)}")
        return layer, signal

    def _check_recordable(self) -> None:
        if not self.recordable:
            raise BadRequest(f"this run is not a recurrent language model (model.arch={self.cfg.model.arch}): "
                             "it has no states to record")

    # ----------------------------------------------------------- recording
    def recording(self, text: str):
        """The Recording of `text` (from the recent ones, or made now with a copy of the model)."""
        with self._lock:
            if text in self._recent:
                self._recent.move_to_end(text)
                return self._recent[text]
        from rnnlab.states.record import record_model

        with self.slots:
            model = copy.deepcopy(self.model)
            try:
                rec = record_model(model, self.vocab, text, top_k=TOP_K, max_tokens=MAX_TEXT)
            except UserError as e:
                raise BadRequest(str(e)) from None
        with self._lock:
            self._recent[text] = rec
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        return rec

    def validation(self):
        """(Recording, source) of the first VALID_TOKENS tokens of the run's validation split, made once."""
        with self._valid_lock:
            if self._valid is None:
                from rnnlab.data.corpus import read_split_texts
                from rnnlab.states.command import excerpt
                from rnnlab.states.record import record_model

                try:
                    text = read_split_texts(self.cfg.data)[0]["valid"]
                except (UserError, OSError) as e:
                    raise BadRequest(f"the run's validation text cannot be read: {e}") from None
                limit = VALID_TOKENS[self.vocab.level]
                text, cut = excerpt(text, self.vocab.level, limit)
                unit = "characters" if self.vocab.level == "char" else "words"
                source = f"the first {limit:,} {unit} of the validation split" if cut else "the validation split"
                with self.slots:
                    rec = record_model(copy.deepcopy(self.model), self.vocab, text, top_k=0, max_tokens=limit)
                self._valid = (rec, source)
            return self._valid

    # ------------------------------------------------------------ requests
    def record(self, body) -> dict:
        """POST /api/record (module docstring)."""
        self._check_recordable()
        body = known_fields(body, RECORD_FIELDS)
        text, warnings = self._text(body)
        layer, signal = self._where(body, allow_all=True)
        if signal == "all":
            from rnnlab.data.vocab import tokenize

            need = len(tokenize(text, self.vocab.level)) * self.layers * len(self.kinds) * self.hidden
            if need > MAX_VALUES:
                raise BadRequest(f"all signals of this text are {need:,} values, more than {MAX_VALUES:,}: "
                                 "ask for one signal or a shorter text")
        rec = self.recording(text)
        chosen = rec.layers if signal == "all" else [{signal: rec.layers[layer][signal]}]
        if not all(np.isfinite(values).all() for signals in chosen for values in signals.values()):
            raise BadRequest("the model's states are not finite over this text (NaN or infinity): its weights are "
                             "broken, nothing to show")
        answer = {"tokens": rec.tokens, "level": rec.level, "cell": rec.cell, "layers": len(rec.layers),
                  "hidden": self.hidden, "signals": dict(rec.kinds), "layer": layer, "signal": signal,
                  "loss": [None if not math.isfinite(x) else round(float(x), 6) for x in rec.loss],
                  "top": [[[w, round(p, 6)] for w, p in row] for row in rec.top], "warnings": warnings}
        if signal == "all":
            answer["all"] = [{name: _rounded(values) for name, values in signals.items()} for signals in rec.layers]
        else:
            answer["values"] = _rounded(rec.layers[layer][signal])
        return answer

    def units(self, body) -> dict:
        """POST /api/units (module docstring)."""
        from rnnlab.states.units import matches, units_on

        self._check_recordable()
        body = known_fields(body, UNITS_FIELDS)
        text, _ = self._text(body)
        layer, signal = self._where(body)
        threshold = number(body, "threshold", 0.5, -100, 100)
        start = integer(body, "start", None, 0, MAX_TEXT - 1, required=True)
        end = integer(body, "end", None, 1, MAX_TEXT, required=True)
        if end <= start:
            raise BadRequest(f"end must be after start, got start {start}, end {end}")
        rec = self.recording(text)
        if end > len(rec):
            raise BadRequest(f"end must be at most {len(rec)} (the text's tokens), got {end}")
        on = units_on(rec, layer, signal, start, end, threshold)
        answer = {"layer": layer, "signal": signal, "start": start, "end": end, "threshold": threshold, "units": on,
                  "here": [list(span) for span in matches(rec, layer, signal, on, threshold, min_len=1)]}
        valid, source = self.validation()
        found = matches(valid, layer, signal, on, threshold, min_len=max(1, min(end - start, 2)))
        before, after = CONTEXT[valid.level]
        head, tail = SPAN_SHOWN[valid.level]
        join = "" if valid.level == "char" else " "

        def shown(s: int, e: int) -> str:
            if e - s <= head + tail:
                return join.join(valid.tokens[s:e])
            return join.join(valid.tokens[s : s + head]) + " … " + join.join(valid.tokens[e - tail : e])

        answer["valid"] = {"source": source, "tokens": len(valid), "total": len(found),
                           "matches": [{"start": s, "end": e, "span": shown(s, e),
                                        "before": join.join(valid.tokens[max(0, s - before) : s]),
                                        "after": join.join(valid.tokens[e : e + after])}
                                       for s, e in found[:MAX_MATCHES]]}
        return answer
