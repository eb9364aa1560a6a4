"""What a report contains, independent of how it is written out: build.py
fills these in, html.py and markdown.py render them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Image:
    title: str
    png: bytes
    name: str  # a file name, unique within the report ("lm-study-curves.png")
    caption: str = ""


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Samples:
    run: str
    prompt: str
    rows: list[tuple[float, str]]  # (temperature, text)
    caption: str = ""


@dataclass
class Shaded:
    """A text with each piece shaded by a number of bits (a token's loss; None: not shaded), or,
    with no pieces, a one-line note in the caption (rnnlab/report/inside.py)."""
    title: str
    pieces: list[tuple[str, float | None]]  # (text, bits)
    caption: str = ""


@dataclass
class Section:
    name: str
    anchor: str
    intro: str = ""
    runs: Table | None = None
    images: list[Image] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (file name, markdown text)
    samples: list[Samples] = field(default_factory=list)
    shaded: list[Shaded] = field(default_factory=list)


@dataclass
class Report:
    title: str
    created: str
    sources: list[str]
    summary: Table
    sections: list[Section]
    command: str = ""  # the command line that wrote the report, to redo it
