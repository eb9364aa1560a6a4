"""docs/guide/ stays true to the tree: every relative link and image resolves,
every `path:line` reference names an existing line, every topic has its page,
and the figures the guide quotes are the ones its numbers describe."""

import re
from pathlib import Path

import pytest
from conftest import REPO

GUIDE = REPO / "docs" / "guide"
TOPICS = ["bptt", "gates", "lstm-vs-gru", "parameter-counts", "gru-gradients", "variable-length",
          "optimizers", "dropout", "neural-ngram", "time-gate", "sampling", "minimal-cells", "see-inside"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# rnnlab/models/cells.py:95 or rnnlab/numpy/cells.py:205-230 (a path with a directory, then a line)
LINE_REF = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)+[\w.-]+\.\w+):(\d+)(?:-(\d+))?")


def pages() -> list[Path]:
    return sorted(GUIDE.glob("*.md"))


def lines_of(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_every_topic_has_a_page_linked_from_the_index():
    index = (GUIDE / "README.md").read_text(encoding="utf-8")
    for topic in TOPICS:
        assert (GUIDE / f"{topic}.md").is_file(), topic
        assert f"({topic}.md)" in index, topic
    assert "docs/guide/README.md" in (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_relative_links_and_images_resolve(page):
    text = page.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # web addresses and in-page anchors
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve()
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        line = re.fullmatch(r"L(\d+)(?:-L(\d+))?", anchor)
        if line:
            assert int(line.group(2) or line.group(1)) <= lines_of(resolved), f"{page.name}: {target} is past the end"


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_path_line_references_resolve(page):
    text = page.read_text(encoding="utf-8")
    refs = LINE_REF.findall(text)
    for path, first, last in refs:
        file = REPO / path
        assert file.is_file(), f"{page.name}: {path} does not exist"
        n = lines_of(file)
        assert 1 <= int(first) <= n and int(last or first) <= n, f"{page.name}: {path}:{first} is past line {n}"


def test_every_topic_page_shows_a_figure_or_table_and_a_command():
    for topic in TOPICS:
        text = (GUIDE / f"{topic}.md").read_text(encoding="utf-8")
        shown = "![" in text or "\n|" in text or "```text" in text  # a figure, a table or a command output
        assert shown or "not yet measured" in text.lower(), f"{topic}: no figure or table, and none marked missing"
        assert "```sh" in text, f"{topic}: no command"
        assert LINE_REF.search(text), f"{topic}: no link to the implementing lines"


def test_the_link_checker_catches_a_dangling_reference(tmp_path):
    # The checks above must fail on a reference that does not resolve.
    assert LINE_REF.findall("see rnnlab/models/cells.py:99999") == [("rnnlab/models/cells.py", "99999", "")]
    assert lines_of(REPO / "rnnlab/models/cells.py") < 99999
    assert LINK.findall("![x](figures/missing.png)") == ["figures/missing.png"]
    assert not (GUIDE / "figures/missing.png").exists()


def test_quoted_parameter_counts_are_the_models():
    from rnnlab.numpy.ngram import init_params
    from rnnlab.numpy.params import count_params

    counts = (GUIDE / "parameter-counts.md").read_text(encoding="utf-8")
    for cell, bias in (("lstm", "single"), ("lstm", "double"), ("gru", "single"), ("gru", "double")):
        assert f"{count_params(cell, 200, 200, bias=bias)[0]:,}" in counts
    ngram = sum(p.size for p in init_params(8000, 3, 16, 128).values())
    assert f"{ngram:,}" in (GUIDE / "neural-ngram.md").read_text(encoding="utf-8")


def test_every_claim_check_is_cited_at_its_def_line():
    # The true/false tables cite each check by path:line; the line must be the test's own `def`.
    claims = REPO / "tests" / "test_guide_claims.py"
    source = claims.read_text(encoding="utf-8").splitlines()
    cited = set()
    for page in pages():
        for path, first, _ in LINE_REF.findall(page.read_text(encoding="utf-8")):
            if path == "tests/test_guide_claims.py":
                assert source[int(first) - 1].startswith("def test_"), f"{page.name}: {path}:{first} is not a test"
                cited.add(int(first))
    defined = {i + 1 for i, line in enumerate(source) if line.startswith("def test_")}
    assert defined == cited, f"uncited checks at lines {sorted(defined - cited)}"


NUMBER = re.compile(r"[-+]?\d+\.\d+(?:e[-+]?\d+)?")
EPS = 2.0**-52  # float64


def _last_place(token: str) -> float:
    """One unit in the last printed digit of a number: 1e-10 for '0.0288644199', 1e-4 for '4.535e-01'."""
    mantissa, _, exponent = token.lower().partition("e")
    return 10.0 ** (-len(mantissa.partition(".")[2]) + int(exponent or 0))


# Each committed figure: the command that prints it, the float64 round-off factor n of its numbers
# (their relative error is at most n·eps) and the columns that are round-off residuals.
#   gradflow: a norm after a product of T=100 Jacobians of a 64-unit layer, n = T·H = 6400.
#   gru-by-hand: gradients of sums over 3+4 inputs and units for 3 gates and 2 steps, n = 42; its
#   last column, max |hand − autograd|, is itself float64 round-off: its digits differ between CPUs.
FIGURES = {"gradflow.txt": (["gradflow", "--cells", "rnn_tanh,lstm,gru", "--steps", "100"], 100 * 64, ()),
           "gru-by-hand.txt": (["gradcheck", "--gru-by-hand"], 3 * 7 * 2, (4,))}


def assert_same_output(printed: list[str], committed: list[str], n: int, residual_columns=()) -> None:
    """The same text, and the same numbers up to float64 round-off: a number printed to d digits may
    differ by one unit in its last digit (the exact values lie on either side of a rounding boundary),
    plus n·eps of its size. A residual column (an error of order eps) is only required to stay below
    n·eps times the largest number of the output (the scale of the values it was computed from), in both."""
    assert len(printed) == len(committed), (printed, committed)
    scale = max((abs(float(t)) for line in committed for t in NUMBER.findall(line)), default=0.0)
    for new, old in zip(printed, committed):
        assert NUMBER.sub("#", new).split() == NUMBER.sub("#", old).split(), (new, old)  # the words and layout
        numbers_new, numbers_old = NUMBER.findall(new), NUMBER.findall(old)
        for column, (a, b) in enumerate(zip(numbers_new, numbers_old)):
            x, y = float(a), float(b)
            if column + len(new.split()) - len(numbers_new) in residual_columns:
                assert abs(x) <= n * EPS * scale and abs(y) <= n * EPS * scale, (new, old)
            else:
                assert abs(x - y) <= max(_last_place(a), _last_place(b)) + n * EPS * max(abs(x), abs(y)), (new, old)


@pytest.mark.parametrize("figure", sorted(FIGURES))
def test_committed_outputs_are_what_the_commands_print(figure, tmp_path, capsys):
    # The guide quotes these files; the seeded commands must still print them, up to float64
    # round-off, which differs between CPUs (the last line of gradflow names the PNG it wrote,
    # so it is left out).
    from rnnlab.cli import main

    argv, n, residual_columns = FIGURES[figure]
    extra = ["--out", str(tmp_path / "g.png")] if argv[0] == "gradflow" else []
    assert main(argv + extra) == 0
    printed = [ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith("wrote ")]
    committed = [ln for ln in (GUIDE / "figures" / figure).read_text(encoding="utf-8").splitlines()
                 if not ln.startswith("wrote ")]
    assert_same_output(printed, committed, n, residual_columns)


def test_the_output_comparison_catches_a_changed_number_or_word():
    lines = ["t2     W_ir     0.0288644199    0.0288644199    1.39e-17", "  1   4.535e-01   1.119e-01"]
    assert_same_output(["t2     W_ir     0.0288644199    0.0288644198    2.78e-17", "  1   4.536e-01   1.119e-01"],
                       lines, 42, (4,))  # one unit in the last digit; another residual of the same order
    for changed in (["t2     W_ir     0.0288644199    0.0288644197    1.39e-17", lines[1]],  # two units off
                    ["t2     W_iz     0.0288644199    0.0288644199    1.39e-17", lines[1]],  # another word
                    ["t2     W_ir     0.0288644199    0.0288644199    1.39e-09", lines[1]],  # a real residual
                    [lines[0], "  1   4.537e-01   1.119e-01"],
                    [lines[0], "  2   4.535e-01   1.119e-01"]):  # integers are words: exact
        with pytest.raises(AssertionError):
            assert_same_output(changed, lines, 42, (4,))


def test_see_inside_names_the_units_its_result_file_names():
    # The quoted r values are checked by tests/test_quoted_figures.py; the units they belong to
    # ("layer 2 c[85]") are checked here against benchmarks/results/see_inside.md.
    page = (GUIDE / "see-inside.md").read_text(encoding="utf-8")
    results = (REPO / "benchmarks" / "results" / "see_inside.md").read_text(encoding="utf-8")
    named = set(re.findall(r"layer \d [a-z]+\[\d+\]", page))
    assert len(named) >= 10 and named <= set(re.findall(r"layer \d [a-z]+\[\d+\]", results)), named
