"""Tokenisation and vocabularies.

Characters: every character is a token. Words: whitespace-separated tokens,
one sentence per line, `<eos>` appended to every line (the PTB/Mikolov format).
Both vocabularies contain `<unk>`; word vocabularies also `<eos>`.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np

from rnnlab.errors import UserError

UNK, EOS = "<unk>", "<eos>"


def tokenize(text: str, level: str) -> list[str]:
    if level == "char":
        return list(text)
    tokens: list[str] = []
    for line in text.split("\n"):
        words = line.split()
        if words:
            tokens.extend(words)
            tokens.append(EOS)
    return tokens


def detokenize(tokens: list[str], level: str) -> str:
    """Inverse of `tokenize` (for words: up to whitespace, one space between words)."""
    if level == "char":
        return "".join(tokens)
    lines, words = [], []
    for t in tokens:
        if t == EOS:
            lines.append(" ".join(words) + "\n")
            words = []
        else:
            words.append(t)
    return "".join(lines) + " ".join(words)


class Vocab:
    """A bijection between tokens and ids; specials first, then by frequency."""

    def __init__(self, tokens: list[str], level: str):
        if len(set(tokens)) != len(tokens):
            raise UserError("vocabulary has duplicate tokens")
        self.level = level
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if UNK not in self.stoi:
            raise UserError("vocabulary has no <unk> token")
        self.unk = self.stoi[UNK]
        self.eos = self.stoi.get(EOS)

    @classmethod
    def build(cls, tokens: list[str], level: str, min_count: int = 1, max_vocab: int = 0) -> Vocab:
        counts = Counter(tokens)
        specials = [UNK] + ([EOS] if level == "word" else [])
        for s in specials:
            counts.pop(s, None)
        # Sort by count, then by token, so the same text always gives the same ids.
        ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        if max_vocab:
            ranked = ranked[: max(0, max_vocab - len(specials))]
        return cls(specials + ranked, level)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> np.ndarray:
        get, unk = self.stoi.get, self.unk
        return np.fromiter((get(t, unk) for t in tokens), dtype=np.int64, count=len(tokens))

    def decode(self, ids) -> str:
        return detokenize([self.itos[int(i)] for i in ids], self.level)

    def encode_prompt(self, text: str) -> np.ndarray:
        """Encode user text. Unknown words become <unk> with a warning; a
        character model refuses characters it has never seen."""
        tokens = tokenize(text, self.level) if self.level == "char" else text.split()
        unknown = sorted({t for t in tokens if t not in self.stoi})
        if unknown and self.level == "char":
            shown = ", ".join(repr(c) for c in unknown[:10])
            raise UserError(f"prompt has characters the model has never seen: {shown}")
        if unknown:
            warnings.warn(f"prompt words not in the vocabulary, mapped to {UNK}: {', '.join(unknown[:10])}",
                          stacklevel=2)
        return self.encode(tokens)

    def to_json(self) -> dict:
        return {"level": self.level, "tokens": self.itos}

    @classmethod
    def from_json(cls, data: dict) -> Vocab:
        try:
            return cls(list(data["tokens"]), data["level"])
        except (KeyError, TypeError):
            raise UserError("vocabulary file is malformed (needs 'level' and 'tokens')") from None
