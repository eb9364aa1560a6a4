"""Assemble a report for a set of runs and experiment directories, and write it.

    rnnlab report runs/lm-study runs/experiments/palindrome --out report.html
    rnnlab report runs/demo --format md --out docs/example-report/README.md

The report has a summary table of every run, then one section per group of
runs (an experiment): convergence plots, whatever plots and tables the
experiment wrote, samples from each language model at temperatures
0.5 / 1.0 / 2.0, and a look inside each recurrent language model
(rnnlab/report/inside.py: the strongest unit per text feature, gate
saturation, an excerpt shaded by loss; `states=False` leaves it out).
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from rnnlab import cell_registry, safejson
from rnnlab.errors import UserError
from rnnlab.report import plots
from rnnlab.report.collect import Experiment, Run, find_experiments, read_csv
from rnnlab.report.document import Image, Report, Samples, Section, Table

TEMPERATURES = (0.5, 1.0, 2.0)
SAMPLE_LENGTH = {"char": 300, "word": 60}
MAX_RUN_FIGURES = 6  # per-run curve figures per group; beyond that only the comparison
MAX_TABLE_ROWS = 200  # longer CSV tables are cut (the file has them all)
SUMMARY_HEADER = ["experiment", "run", "model", "cell", "size", "parameters", "epochs", "steps", "wall time",
                  "measure", "best train (avg)", "best valid", "best test", "best valid accuracy"]
SUMMARY_CAPTION = ("best train (avg): the best of the training figures, each an average over the steps since the "
                   "previous evaluation, taken while the weights were still changing (and with dropout on, where the "
                   "model has it); so it can be worse than best valid, which scores one set of weights.")


# ----------------------------------------------------------------- formatting
def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def title_of(path: Path) -> str:
    return re.sub(r"[-_]+", " ", path.stem).strip().capitalize()


def fmt_count(n: int | None) -> str:
    if n is None:
        return "–"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e3:.1f}k" if n >= 1e4 else str(n)


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 120:
        return f"{s:.0f} s"
    return f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def fmt_int(n) -> str:
    """A whole number as one (a step read back from JSON as 50.0 prints 50)."""
    return str(int(n)) if isinstance(n, float) and n.is_integer() else str(n)


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def fmt_cell(text: str) -> str:
    """A CSV cell for reading: long decimals cut to 4 significant digits, whole numbers without '.0'."""
    if re.fullmatch(r"-?\d*\.\d{5,}(e[-+]?\d+)?", text.strip()):
        return f"{float(text):.4g}"
    if re.fullmatch(r"-?\d+\.0+", text.strip()):
        return text.strip().split(".")[0]
    return text


def fmt_score(value: float | None, level: str) -> str:
    if value is None:
        return "–"
    if level == "char":
        return f"{value:.3f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


# --------------------------------------------------------------- run figures
def _parameters(run: Run) -> int | None:
    if "parameters" in run.summary:
        return run.summary["parameters"]
    try:  # a run still training: count them from the config and vocabulary
        from rnnlab.models import build_model

        vocab = safejson.read(run.dir / "vocab.json")
        return build_model(run.config.model, len(vocab["tokens"])).num_parameters()
    except (OSError, ValueError, KeyError):
        return None


def run_row(run: Run, experiment: str) -> list[str]:
    m, last = run.config.model, (run.metrics[-1] if run.metrics else {})
    epochs = run.summary.get("epochs", last.get("epoch"))
    steps = run.summary.get("steps", last.get("step"))
    label = run.label if run.summary else f"{run.label} (unfinished)"
    return [
        experiment,
        label,
        f"{run.config.name} ({run.level})",
        *m.kind_and_size(),
        fmt_count(_parameters(run)),
        "–" if epochs is None else f"{epochs:.2f}",
        "–" if steps is None else fmt_int(steps),
        fmt_seconds(run.summary.get("wall_seconds", last.get("elapsed"))),
        run.score_name,
        *(fmt_score(run.best(split), run.level) for split in ("train", "valid", "test")),
        "–" if run.best("valid", "accuracy") is None else f"{100 * run.best('valid', 'accuracy'):.1f}%",
    ]


def run_samples(label: str, loaded, prompt: str = "", length: int | None = None, temperatures=TEMPERATURES,
                seed: int = 0) -> Samples:
    """Text from a loaded run (`rnnlab.runs.load_run`) at each temperature, the same seed for all."""
    import torch

    from rnnlab.generate import generate

    model, vocab, cfg, meta = loaded
    length = length or SAMPLE_LENGTH[vocab.level]
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # one-token steps: extra threads only add synchronisation (17x slower on a busy 2-core box)
    try:
        rows = [(t, generate(model, vocab, prompt, length, temperature=t, seed=seed)[0]) for t in temperatures]
    finally:
        torch.set_num_threads(threads)
    unit = "characters" if vocab.level == "char" else "words at most"
    caption = (
        f"checkpoint at step {fmt_int(meta['step'])}, {length} {unit}, the same seed ({seed}) at every temperature"
        + (f", prompt {prompt!r}" if prompt else "")
    )
    shown = prompt + " " if prompt and vocab.level == "word" else prompt  # word samples start without a space
    return Samples(label, shown, rows, caption)


PROBE_WORDS = ("king", "man", "woman", "day", "house", "money", "city", "three", "good", "said", "went", "little")


def embedding_views(label: str, loaded, names, group: str) -> tuple[list[Image], list[Table]]:
    """A word model's embedding: a 2-D map of its frequent words and nearest neighbours of a few."""
    from rnnlab.report.embeddings import nearest_neighbors, plot_embeddings

    model, vocab, _, _ = loaded
    matrix = model.embedding.weight.detach().float().cpu().numpy()
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_embeddings(matrix, vocab.itos, top=150, path=Path(tmp) / "map.png",
                              title=f"{label}: 150 most frequent words, PCA of the input embedding").read_bytes()
    image = Image(
        f"{label}: embedding map",
        png,
        names(group, label, "embeddings"),
        "The input embeddings of the 150 most frequent words projected on their first two principal components.",
    )
    probes = [w for w in PROBE_WORDS if w in vocab.stoi]
    ordinary = [t for t in vocab.itos if t.isalpha() and t not in probes]  # by frequency, specials excluded
    probes += (ordinary[10:40] + ordinary[:10])[: max(0, 8 - len(probes))]  # past the commonest function words first
    rows = [
        [w, ", ".join(f"{n} ({c:.2f})" for n, c in nearest_neighbors(matrix, vocab.itos, w, k=6))] for w in probes[:8]
    ]
    table = Table(f"{label}: nearest neighbours", ["word", "nearest words by cosine similarity of the input embedding"],
                  rows, "among the 10,000 most frequent words")
    return [image], [table]


