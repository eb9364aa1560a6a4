"""What the default job's network computes (issue 25; docs/guide/see-inside.md): the strongest unit
for each text feature, gate saturation, where the model is most surprised, on the first --length
characters of the run's validation split (rnnlab/states).

    .venv/bin/python benchmarks/see_inside.py --run runs/demo   # the run of `rnnlab train --preset grimm-char`

Writes benchmarks/results/see_inside.{json,md} and the figures see_inside_saturation.png and
see_inside_units.png beside them. As a control, the same analysis runs on the same network
untrained (its initial weights, seed 0): a correlation the trained network shows and the random
one matches is what picking the best of 3,072 units over one text gives anyway.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness  # noqa: E402
from rnnlab import console  # noqa: E402
from rnnlab.data.corpus import read_split_texts  # noqa: E402
from rnnlab.states.command import excerpt  # noqa: E402
from rnnlab.states.features import descriptions, text_features  # noqa: E402
from rnnlab.states.record import load_recordable, record_model  # noqa: E402
from rnnlab.states.saturation import plot_saturation, saturation  # noqa: E402
from rnnlab.states.surprise import summary  # noqa: E402
from rnnlab.states.units import strongest_units, top_contexts, unit_feature_table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LN2 = math.log(2)


def record(model, vocab, text: str, what: str):
    with console.counter(f"recording {what}", unit="token") as update:
        return record_model(model, vocab, text, top_k=5, progress=update)


def untrained(cfg, vocab):
    """The same architecture with its initial weights (seed 0): the control."""
    from rnnlab.models import build_model

    torch.manual_seed(0)
    return build_model(cfg.model, len(vocab)).eval()


def best_by_feature(rec, features) -> dict[str, dict]:
    table = unit_feature_table(rec, features)
    return {name: rows[0] for name, rows in strongest_units(table, 1).items()}, table


def strongest_in(table, feature: str, signals: tuple[str, ...]) -> dict:
    rows = [r for r in table if r["feature"] == feature and r["signal"] in signals]
    return max(rows, key=lambda r: abs(r["r"]))


def saturation_rows(rec) -> list[dict]:
    rows = []
    for row in saturation(rec):
        left, right = np.asarray(row["left"]), np.asarray(row["right"])
        rows.append({"layer": row["layer"], "signal": row["signal"], "low": row["low"], "high": row["high"],
                     "left": round(float(left.mean()), 4), "right": round(float(right.mean()), 4),
                     "either": round(float(left.mean() + right.mean()), 4),
                     "units_left": int((left > 0.5).sum()), "units_right": int((right > 0.5).sum()),
                     "units": len(left)})
    return rows


def plot_units(rec, features, picks: list[dict], out: Path, span: int = 600) -> Path:
    """Each picked unit's activation over the first `span` characters, with its feature beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(picks), 1, figsize=(11, 2.3 * len(picks)), squeeze=False)
    t = np.arange(min(span, len(rec)))
    newlines = [i for i in t if rec.tokens[i] == "\n"]
    for ax, pick in zip(axes[:, 0], picks, strict=True):
        values = rec.layers[pick["layer"]][pick["signal"]][t, pick["unit"]]
        feature = features[pick["feature"]][t]
        ax.plot(t, values, color="C3", lw=1, label=f"layer {pick['layer']} {pick['signal']}[{pick['unit']}]")
        twin = ax.twinx()
        twin.plot(t, feature, color="0.6", lw=1, ls="--", label=pick["feature"])
        twin.set_ylabel(pick["feature"], color="0.4")
        for x in newlines:
            ax.axvline(x, color="0.85", lw=0.6, zorder=0)
        ax.set_title(f"{pick['feature']}: layer {pick['layer']} {pick['signal']}[{pick['unit']}], "
                     f"r = {pick['r']:+.2f} over the whole excerpt (grey lines: newlines)", fontsize=10)
        ax.set_ylabel("activation", color="C3")
    axes[-1, 0].set_xlabel("character position in the validation text")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo", help="a trained grimm-char run (default: runs/demo)")
    parser.add_argument("--length", type=int, default=20_000, help="characters of the validation split")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with console.waiting("loading the run"):
        model, vocab, cfg, meta = load_recordable(args.run)
    text, _ = excerpt(read_split_texts(cfg.data)[0]["valid"], vocab.level, args.length)
    trained = record(model, vocab, text, "the trained network")
    control = record(untrained(cfg, vocab), vocab, text, "the untrained control")
    features = text_features(trained.tokens, trained.level)
    best, table = best_by_feature(trained, features)
    control_best, control_table = best_by_feature(control, features)
    for row in best.values():
        row["context_high"] = top_contexts(trained, row["layer"], row["signal"], row["unit"], k=1,
                                           sign=1 if row["r"] > 0 else -1)[0]["context"]
    widths = np.array([len(line) for line in text.split("\n") if line])
    line_units = {f: strongest_in(table, f, ("h", "c")) for f in ("line_position", "since_newline")}
    lp, sn = line_units["line_position"], line_units["since_newline"]
    sat, sat_control = saturation_rows(trained), saturation_rows(control)
    s = summary(trained, worst=10)
    word_start = features["word_start"][1:] > 0
    bits = trained.loss[1:] / LN2
    after_newline = np.array([trained.tokens[t - 1] == "\n" for t in range(1, len(trained))])
    position_bits = {"word start": float(bits[word_start].mean()),
                     "inside a word or other": float(bits[~word_start].mean()),
                     "after a newline": float(bits[after_newline].mean()), "all": float(bits.mean())}
    saturation_png = plot_saturation(trained, RESULTS / "see_inside_saturation.png")
    picks = [{**best["in_quotes"], "feature": "in_quotes"}, {**line_units["since_newline"], "feature": "since_newline"}]
    units_png = plot_units(trained, features, picks, RESULTS / "see_inside_units.png")
    about = descriptions(vocab.level)
    results = {
        "run": args.run, "step": meta["step"], "cell": trained.cell, "layers": len(trained.layers),
        "hidden": cfg.model.hidden, "tokens": len(trained), "source": f"the first {len(trained):,} characters of the "
        "validation split", "units_scanned": sum(v.shape[1] for layer in trained.layers for v in layer.values()),
        "lines": {"count": len(widths), "median_width": float(np.median(widths)), "max_width": int(widths.max())},
        "strongest": best, "control_strongest": control_best, "line_units": line_units,
        "saturation": sat, "control_saturation": sat_control,
        "surprise": {"bits_per_char": s["bits"], "control_bits_per_char": summary(control)["bits"],
                     "by_position": position_bits,
                     "worst": [{"position": w["position"], "token": w["token"], "bits": round(w["bits"], 2),
                                "expected": w["expected"][:3],
                                "before": "".join(trained.tokens[max(0, w["position"] - 30) : w["position"]])}
                               for w in s["worst"]]},
        "figures": [str(png.relative_to(RESULTS.parents[1])) for png in (saturation_png, units_png)],
    }
    headers = ["feature", "what it is", "strongest unit (trained)", "r", "strongest unit (untrained control)", "r"]
    rows = [[name, about[name], f"layer {row['layer']} {row['signal']}[{row['unit']}]", f"{row['r']:+.3f}",
             f"layer {control_best[name]['layer']} {control_best[name]['signal']}[{control_best[name]['unit']}]",
             f"{control_best[name]['r']:+.3f}"] for name, row in best.items()]
    notes = [f"Run `{args.run}` (checkpoint 'best', step {meta['step']}; {cfg.model.layers} × {cfg.model.hidden} "
             f"{trained.cell}) over {results['source']} ({results['units_scanned']:,} units scanned: every layer's "
             "h, c, i, f, g, o). Pearson's r of each unit with each feature; the strongest |r| per feature. "
             "Control: the same network with its initial weights (seed 0).",
             "", "Where the strongest unit is at its most extreme:", ""]
    notes += [f"- {name}: `{row['context_high']!r}`" for name, row in best.items()]
    notes += ["", f"Lines: {len(widths)} non-empty lines, median width {np.median(widths):g} characters, "
              f"at most {widths.max()} (Grimm is hard-wrapped). Strongest h or c unit for line_position: "
              f"layer {lp['layer']} {lp['signal']}[{lp['unit']}], r = {lp['r']:+.3f}; for since_newline: "
              f"layer {sn['layer']} {sn['signal']}[{sn['unit']}], r = {sn['r']:+.3f}.",
              "", "Gate saturation (fraction of all unit-steps below low / above high; units saturated more than half "
              "the time), trained and untrained control:", "",
              "| layer | signal | low / high | below | above | units mostly below | units mostly above | "
              "control below | control above |", "|---|---|---|---|---|---|---|---|---|"]
    notes += [f"| {r['layer']} | {r['signal']} | {r['low']:g} / {r['high']:g} | {r['left']:.4f} | {r['right']:.4f} | "
              f"{r['units_left']} of {r['units']} | {r['units_right']} of {r['units']} | {c['left']:.4f} | "
              f"{c['right']:.4f} |" for r, c in zip(sat, sat_control, strict=True)]
    notes += ["", f"Surprise: {s['bits']:.4f} bits/char on average over the excerpt (control "
              f"{results['surprise']['control_bits_per_char']:.4f}); by position: "
              + ", ".join(f"{k} {v:.4f}" for k, v in position_bits.items()) + ". The 10 most surprising characters:",
              "", "| bits | character | after | expected (p) |", "|---|---|---|---|"]
    notes += [f"| {w['bits']:.2f} | `{w['token']!r}` | `{w['before'][-30:]!r}` | "
              + ", ".join(f"`{e!r}` {p:.2f}" for e, p in w["expected"]) + " |" for w in results["surprise"]["worst"]]
    notes += ["", "Figures: [see_inside_saturation.png](see_inside_saturation.png), "
              "[see_inside_units.png](see_inside_units.png)."]
    harness.print_table(rows, headers)
    print(f"\nwrote {harness.write_results('see_inside', results, rows, headers, notes)}")


if __name__ == "__main__":
    main()
