"""The NumPy backend trains as well as the PyTorch one: grimm-char-2x128, same seed
and settings, N steps each; validation bits/char and wall time of both.

    python benchmarks/numpy_training.py            # 1,500 steps each (the issue's acceptance run)
    python benchmarks/numpy_training.py --quick    # 150 steps each

Writes benchmarks/results/numpy_training.{json,md}. Target: |Δ bits/char| ≤ 0.05.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

from rnnlab.config import load_config
from rnnlab.trainer import train_config

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--quick", action="store_true", help="150 steps")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    steps = 150 if args.quick else args.steps
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("torch", "numpy"):
            cfg = load_config("grimm-char-2x128", None, [f"model.backend={backend}", f"train.max_steps={steps}",
                                                   f"train.eval_every={steps}", "train.samples=0",
                                                   f"train.threads={args.threads}"])
            summary = train_config(cfg, Path(tmp) / backend, progress=sys.stderr.isatty())
            valid = summary["final"]["valid"]
            rows.append({"backend": backend, "steps": steps, "valid_bpc": valid["bpc"],
                         "valid_accuracy": valid["accuracy"], "wall_seconds": summary["wall_seconds"],
                         "chars_per_s": summary["tokens_per_s"]})
            print(f"{backend}: {valid['bpc']:.4f} bits/char after {steps} steps, {summary['wall_seconds']:.0f} s")
    delta = rows[1]["valid_bpc"] - rows[0]["valid_bpc"]
    result = {"rows": rows, "delta_bpc": delta, "target": 0.05, "met": abs(delta) <= 0.05,
              "time_ratio_numpy_over_torch": rows[1]["wall_seconds"] / rows[0]["wall_seconds"],
              "command": "python " + shlex.join(sys.argv)}
    name = "numpy_training_quick" if args.quick else "numpy_training"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# NumPy vs PyTorch backend: grimm-char-2x128, {steps} steps, same seed", "",
             f"`{result['command']}`", "",
             "| backend | valid bits/char | accuracy | wall s | chars/s |", "|---|---|---|---|---|"]
    lines += [f"| {r['backend']} | {r['valid_bpc']:.4f} | {r['valid_accuracy']:.4f} | {r['wall_seconds']:.0f} | "
              f"{r['chars_per_s']:.0f} |" for r in rows]
    lines += ["",
              f"Δ bits/char (numpy − torch): {delta:+.4f} (target |Δ| ≤ 0.05: {'met' if result['met'] else 'missed'}); "
              f"NumPy took {result['time_ratio_numpy_over_torch']:.2f}× PyTorch's wall time ({args.threads} thread(s) "
              "each)."]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(f"delta_bpc={delta:+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
