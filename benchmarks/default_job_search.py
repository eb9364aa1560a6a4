"""The search for the default job (preset grimm-char): the lowest Grimm
validation bits/char that 4 minutes of training buys on this machine.

Quality at a fixed number of steps does not depend on the thread count (the
same seed gives the same metrics at 1 and 2 threads), so the search runs in
two kinds of measurement:

  speed NAME...        each candidate alone, auto threads, a short run with no
                       evaluation: its steps/s, hence the steps 4 minutes buy
  quality NAME=STEPS   candidates side by side, one thread each, for that many
                       steps (the whole schedule): final validation bits/char

Candidates are overrides of the preset grimm-char-2x128 (the default job
before the search), listed in CANDIDATES. Every measurement is appended to
benchmarks/results/default_job_search.json with its command; `report`
rewrites default_job_search.md from it.

    .venv/bin/python benchmarks/default_job_search.py speed c128 c256
    .venv/bin/python benchmarks/default_job_search.py quality c256=7000 c384=5000
    .venv/bin/python benchmarks/default_job_search.py report
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402

BASE = "grimm-char-2x128"
NAME = "default_job_search"
CANDIDATES = {
    "c128": [],
    "c128-d1": ["model.dropout=0.1"],
    "c128-lr4": ["train.lr=4e-3"],
    "c128-lr4-s60": ["train.lr=4e-3", "train.seq_len=60"],
    "c128-lr4-b32": ["train.lr=4e-3", "train.batch_size=32"],
    "c160-d1-lr3": ["model.hidden=160", "model.dropout=0.1", "train.lr=3e-3"],
    "c192-d1": ["model.hidden=192", "model.dropout=0.1"],
    "c192-d1-lr3": ["model.hidden=192", "model.dropout=0.1", "train.lr=3e-3"],
    "c192-d2-lr3": ["model.hidden=192", "model.dropout=0.2", "train.lr=3e-3"],
    "c256-d1-lr3": ["model.hidden=256", "model.dropout=0.1", "train.lr=3e-3"],
    "c256-d2-lr3": ["model.hidden=256", "model.dropout=0.2", "train.lr=3e-3"],
    "c256-d3-lr3": ["model.hidden=256", "model.dropout=0.3", "train.lr=3e-3"],
    "c320-d3-lr3": ["model.hidden=320", "model.dropout=0.3", "train.lr=3e-3"],
    "c384-d3-lr3": ["model.hidden=384", "model.dropout=0.3", "train.lr=3e-3"],
    "c256-d2-lr4": ["model.hidden=256", "model.dropout=0.2", "train.lr=4e-3"],
    "c256-d1-lr4": ["model.hidden=256", "model.dropout=0.1", "train.lr=4e-3"],
    "c256-d2-lr6": ["model.hidden=256", "model.dropout=0.2", "train.lr=6e-3"],
    "c320-d3-lr4": ["model.hidden=320", "model.dropout=0.3", "train.lr=4e-3"],
    "c256-d1": ["model.hidden=256", "model.dropout=0.1"],
    "c256-d2": ["model.hidden=256", "model.dropout=0.2"],
    "c256-d2-s60": ["model.hidden=256", "model.dropout=0.2", "train.seq_len=60"],
    "c256-d2-b128": ["model.hidden=256", "model.dropout=0.2", "train.batch_size=128", "train.lr=3e-3"],
    "c384-d2": ["model.hidden=384", "model.dropout=0.2"],
    "c384-d3": ["model.hidden=384", "model.dropout=0.3"],
    "c512-d3": ["model.hidden=512", "model.dropout=0.3"],
    "c512-d3-b128": ["model.hidden=512", "model.dropout=0.3", "train.batch_size=128", "train.lr=3e-3"],
}
TIMING = ["train.samples=0", "train.eval_every=100000000", "train.checkpoint_every=0"]


def results_path() -> Path:
    return harness.RESULTS / f"{NAME}.json"


def load() -> dict:
    path = results_path()
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"speed": [], "quality": []}


def save(data: dict) -> None:
    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    data["machine"] = harness.machine()
    results_path().write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def train_command(overrides: list[str], run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "rnnlab", "train", "--preset", BASE, *(a for s in overrides for a in ("--set", s)),
            "--no-progress", "--overwrite", "--run-dir", str(run_dir)]


def shown(command: list[str]) -> str:
    return shlex.join([".venv/bin/python", *command[1:]])


def env() -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), e.get("PYTHONPATH", "")]))
    return e


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))


def speed(names: list[str], steps: int, extra: list[str]) -> None:
    data = load()
    with tempfile.TemporaryDirectory(prefix="rnnlab-search-") as tmp:
        for name in names:
            overrides = [*CANDIDATES[name], *extra, f"train.max_steps={steps}", "train.threads=0", *TIMING]
            command = train_command(overrides, Path(tmp) / name)
            before = harness.load_average()
            done = subprocess.run(command, env=env(), capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(done.stderr[-2000:])
            s = summary(Path(tmp) / name)
            entry = {"name": name, "set": [*CANDIDATES[name], *extra], "steps": s["steps"],  # fewer at a time limit
                     "steps_per_s": round(s["steps"] / s["wall_seconds"], 2), "tokens_per_s": round(s["tokens_per_s"]),
                     "bf16": s["bf16"], "load_before": before, "command": shown(command),
                     "date": time.strftime("%Y-%m-%d %H:%M")}
            data["speed"].append(entry)
            save(data)
            print(f"{name} {' '.join(extra)}: {entry['steps_per_s']} steps/s ({entry['tokens_per_s']:,} tokens/s, "
                  f"bf16 {s['bf16']}); 4 min = {round(240 * entry['steps_per_s'])} steps", flush=True)


def quality(items: list[str], out: Path, extra: list[str]) -> None:
    """Train the candidates side by side, one thread each; record final valid bits/char."""
    jobs = []
    for item in items:
        name, _, steps = item.partition("=")
        steps = int(steps)
        overrides = [*CANDIDATES[name], *extra, f"train.max_steps={steps}", f"train.eval_every={max(steps // 5, 1)}",
                     "train.threads=1"]
        run_dir = out / f"{name}-{steps}"
        command = train_command(overrides, run_dir)
        jobs.append((name, steps, overrides, run_dir, command,
                     subprocess.Popen(command, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True)))
    for name, steps, _overrides, run_dir, command, proc in jobs:
        _, err = proc.communicate()
        if proc.returncode:
            print(f"{name}: failed: {err[-1000:]}")
            continue
        s = summary(run_dir)
        metrics = harness_metrics(run_dir)
        curve = [(r["step"], round(r["bpc"], 4)) for r in metrics if r.get("split") == "valid"]
        train_bpc = [r["bpc"] for r in metrics if r.get("split") == "train"]
        entry = {"name": name, "set": [*CANDIDATES[name], *extra], "steps": steps,
                 "valid_bpc": round(s["final"]["valid"]["bpc"], 4),
                 "valid_accuracy": round(s["final"]["valid"]["accuracy"], 4),
                 "train_bpc_last_eval": round(train_bpc[-1], 4) if train_bpc else None,
                 "parameters": s["parameters"], "valid_curve": curve, "side_by_side_wall_s": round(s["wall_seconds"]),
                 "run_dir": str(run_dir), "command": shown(command), "date": time.strftime("%Y-%m-%d %H:%M")}
        data = load()
        data["quality"].append(entry)
        save(data)
        print(f"{name} {steps} steps: valid {entry['valid_bpc']} bits/char (train {entry['train_bpc_last_eval']}); "
              f"curve {curve}", flush=True)


def harness_metrics(run_dir: Path) -> list[dict]:
    return [
        json.loads(line)
        for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def report(notes: list[str]) -> None:
    data = load()
    def key(e):
        return e["name"], tuple(x for x in e["set"] if not x.startswith("train.max_minutes"))

    rates = {}
    for e in data["speed"]:
        rates[key(e)] = e["steps_per_s"]  # the latest measurement wins
    lines = [f"# {NAME}", "", "The default job's search: candidates are overrides of the preset "
             f"`{BASE}`; quality runs train side by side with one thread each (the same metrics as alone), "
             "speed runs alone with the auto thread policy on a quiet machine.", "",
             "| candidate | settings | steps | valid bits/char | train bits/char | parameters | alone: steps/s | "
             "minutes of training (steps / steps/s) |", "|---|---|---|---|---|---|---|---|"]
    for e in sorted(data["quality"], key=lambda e: e["valid_bpc"]):
        rate = rates.get(key(e))
        minutes = f"{e['steps'] / rate / 60:.2f}" if rate else "—"
        lines.append(f"| {e['name']} | {' '.join(e['set']) or '(as ' + BASE + ')'} | {e['steps']} | "
                     f"**{e['valid_bpc']:.3f}** | "
                     f"{e['train_bpc_last_eval'] if e['train_bpc_last_eval'] is not None else '—'} | "
                     f"{e['parameters']:,} | {rate or '—'} | {minutes} |")
    lines += ["", "Speed runs (alone, auto threads, no evaluation):", "",
              "| candidate | settings | steps | steps/s | tokens/s | bf16 | load before |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {e['name']} | {' '.join(e['set'])} | {e['steps']} | {e['steps_per_s']} | {e['tokens_per_s']:,} | "
              f"{e['bf16']} | {e['load_before']:.2f} |" for e in data["speed"]]
    m = data.get("machine", harness.machine())
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}.", *notes, "",
              "Commands (from the repository root; the run directory was a temporary one):", "", "```",
              *(e["command"] for e in data["speed"] + data["quality"]), "```", ""]
    (harness.RESULTS / f"{NAME}.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {harness.RESULTS / (NAME + '.md')}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["speed", "quality", "report"])
    p.add_argument("items", nargs="*", help="speed: candidate names; quality: NAME=STEPS")
    p.add_argument("--steps", type=int, default=250, help="speed: steps per timing run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="added to every candidate")
    p.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "rnnlab-search"), help="quality: run directories")
    p.add_argument("--note", action="append", default=[], help="report: a line of notes")
    args = p.parse_args()
    unknown = [i.partition("=")[0] for i in args.items if i.partition("=")[0] not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidates {unknown}; known: {', '.join(CANDIDATES)}")
    if args.what == "speed":
        speed(args.items, args.steps, args.set)
    elif args.what == "quality":
        quality(args.items, Path(args.out), args.set)
    else:
        report(args.note)


if __name__ == "__main__":
    main()
