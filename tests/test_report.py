"""`rnnlab report` and the training-curve plots."""

import base64
import io
import json
import re
import shutil
from html import escape

import numpy as np
import pytest
from PIL import Image

from rnnlab.cli import main
from rnnlab.config import Config
from rnnlab.errors import UserError
from rnnlab.generate import generate
from rnnlab.report.build import build_report
from rnnlab.report.collect import find_experiments, read_run
from rnnlab.report.plots import epoch_curves_figure, group_curves_figure, plot_run_curves, run_curves_figure
from rnnlab.runs import load_run, read_jsonl

DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


pytestmark = pytest.mark.usefixtures("one_thread")


def ink(png: bytes) -> float:
    """Fraction of pixels that are not (near) white."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return float((pixels < 240).mean())


@pytest.fixture(scope="module")
def experiment(tiny_lm_run, tmp_path_factory):
    """An experiment directory as `rnnlab experiment` leaves it: two runs, a plot, a table, notes."""
    root = tmp_path_factory.mktemp("exp") / "lm-study"
    for name in ("lstm-a", "lstm-b"):
        shutil.copytree(tiny_lm_run, root / name)
    fig = run_curves_figure(read_run(tiny_lm_run))
    fig.savefig(root / "accuracy_vs_length.png")
    (root / "palindrome.csv").write_text("cell,length,accuracy\nlstm,5,0.995\nrnn,35,0.412\n", encoding="utf-8")
    (root / "palindrome.md").write_text("# Palindrome\n\n![plot](accuracy_vs_length.png)\n\n"
                                        "    rnnlab experiment palindrome\n")
    return root


def test_html_report_for_a_run_is_self_contained(tiny_lm_run, tmp_path):
    out = build_report([tiny_lm_run], tmp_path / "report.html", sample_length=40, progress=False)
    html = out.read_text(encoding="utf-8")
    # Summary table: the run, its size and its best validation bits/char from metrics.jsonl.
    best = min(r["bpc"] for r in read_jsonl(tiny_lm_run / "metrics.jsonl") if r.get("split") == "valid")
    summary = json.loads((tiny_lm_run / "summary.json").read_text())
    assert "<h2>Summary</h2>" in html and "grimm-tiny" in html and "1×16" in html
    assert f"<td class=\"num\">{best:.3f}</td>" in html and str(summary["parameters"]) in html
    # Convergence plot, inlined and non-blank.
    images = [base64.b64decode(b) for b in DATA_URI.findall(html)]
    assert images and all(img.startswith(b"\x89PNG") and ink(img) > 0.01 for img in images)
    assert "Convergence: grimm-tiny" in html
    # Samples at three temperatures, equal to what the model generates with that seed.
    model, vocab, _, _ = load_run(tiny_lm_run)
    for t in (0.5, 1.0, 2.0):
        assert f"T = {t:g}" in html
        assert escape(generate(model, vocab, "", 40, temperature=t, seed=0)[0]) in html
    # Nothing fetched from the network: no external URLs, no scripts.
    assert not re.search(r'(src|href)="(https?:)?//', html) and "<script" not in html and "url(" not in html


def test_experiment_directory_groups_runs_and_includes_its_results(experiment, tmp_path):
    (exp,) = find_experiments([experiment])
    assert exp.name == "lm-study" and [r.label for r in exp.runs] == ["lstm-a", "lstm-b"]
    out = build_report([experiment], tmp_path / "r.html", samples=False, progress=False)
    html = out.read_text(encoding="utf-8")
    assert '<section id="lm-study">' in html
    assert "Convergence: 2 char-level runs" in html  # runs compared on one plot
    assert base64.b64encode((experiment / "accuracy_vs_length.png").read_bytes()).decode() in html
    assert "<th>accuracy</th>" in html and '<td class="num">0.412</td>' in html  # the CSV as a table
    assert "Notes: palindrome.md" in html and "rnnlab experiment palindrome" in html
    assert "Samples:" not in html


def test_markdown_report_writes_png_files(experiment, tiny_lm_run, tmp_path):
    out = build_report([experiment, tiny_lm_run], tmp_path / "docs" / "report.md", sample_length=30, progress=False)
    text = out.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all((out.parent / link).is_file() for link in links)
    assert all(ink((out.parent / link).read_bytes()) > 0.01 for link in links)
    assert "| experiment | run | model | cell |" in text and "**temperature 2**" in text
    assert "## lm-study" in text and "accuracy_vs_length.png" not in text.split("Notes: palindrome.md")[1]
    assert text.count("| lm-study | lstm-") == 2  # both runs in the summary table


def test_plot_run_curves_writes_into_the_run(tiny_lm_run, tmp_path):
    run = shutil.copytree(tiny_lm_run, tmp_path / "run")
    path = plot_run_curves(run)
    assert path == run / "plots" / "curves.png"
    png = path.read_bytes()
    width, height = Image.open(io.BytesIO(png)).size
    assert width > 500 and height > 250 and ink(png) > 0.02


def fake_run(tmp_path, name: str, level: str, scores: list[float]):
    """A run directory with only a config and metrics, for plot-axis checks."""
    cfg = Config()
    cfg.data.level = level
    run = tmp_path / name
    run.mkdir()
    (run / "config.toml").write_text(cfg.to_toml())
    key = "bpc" if level == "char" else "perplexity"
    with open(run / "metrics.jsonl", "w") as f:
        for i, s in enumerate(scores):
            for split in ("train", "valid"):
                f.write(json.dumps({"step": 100 * (i + 1), "epoch": i, "split": split, key: s, "accuracy": 0.3,
                                    "loss": 1.0, "elapsed": 10.0 * i}) + "\n")
    return read_run(run)


def test_perplexity_is_on_a_log_axis_when_it_spans_a_wide_range(tmp_path):
    word = fake_run(tmp_path, "word", "word", [900.0, 300.0, 150.0, 120.0])
    char = fake_run(tmp_path, "char", "char", [3.2, 2.4, 2.1, 2.0])
    assert run_curves_figure(word).axes[0].get_yscale() == "log"
    assert run_curves_figure(char).axes[0].get_yscale() == "linear"
    assert run_curves_figure(char).axes[0].get_ylabel() == "bits/char"
    fig = group_curves_figure([word, fake_run(tmp_path, "word2", "word", [800.0, 200.0])], "study")
    assert fig.axes[0].get_yscale() == "log" and "tokens" in fig.axes[0].get_xlabel()
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["word", "word2"]


def test_epoch_curves_put_runs_side_by_side_against_epochs(tmp_path):
    a = fake_run(tmp_path, "a", "word", [900.0, 300.0, 150.0])
    b = fake_run(tmp_path, "b", "word", [800.0, 200.0])
    fig = epoch_curves_figure([a, b], title="sizes")
    score, accuracy = fig.axes
    assert score.get_xlabel() == "epoch" and score.get_yscale() == "log" and "sizes" in score.get_title()
    assert [list(line.get_xdata()) for line in score.get_lines()] == [[0, 1, 2], [0, 1, 2], [0, 1], [0, 1]]
    assert [t.get_text() for t in accuracy.get_legend().get_texts()] == ["a (train)", "a (valid)", "b (train)",
                                                                         "b (valid)"]
    assert list(accuracy.get_lines()[1].get_ydata()) == [30.0, 30.0, 30.0]  # percent
    assert epoch_curves_figure([a], linear=True).axes[0].get_yscale() == "linear"


def test_unfinished_run_is_reported_without_samples_or_summary(tmp_path):
    (tmp_path / "x").mkdir()
    fake_run(tmp_path / "x", "live", "char", [3.0, 2.5])  # no summary.json, no checkpoint
    html = build_report([tmp_path / "x" / "live"], tmp_path / "r.html", progress=False).read_text()
    assert "live (unfinished)" in html and "Samples:" not in html


def test_cli_report_and_its_errors(tiny_lm_run, tmp_path, capsys):
    out = tmp_path / "cli.html"
    assert main(["report", str(tiny_lm_run), "--out", str(out), "--no-samples", "--title", "Tiny <run>"]) == 0
    html = out.read_text()
    assert "<h1>Tiny &lt;run&gt;</h1>" in html and f"<code>rnnlab report {tiny_lm_run} --out {out} --no-samples" in html
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such run or experiment directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "e.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no runs" in err and "\n" not in err
    with pytest.raises(UserError, match="--format must be html or md"):
        build_report([tiny_lm_run], tmp_path / "x.pdf", "pdf")


def test_word_model_gets_embedding_views_and_phased_lstm_its_time_gate(tmp_path, tiny_text):
    from conftest import TINY

    from rnnlab.config import load_config
    from rnnlab.trainer import train_config

    cfg = load_config("grimm-char", None, TINY + [f"data.path={tiny_text}", "data.level=word", "train.max_steps=10",
                                                  "model.cell=phased_lstm"])
    train_config(cfg, tmp_path / "runs" / "phased-word", progress=False)
    out = build_report([tmp_path / "runs"], tmp_path / "r.md", sample_length=8, progress=False)
    text = out.read_text()
    assert "perplexity" in text and "(log scale)" not in text  # a 10-step run does not span a wide range
    assert "**phased-word: embedding map.**" in text and "**phased-word: time gate k(t).**" in text
    section = text.split("### phased-word: nearest neighbours")[1].split("\n### ")[0]  # up to the next table
    rows = [ln.strip("| ").split(" | ") for ln in section.splitlines() if ln.startswith("| ")][1:]  # after the header
    words = {"the", "cat", "dog", "sat", "on", "mat.", "log."}  # every word of the corpus
    assert rows and all(word in words and len(near.split(", ")) == 6 for word, near in rows)


def test_results_only_directory_has_no_empty_summary(tmp_path):
    results = tmp_path / "palindrome"
    results.mkdir()
    (results / "palindrome.csv").write_text("cell,length,seconds\nrnn,5,0.4251763309994203\n", encoding="utf-8")
    html = build_report([results], tmp_path / "r.html", progress=False).read_text()
    assert "<h2>Summary</h2>" not in html and '<section id="palindrome">' in html
    assert '<td class="num">0.4252</td>' in html  # long decimals shortened for reading


def tick_labels(fig, axis: str) -> list:
    """The drawn, non-empty major tick labels of each axes' x or y axis (after a draw)."""
    fig.canvas.draw()
    return [[t for t in getattr(ax, f"get_{axis}ticklabels")() if t.get_visible() and t.get_text()]
            for ax in fig.axes]


