"""Training-curve figures in one house style.

Every figure is drawn with matplotlib's object API (`Figure`, no pyplot), so
nothing depends on a display or on pyplot's global state, and inside
`styled()` so all plots share fonts, colours and grid. Character models are
scored in bits/char (linear axis); word models in perplexity, on a log axis
when it spans more than a factor of two (early perplexities are huge).
"""

from __future__ import annotations

import io
import math
from contextlib import contextmanager
from pathlib import Path

import matplotlib
from cycler import cycler
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from rnnlab.report.collect import Run, read_run

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"]
SPLIT_STYLE = {"train": {"linestyle": "--", "alpha": 0.8}, "valid": {"linestyle": "-"}, "test": {"linestyle": ":"}}
STYLE = {
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.labelsize": 9.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=COLORS),
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "lines.linewidth": 1.6,
    "lines.markersize": 3.5,
    "savefig.dpi": 110,
    "savefig.bbox": "tight",
    "savefig.facecolor": "white",
}


@contextmanager
def styled():
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(ncols: int = 1, width: float = 4.2, height: float = 3.3) -> tuple[Figure, list]:
    with styled():
        fig = Figure(figsize=(width * ncols, height), layout="constrained")
        axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    with styled():
        fig.savefig(buffer, format="png")
    return buffer.getvalue()


def save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(fig))
    return path


def _score_axis(ax, runs: list[Run], values: list[float]) -> None:
    name = runs[0].score_name
    ax.set_ylabel(name + (" (log scale)" if runs[0].level == "word" and _spans(values) else ""))
    if runs[0].level == "word" and _spans(values):
        ax.set_yscale("log")


def _spans(values: list[float], factor: float = 2.0) -> bool:
    finite = [v for v in values if v > 0 and math.isfinite(v)]
    return bool(finite) and max(finite) / min(finite) > factor


def _plain_number(value: float, _pos=None) -> str:
    """A tick label with no more digits than it needs: 0.5, 2, 1.25 (never 0.63900)."""
    return f"{value:.6g}"


def readable_axis(axis, start_at_zero: bool = False) -> None:
    """At most ~6 ticks at round values, labelled without trailing zeros or an offset. With
    `start_at_zero` (time, tokens) the axis starts at 0, so one evaluation or a short run
    does not zoom into a sliver of its range (the overlapping 0.63900 0.63925 ... ticks)."""
    axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    axis.set_major_formatter(FuncFormatter(_plain_number))
    if start_at_zero:
        ax = axis.axes
        x = axis is ax.xaxis
        top = (ax.dataLim.x1 if x else ax.dataLim.y1) if ax.has_data() else 0.0
        top = top * 1.05 if math.isfinite(top) and top > 0 else 1.0
        (ax.set_xlim if x else ax.set_ylim)(0, top)


def time_axis(ax, seconds: list[float]) -> tuple[float, str]:
    """The unit for wall-clock times on `ax`'s x axis: seconds below 2 minutes, minutes below
    2 hours, hours beyond. Returns (divisor, unit name) to apply to the values."""
    longest = max((s for s in seconds if math.isfinite(s)), default=0.0)
    divisor, unit = (1.0, "seconds") if longest < 120 else (60.0, "minutes") if longest < 7200 else (3600.0, "hours")
    ax.set_xlabel(f"wall-clock time ({unit})")
    return divisor, unit


def _empty(ax, text: str = "no evaluations recorded") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777")


def _plot_score_and_accuracy(ax_score, ax_acc, run: Run, curve: list[dict], x: str, color: str, label: str,
                             split: str) -> list[float]:
    """One curve of `run` (its records of one split) against record[x]: the headline score
    on ax_score, the accuracy in percent on ax_acc. Returns the scores plotted."""
    xs, scores = [r[x] for r in curve], [run.score(r) for r in curve]
    ax_score.plot(xs, scores, marker="o", color=color, label=label, **SPLIT_STYLE[split])
    ax_acc.plot(xs, [100 * r["accuracy"] for r in curve], marker="o", color=color, label=label, **SPLIT_STYLE[split])
    return scores


