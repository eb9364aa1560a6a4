"""Training throughput when the cores are shared: the default job (`rnnlab
train`, preset grimm-char) at each thread setting, alone and beside other work.

Each cell trains the job for a fixed number of steps in a fresh `rnnlab train`
process (as a user runs it) and reads its tokens/s from the run's
summary.json (training steps only: start-up and the final evaluation are not
timed). The situations:

  alone          nothing else running
  busy loop      beside one process spinning `while True: pass`
  1 training     beside a second training process with the same setting
                 (started together with the timed one, running longer than it)
  2 training     beside two of them

Each cell is the setting's tokens/s as a fraction of the same setting alone;
the alone column also gives each setting against the fastest setting alone.
"beside 1 training" is also the pair's question: two jobs side by side finish
in 1 / fraction of the time one takes alone. The last line is `ratio=` for the
auto policy (`train.threads=0`) beside one competing training process.

Settings: a thread count or `auto`, optionally `:spin=N`, which sets
GOMP_SPINCOUNT=N for that process (300000 is what libgomp does when
OMP_WAIT_POLICY is unset: the thread pool as rnnlab ran it before the auto
policy). Without `:spin`, rnnlab's own wait policy applies (rnnlab/threads.py).

    .venv/bin/python benchmarks/contention.py             # 300 steps per cell
    .venv/bin/python benchmarks/contention.py --quick     # ≤ 3 minutes; last line: ratio=<number>
    .venv/bin/python benchmarks/contention.py --name contention_2x512 --set model.hidden=512 --steps 100
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402
from rnnlab import threads  # noqa: E402

SITUATIONS = {"alone": (0, 0), "busy loop": (1, 0), "1 training": (0, 1), "2 training": (0, 2)}
BUSY = "while True: pass"


def parse_setting(text: str) -> dict:
    count, _, option = text.partition(":")
    count = count.strip()
    if count != "auto" and not count.isdigit():
        raise SystemExit(f"contention.py: a setting is a thread count or 'auto', optionally ':spin=N'; got '{text}'")
    env = {}
    if option:
        key, _, value = option.partition("=")
        if key != "spin" or not value.isdigit():
            raise SystemExit(f"contention.py: unknown option '{option}' in setting '{text}' (spin=N)")
        env["GOMP_SPINCOUNT"] = value
    label = f"{count} thread{'s' if count != '1' else ''}" if count != "auto" else "auto (train.threads=0)"
    if env:
        label += f", GOMP_SPINCOUNT={env['GOMP_SPINCOUNT']}"
    return {"setting": text, "label": label, "threads": 0 if count == "auto" else int(count), "env": env}


def child_env(setting: dict) -> dict:
    """The environment a user's shell would give `rnnlab train`: no thread or
    wait-policy variables of ours, then the setting's own."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return {**env, **setting["env"]}


def train_command(args, setting: dict, steps: int, run_dir: Path, minutes: float = 0.0) -> list[str]:
    # max_minutes bounds a cell that collapses: its rate is then over the steps it did.
    sets = [*args.set, f"train.max_steps={steps}", f"train.threads={setting['threads']}", "train.samples=0",
            "train.eval_every=100000000", "train.checkpoint_every=0", f"train.max_minutes={minutes}"]
    return [sys.executable, "-m", "rnnlab", "train", "--preset", args.preset, *(a for s in sets for a in ("--set", s)),
            "--no-progress", "--overwrite", "--run-dir", str(run_dir)]


