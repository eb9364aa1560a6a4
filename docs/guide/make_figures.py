"""Make every figure and sample file that docs/guide/ shows, with rnnlab's own commands.

    python docs/guide/make_figures.py            # all of them (the Grimm model: ~3 min on 2 cores)
    python docs/guide/make_figures.py --no-train # skip what needs the trained Grimm model

Each output is written by the `rnnlab` command printed beside it, so a reader
can rerun one figure alone. Outputs go to docs/guide/figures/; the Grimm run
goes to runs/guide-grimm (reused when it is already there).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIGURES = Path("docs/guide/figures")  # relative to REPO, so the commands shown read as a reader types them
sys.path.insert(0, str(REPO))

from rnnlab.cli import main  # noqa: E402

GRIMM_RUN = Path("runs/guide-grimm")
SAMPLE_SEED = 0


def rnnlab(*args: str) -> str:
    """Run one rnnlab command, echo it, and return what it printed."""
    print("$ rnnlab " + shlex.join(args), flush=True)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(list(args))
    if status != 0:
        raise SystemExit(f"rnnlab {' '.join(args)} exited with {status}")
    return buffer.getvalue()


def cell_diagrams() -> None:
    for cell in ("rnn", "lstm", "gru"):
        rnnlab("plot", "cell", "--cell", cell, "--out", str(FIGURES / f"cell-{cell}.png"))
    rnnlab("plot", "cell", "--cell", "gru", "--gru-reset", "before", "--out", str(FIGURES / "cell-gru-before.png"))


def gradient_flow() -> None:
    table = rnnlab("gradflow", "--cells", "rnn_tanh,lstm,gru", "--steps", "100",
                   "--out", str(FIGURES / "gradflow.png"))
    (FIGURES / "gradflow.txt").write_text(table, encoding="utf-8")


def time_gate() -> None:
    rnnlab("plot", "kgate", "--tau", "5", "--r-on", "0.2", "--s", "1", "--out", str(FIGURES / "kgate.png"))


def gru_by_hand() -> None:
    (FIGURES / "gru-by-hand.txt").write_text(rnnlab("gradcheck", "--gru-by-hand"), encoding="utf-8")


def parameter_counts() -> None:
    out = [rnnlab("params", "--cell", cell, "--input", "200", "--hidden", "200", "--bias", bias)
           for cell in ("lstm", "gru") for bias in ("single", "double")]
    (FIGURES / "params.txt").write_text("".join(out), encoding="utf-8")


def grimm_samples() -> None:
    """The former default char LSTM (preset grimm-char-2x128), then samples at T = 0.5, 1 and 2."""
    if not (GRIMM_RUN / "summary.json").is_file():
        # One thread: the figure must not depend on the machine's core count, and
        # the guide is built on a machine that others share.
        rnnlab("train", "--preset", "grimm-char-2x128", "--run-dir", str(GRIMM_RUN), "--overwrite", "--no-progress",
               "--set", "train.threads=1")
    summary = json.loads((GRIMM_RUN / "summary.json").read_text(encoding="utf-8"))
    valid = summary["final"]["valid"]
    prompt = "The sleeping beauty is"
    rows = json.loads(rnnlab("generate", str(GRIMM_RUN), "--prompt", prompt, "--temperature", "0", "0.5", "1", "2",
                             "--length", "300", "--seed", str(SAMPLE_SEED), "--json"))
    lines = ["# Samples from the Grimm character LSTM", "",
             "Made by `python docs/guide/make_figures.py`: `rnnlab train --preset grimm-char-2x128 --set "
             f"train.threads=1` ({summary['steps']:,} steps, {summary['wall_seconds']:.0f} s here, validation "
             f"{valid['bpc']:.3f} bits/char), then", "",
             f"    rnnlab generate runs/guide-grimm --prompt \"{prompt}\" --temperature 0 0.5 1 2 --length 300 "
             f"--seed {SAMPLE_SEED}", ""]
    for row in rows:
        name = "greedy (T = 0)" if row["temperature"] == 0 else f"T = {row['temperature']:g}"
        lines += [f"## {name}", "", "```text", prompt + row["samples"][0], "```", ""]
    (FIGURES / "grimm-samples.md").write_text("\n".join(lines), encoding="utf-8")


def build(train: bool = True) -> None:
    os.chdir(REPO)
    FIGURES.mkdir(parents=True, exist_ok=True)
    cell_diagrams()
    gradient_flow()
    time_gate()
    gru_by_hand()
    parameter_counts()
    if train:
        grimm_samples()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-train", action="store_true", help="skip the Grimm model and its samples")
    build(train=not parser.parse_args().no_train)