def assert_readable(labels) -> None:
    """Distinct texts, and no two labels' boxes overlap on the canvas."""
    texts = [t.get_text() for t in labels]
    assert len(texts) >= 2 and len(set(texts)) == len(texts), texts
    boxes = sorted((t.get_window_extent() for t in labels), key=lambda b: (b.x0, b.y0))
    for a, b in zip(boxes, boxes[1:]):
        assert not a.overlaps(b), texts


def test_time_and_step_axes_read_cleanly_for_one_run_and_many(tmp_path):
    # One evaluation 38.34 s in: the time axis used to zoom into 0.63900 0.63925 ... minutes.
    one = fake_run(tmp_path, "one", "char", [2.5])
    for record in one.metrics:
        record["elapsed"] = 38.34
    many = [one, fake_run(tmp_path, "two", "char", [3.0, 2.6, 2.4]), fake_run(tmp_path, "three", "char", [2.9, 2.2])]
    for runs in ([one], many):
        fig = group_curves_figure(runs, "study")
        tokens_ax, time_ax = fig.axes
        assert time_ax.get_xlabel() == "wall-clock time (seconds)"  # a short run's time in seconds, not 0.639 min
        assert time_ax.get_xlim()[0] == 0 and time_ax.get_xlim()[1] >= 38.34
        for ax_labels in tick_labels(fig, "x") + tick_labels(fig, "y"):
            assert_readable(ax_labels)
            assert all(not re.search(r"\.\d*0$", t.get_text()) for t in ax_labels)  # no trailing zeros
    # Hours-long runs are labelled in minutes, then hours.
    long = fake_run(tmp_path, "long", "char", [3.0, 2.5, 2.2])
    for i, record in enumerate(long.curve("valid")):
        record["elapsed"] = 900.0 * (i + 1)
    assert group_curves_figure([long]).axes[1].get_xlabel() == "wall-clock time (minutes)"
    fig = run_curves_figure(many[1])
    for ax_labels in tick_labels(fig, "x"):
        assert_readable(ax_labels)
        assert all(
            float(t.get_text().replace("−", "-")) == int(float(t.get_text().replace("−", "-"))) for t in ax_labels
        )


