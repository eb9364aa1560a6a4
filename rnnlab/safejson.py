"""JSON from outside (request bodies, files in a run directory), parsed with bounds.

Python's json module recurses once per nesting level, so 100,000 `[` raise
RecursionError, and it reads any size it is given. Every untrusted document
goes through `loads`: the size is checked first, then the nesting depth is
measured without recursion (strings removed, brackets counted), and only
then is the text parsed. Every failure is one `BadJSON` (a ValueError) with
a reason fit for a single line.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from pathlib import Path

MAX_DEPTH = 64  # rnnlab writes at most ~5 levels; 64 leaves room and stays far from the recursion limit
MAX_BYTES = 256 << 20  # files: a Brown-sized vocabulary in meta.json is ~1 MB

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class BadJSON(ValueError):
    """Invalid, too large or too deeply nested JSON."""


def depth(text: str) -> int:
    """Maximum nesting depth of brackets outside strings (0 for a scalar)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def loads(data: str | bytes, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH):
    if len(data) > max_bytes:
        raise BadJSON(f"too large ({len(data):,} bytes, at most {max_bytes:,})")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadJSON("not UTF-8") from None
    if depth(data) > max_depth:
        raise BadJSON(f"nested more than {max_depth} levels deep")
    try:
        return json.loads(data)
    except ValueError as e:  # JSONDecodeError
        raise BadJSON(f"not valid JSON ({e})") from None


def read(path: Path, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH):
    """Parse a JSON file; OSError (unreadable) propagates, everything else is BadJSON."""
    path = Path(path)
    if path.stat().st_size > max_bytes:
        raise BadJSON(f"too large ({path.stat().st_size:,} bytes, at most {max_bytes:,})")
    return loads(path.read_bytes(), max_bytes, max_depth)
