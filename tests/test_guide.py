"""docs/guide/ stays true to the tree: every relative link and image resolves,
every `path:line` reference names an existing line, every topic has its page,
and the figures the guide quotes are the ones its numbers describe."""

import re
from pathlib import Path

import pytest
from conftest import REPO

GUIDE = REPO / "docs" / "guide"
TOPICS = ["bptt", "gates", "lstm-vs-gru", "parameter-counts", "gru-gradients", "variable-length",
          "optimizers", "dropout", "neural-ngram", "time-gate", "sampling", "minimal-cells"]
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


@pytest.mark.parametrize("figure,argv", [
    ("gradflow.txt", ["gradflow", "--cells", "rnn_tanh,lstm,gru", "--steps", "100"]),
    ("gru-by-hand.txt", ["gradcheck", "--gru-by-hand"]),
])
def test_committed_outputs_are_what_the_commands_print(figure, argv, tmp_path, capsys):
    # The guide quotes these files; the seeded commands must still print them
    # (the last line of gradflow names the PNG it wrote, so it is left out).
    from rnnlab.cli import main

    extra = ["--out", str(tmp_path / "g.png")] if argv[0] == "gradflow" else []
    assert main(argv + extra) == 0
    printed = [ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith("wrote ")]
    committed = [ln for ln in (GUIDE / "figures" / figure).read_text(encoding="utf-8").splitlines()
                 if not ln.startswith("wrote ")]
    assert printed == committed
