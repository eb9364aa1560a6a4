"""Data-parallel training throughput: 1 process vs 2 processes (torch.distributed, gloo).

Every variant trains the grimm-char model (2x128 char LSTM, global batch
64 x 30 tokens, Adam) for the same number of steps through the real
command line, and reports the training loop's tokens/s from the run's
summary.json (start-up, rendezvous and the final evaluation are excluded;
periodic evaluation, samples and checkpoints are switched off):

    1 process x 1 thread      the baseline
    1 process x 2 threads     intra-op parallelism on the same cores
    2 processes x 1 thread    `rnnlab train --nproc 2`: 32 streams each, DDP averages gradients

Variants run one after another, repeated --repeats times in rotation; the
median is reported, and every figure is a ratio against the baseline of the
same invocation. On a 2-core machine the two processes can at best double
the baseline, and only if nothing else runs: the load average at the start
is recorded because other jobs on shared cores depress every ratio.

    python benchmarks/distributed.py --quick     # 60 steps, 1 repeat
    python benchmarks/distributed.py             # 300 steps, 3 repeats
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [  # (name, processes, threads per process)
    ("1 process x 1 thread", 1, 1),
    ("1 process x 2 threads", 1, 2),
    ("2 processes x 1 thread", 2, 1),
]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="60 steps, 1 repeat")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--preset", default="grimm-char")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/distributed"),
                    help="path prefix for the .json and .md results ('' to skip)")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 60, 1
    return args


def run_variant(preset: str, steps: int, nproc: int, threads: int, run_dir: Path) -> float:
    cmd = [sys.executable, "-m", "rnnlab", "train", "--preset", preset, "--run-dir", str(run_dir), "--overwrite",
           "--no-progress", "--nproc", str(nproc), "--set", f"train.max_steps={steps}",
           "--set", f"train.eval_every={10 * steps}", "--set", "train.checkpoint_every=0", "--set", "train.samples=0",
           "--set", f"train.threads={threads}"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"benchmark run failed ({shlex.join(cmd)}):\n{p.stderr[-2000:]}")
    return json.loads((run_dir / "summary.json").read_text())["tokens_per_s"]


def main(argv=None):
    args = parse_args(argv)
    load = os.getloadavg()[0]
    rates: dict[str, list[float]] = {name: [] for name, _, _ in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, nproc, threads in VARIANTS:
                rates[name].append(run_variant(args.preset, args.steps, nproc, threads, Path(tmp) / "run"))
    base = statistics.median(rates[VARIANTS[0][0]])
    rows = [{"variant": name, "processes": nproc, "threads_per_process": threads,
             "tokens_per_s": statistics.median(rates[name]), "all_tokens_per_s": rates[name],
             "speedup": statistics.median(rates[name]) / base} for name, nproc, threads in VARIANTS]

    header = f"{'variant':<24} {'tokens/s':>10} {'vs 1x1':>7}"
    lines = [header, "-" * len(header)]
    lines += [f"{r['variant']:<24} {r['tokens_per_s']:>10.0f} {r['speedup']:>6.2f}x" for r in rows]
    print("\n".join(lines))
    command = shlex.join(["python", "benchmarks/distributed.py", *(sys.argv[1:] if argv is None else argv)])
    machine = {"cpus": os.cpu_count(), "load_average_at_start": round(load, 2), "python": platform.python_version(),
               "torch": __import__("torch").__version__, "platform": platform.platform()}
    result = {"command": command, "preset": args.preset, "steps": args.steps, "repeats": args.repeats,
              "machine": machine, "results": rows}
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        md = [f"# Data-parallel training throughput ({args.preset})", "",
              f"Command: `{command}` ({args.steps} steps per run, median of {args.repeats}).", "",
              f"Machine: {machine['cpus']} CPUs, load average {machine['load_average_at_start']} at the start "
              f"(other jobs share these cores), torch {machine['torch']}.", "",
              "| variant | tokens/s | vs 1 process x 1 thread |", "| --- | ---: | ---: |"]
        md += [f"| {r['variant']} | {r['tokens_per_s']:.0f} | {r['speedup']:.2f}x |" for r in rows]
        md += ["", "Tokens/s is the global batch (64 x 30 tokens) per second of the training loop, from each run's "
               "summary.json; start-up, rendezvous and the final evaluation are excluded. With other jobs on "
               "the same cores, a process's intra-op threads wait for each other at every operation, so "
               "'1 process x 2 threads' is the variant that other load hurts most."]
        out.with_suffix(".md").write_text("\n".join(md) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
