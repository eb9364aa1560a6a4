"""Render a report as markdown with its figures as PNG files beside it, for
pasting into a write-up or committing under docs/."""

from __future__ import annotations

import re
from pathlib import Path

from rnnlab.report.document import Report, Samples, Section, Shaded, Table

IMAGE_LINK = re.compile(r"!\[[^\]]*\]\([^)]*\)")


def anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(t: Table, heading: str = "###") -> str:
    lines = [f"{heading} {t.title}", ""]
    if t.caption:
        lines += [t.caption, ""]
    lines.append("| " + " | ".join(cell(h) for h in t.header) + " |")
    lines.append("|" + "|".join("---" for _ in t.header) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines) + "\n"


def fence(text: str) -> str:
    """A fenced block that the text itself cannot close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}text\n{text}\n{ticks}"


def samples(s: Samples) -> str:
    lines = [f"### Samples: {s.run}", "", s.caption, ""]
    for t, text in s.rows:
        lines += [f"**temperature {t:g}**", "", fence(s.prompt + text), ""]
    return "\n".join(lines)


def shaded(s: Shaded) -> str:
    """Markdown has no colours: the text as it is, under its caption (which names the most surprising tokens)."""
    lines = [f"### {s.title}", "", s.caption, ""]
    if s.pieces:
        lines += [fence("".join(text for text, _ in s.pieces)), ""]
    return "\n".join(lines)


def section(sec: Section) -> str:
    parts = [f"## {sec.name}", "", sec.intro, ""]
    if sec.runs:
        parts.append(table(sec.runs))
    for img in sec.images:
        caption = f" {img.caption}" if img.caption else ""
        parts += [f"**{img.title}.**{caption}", "", f"![{img.title}]({img.name})", ""]
    parts += [table(t) for t in sec.tables]
    for name, text in sec.notes:
        # Image links in the notes point into the experiment directory; the images are shown above.
        text = IMAGE_LINK.sub("", text).strip()
        parts += [f"<details><summary>Notes: {name}</summary>", "", text, "", "</details>", ""]
    parts += [samples(s) for s in sec.samples]
    parts += [shaded(s) for s in sec.shaded]
    return "\n".join(parts)


def render(report: Report) -> str:
    toc = [f"- [{s.name}](#{anchor(s.name)})" for s in report.sections]
    sources = ", ".join(f"`{s}`" for s in report.sources)
    made = f"`{report.command}`" if report.command else f"`rnnlab report` from {sources}"
    head = [f"# {report.title}", "", f"Generated {report.created} by {made}.", "", *toc, ""]
    summary = table(report.summary, "##") + "\n" if report.summary.rows else ""
    return "\n".join(head) + "\n" + summary + "\n".join(section(s) for s in report.sections) + "\n"


def write(report: Report, out: Path) -> Path:
    """Write OUT (markdown) and every figure as a PNG file in OUT's directory."""
    out = Path(out)
    for sec in report.sections:
        for img in sec.images:
            (out.parent / img.name).write_bytes(img.png)
    out.write_text(render(report), encoding="utf-8")
    return out