def kgate_views(label: str, loaded, names, group: str) -> list[Image]:
    """A Phased LSTM's time gate k(t), for the first layer's unit with the median period."""
    from rnnlab.report.kgate import plot_kgate

    layer = loaded[0].rnn.layers[0]
    unit = int(layer.tau.detach().argsort()[len(layer.tau) // 2])
    tau, r_on, shift = (float(getattr(layer, k).detach()[unit]) for k in ("tau", "r_on", "shift"))
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_kgate(tau, r_on, shift, Path(tmp) / "kgate.png").read_bytes()
    return [Image(f"{label}: time gate k(t)", png, names(group, label, "kgate"),
                  f"unit {unit} of layer 0 (the median learned period), as trained")]


def model_views(run: Run, names, group: str, samples: bool, prompt: str, sample_length: int | None,
                states: bool = False):
    """What needs the trained weights: samples, embedding views, k(t), the states. (images, tables, samples, shaded)"""
    from rnnlab.runs import load_run

    try:
        loaded = load_run(run.dir)
    except UserError as e:  # one unreadable checkpoint should not sink the whole report
        return [], [], [Samples(run.label, prompt, [], f"no samples: {e}")] if samples else [], []
    images, tables = [], []
    if loaded[1].level == "word":
        images, tables = embedding_views(run.label, loaded, names, group)
    if loaded[2].model.arch == "rnn" and cell_registry.get(loaded[2].model.cell).needs_times:  # a time gate to draw
        try:
            images += kgate_views(run.label, loaded, names, group)
        except UserError:  # learned parameters outside the plot's range
            pass
    shaded = []
    if states:
        from rnnlab.report.inside import inside_views

        more_images, more_tables, shaded = inside_views(run.label, loaded, names, group)
        images, tables = images + more_images, tables + more_tables
    return images, tables, [run_samples(run.label, loaded, prompt, sample_length)] if samples else [], shaded


# ------------------------------------------------------------------ sections
class _Names:
    """File names for images, unique within one report."""

    def __init__(self):
        self.used: set[str] = set()

    def __call__(self, *parts: str) -> str:
        base = "-".join(slug(p) for p in parts if p)
        name, i = f"{base}.png", 2
        while name in self.used:
            name, i = f"{base}-{i}.png", i + 1
        self.used.add(name)
        return name


def section(exp: Experiment, names: _Names, samples: bool, prompt: str, sample_length: int | None, bar,
            runs_table: bool = True, states: bool = True) -> Section:
    sec = Section(exp.name, slug(exp.name))
    if exp.runs and runs_table:
        sec.runs = Table("Runs", SUMMARY_HEADER[1:], [run_row(r, exp.name)[1:] for r in exp.runs], SUMMARY_CAPTION)
    evaluated = [r for r in exp.runs if r.metrics]
    for level in ("char", "word"):
        group = [r for r in evaluated if r.level == level]
        if len(group) > 1:
            sec.images.append(Image(f"Convergence: {len(group)} {level}-level runs",
                                    plots.png_bytes(plots.group_curves_figure(group, exp.name)),
                                    names(exp.name, level, "curves"),
                                    "Left: training (dashed) and validation (solid) score against tokens seen. "
                                    "Right: validation score against wall-clock time (which depends on how busy "
                                    "the machine was)."))
    for run in evaluated[:MAX_RUN_FIGURES]:
        sec.images.append(Image(f"Convergence: {run.label}", plots.png_bytes(plots.run_curves_figure(run)),
                                names(exp.name, run.label, "curves"),
                                f"{run.score_name} and top-1 next-token accuracy at each evaluation; the training "
                                "figures are averages over the steps since the previous evaluation."))
    for run in exp.runs:  # plots written into the run by training or analysis tools
        for png in run.plots:
            if png.name != "curves.png":  # redrawn above from the metrics
                sec.images.append(Image(f"{run.label}: {title_of(png)}", png.read_bytes(),
                                        names(exp.name, run.label, png.stem)))
    for png in exp.figures:
        sec.images.append(Image(title_of(png), png.read_bytes(), names(exp.name, png.stem), f"`{png.name}`"))
    for path in exp.tables:
        header, rows = read_csv(path)
        if header:
            cut = f", first {MAX_TABLE_ROWS} of {len(rows)} rows" if len(rows) > MAX_TABLE_ROWS else ""
            rows = [[fmt_cell(c) for c in row] for row in rows[:MAX_TABLE_ROWS]]
            sec.tables.append(Table(title_of(path), header, rows, f"`{path.name}`{cut}"))
    for path in exp.notes:
        sec.notes.append((path.name, path.read_text(encoding="utf-8", errors="replace")))
    for run in exp.runs:
        if run.has_checkpoint():
            bar.set_postfix_str(run.label)  # sampling and recording a large model take seconds
            images, tables, texts, shaded = model_views(run, names, exp.name, samples, prompt, sample_length, states)
            sec.images += images
            sec.tables += tables
            sec.samples += texts
            sec.shaded += shaded
        bar.update(1)
    counts = [
        plural(n, noun)
        for n, noun in ((len(exp.runs), "run"), (len(sec.images), "plot"), (len(sec.tables), "table"))
        if n
    ]  # only what the section shows: no "0 plots" above a Plots heading
    sec.intro = f"From `{exp.dir}`: " + (", ".join(counts) or "nothing to show") + "."
    return sec


def default_title(experiments: list[Experiment]) -> str:
    """'rnnlab report: demo', 'rnnlab report: demo, gru' or 'rnnlab report: 14 runs (demo, lstm-T5-seed0, ...)',
    from the runs' names; experiment output without runs is named by its directory."""
    names = [run.label for e in experiments for run in e.runs] or [Path(e.name).name for e in experiments]
    names = list(dict.fromkeys(names))
    if len(names) <= 3:
        return "rnnlab report: " + ", ".join(names)
    return f"rnnlab report: {len(names)} runs ({', '.join(names[:3])}, …)"


def assemble(paths: list[Path], title: str | None = None, samples: bool = True, prompt: str = "",
             sample_length: int | None = None, progress: bool = True, command: str = "", states: bool = True) -> Report:
    experiments = find_experiments(paths)
    names = _Names()
    rows = [run_row(run, exp.name) for exp in experiments for run in exp.runs]
    total = sum(len(e.runs) for e in experiments)
    with tqdm(
        total=total, desc="reading models", unit="run", disable=not progress or not total, file=sys.stderr
    ) as bar:
        # With one group, its table of runs would repeat the summary table.
        sections = [section(e, names, samples, prompt, sample_length, bar, len(experiments) > 1, states)
                    for e in experiments]
    return Report(title or default_title(experiments), time.strftime("%Y-%m-%d %H:%M"), [str(p) for p in paths],
                  Table("Summary", SUMMARY_HEADER, rows, SUMMARY_CAPTION), sections, command)


def build_report(paths: list[Path], out: Path, fmt: str | None = None, **options) -> Path:
    """Write the report for `paths` to `out` (HTML, or markdown + PNG files); returns `out`."""
    out = Path(out)
    fmt = fmt or ("md" if out.suffix.lower() == ".md" else "html")
    if fmt not in ("html", "md"):
        raise UserError(f"--format must be html or md, got '{fmt}'")
    if out.exists() and out.is_dir():
        out = out / ("README.md" if fmt == "md" else "report.html")
    report = assemble([Path(p) for p in paths], **options)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "html":
            from rnnlab.report.html import render

            out.write_text(render(report), encoding="utf-8")
        else:
            from rnnlab.report.markdown import write

            write(report, out)
    except OSError as e:
        raise UserError(f"cannot write the report to {out}: {e.strerror or e}") from None
    return out