def run_curves_figure(run: Run) -> Figure:
    """One run: its headline score and its accuracy against training steps,
    for every split it was evaluated on."""
    fig, (ax_score, ax_acc) = new_figure(2)
    values = []
    for split in ("train", "valid", "test"):
        curve = run.curve(split)
        if not curve:
            continue
        color = {"train": COLORS[0], "valid": COLORS[1], "test": COLORS[2]}[split]
        values += _plot_score_and_accuracy(ax_score, ax_acc, run, curve, "step", color, split, split)
    if not values:
        _empty(ax_score)
        _empty(ax_acc)
    else:
        ax_score.legend()
        ax_acc.legend()
    _score_axis(ax_score, [run], values)
    ax_score.set_title(f"{run.label}: {run.score_name}")
    ax_acc.set_title(f"{run.label}: next-token accuracy")
    ax_acc.set_ylabel("top-1 accuracy (%)")
    for ax in (ax_score, ax_acc):
        ax.set_xlabel("training step")
        readable_axis(ax.xaxis, start_at_zero=True)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))  # steps are whole numbers
        if ax is ax_acc or ax.get_yscale() == "linear":
            readable_axis(ax.yaxis)
    return fig


def group_curves_figure(runs: list[Run], title: str = "") -> Figure:
    """Several runs of one kind (char or word): validation score (solid) and
    training score (dashed) against tokens seen, and validation score against
    wall-clock time, so both sample efficiency and speed can be compared."""
    fig, (ax_tokens, ax_time) = new_figure(2)
    values, timed = [], []
    for i, run in enumerate(runs):
        color = COLORS[i % len(COLORS)]
        for split in ("train", "valid"):
            curve = run.curve(split)
            if not curve:
                continue
            scores = [run.score(r) for r in curve]
            values += scores
            tokens = [r["step"] * run.tokens_per_step / 1e6 for r in curve]
            label = run.label if split == "valid" else None
            ax_tokens.plot(tokens, scores, color=color, label=label, **SPLIT_STYLE[split])
            if split == "valid":
                timed.append(([r.get("elapsed", math.nan) for r in curve], scores, color, run.label))
    divisor, _ = time_axis(ax_time, [s for seconds, *_ in timed for s in seconds])
    for seconds, scores, color, label in timed:
        ax_time.plot([s / divisor for s in seconds], scores, color=color, marker="o", label=label)
    if not values:
        _empty(ax_tokens)
        _empty(ax_time)
    else:
        # Label the line styles once, with proxies that carry no colour.
        ax_tokens.plot([], [], color="#555", label="valid (solid), train (dashed)", linestyle="-")
        ax_tokens.legend(loc="best")
        ax_time.legend(loc="best")
    _score_axis(ax_tokens, runs, values)
    _score_axis(ax_time, runs, values)
    ax_tokens.set_xlabel("training tokens (millions)")
    for ax in (ax_tokens, ax_time):
        readable_axis(ax.xaxis, start_at_zero=True)
        if ax.get_yscale() == "linear":
            readable_axis(ax.yaxis)
    ax_tokens.set_title(f"{title + ': ' if title else ''}{runs[0].score_name} vs tokens seen")
    ax_time.set_title(f"{title + ': ' if title else ''}validation {runs[0].score_name} vs time")
    return fig


def epoch_curves_figure(runs: list[Run], splits: tuple[str, ...] = ("train", "valid"), title: str = "",
                        linear: bool = False) -> Figure:
    """Runs side by side against epochs: the headline score and the accuracy,
    one colour per run and one line style per split (train dashed, valid solid,
    test dotted). `linear`: no log axis even where perplexity spans a lot."""
    fig, (ax_score, ax_acc) = new_figure(2)
    values = []
    for i, run in enumerate(runs):
        color = COLORS[i % len(COLORS)]
        for split in splits:
            curve = run.curve(split)
            if not curve:
                continue
            label = f"{run.label} ({split})" if len(splits) > 1 else run.label
            values += _plot_score_and_accuracy(ax_score, ax_acc, run, curve, "epoch", color, label, split)
    if not values:
        _empty(ax_score)
        _empty(ax_acc)
    else:
        ax_acc.legend()
    if not linear:
        _score_axis(ax_score, runs, values)
    else:
        ax_score.set_ylabel(runs[0].score_name)
    prefix = f"{title}: " if title else ""
    ax_score.set_title(f"{prefix}{runs[0].score_name} per epoch")
    ax_acc.set_title(f"{prefix}next-token accuracy per epoch")
    ax_acc.set_ylabel("top-1 accuracy (%)")
    for ax in (ax_score, ax_acc):
        ax.set_xlabel("epoch")
    return fig


def plot_run_curves(run_dir: Path) -> Path:
    """Write RUN_DIR/plots/curves.png (called when training ends) and return its path."""
    run = read_run(Path(run_dir))
    return save(run_curves_figure(run), Path(run_dir) / "plots" / "curves.png")
