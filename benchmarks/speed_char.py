"""Character-level training speed: the 2x128 job (preset `grimm-char-2x128`,
the default job before the 4-minute search) against the equivalent plain
`nn.LSTM` loop.

Both train a 2×128 LSTM on the bundled Grimm text, batch 64 × 30 characters,
Adam lr 2e-3 with the preset's cosine decay to 2e-4, clip 5, for the same
number of steps on the same batches, in alternating blocks inside one process.
The baseline is the loop anyone would write (nn.Embedding → nn.LSTM →
nn.Linear, cross-entropy, zero_grad/backward/clip/step, loss.item() each
step); rnnlab's path is `Trainer.train_next_batch` of that preset.
Afterwards both are scored with the same bits/char on the validation text.

    .venv/bin/python benchmarks/speed_char.py            # the default job's 5000 steps per path
    .venv/bin/python benchmarks/speed_char.py --quick    # ≤ 3 minutes; last line: ratio=<number>
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness  # noqa: E402
from rnnlab.config import load_config  # noqa: E402
from rnnlab.data.batching import StreamBatcher  # noqa: E402
from rnnlab.evaluate import evaluate  # noqa: E402
from rnnlab.trainer import Trainer  # noqa: E402


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, state):
        h, state = self.lstm(self.embed(x), state)
        return self.out(h), state


class Baseline:
    def __init__(self, vocab: int, batcher: StreamBatcher, seed: int, steps: int, lr=2e-3, min_lr=2e-4, clip=5.0):
        torch.manual_seed(seed)
        self.model, self.batcher, self.clip = CharLSTM(vocab), batcher, clip
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=steps, eta_min=min_lr)
        self.state, self.index = self.zero_state(), 0

    def zero_state(self):
        return tuple(torch.zeros(2, self.batcher.batch_size, 128) for _ in range(2))

    def steps(self, n: int) -> None:
        self.model.train()
        for _ in range(n):
            if self.index == self.batcher.steps_per_epoch:
                self.index, self.state = 0, self.zero_state()
            x, y = self.batcher.batch(0, self.index)
            self.index += 1
            logits, state = self.model(x, self.state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            self.optimizer.step()
            self.schedule.step()
            self.state = tuple(s.detach() for s in state)
            loss.item()

    @torch.no_grad()
    def evaluate(self, data, batch_size: int, seq_len: int) -> float:
        self.model.eval()
        batcher = StreamBatcher(data, batch_size, seq_len)
        state = tuple(torch.zeros(2, batch_size, 128) for _ in range(2))
        nll, tokens = 0.0, 0
        for x, y in batcher:
            logits, state = self.model(x, state)
            nll += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            tokens += y.numel()
        return nll / tokens / math.log(2)


class Rnnlab:
    def __init__(self, overrides: list[str], seed: int, steps: int, run_dir: Path):
        # Threads pinned to the process's count, the baseline's: auto would follow the load (rnnlab/threads.py).
        self.cfg = load_config("grimm-char-2x128", None,
                               [f"train.seed={seed}", f"train.threads={torch.get_num_threads()}",
                                                          f"train.max_steps={steps}", "train.samples=0",
                                                          *overrides])
        self.trainer = Trainer(self.cfg, run_dir, progress=False, overwrite=True)

    def steps(self, n: int) -> None:
        tr = self.trainer
        tr.model.train()
        for _ in range(n):
            tr.train_next_batch()

    def evaluate(self, data, batch_size: int, seq_len: int) -> float:
        return evaluate(self.trainer.model, data, batch_size, seq_len)["bpc"]


def run_ablation(args, steps: int, repeats: int, tmp: Path, bar) -> list[dict]:
    variants = [
        ("the preset: fused nn.LSTM kernel + bf16 autocast where native (train.bf16=auto)", [], None),
        ("float32 only (train.bf16=off): the baseline's arithmetic in rnnlab's trainer", ["train.bf16=off"], None),
        ("explicit cell equations, float32 (model.impl=explicit)", ["model.impl=explicit", "train.bf16=off"], None),
        ("the preset on 1 thread (train.threads=1)", [], 1),
    ]
    vocab_size = None
    rows = []
    for label, overrides, n_threads in variants:
        # one directory per run (its lock)
        ours = Rnnlab([*args.set, *overrides], 0, 5000, tmp / f"ablation-{len(rows)}")
        vocab_size = vocab_size or len(ours.trainer.vocab)
        base = Baseline(vocab_size, StreamBatcher(ours.trainer.source.corpus.train, 64, 30), 0, 5000)
        ours.steps(2)
        base.steps(2)
        timed = harness.time_option(base, ours, steps, 64 * 30, repeats, n_threads, bar)
        rows.append({"option": label, "set": overrides + ([f"train.threads={n_threads}"] if n_threads else []),
                     "chars_per_s": timed.pop("rate"), **timed})
        bar.write(f"  {label}: {rows[-1]['chars_per_s']} chars/s, {rows[-1]['ratio_vs_baseline']}x the baseline")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="≤ 3 minutes: fewer steps, same shapes")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=0, help="training steps per path and repeat (default 5000; quick 100)")
    p.add_argument("--block", type=int, default=0, help="steps per interleaved block (default 100; quick 25)")
    p.add_argument("--ablation", action=argparse.BooleanOptionalAction, default=None,
                   help="also time each speed option alone (default: on in a full run, off with --quick)")
    p.add_argument("--threads", type=int, default=0, help="torch threads for both paths (default: PyTorch's choice)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override rnnlab's grimm-char-2x128 preset")
    p.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results alone")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (100 if args.quick else 5000)
    block = args.block or (25 if args.quick else 100)
    ablation = (not args.quick) if args.ablation is None else args.ablation
    ablation_steps, ablation_repeats = 50, 3

    gemm = harness.gemm_throughput(args.quick)
    print(f"{steps} steps of 64x30 per path and repeat, {args.repeats} repeats, blocks of {block}; "
          f"torch threads {torch.get_num_threads()}; load average {harness.load_average()}")
    print(f"attainable GEMM: fp32 {gemm['fp32_gflops']} GFLOP/s, bf16 {gemm['bf16_gflops']} GFLOP/s")
    total = 2 * steps * args.repeats + (2 * ablation_repeats * 5 * ablation_steps if ablation else 0)
    reps = []
    with tempfile.TemporaryDirectory() as tmp, tqdm(total=total, unit="step", file=sys.stderr,
                                                    dynamic_ncols=True) as bar:
        for r in range(args.repeats):
            ours = Rnnlab(args.set, r, steps, Path(tmp) / f"run-{r}")
            corpus = ours.trainer.source.corpus
            base = Baseline(len(corpus.vocab), StreamBatcher(corpus.train, 64, 30), r, steps)
            clocks = harness.interleave({"baseline": base, "rnnlab": ours}, steps, block, 64 * 30, bar)
            layout = (ours.cfg.train.eval_batch_size, ours.cfg.train.eval_seq_len)
            bpc = {"baseline": base.evaluate(corpus.valid, *layout), "rnnlab": ours.evaluate(corpus.valid, *layout)}
            rep = {"seed": r, "baseline_chars_per_s": round(clocks["baseline"].rate, 1),
                   "rnnlab_chars_per_s": round(clocks["rnnlab"].rate, 1),
                   "ratio": round(clocks["rnnlab"].rate / clocks["baseline"].rate, 3),
                   "baseline_chars_per_cpu_s": round(clocks["baseline"].cpu_rate, 1),
                   "rnnlab_chars_per_cpu_s": round(clocks["rnnlab"].cpu_rate, 1),
                   "cpu_time_ratio": round(clocks["rnnlab"].cpu_rate / clocks["baseline"].cpu_rate, 3),
                   "block_ratio_median": round(harness.block_ratio(clocks["rnnlab"], clocks["baseline"]), 3),
                   "baseline_valid_bpc": round(bpc["baseline"], 4), "rnnlab_valid_bpc": round(bpc["rnnlab"], 4),
                   "baseline_seconds": round(clocks["baseline"].seconds, 1),
                   "rnnlab_seconds": round(clocks["rnnlab"].seconds, 1),
                   "load_average": harness.load_average()}
            reps.append(rep)
            bar.write(f"repeat {r}: baseline {rep['baseline_chars_per_s']:.0f} chars/s {rep['baseline_valid_bpc']} "
                      f"bpc, rnnlab {rep['rnnlab_chars_per_s']:.0f} chars/s {rep['rnnlab_valid_bpc']} bpc, ratio "
                      f"{rep['ratio']}")
        ablation_rows = run_ablation(args, ablation_steps, ablation_repeats, Path(tmp), bar) if ablation else []

    med = {k: harness.median([rep[k] for rep in reps]) for k in reps[0] if k not in ("seed", "load_average")}
    ratio = med["ratio"]
    cfg = ours.cfg
    flops = harness.lstm_lm_flops(len(corpus.vocab), 128, 128, 2, 128 * len(corpus.vocab))
    achieved = {k: med[f"{k}_chars_per_s"] * flops / 1e9 for k in ("baseline", "rnnlab")}
    cpu_ratio = med["cpu_time_ratio"]
    table = [["baseline: nn.LSTM loop (Embedding, LSTM, Linear; Adam)", f"{med['baseline_chars_per_s']:.0f}", "1.00",
              f"{med['baseline_chars_per_cpu_s']:.0f}", "1.00", f"{med['baseline_valid_bpc']:.3f}",
              f"{achieved['baseline']:.1f}", f"{achieved['baseline'] / gemm['fp32_gflops']:.0%}"],
             [f"rnnlab grimm-char-2x128 (model.impl={cfg.model.impl})", f"{med['rnnlab_chars_per_s']:.0f}",
              f"{ratio:.2f}",
              f"{med['rnnlab_chars_per_cpu_s']:.0f}", f"{cpu_ratio:.2f}", f"{med['rnnlab_valid_bpc']:.3f}",
              f"{achieved['rnnlab']:.1f}", f"{achieved['rnnlab'] / gemm['fp32_gflops']:.0%}"]]
    headers = ["path", "chars/s", "ratio", "chars/CPU-s", "CPU-time ratio", "valid bits/char", "model GFLOP/s",
               "of fp32 GEMM"]
    print()
    harness.print_table(table, headers)
    if ablation_rows:
        print()
        harness.print_table([[r["option"], r["chars_per_s"], r["ratio_vs_baseline"], r["cpu_time_ratio_vs_baseline"]]
                             for r in ablation_rows], ["option", "chars/s", "ratio vs baseline", "CPU-time ratio"])
    bpc_gap = med["rnnlab_valid_bpc"] - med["baseline_valid_bpc"]
    results = {"quick": args.quick, "steps_per_repeat": steps, "block": block, "repeats": args.repeats,
               "batch_size": 64, "seq_len": 30, "vocab_size": len(corpus.vocab), "rnnlab_config": cfg.to_dict(),
               "gemm": gemm, "flops_per_char": round(flops),
               "baseline": {"chars_per_s": med["baseline_chars_per_s"], "valid_bpc": med["baseline_valid_bpc"],
                            "model_gflops": round(achieved["baseline"], 1),
                            "fraction_of_fp32_gemm": round(achieved["baseline"] / gemm["fp32_gflops"], 3)},
               "rnnlab": {"chars_per_s": med["rnnlab_chars_per_s"], "valid_bpc": med["rnnlab_valid_bpc"],
                          "model_gflops": round(achieved["rnnlab"], 1),
                          "fraction_of_fp32_gemm": round(achieved["rnnlab"] / gemm["fp32_gflops"], 3)},
               "ratio": ratio, "cpu_time_ratio": cpu_ratio, "bpc_gap": round(bpc_gap, 4), "repeats_detail": reps,
               "ablation": ablation_rows}
    if not args.no_write:
        notes = [f"Bundled Grimm text (vocabulary {len(corpus.vocab)}), 2x128 LSTM, batch 64 x 30, Adam 2e-3 cosine to "
                 f"2e-4 over {steps} steps, clip 5; {steps} steps per path in each of {args.repeats} repeats (seeds "
                 f"0..{args.repeats - 1}), interleaved in blocks of {block} steps in one process; medians over "
                 "repeats.",
                 f"Validation bits/char after those steps (same evaluation for both: {layout[0]} streams x "
                 f"{layout[1]}): rnnlab {bpc_gap:+.3f} against the baseline.",
                 f"Model FLOP/s: {flops / 1e6:.2f} MFLOP per character (6 per weight multiply-add) x chars/s, against "
                 f"a 1024^3 fp32 GEMM ({gemm['fp32_gflops']} GFLOP/s; bf16 {gemm['bf16_gflops']} GFLOP/s) in the same "
                 "run. rnnlab's path runs bf16 autocast where the CPU has native bf16 (train.bf16=auto; here: "
                 f"{'yes' if ours.trainer.bf16 else 'no, so float32'}); the baseline is float32.",
                 f"The machine is shared: load average {reps[0]['load_average']} to {reps[-1]['load_average']} during "
                 "the run; chars/CPU-s counts the process's CPU time instead of wall time: with one thread, the rate "
                 "on an otherwise idle core."]
        if ablation_rows:
            notes += harness.ablation_notes(ablation_rows, "chars/s", ablation_steps, ablation_repeats)
        harness.publish("speed_char", results, table, headers, notes, args.quick)
    print(f"ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
