"""Simple features of a text, one value per token, to correlate units with (rnnlab/states/units.py).

Every feature describes the state after reading token t (as the recorded h_t does): an
opening quotation mark is already inside the quote, the closing mark no longer is.

Character features (`char_features`):

    in_quotes        1 inside a quotation: after ‘ or “ up to its closing ’ or ” (a ’ between two
                     letters is an apostrophe, as in gardener’s), and between straight " marks
    in_brackets      1 inside ( ), [ ] or { } (any depth)
    line_position    the column divided by the line's length: 0 at a line's first character, 1 at its newline
    since_newline    characters since the last newline (0 on the newline itself)
    since_space      characters since the last whitespace (0 on the whitespace itself)
    word_start       1 on the first letter of a word (a letter after a non-letter, except an
                     apostrophe after a letter: the s of it’s continues its word)
    capital          1 on an upper-case letter
    punctuation      1 on a punctuation character (Unicode category P*)

Word features (`word_features`; <eos> is the end of a line, which ends a sentence):

    sentence_position  words since the last sentence end (., !, ? or <eos>): 0 on a sentence's first word
    after_sentence_end 1 on the first word after a sentence end
    capitalised        1 on a word whose first character is upper-case
    number             1 on a word containing a digit
    punctuation        1 on a token made of punctuation only
    end_of_line        1 on <eos>
"""

from __future__ import annotations

import unicodedata

import numpy as np

CHAR_FEATURES = {
    "in_quotes": "inside quotation marks (‘ ’, “ ”, \"), after the opening mark, before the closing one",
    "in_brackets": "inside ( ), [ ] or { }",
    "line_position": "column / line length (0 at the line's start, 1 at its newline)",
    "since_newline": "characters since the last newline",
    "since_space": "characters since the last whitespace",
    "word_start": "first letter of a word",
    "capital": "upper-case letter",
    "punctuation": "punctuation character",
}
WORD_FEATURES = {
    "sentence_position": "words since the last sentence end (., !, ?, <eos>)",
    "after_sentence_end": "first word after a sentence end",
    "capitalised": "word starting with an upper-case letter",
    "number": "word containing a digit",
    "punctuation": "token of punctuation only",
    "end_of_line": "<eos>",
}
OPENING = {"‘": "’", "“": "”"}
BRACKETS = {"(": ")", "[": "]", "{": "}"}
SENTENCE_END = (".", "!", "?")


def is_punctuation(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def in_quotes(chars: list[str]) -> np.ndarray:
    """1 where the text is inside a quotation after reading this character (module docstring)."""
    open_marks: list[str] = []  # the closing marks awaited, innermost last
    straight = False
    out = np.zeros(len(chars))
    for t, ch in enumerate(chars):
        if ch in OPENING:
            open_marks.append(OPENING[ch])
        elif ch in OPENING.values() and ch in open_marks:
            apostrophe = (ch == "’" and 0 < t < len(chars) - 1 and chars[t - 1].isalpha() and chars[t + 1].isalpha())
            if not apostrophe:
                del open_marks[len(open_marks) - 1 - open_marks[::-1].index(ch)]
        elif ch == '"':
            straight = not straight
        out[t] = bool(open_marks) or straight
    return out


def in_brackets(chars: list[str]) -> np.ndarray:
    depth, out = 0, np.zeros(len(chars))
    closing = set(BRACKETS.values())
    for t, ch in enumerate(chars):
        if ch in BRACKETS:
            depth += 1
        elif ch in closing and depth:
            depth -= 1
        out[t] = depth > 0
    return out


def since(chars: list[str], is_mark) -> np.ndarray:
    """Characters since the last one where is_mark(ch) (0 on it; counted from the text's start before any)."""
    count, out = 0, np.zeros(len(chars))
    for t, ch in enumerate(chars):
        count = 0 if is_mark(ch) else count + 1
        out[t] = count
    return out


def word_start(chars: list[str]) -> np.ndarray:
    """1 on a letter that starts a word: after a non-letter that is not an apostrophe (’ or ')
    following a letter."""
    out = np.zeros(len(chars))
    for t, ch in enumerate(chars):
        inside_word = t > 0 and (chars[t - 1].isalpha() or (chars[t - 1] in "’'" and t > 1 and chars[t - 2].isalpha()))
        out[t] = ch.isalpha() and not inside_word
    return out


def line_position(chars: list[str]) -> np.ndarray:
    """Column / line length: a line's characters (its newline included) from 0 to 1."""
    out, start = np.zeros(len(chars)), 0
    for t, ch in enumerate(chars):
        if ch == "\n" or t == len(chars) - 1:
            n = t - start
            out[start : t + 1] = np.arange(n + 1) / max(n, 1)
            start = t + 1
    return out


def char_features(tokens: list[str]) -> dict[str, np.ndarray]:
    """The character features of the module docstring, float arrays [T]."""
    return {
        "in_quotes": in_quotes(tokens),
        "in_brackets": in_brackets(tokens),
        "line_position": line_position(tokens),
        "since_newline": since(tokens, lambda ch: ch == "\n"),
        "since_space": since(tokens, str.isspace),
        "word_start": word_start(tokens),
        "capital": np.array([ch.isupper() for ch in tokens], dtype=float),
        "punctuation": np.array([is_punctuation(ch) for ch in tokens], dtype=float),
    }


def word_features(tokens: list[str]) -> dict[str, np.ndarray]:
    """The word features of the module docstring, float arrays [T]."""
    from rnnlab.data.vocab import EOS

    ends = np.array([t == EOS or t.endswith(SENTENCE_END) for t in tokens])
    after = np.concatenate([[True], ends[:-1]])
    position, count = np.zeros(len(tokens)), 0
    for t, first in enumerate(after):
        count = 0 if first else count + 1
        position[t] = count
    return {
        "sentence_position": position,
        "after_sentence_end": after.astype(float),
        "capitalised": np.array([t != EOS and t[:1].isupper() for t in tokens], dtype=float),
        "number": np.array([any(ch.isdigit() for ch in t) for t in tokens], dtype=float),
        "punctuation": np.array([t != EOS and all(is_punctuation(ch) for ch in t) for t in tokens], dtype=float),
        "end_of_line": np.array([t == EOS for t in tokens], dtype=float),
    }


def text_features(tokens: list[str], level: str) -> dict[str, np.ndarray]:
    """The features of a text's tokens at its level ("char" or "word")."""
    return char_features(tokens) if level == "char" else word_features(tokens)


def descriptions(level: str) -> dict[str, str]:
    return dict(CHAR_FEATURES if level == "char" else WORD_FEATURES)