def measure(args, setting: dict, situation: str, tmp: Path) -> tuple[float, dict]:
    """(tokens/s, steps run at each thread count) of one timed run in `situation`."""
    busy, training = SITUATIONS[situation]
    env = child_env(setting)
    others = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    # Competitors run far longer than the timed job and are killed when it ends.
    others += [subprocess.Popen(train_command(args, setting, 100 * args.steps, tmp / f"other{i}"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(training)]
    run_dir = tmp / "timed"
    try:
        done = subprocess.run(train_command(args, setting, args.steps, run_dir, args.max_minutes), env=env,
                              capture_output=True, text=True)
    finally:
        for p in others:
            p.kill()
            p.wait()
    if done.returncode != 0:
        raise SystemExit(f"contention.py: rnnlab train failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    shutil.rmtree(run_dir, ignore_errors=True)
    return summary["tokens_per_s"], summary.get("threads", {})


def auto_choice(args) -> tuple[int, int]:
    """(the most threads the auto policy gives this job here, its work per step)."""
    from rnnlab.config import load_config
    from rnnlab.data.corpus import load_corpus
    from rnnlab.models import build_model
    from rnnlab.models.softmax import fit_output_to_corpus

    cfg = load_config(args.preset, None, args.set)
    corpus = load_corpus(cfg.data)
    fit_output_to_corpus(cfg.model, corpus)  # cutoffs="auto", as training does
    model = build_model(cfg.model, len(corpus.vocab))
    work = threads.model_work(model, cfg.train.batch_size)
    return threads.thread_ceiling(work, threads.usable_cores(child_env({"env": {}}))), work


def describe(counts: dict) -> str:
    """'1: 80 %, 2: 20 %': the share of steps run at each thread count."""
    total = sum(counts.values()) or 1
    return ", ".join(f"{k}: {100 * v / total:.0f} %" for k, v in sorted(counts.items(), key=lambda kv: int(kv[0])))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="≤ 3 minutes: 150 steps, settings 1,2,auto, one repeat")
    p.add_argument("--steps", type=int, default=0, help="training steps per timed run (default 300; quick 150)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per cell (median)")
    p.add_argument("--settings", default="", help="comma list (default 1,2:spin=300000,auto; quick 1,2,auto)")
    p.add_argument("--situations", default=",".join(SITUATIONS), help=f"comma list of: {', '.join(SITUATIONS)}")
    p.add_argument("--max-minutes", type=float, default=0.5,
                   help="time limit of a timed run (default 0.5): a collapsed cell is timed over the steps it did")
    p.add_argument("--preset", default="grimm-char")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting of the preset")
    p.add_argument("--name", default="contention", help="results file name (benchmarks/results/NAME.{json,md})")
    p.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results alone")
    args = p.parse_args()
    args.steps = args.steps or (150 if args.quick else 300)
    settings = [
        parse_setting(s) for s in (args.settings or ("1,2,auto" if args.quick else "1,2:spin=300000,auto")).split(",")
    ]
    situations = [s.strip() for s in args.situations.split(",")]
    unknown = [s for s in situations if s not in SITUATIONS]
    if unknown or "alone" not in situations:
        raise SystemExit(f"contention.py: --situations needs 'alone' and names from {', '.join(SITUATIONS)}; got "
                         f"{args.situations}")
    auto, work = auto_choice(args)
    print(f"{args.preset} {' '.join(args.set)}: {work:,} multiply-adds per time step; auto uses up to {auto} thread(s) "
          f"on {threads.usable_cores(child_env({'env': {}}))} usable cores", flush=True)
    rates = {(s["setting"], sit): [] for s in settings for sit in situations}
    used = {(s["setting"], sit): Counter() for s in settings for sit in situations}
    loads, start = [harness.load_average()], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rnnlab-contention-") as tmp:
        for r in range(args.repeats):
            for sit in situations:
                order = settings if r % 2 == 0 else settings[::-1]  # interleaved, the order flipping each repeat
                for s in order:
                    rate, counts = measure(args, s, sit, Path(tmp))
                    rates[(s["setting"], sit)].append(rate)
                    used[(s["setting"], sit)].update({int(k): v for k, v in counts.items()})
                    print(f"  {s['label']:<42} {sit:<11} {rate:9,.0f} tokens/s  threads {describe(counts)}", flush=True)
                loads.append(harness.load_average())
    minutes = (time.perf_counter() - start) / 60
    med = {k: statistics.median(v) for k, v in rates.items()}
    best_alone = max(med[(s["setting"], "alone")] for s in settings)
    headers = ["setting", "threads", "alone: tokens/s", "alone vs fastest",
               *(f"{sit}" for sit in situations if sit != "alone")]
    table, rows = [], []
    for s in settings:
        alone = med[(s["setting"], "alone")]
        fractions = {sit: med[(s["setting"], sit)] / alone for sit in situations}
        table.append([s["label"], s["threads"] or f"1-{auto}", f"{alone:,.0f}", f"{alone / best_alone:.2f}",
                      *(f"{fractions[sit]:.2f}" for sit in situations if sit != "alone")])
        rows.append({**{k: s[k] for k in ("setting", "label", "env")}, "threads": s["threads"] or f"1-{auto}",
                     "steps_at_threads": {sit: describe(used[(s["setting"], sit)]) for sit in situations},
                     "alone_tokens_per_s": round(alone),
                     "alone_vs_fastest": round(alone / best_alone, 3),
                     "fraction_of_alone": {sit: round(f, 3) for sit, f in fractions.items()},
                     "tokens_per_s": {sit: [round(x) for x in rates[(s["setting"], sit)]] for sit in situations}})
    harness.print_table(table, headers)
    auto_row = next((r for r in rows if r["setting"] == "auto"), None)
    ratio = auto_row["fraction_of_alone"].get("1 training") if auto_row else None
    m = harness.machine()
    notes = [f"Job: `rnnlab train --preset {args.preset}{''.join(' --set ' + s for s in args.set)}`, {args.steps} "
             f"steps per timed run (or as many as {args.max_minutes:g} min allow), {args.repeats} run(s) per cell "
             "(median), tokens/s of the training steps from summary.json. "
             f"The auto policy (rnnlab/threads.py) gives this job up to {auto} thread(s) ({work:,} multiply-adds per "
             f"time step on {threads.usable_cores(child_env({'env': {}}))} usable cores), as many as other processes "
             "leave free.",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}; load average before / after each "
             f"situation: {', '.join(f'{x:.2f}' for x in loads if x is not None)}; {minutes:.1f} min in all.",
             "Cells other than 'alone': tokens/s as a fraction of the same setting alone. Two jobs side by side take "
             "1 / ('1 training') times as long as one alone.",
             "GOMP_SPINCOUNT=300000 is libgomp's spin at a barrier when OMP_WAIT_POLICY is unset: PyTorch's thread "
             "pool as rnnlab used it before the auto policy; the other settings run with rnnlab's wait policy."]
    results = {"quick": args.quick, "preset": args.preset, "set": args.set, "steps": args.steps,
               "repeats": args.repeats, "auto_ceiling": auto, "work_per_step": work, "rows": rows, "ratio": ratio,
               "minutes": round(minutes, 2)}
    if not args.no_write:
        print(f"\nwrote {harness.write_results(args.name, results, table, headers, notes)}")
    if ratio is not None:
        print(f"ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
