"""Render a report as one self-contained HTML file: styles inline, images as
base64 data URIs, no scripts and no network, so it can be mailed or opened
offline as it is."""

from __future__ import annotations

import base64
import re
from html import escape

from rnnlab.report.document import Image, Report, Samples, Section, Shaded, Table

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 1.5rem 2rem 4rem; background: #fff; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.35rem; margin-top: 2.5rem; border-bottom: 2px solid #e5e5e5; padding-bottom: .25rem; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
.meta, figcaption, .caption { color: #666; font-size: .88rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .82rem; margin: .5rem 0 1rem; }
th, td { padding: .28rem .45rem; border-bottom: 1px solid #e5e5e5; text-align: left; vertical-align: top; }
th { background: #f3f3f3; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.short { white-space: nowrap; }
tr:hover td { background: #f8fbff; }
figure { margin: 1rem 0 1.5rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: .6rem .8rem; white-space: pre-wrap; word-break: break-word; margin: 0;
      font-size: .85rem; }
code { background: #f3f3f3; padding: 0 .2rem; border-radius: 3px; }
td.temp { white-space: nowrap; font-weight: 600; }
.prompt { color: #888; }
nav ul { columns: 2; padding-left: 1.2rem; }
details { margin: .5rem 0 1rem; }
summary { cursor: pointer; color: #444; }
"""
NUMERIC = re.compile(r"^[-+]?[\d.,]+(e[-+]?\d+)?\s*(%|k|M|s|min|h)?$")


def inline(text: str) -> str:
    """Escape text, turning `code` spans into <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def td(value: str) -> str:
    # Numbers right-aligned; short cells kept on one line (a wide table scrolls instead).
    css = "num" if NUMERIC.match(value) else "short" if len(value) <= 24 else ""
    return f'<td class="{css}">{escape(value)}</td>' if css else f"<td>{escape(value)}</td>"


def table(t: Table, heading: str = "h3") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(td(c) for c in row) + "</tr>\n" for row in t.rows)
    caption = f'<div class="caption">{inline(t.caption)}</div>' if t.caption else ""
    return (f"<{heading}>{escape(t.title)}</{heading}>{caption}\n"
            f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table></div>\n')


def image(img: Image) -> str:
    data = base64.b64encode(img.png).decode("ascii")
    caption = f"<figcaption><b>{escape(img.title)}</b>{'. ' + inline(img.caption) if img.caption else ''}</figcaption>"
    return f'<figure><img alt="{escape(img.title)}" src="data:image/png;base64,{data}">{caption}</figure>\n'


def samples(s: Samples) -> str:
    rows = "".join(
        f'<tr><td class="temp">T = {t:g}</td>'
        f'<td><pre><span class="prompt">{escape(s.prompt)}</span>{escape(text)}</pre></td></tr>\n'
        for t, text in s.rows
    )
    head = f"<h3>Samples: {escape(s.run)}</h3><div class=\"caption\">{inline(s.caption)}</div>\n"
    if not s.rows:
        return head
    return (head + '<table class="samples"><thead><tr><th>temperature</th><th>text</th></tr></thead>'
            f"<tbody>\n{rows}</tbody></table>\n")


def shaded(s: Shaded) -> str:
    """The text with each piece's background as dark as its bits (8 bits or more: the darkest)."""
    shading = " Each token is shaded by its loss: darker, more bits (hover for the figure)." if s.pieces else ""
    head = f"<h3>{escape(s.title)}</h3><div class=\"caption\">{inline(s.caption)}{shading}</div>\n"
    if not s.pieces:
        return head
    spans = "".join(escape(text) if bits is None else
                    f'<span title="{bits:.2f} bits" style="background: rgba(220, 60, 40, {min(bits / 8, 1):.2f})">'
                    f"{escape(text)}</span>" for text, bits in s.pieces)
    return head + f"<pre>{spans}</pre>\n"


def section(sec: Section) -> str:
    parts = [f'<section id="{sec.anchor}"><h2>{escape(sec.name)}</h2>', f'<p class="meta">{inline(sec.intro)}</p>']
    if sec.runs:
        parts.append(table(sec.runs))
    if sec.images:
        parts.append("<h3>Plots</h3>")
        parts += [image(i) for i in sec.images]
    parts += [table(t) for t in sec.tables]
    for name, text in sec.notes:
        parts.append(f"<details><summary>Notes: {escape(name)}</summary><pre>{escape(text)}</pre></details>")
    parts += [samples(s) for s in sec.samples]
    parts += [shaded(s) for s in sec.shaded]
    parts.append("</section>")
    return "\n".join(parts)


def render(report: Report) -> str:
    toc = "".join(f'<li><a href="#{s.anchor}">{escape(s.name)}</a></li>' for s in report.sections)
    sources = ", ".join(f"<code>{escape(s)}</code>" for s in report.sources)
    made = f"<code>{escape(report.command)}</code>" if report.command else f"<code>rnnlab report</code> from {sources}"
    body = "\n".join(section(s) for s in report.sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(report.title)}</title>
<style>{CSS}</style></head>
<body><main>
<h1>{escape(report.title)}</h1>
<p class="meta">Generated {escape(report.created)} by {made}.</p>
<nav><ul>{toc}</ul></nav>
{table(report.summary, "h2") if report.summary.rows else ""}
{body}
</main></body></html>
"""
