"""What every benchmark shares: the machine's description and attainable
GEMM throughput, interleaved timing with medians, model FLOP counts, and the
results files (JSON + a markdown table with the exact command).

Interleaving: the machine is shared, so the paths being compared run in
alternating blocks inside one process; whatever else the machine is doing
slows both alike, and every figure is a median over blocks or repeats.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def data_path(name: str) -> Path | None:
    """../shared/data/NAME relative to the repository root, or None (the caller skips)."""
    path = (DATA / name).resolve()
    return path if path.exists() else None


def machine() -> dict:
    from rnnlab.devices import cpu_name

    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "avx512": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_bf16" in flags,
            "python": platform.python_version()}


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def gemm_gflops(dtype: torch.dtype, n: int = 1024, seconds: float = 2.0) -> float:
    """Median GFLOP/s of an n×n×n matmul: the machine's attainable rate, the
    yardstick for each path's achieved model FLOP/s."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    times, deadline = [], time.perf_counter() + seconds
    while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 50):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def gemm_throughput(quick: bool) -> dict:
    # bf16 gets a small matrix: without native bf16 it can be 100x slower.
    return {"fp32_gflops": round(gemm_gflops(torch.float32, 1024, 1.0 if quick else 3.0), 1),
            "bf16_gflops": round(gemm_gflops(torch.bfloat16, 256, 1.0 if quick else 3.0), 1)}


def lstm_lm_flops(vocab: int, embed: int, hidden: int, layers: int, decoder_macs: float) -> float:
    """Training FLOPs per token of an embedding → LSTM stack → decoder model:
    2 per multiply-add, ×3 for forward + backward (input and weight gradients).
    decoder_macs: multiply-adds per token of the output layer."""
    lstm = sum(4 * hidden * ((embed if l == 0 else hidden) + hidden) for l in range(layers))
    return 3 * 2 * (lstm + decoder_macs)


class Clock:
    """Accumulates wall time, CPU time and tokens for one path across
    interleaved blocks. With one thread, CPU time is what the path would take
    on an idle core: on a loaded machine it is the steadier of the two."""

    def __init__(self):
        self.seconds, self.cpu_seconds, self.tokens, self.block_rates = 0.0, 0.0, 0, []

    def add(self, seconds: float, tokens: int, cpu_seconds: float = 0.0) -> None:
        self.seconds += seconds
        self.cpu_seconds += cpu_seconds
        self.tokens += tokens
        self.block_rates.append(tokens / seconds)

    def time(self, fn, tokens: int) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        self.add(time.perf_counter() - wall, tokens, time.process_time() - cpu)

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def cpu_rate(self) -> float:
        return self.tokens / self.cpu_seconds if self.cpu_seconds else 0.0

    @property
    def median_rate(self) -> float:
        return statistics.median(self.block_rates) if self.block_rates else 0.0


def interleave(paths: dict, steps: int, block: int, tokens_per_step: int, bar=None) -> dict[str, Clock]:
    """Run every path's `steps(n)` for `steps` steps in alternating blocks of
    `block`, the order flipping each round (ABBA) so no path always goes first."""
    clocks = {name: Clock() for name in paths}
    order, done = list(paths.items()), 0
    while done < steps:
        n = min(block, steps - done)
        for name, path in order:
            clocks[name].time(lambda: path.steps(n), n * tokens_per_step)
            if bar is not None:
                bar.update(n)
        order.reverse()
        done += n
    return clocks


def time_option(base, ours, steps: int, tokens_per_step: int, repeats: int, threads: int, bar=None) -> dict:
    """One speed option: `repeats` pairs of timed blocks (baseline at the process's
    thread count, then ours at `threads`); medians of rate and of the ratios."""
    default = torch.get_num_threads()
    ratios, cpu_ratios, rates = [], [], []
    for _ in range(repeats):
        b, o = Clock(), Clock()
        b.time(lambda: base.steps(steps), steps * tokens_per_step)
        torch.set_num_threads(threads or default)
        try:
            o.time(lambda: ours.steps(steps), steps * tokens_per_step)
        finally:
            torch.set_num_threads(default)
        ratios.append(o.rate / b.rate)
        cpu_ratios.append(o.cpu_rate / b.cpu_rate)
        rates.append(o.rate)
        if bar is not None:
            bar.update(2 * steps)
    return {"rate": round(median(rates)), "ratio_vs_baseline": round(median(ratios), 2),
            "cpu_time_ratio_vs_baseline": round(median(cpu_ratios), 2), "steps": steps, "repeats": repeats}


def ablation_notes(rows: list[dict], unit: str, steps: int, repeats: int) -> list[str]:
    """The markdown lines for an ablation table (rows from `time_option`, rate under `unit`)."""
    key = unit.replace("/", "_per_")
    return ["", f"Each option alone ({unit} against baseline blocks run beside it; {steps} steps x {repeats} repeats, "
            "medians):", "", f"| option | --set | {unit} | ratio vs baseline | CPU-time ratio |",
            "|---|---|---|---|---|",
            *(f"| {r['option']} | {' '.join(r['set']) or '(preset)'} | {r[key]} | {r['ratio_vs_baseline']} | "
              f"{r['cpu_time_ratio_vs_baseline']} |" for r in rows)]


