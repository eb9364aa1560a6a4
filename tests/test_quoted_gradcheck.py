"""The gradient-check figure that docs/results.md quotes is the summary line of the committed
benchmarks/results/gradcheck.md, and that file is what `rnnlab gradcheck` prints now: the same
checks, row for row, each within the tolerance, and a worst error of the same order. A new cell
(more checks) or a changed backward pass fails here until the file and the quote are remade:

    rnnlab gradcheck   # paste its output into benchmarks/results/gradcheck.md
"""

import re

from conftest import REPO

from rnnlab.numpy import format_table, run_gradcheck
from rnnlab.numpy.gradcheck import TOLERANCE

RESULT = REPO / "benchmarks" / "results" / "gradcheck.md"
SUMMARY = re.compile(r"(\d+) checks, max relative error (\S+), (\d+) above tolerance (\S+)")


def committed_rows() -> tuple[list[tuple[str, str, float]], re.Match]:
    output = RESULT.read_text(encoding="utf-8").split("```text\n", 1)[1].split("```", 1)[0]
    lines = output.strip().splitlines()
    rows = [(cell, parameter, float(error)) for cell, parameter, error, _ in (ln.split() for ln in lines[2:-1])]
    return rows, SUMMARY.fullmatch(lines[-1].strip())


def test_results_page_quotes_the_committed_summary():
    rows, summary = committed_rows()
    assert summary and int(summary[1]) == len(rows) and float(summary[2]) == max(e for *_, e in rows)
    results = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    (row,) = [ln for ln in results.splitlines() if ln.startswith("| gradient checks |")]
    assert f"`rnnlab gradcheck`: {summary[0]}" in row and "(../benchmarks/results/gradcheck.md)" in row


def test_the_committed_output_is_what_the_command_prints_now():
    committed, summary = committed_rows()
    rows = run_gradcheck(seed=0)  # the command's default seed
    assert [(r["cell"], r["parameter"]) for r in rows] == [(c, p) for c, p, _ in committed]  # same checks, same order
    assert all(r["max_rel_error"] <= TOLERANCE for r in rows) and int(summary[3]) == 0
    # The errors are finite-difference noise in float64: their size, not their last digits, is the claim.
    # Another CPU's summation order may move the worst by a few tens of per cent, never by a factor of 10.
    worst = max(r["max_rel_error"] for r in rows)
    assert 0.1 < worst / float(summary[2]) < 10, (worst, summary[2])
    assert format_table(rows).splitlines()[-1].split(",")[0] == f"{summary[1]} checks"
