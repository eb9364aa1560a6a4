"""Reading text files: a documented decoding policy and Gutenberg stripping."""

from __future__ import annotations

import codecs
import re
import warnings
from importlib import resources
from pathlib import Path

from rnnlab.errors import UserError

BUNDLED = {"grimm": "grimm.txt"}

_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.MULTILINE)
_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.MULTILINE)
_END_LINE = re.compile(r"^End of (the )?Project Gutenberg.*$", re.MULTILINE)
_PRODUCED = re.compile(r"\A\s*Produced by[^\n]*(\n[^\n]+)*\n")


def bundled_path(name: str = "grimm") -> Path:
    return Path(str(resources.files("rnnlab.corpora") / BUNDLED[name]))


def read_text(path: str | Path) -> str:
    """Read a text file as UTF-8.

    Decoding policy: bytes that are not valid UTF-8 are replaced by U+FFFD
    (the replacement character) and a warning says how many there were; a
    leading byte-order mark is dropped, and a file that starts with a UTF-16
    byte-order mark is read as UTF-16. Windows line ends become "\\n".
    Reading never crashes on bad bytes.
    """
    p = Path(path)
    if p.is_dir():
        raise UserError(f"expected a text file but '{p}' is a directory")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise UserError(f"corpus file not found: {p}") from None
    except PermissionError:
        raise UserError(f"corpus file is not readable (permission denied): {p}") from None
    except OSError as e:
        raise UserError(f"cannot read corpus file {p}: {e.strerror}") from None
    encoding = "utf-16" if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        text = raw.decode(encoding, errors="replace")
        bad = text.count("\ufffd") - raw.decode(encoding, errors="ignore").count("\ufffd")
        warnings.warn(f"{p}: {bad} invalid {encoding.upper()} byte sequence(s) replaced by U+FFFD", stacklevel=2)
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if not text.strip():
        raise UserError(f"corpus file is empty: {p}")
    return text


def strip_gutenberg(text: str) -> str:
    """Keep only the book between Project Gutenberg's START and END markers.

    The header, the licence and the "End of Project Gutenberg's ..." and
    "Produced by ..." lines are not part of the work; text without markers is
    returned unchanged.
    """
    start, end = _START.search(text), _END.search(text)
    if not start or not end or end.start() <= start.end():
        return text
    body = text[start.end() : end.start()]
    body = _END_LINE.sub("", body)
    body = _PRODUCED.sub("", body, count=1)
    return body.strip() + "\n"
