"""A corpus is three token-id arrays (train, valid, test) plus its vocabulary.

`data.path` is either one text file, split by fraction (train | valid | test,
in that order, so the default validation set is the last 10% of the text), or
a directory holding `train.txt`, `valid.txt` and optionally `test.txt`
(PTB/Mikolov format). Also accepted: `ptb.train.txt`-style names, and the
name of a dataset recipe (`ptb`, `wikitext-2`, `tinyshakespeare`, `brown`;
see `rnnlab data list`), downloaded once into the cache by `rnnlab.data.recipes`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnlab.config import DataConfig
from rnnlab.data.text import bundled_path, read_text, strip_gutenberg
from rnnlab.data.vocab import Vocab, tokenize
from rnnlab.errors import UserError


@dataclass
class Corpus:
    vocab: Vocab
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray | None
    source: str
    # Size and SHA-256 of each split's text as read, {"train": {"bytes": ..., "sha256": ...}, ...}:
    # what a checkpoint records of its corpus (rnnlab/fingerprint.py)
    fingerprint: dict[str, dict] = field(default_factory=dict)

    def split(self, name: str) -> np.ndarray:
        data = {"train": self.train, "valid": self.valid, "test": self.test}.get(name)
        if data is None:
            raise UserError(f"this corpus has no '{name}' split")
        return data


def _find_split(directory: Path, split: str) -> Path | None:
    for name in (f"{split}.txt", f"ptb.{split}.txt", f"wiki.{split}.tokens"):
        if (directory / name).is_file():
            return directory / name
    return None


def read_split_texts(cfg: DataConfig) -> tuple[dict[str, str], str]:
    """Raw texts of each split, before tokenisation."""
    path = Path(cfg.path).expanduser() if cfg.path else bundled_path()
    source = str(path) if cfg.path else "bundled:grimm"
    if not path.exists():
        from rnnlab.data.recipes import RECIPES, fetch

        if cfg.path not in RECIPES:
            raise UserError(f"corpus not found: {path} (nor is it a dataset name: {', '.join(RECIPES)})")
        path = fetch(cfg.path, log=print)  # a recipe: from the cache, or downloaded once (one-line error offline)
    if path.is_dir():
        texts = {}
        for split in ("train", "valid", "test"):
            f = _find_split(path, split)
            if f is not None:
                texts[split] = read_text(f)
        if "train" not in texts or "valid" not in texts:
            raise UserError(f"corpus directory {path} needs train.txt and valid.txt")
        return texts, source
    text = read_text(path)
    if cfg.strip_gutenberg:
        text = strip_gutenberg(text)
    n = len(text)
    n_valid, n_test = int(n * cfg.valid_fraction), int(n * cfg.test_fraction)
    n_train = n - n_valid - n_test
    texts = {"train": text[:n_train], "valid": text[n_train : n_train + n_valid]}
    if n_test:
        texts["test"] = text[n_train + n_valid :]
    return texts, source


def load_corpus(cfg: DataConfig, vocab: Vocab | None = None) -> Corpus:
    """Tokenise and encode; build the vocabulary from train unless one is given
    (a resumed or evaluated run must use its stored vocabulary)."""
    texts, source = read_split_texts(cfg)
    tokens = {}
    for split, text in texts.items():
        tokens[split] = tokenize(text.lower() if cfg.lowercase else text, cfg.level)
    if len(tokens["train"]) < 2 or len(tokens["valid"]) < 2:
        raise UserError(f"corpus {source} is too short: it needs at least two tokens in train and in valid")
    if vocab is None:
        vocab = Vocab.build(tokens["train"], cfg.level, cfg.min_count, cfg.max_vocab)
    elif vocab.level != cfg.level:
        raise UserError(f"stored vocabulary is {vocab.level}-level but data.level is {cfg.level}")
    ids = {split: vocab.encode(toks) for split, toks in tokens.items()}
    return Corpus(vocab, ids["train"], ids["valid"], ids.get("test"), source, _fingerprint(texts))


def _fingerprint(texts: dict[str, str]) -> dict[str, dict]:
    out = {}
    for split, text in sorted(texts.items()):
        data = text.encode("utf-8")
        out[split] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return out