def publish(name: str, results: dict, table: list[list], headers: list[str], notes: list[str], quick: bool) -> None:
    """Write NAME.{json,md}; a full run also refreshes the Performance table in docs/performance.md."""
    print(f"\nwrote {write_results(name, results, table, headers, notes)}")
    if not quick and update_readme():
        print("updated the Performance table in docs/performance.md")


def block_ratio(fast: Clock, slow: Clock) -> float:
    """Median over interleaved block pairs of fast/slow throughput."""
    return statistics.median(f / s for f, s in zip(fast.block_rates, slow.block_rates))


def median(values) -> float:
    return statistics.median(values)


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv])


def write_results(name: str, results: dict, table: list[list], headers: list[str], notes: list[str]) -> Path:
    """benchmarks/results/NAME.json and NAME.md (table, notes, exact command);
    a --quick run writes NAME-quick.* so it never replaces a full run's figures."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    if results.get("quick"):
        name += "-quick"
    results = {"benchmark": name, "command": command_line(), "date": time.strftime("%Y-%m-%d %H:%M"),
               "machine": machine(), **results}
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    lines = [f"# {name}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table]
    m = results["machine"]
    lines += ["", *notes, "", f"CPU: {m['cpu']} ({m['cores']} cores, torch {m['torch']}, {m['cpu_capability']}); "
              f"measured {results['date']}.", "", "Command (from the repository root):", "", "```", results["command"],
              "```", ""]
    (RESULTS / f"{name}.md").write_text("\n".join(lines), encoding="utf-8")
    return RESULTS / f"{name}.json"


def print_table(table: list[list], headers: list[str]) -> None:
    rows = [headers, *[[str(c) for c in row] for row in table]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    for k, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if k == 0:
            print("  ".join("-" * w for w in widths))


# ------------------------------------------------------------------ docs/performance.md
README = Path(__file__).resolve().parents[1] / "docs" / "performance.md"  # the page that holds the Performance table
START, END = (
    "<!-- performance table: generated by `python benchmarks/harness.py` -->",
    "<!-- end of performance table -->",
)


def performance_table() -> str:
    """The Performance table of docs/performance.md, from the full runs' results files."""
    def load(name):
        path = RESULTS / f"{name}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    rows = ["| benchmark (same run, medians) | plain PyTorch loop | rnnlab | ratio | quality: plain → rnnlab "
            "| target |",
            "|---|---|---|---|---|---|"]
    word, char, gen = load("speed_word"), load("speed_char"), load("generation")
    if word:
        b, r = word["baseline"], word["rnnlab"]
        rows.append(f"| [word LM](../benchmarks/results/speed_word.md), Brown, 2×200 LSTM, batch 20×35, "
                    f"{word['epochs_per_repeat']:g} epoch | {b['tokens_per_s']:,.0f} tokens/s | "
                    f"{r['tokens_per_s']:,.0f} tokens/s | **{word['ratio']:.2f}×** (CPU time "
                    f"{word['cpu_time_ratio']:.2f}×) | valid ppl {b['valid_perplexity']:.1f} → "
                    f"{r['valid_perplexity']:.1f} ({word['perplexity_gap']:+.1%}) | ≥ 4.0×, ppl ≤ +2% |")
    if char:
        b, r = char["baseline"], char["rnnlab"]
        rows.append(f"| [char LM](../benchmarks/results/speed_char.md), Grimm, 2×128 LSTM, batch 64×30, "
                    f"{char['steps_per_repeat']} steps | {b['chars_per_s']:,.0f} chars/s | {r['chars_per_s']:,.0f} "
                    f"chars/s | **{char['ratio']:.2f}×** (CPU time {char['cpu_time_ratio']:.2f}×) | bits/char "
                    f"{b['valid_bpc']:.3f} → {r['valid_bpc']:.3f} ({char['bpc_gap']:+.3f}) | ≥ 1.5×, ±0.02 |")
    for m in (gen or {}).get("models", []):
        if "examples_loop" not in m:
            continue  # a results file from before the examples-loop baseline
        b, o, floor = m["examples_loop"], m["rnnlab"], 5 if m["unit"] == "chars" else 10
        rows.append(f"| [generation](../benchmarks/results/generation.md), {m['model']}, {m['tokens']} {m['unit']} "
                    f"| pytorch/examples generate.py loop: {b['tokens_per_s']:,.0f} {m['unit']}/s, p99 "
                    f"{b['latency_ms_p99']:.2f} ms | {o['tokens_per_s']:,.0f} {m['unit']}/s, p99 "
                    f"{o['latency_ms_p99']:.2f} ms | **{m['ratio']:.1f}×** | "
                    f"{'same weights' if m['same_weights_as_examples'] else 'same sizes'} | ≥ {floor}× |")
    return "\n".join(rows)


def update_readme() -> bool:
    """Rewrite the table between the markers of docs/performance.md (if it has them)."""
    if not README.is_file():
        return False
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    README.write_text(f"{head}{START}\n{performance_table()}\n{END}{tail}", encoding="utf-8")
    return True


if __name__ == "__main__":
    print(performance_table())
    print("docs/performance.md updated" if update_readme()
          else "docs/performance.md has no performance markers; nothing written")