def test_title_intro_and_table_read_cleanly(experiment, tiny_lm_run, tmp_path):
    from rnnlab.report.build import assemble

    # The title names the runs, not the folders they sit in.
    assert assemble([experiment], samples=False, progress=False, states=False).title == "rnnlab report: lstm-a, lstm-b"
    assert assemble([tiny_lm_run], samples=False, progress=False, states=False).title == "rnnlab report: grimm-tiny"
    assert assemble([tiny_lm_run], title="Mine", samples=False, progress=False, states=False).title == "Mine"
    # Many runs: a count and the first names.
    root = tmp_path / "study"
    for i in range(5):
        shutil.copytree(tiny_lm_run, root / f"r{i}")
    title = assemble([root], samples=False, progress=False, states=False).title
    assert title == "rnnlab report: 5 runs (r0, r1, r2, …)"
    # The section intro counts what the section shows, and never "0 ...".
    report = assemble([experiment], samples=False, progress=False)
    (sec,) = report.sections
    # 1 table from the experiment, 1 per run from the look inside (tests/test_report_inside.py)
    assert sec.intro == f"From `{experiment}`: 2 runs, {len(sec.images)} plots, 3 tables."
    assert sec.images and not re.search(r"\b0 \w", sec.intro)
    # The training column says what it is: an average since the previous evaluation.
    assert "best train (avg)" in report.summary.header and "average over the steps" in report.summary.caption
    # Whole numbers print as such: a step read back as 30.0 is 30.
    run = read_run(tiny_lm_run)
    run.summary = {**run.summary, "steps": float(run.summary["steps"])}
    from rnnlab.report.build import SUMMARY_HEADER, fmt_cell, run_row

    assert run_row(run, "x")[SUMMARY_HEADER.index("steps")] == "30"
    assert fmt_cell("50.0") == "50" and fmt_cell("0.5") == "0.5" and fmt_cell("2.000000") == "2"


def test_palindrome_plot_legend_stays_off_the_lines_and_names_both_reference_lines():
    from rnnlab.experiments.palindrome import PalindromeConfig, figure

    cfg = PalindromeConfig()
    cfg.cells, cfg.seeds = ["rnn", "lstm", "gru"], 3
    rows = [
        {"cell": c, "length": n, "accuracy": a, "min": a - 0.05, "max": min(1.0, a + 0.05)}
        for c, top in (("rnn", 0.6), ("lstm", 1.0), ("gru", 1.0))
        for n, a in ((5, 1.0), (20, top), (40, top - 0.1))
    ]
    fig = figure(rows, cfg)
    (ax,) = fig.axes
    fig.canvas.draw()
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["rnn", "lstm", "gru", "chance", "50 %"]  # the dashed 0.5 line is named
    assert not legend.get_window_extent().overlaps(ax.get_window_extent())  # beside the axes, not over the data
    assert legend.get_window_extent().x1 <= fig.bbox.x1 + 1  # and inside the saved figure
