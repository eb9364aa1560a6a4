"""Every figure the README and the docs quote from a result comes from a committed result file.

The convention (docs/guide/README.md, "Quoted figures"): a paragraph, list item or table that
quotes measured figures links the result files they come from (benchmarks/results/NAME.md, .json
or .csv); a table is also covered by the links of the paragraph just before it. Every decimal
figure in such a block (not in `code`, not after "≈", which marks a figure derived by hand) must be

* a number in one of the linked files, at the rounding the text shows (0.841 may be quoted as
  84.1 %), or
* computed from two figures of the same block that are themselves from the files: their sum or
  difference, or the change from one to the other in per cent (145.1 → 129.6: 10.7 %).

In reproductions.md's side-by-side table the course's column is checked against the course
report its row names (../shared/course/NNN_*.txt; skipped where that folder is absent).

So a re-measurement that changes a figure fails here until the text follows it.
"""

import itertools
import re
from pathlib import Path

import pytest
from conftest import REPO

COURSE = REPO.parent / "shared" / "course"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FIGURE = re.compile(r"(?<![\w.\-/^≈])(?<!≈ )(\d+\.\d+)(?![\w.]|\^)")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")

# README figures allowed without a linked source: none (every README figure names its result file).
KNOWN_README: set[str] = set()


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def blocks(text: str) -> list[str]:
    """Paragraphs, list items and tables (fenced code left out)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    out, cur = [], []
    for line in text.splitlines():
        starts_item = re.match(r"\s*(?:[-*]|\d+\.)\s", line) is not None
        is_row = line.lstrip().startswith("|")
        if not line.strip() or (cur and (starts_item or is_row != cur[-1].lstrip().startswith("|"))):
            if cur:
                out.append("\n".join(cur))
            cur = []
        if line.strip():
            cur.append(line)
    if cur:
        out.append("\n".join(cur))
    return out


def sources(page: Path, block: str) -> list[Path]:
    found = []
    for target in LINK.findall(block):
        path = (page.parent / target.partition("#")[0]).resolve()
        if "benchmarks/results/" in str(path) and path.suffix in (".md", ".json", ".csv"):
            found.append(path)
    return found


def numbers(paths) -> list[float]:
    values = []
    for path in paths:
        if path.is_file():
            values += [float(x) for x in NUMBER.findall(path.read_text(encoding="utf-8").replace(",", ""))]
    return values


def figures(block: str) -> list[str]:
    text = re.sub(r"`[^`]*`", "", block)
    text = LINK.sub(lambda m: m.group(0).split("](")[0], text)  # link text stays, targets go
    return FIGURE.findall(text)


def shown(value: float, figure: str) -> bool:
    """`value` is displayed as `figure` (rounded to its decimals, ties either way)."""
    digits = len(figure.partition(".")[2])
    return abs(value - float(figure)) <= 0.5 * 10.0 ** -digits * (1 + 1e-9)


def from_file(figure: str, values) -> bool:
    return any(shown(abs(v), figure) or shown(abs(100 * v), figure) or shown(abs(v / 100), figure) for v in values)


def derived(figure: str, verified: list[float]) -> bool:
    for a, b in itertools.permutations(verified, 2):
        if any(shown(x, figure) for x in (a + b, a - b) + ((100 * (b - a) / a,) if a else ())):
            return True
    return False


def unsourced(page: Path) -> list[str]:
    """The figures of `page` that neither a linked result file nor a sum, difference or change of
    sourced figures in their block gives."""
    bad = []
    bs = blocks(page.read_text(encoding="utf-8"))
    section: list[Path] = []  # the result files linked so far under the current heading
    for i, block in enumerate(bs):
        if block.startswith("#"):
            section = []
            continue
        linked = sources(page, block)
        if block.lstrip().startswith("|") and i > 0:
            linked += sources(page, bs[i - 1])
        section += linked
        linked = linked or section
        if not linked:
            continue
        if page.name == "reproductions.md" and "course's figure" in block:
            continue  # checked row by row below
        values = numbers(linked)
        quoted = figures(block)
        verified = [float(q) for q in quoted if from_file(q, values)]
        bad += [q for q in quoted if not from_file(q, values) and not derived(q, verified)]
    return bad


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_quoted_figures_come_from_the_linked_result_files(page):
    bad = unsourced(page)
    if page.name == "README.md" and page.parent == REPO:
        assert set(bad) <= KNOWN_README, f"README.md: figures without a source: {sorted(set(bad) - KNOWN_README)}"
        return
    assert not bad, f"{page.relative_to(REPO)}: figures not in the result files their block links: {bad}"


def side_by_side_rows():
    text = (REPO / "docs" / "guide" / "reproductions.md").read_text(encoding="utf-8")
    table = next(b for b in blocks(text) if "course's figure" in b)
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        yield cells


def test_every_side_by_side_row_has_both_figures_and_a_verdict():
    rows = list(side_by_side_rows())
    assert len(rows) >= 10
    for where, course, ours, verdict in rows:
        assert re.match(r"\d{3}\b", where), where  # the course report it quotes
        assert course and ours and verdict, where
        if verdict.startswith("**"):
            assert re.match(r"\*\*(agrees|agrees in direction|differs)\*\*", verdict), verdict
            # a verdict other than a plain "agrees" gives its reason
            assert verdict.startswith("**agrees**") or len(verdict) > 30, where


def test_side_by_side_figures_are_the_course_reports_and_the_result_files():
    page = REPO / "docs" / "guide" / "reproductions.md"
    for where, course, ours, verdict in side_by_side_rows():
        values = numbers(sources(page, ours))
        quoted = figures(ours)
        verified = [float(q) for q in quoted if from_file(q, values)]
        bad = [q for q in quoted if not from_file(q, values) and not derived(q, verified)]
        assert not bad, f"{where}: rnnlab figures not in the linked result files: {bad}"
        if not COURSE.is_dir():
            continue
        report = next(COURSE.glob(f"{where[:3]}_*.txt"))
        values = numbers([report])
        bad = [q for q in figures(course) if not from_file(q, values)]
        assert not bad, f"{where}: course figures not in {report.name}: {bad}"
        # the verdict's figures: from the result files of the row (its own links and rnnlab's column's) or the report
        values = numbers([*sources(page, ours), *sources(page, verdict), report])
        quoted = figures(verdict)
        verified = [float(q) for q in quoted if from_file(q, values)]
        bad = [q for q in quoted if not from_file(q, values) and not derived(q, verified)]
        assert not bad, f"{where}: verdict figures in neither the linked result files nor {report.name}: {bad}"


def test_the_check_fails_when_a_result_file_changes(tmp_path):
    # The same page against a copy of its result file with one figure changed: the quoted figure
    # no longer has a source.
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    for path in (REPO / "benchmarks" / "results").glob("*.*"):  # every result file the page may link
        if path.suffix in (".md", ".json", ".csv"):
            (results / path.name).write_bytes(path.read_bytes())
    original = (REPO / "benchmarks" / "results" / "brown_lm_study.md").read_text(encoding="utf-8")
    page = tmp_path / "docs" / "guide" / "dropout.md"
    page.parent.mkdir(parents=True)
    page.write_text((REPO / "docs" / "guide" / "dropout.md").read_text(encoding="utf-8"), encoding="utf-8")
    assert unsourced(page) == []
    (results / "brown_lm_study.md").write_text(original.replace("129.6", "129.9"), encoding="utf-8")
    assert "129.6" in unsourced(page)
