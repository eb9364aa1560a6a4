"""Gate saturation (Karpathy, Johnson & Fei-Fei 2016, figure 3): how often each unit's gate is
almost shut or almost fully open.

For a gate unit with activations a_t over the recording's T steps,

    left  = #{t : a_t < low} / T       right = #{t : a_t > high} / T

Signals in [0, 1] (kind "gate": sigmoid gates, the Phased LSTM's time gate) use low = 0.1,
high = 0.9, the paper's thresholds. Signals in [−1, 1] (kind "tanh": the LSTM's g, the GRU's n,
the MGU's h̃, h of the tanh cells) use the same thresholds carried over by a = 2 s − 1: low = −0.8,
high = 0.8. Unbounded signals (kind "free": the cell state c, relu or the minimal cells' h and
h̃) are not reported: they have no saturation. Kinds come from the cell table (Cell.signals).

In the plot each panel is one signal of one layer (layers numbered from 0, as the parameters
rnn.layers.0, ... and the JSON are), each dot one unit (x: left-saturated
fraction, y: right-saturated fraction): a unit on the x axis rarely opens, one on the y axis
rarely closes, one near the diagonal x + y = 1 is always saturated, switching; one near the
origin lives in the middle. Under each panel, the histogram of all its activations.
"""

from __future__ import annotations

from pathlib import Path

from rnnlab.states.record import Recording

THRESHOLDS = {"gate": (0.1, 0.9), "tanh": (-0.8, 0.8)}  # (low, high) per kind of signal


def saturation(rec: Recording) -> list[dict]:
    """One row per layer and bounded signal: {"layer", "signal", "kind", "low", "high", "left": [H],
    "right": [H]}, the per-unit fractions of steps below low and above high."""
    rows = []
    for l, signals in enumerate(rec.layers):
        for name, values in signals.items():
            kind = rec.kinds.get(name, "free")
            if kind not in THRESHOLDS:
                continue
            low, high = THRESHOLDS[kind]
            rows.append({"layer": l, "signal": name, "kind": kind, "low": low, "high": high,
                         "left": (values < low).mean(axis=0).tolist(), "right": (values > high).mean(axis=0).tolist()})
    return rows


def plot_saturation(rec: Recording, out: Path, rows: list[dict] | None = None) -> Path:
    """The saturation scatter (one panel per layer and signal) over a histogram of the activations; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = saturation(rec) if rows is None else rows
    if not rows:
        raise ValueError("the recording has no bounded signal (gate or tanh) to plot")
    layers = sorted({row["layer"] for row in rows})
    columns = max(sum(row["layer"] == l for row in rows) for l in layers)
    fig, axes = plt.subplots(2 * len(layers), columns, figsize=(2.6 * columns, 4.6 * len(layers)), squeeze=False,
                             gridspec_kw={"height_ratios": [2.2, 1] * len(layers)})
    for ax in axes.flat:
        ax.set_visible(False)
    for l_index, l in enumerate(layers):
        for c, row in enumerate(r for r in rows if r["layer"] == l):
            scatter, histogram = axes[2 * l_index, c], axes[2 * l_index + 1, c]
            scatter.set_visible(True)
            histogram.set_visible(True)
            scatter.plot([0, 1], [1, 0], color="0.8", lw=0.8, zorder=0)
            scatter.scatter(row["left"], row["right"], s=10, alpha=0.6, color=f"C{l_index}")
            scatter.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), aspect="equal",
                        title=f"layer {l}: {row['signal']}", xlabel=f"fraction < {row['low']:g}",
                        ylabel=f"fraction > {row['high']:g}")
            low, high = (0, 1) if row["kind"] == "gate" else (-1, 1)
            histogram.hist(rec.layers[l][row["signal"]].ravel(), bins=40, range=(low, high), color=f"C{l_index}")
            histogram.set(yticks=[], xlabel=row["signal"])
            for threshold in (row["low"], row["high"]):
                histogram.axvline(threshold, color="0.5", lw=0.8, ls="--")
    fig.suptitle(f"gate saturation over {len(rec)} {'characters' if rec.level == 'char' else 'words'}")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
