"""Word-level training speed: rnnlab's default word path against the plain
`nn.LSTM` loop of pytorch/examples `word_language_model`, on Brown.

Both train the same 2×200 LSTM (dropout 0.2, batch 20, 35 steps, SGD lr 20,
clip 0.25) on the same batches in one process, in alternating blocks of steps
so that whatever else runs on the machine slows both alike. The baseline is
the examples' loop as written (full softmax, log_softmax + NLLLoss, manual SGD
update, fp32); rnnlab's path is `Trainer.train_next_batch` of the `brown-word`
preset (adaptive softmax). After the same number of tokens both are scored by
the same exact full-distribution perplexity on the validation set.

    .venv/bin/python benchmarks/speed_word.py            # one epoch per path, 3 repeats (~30 min)
    .venv/bin/python benchmarks/speed_word.py --quick    # ≤ 3 minutes; last line: ratio=<number>

Also measured (full run, or --ablation): each speed option of rnnlab on its
own, as tokens/s relative to the baseline blocks run beside it.
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
from rnnlab.config import load_config, parse_cutoffs  # noqa: E402
from rnnlab.data.batching import StreamBatcher  # noqa: E402
from rnnlab.evaluate import evaluate  # noqa: E402
from rnnlab.models.softmax import fit_output_to_corpus  # noqa: E402
from rnnlab.trainer import Trainer  # noqa: E402


# --------------------------------------------------------------- the baseline
class RNNModel(nn.Module):
    """pytorch/examples word_language_model/model.py, LSTM case."""

    def __init__(self, ntoken: int, ninp: int = 200, nhid: int = 200, nlayers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nhid, self.nlayers = nhid, nlayers
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz: int):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


class Baseline:
    """The examples' train() loop, one step at a time."""

    def __init__(self, ntoken: int, batcher: StreamBatcher, seed: int, lr: float = 20.0, clip: float = 0.25):
        torch.manual_seed(seed)
        self.model, self.batcher, self.lr, self.clip = RNNModel(ntoken), batcher, lr, clip
        self.criterion = nn.NLLLoss()
        self.hidden = self.model.init_hidden(batcher.batch_size)
        self.index, self.total_loss = 0, 0.0

    def steps(self, n: int) -> None:
        self.model.train()
        for _ in range(n):
            if self.index == self.batcher.steps_per_epoch:  # a new epoch starts from a zero state
                self.index, self.hidden = 0, self.model.init_hidden(self.batcher.batch_size)
            data, targets = self.batcher.batch(0, self.index)
            self.index += 1
            self.model.zero_grad()
            self.hidden = tuple(h.detach() for h in self.hidden)  # repackage_hidden
            output, self.hidden = self.model(data, self.hidden)
            loss = self.criterion(output, targets.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            for p in self.model.parameters():
                p.data.add_(p.grad, alpha=-self.lr)
            self.total_loss += loss.item()

    @torch.no_grad()
    def evaluate(self, data, batch_size: int, seq_len: int) -> float:
        """Perplexity over the same stream layout as rnnlab.evaluate."""
        self.model.eval()
        batcher = StreamBatcher(data, batch_size, seq_len)
        hidden, nll, tokens = self.model.init_hidden(batcher.batch_size), 0.0, 0
        for x, y in batcher:
            output, hidden = self.model(x, hidden)
            nll += F.nll_loss(output, y.reshape(-1), reduction="sum").item()
            tokens += y.numel()
        return math.exp(nll / tokens)


# ------------------------------------------------------------ rnnlab's path
class Rnnlab:
    """rnnlab's Trainer, driven step by step through its own training step."""

    def __init__(self, overrides: list[str], seed: int, run_dir: Path):
        # Threads pinned to the process's count, the baseline's: auto would follow the load (rnnlab/threads.py).
        self.cfg = load_config("brown-word", None, [f"train.seed={seed}", f"train.threads={torch.get_num_threads()}",
                                                    "train.samples=0", *overrides])
        self.trainer = Trainer(self.cfg, run_dir, progress=False, overwrite=True)

    def steps(self, n: int) -> None:
        tr = self.trainer
        tr.model.train()
        for _ in range(n):
            tr.train_next_batch()

    def evaluate(self, data, batch_size: int, seq_len: int) -> float:
        return evaluate(self.trainer.model, data, batch_size, seq_len)["perplexity"]


# ------------------------------------------------------------------ FLOPs
def flops_per_token(cfg, vocab_size: int, train_ids) -> dict:
    H, E, L = cfg.model.hidden, cfg.model.embed or cfg.model.hidden, cfg.model.layers
    full = harness.lstm_lm_flops(vocab_size, E, H, L, H * vocab_size)
    cutoffs = [*parse_cutoffs(cfg.model.cutoffs), vocab_size]
    ids = torch.as_tensor(train_ids)
    macs = H * (cutoffs[0] + len(cutoffs) - 1)  # head: shortlist + one entry per cluster
    for k, (low, high) in enumerate(zip(cutoffs, cutoffs[1:])):
        share = ((ids >= low) & (ids < high)).float().mean().item()  # tokens that visit cluster k
        proj = int(H // cfg.model.div_value ** (k + 1))
        macs += share * (H * proj + proj * (high - low))
    return {"full_softmax": full, "adaptive": harness.lstm_lm_flops(vocab_size, E, H, L, macs)}


# ------------------------------------------------------------------- main
def run_pair(corpus, args, seed: int, tmp: Path, steps: int, block: int, eval_data, eval_layout, bar):
    base = Baseline(len(corpus.vocab), StreamBatcher(corpus.train, 20, 35), seed)
    ours = Rnnlab(args.set, seed, tmp / f"run-{seed}")
    clocks = harness.interleave({"baseline": base, "rnnlab": ours}, steps, block, 20 * 35, bar)
    ppl = {"baseline": base.evaluate(eval_data, *eval_layout), "rnnlab": ours.evaluate(eval_data, *eval_layout)}
    return clocks, ppl, ours.cfg


def run_ablation(corpus, args, tmp: Path, steps: int, repeats: int, bar) -> list[dict]:
    """Each option of rnnlab's word path alone, against baseline blocks beside it."""
    variants = [
        ("rnnlab, full softmax (same model as the baseline)", ["model.softmax=full"], None),
        ("rnnlab default: adaptive softmax, fused nn.LSTM kernel", [], None),
        ("adaptive softmax + explicit cell equations (model.impl=explicit)", ["model.impl=explicit"], None),
        ("adaptive softmax + bf16 autocast where native (train.bf16=auto)", ["train.bf16=auto"], None),
        ("adaptive softmax + 1 thread (train.threads=1)", [], 1),
    ]
    base = Baseline(len(corpus.vocab), StreamBatcher(corpus.train, 20, 35), 0)
    rows = []
    for label, overrides, n_threads in variants:
        ours = Rnnlab([*args.set, *overrides], 0, tmp / f"ablation-{len(rows)}")  # one directory per run (its lock)
        ours.steps(2)  # warm-up (allocations, oneDNN primitives)
        timed = harness.time_option(base, ours, steps, 700, repeats, n_threads, bar)
        rows.append({"option": label, "set": overrides + ([f"train.threads={n_threads}"] if n_threads else []),
                     "tokens_per_s": timed.pop("rate"), **timed})
        bar.write(f"  {label}: {rows[-1]['tokens_per_s']} tokens/s, {rows[-1]['ratio_vs_baseline']}x the baseline")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="≤ 3 minutes: fewer steps, a slice of validation, same shapes")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=0,
                   help="training steps per path and repeat (default: one epoch; quick: 40)")
    p.add_argument("--block", type=int, default=0, help="steps per interleaved block (default: 50; quick: 10)")
    p.add_argument("--ablation", action=argparse.BooleanOptionalAction, default=None,
                   help="also time each speed option alone (default: on in a full run, off with --quick)")
    p.add_argument("--threads", type=int, default=0, help="torch threads for both paths (default: PyTorch's choice)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override rnnlab's brown-word preset")
    p.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results alone")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    brown = harness.data_path("brown")
    if brown is None:
        print("speed_word: ../shared/data/brown not found; skipped")
        return 0
    from rnnlab.data.corpus import load_corpus

    cfg = load_config("brown-word", None, [f"data.path={brown}", *args.set])
    args.set = [f"data.path={brown}", *args.set]
    corpus = load_corpus(cfg.data)
    fit_output_to_corpus(cfg.model, corpus)  # cutoffs="auto", as training does
    per_epoch = StreamBatcher(corpus.train, 20, 35).steps_per_epoch
    steps = args.steps or (40 if args.quick else per_epoch)
    block = args.block or (10 if args.quick else 50)
    eval_layout = (cfg.train.eval_batch_size, cfg.train.eval_seq_len)
    eval_data = corpus.valid[:20_000] if args.quick else corpus.valid
    ablation = (not args.quick) if args.ablation is None else args.ablation
    ablation_steps, ablation_repeats = (10, 3) if args.quick else (30, 3)

    print(f"Brown: {len(corpus.train):,} training tokens, vocabulary {len(corpus.vocab):,}; "
          f"{steps} steps of 20x35 per path and repeat ({steps / per_epoch:.2f} epochs), {args.repeats} repeats, "
          f"blocks of {block}; torch threads {torch.get_num_threads()}; load average {harness.load_average()}")
    gemm = harness.gemm_throughput(args.quick)
    print(f"attainable GEMM: fp32 {gemm['fp32_gflops']} GFLOP/s, bf16 {gemm['bf16_gflops']} GFLOP/s")
    flops = flops_per_token(cfg, len(corpus.vocab), corpus.train)

    total = 2 * steps * args.repeats
    if ablation:
        total += 2 * ablation_repeats * 6 * ablation_steps
    reps = []
    with tempfile.TemporaryDirectory() as tmp, tqdm(total=total, unit="step", file=sys.stderr,
                                                    dynamic_ncols=True) as bar:
        for r in range(args.repeats):
            clocks, ppl, ours_cfg = run_pair(corpus, args, r, Path(tmp), steps, block, eval_data, eval_layout, bar)
            rep = {"seed": r, "baseline_tokens_per_s": round(clocks["baseline"].rate, 1),
                   "rnnlab_tokens_per_s": round(clocks["rnnlab"].rate, 1),
                   "ratio": round(clocks["rnnlab"].rate / clocks["baseline"].rate, 3),
                   "baseline_tokens_per_cpu_s": round(clocks["baseline"].cpu_rate, 1),
                   "rnnlab_tokens_per_cpu_s": round(clocks["rnnlab"].cpu_rate, 1),
                   "cpu_time_ratio": round(clocks["rnnlab"].cpu_rate / clocks["baseline"].cpu_rate, 3),
                   "block_ratio_median": round(harness.block_ratio(clocks["rnnlab"], clocks["baseline"]), 3),
                   "baseline_valid_ppl": round(ppl["baseline"], 2), "rnnlab_valid_ppl": round(ppl["rnnlab"], 2),
                   "baseline_seconds": round(clocks["baseline"].seconds, 1),
                   "rnnlab_seconds": round(clocks["rnnlab"].seconds, 1),
                   "load_average": harness.load_average()}
            reps.append(rep)
            bar.write(f"repeat {r}: baseline {rep['baseline_tokens_per_s']:.0f} tok/s ppl {rep['baseline_valid_ppl']}, "
                      f"rnnlab {rep['rnnlab_tokens_per_s']:.0f} tok/s ppl {rep['rnnlab_valid_ppl']}, ratio "
                      f"{rep['ratio']}")
        ablation_rows = run_ablation(corpus, args, Path(tmp), ablation_steps, ablation_repeats, bar) if ablation else []

    med = {k: harness.median([rep[k] for rep in reps]) for k in reps[0] if k not in ("seed", "load_average")}
    ratio = harness.median([rep["ratio"] for rep in reps])
    ppl_gap = med["rnnlab_valid_ppl"] / med["baseline_valid_ppl"] - 1
    achieved = {"baseline": med["baseline_tokens_per_s"] * flops["full_softmax"] / 1e9,
                "rnnlab": med["rnnlab_tokens_per_s"] * flops["adaptive"] / 1e9}
    cpu_ratio = med["cpu_time_ratio"]
    table = [
        ["baseline: nn.LSTM loop, full softmax (pytorch/examples)", f"{med['baseline_tokens_per_s']:.0f}", "1.00",
         f"{med['baseline_tokens_per_cpu_s']:.0f}", "1.00", f"{med['baseline_valid_ppl']:.2f}",
         f"{achieved['baseline']:.1f}", f"{achieved['baseline'] / gemm['fp32_gflops']:.0%}"],
        ["rnnlab brown-word (adaptive softmax)", f"{med['rnnlab_tokens_per_s']:.0f}", f"{ratio:.2f}",
         f"{med['rnnlab_tokens_per_cpu_s']:.0f}", f"{cpu_ratio:.2f}", f"{med['rnnlab_valid_ppl']:.2f}",
         f"{achieved['rnnlab']:.1f}", f"{achieved['rnnlab'] / gemm['fp32_gflops']:.0%}"],
    ]
    headers = ["path", "tokens/s", "ratio", "tokens/CPU-s", "CPU-time ratio", "valid ppl", "model GFLOP/s",
               "of fp32 GEMM"]
    print()
    harness.print_table(table, headers)
    if ablation_rows:
        print()
        harness.print_table([[r["option"], r["tokens_per_s"], r["ratio_vs_baseline"], r["cpu_time_ratio_vs_baseline"]]
                             for r in ablation_rows], ["option", "tokens/s", "ratio vs baseline", "CPU-time ratio"])
    results = {
        "quick": args.quick, "steps_per_repeat": steps, "epochs_per_repeat": round(steps / per_epoch, 3),
        "block": block, "repeats": args.repeats, "batch_size": 20, "seq_len": 35,
        "vocab_size": len(corpus.vocab), "train_tokens": len(corpus.train), "eval_tokens": len(eval_data),
        "eval_layout": {"batch_size": eval_layout[0], "seq_len": eval_layout[1]},
        "rnnlab_config": ours_cfg.to_dict(), "gemm": gemm,
        "flops_per_token": {k: round(v) for k, v in flops.items()},
        "baseline": {"tokens_per_s": med["baseline_tokens_per_s"], "valid_perplexity": med["baseline_valid_ppl"],
                     "model_gflops": round(achieved["baseline"], 1),
                     "fraction_of_fp32_gemm": round(achieved["baseline"] / gemm["fp32_gflops"], 3)},
        "rnnlab": {"tokens_per_s": med["rnnlab_tokens_per_s"], "valid_perplexity": med["rnnlab_valid_ppl"],
                   "model_gflops": round(achieved["rnnlab"], 1),
                   "fraction_of_fp32_gemm": round(achieved["rnnlab"] / gemm["fp32_gflops"], 3)},
        "ratio": ratio, "cpu_time_ratio": cpu_ratio, "perplexity_gap": round(ppl_gap, 4),
        "repeats_detail": reps, "ablation": ablation_rows,
    }
    if not args.no_write:
        notes = [
            f"Brown ({len(corpus.train):,} training tokens, vocabulary {len(corpus.vocab):,}), 2x200 LSTM, batch 20, "
            f"35 steps; {steps} steps ({steps / per_epoch:.2f} epochs) per path in each of {args.repeats} repeats "
            f"(seeds 0..{args.repeats - 1}), interleaved in blocks of {block} steps in one process; medians over "
            "repeats.",
            f"Validation perplexity after those steps, exact full distribution, {len(eval_data):,} tokens, "
            f"{eval_layout[0]} streams x {eval_layout[1]}: rnnlab is {ppl_gap:+.1%} against the baseline.",
            f"Model FLOP/s: training FLOPs per token (6 per weight multiply-add; adaptive softmax at Brown's cluster "
            f"frequencies) x tokens/s, against a 1024^3 fp32 GEMM ({gemm['fp32_gflops']} GFLOP/s; "
            f"bf16 {gemm['bf16_gflops']} GFLOP/s) measured in the same run. The ablation times bf16 autocast "
            "(train.bf16=auto; float32 where the CPU lacks native bf16) on its own.",
            f"The machine is shared: load average {reps[0]['load_average']} to {reps[-1]['load_average']} during the "
            "run; absolute figures move with it, ratios much less. tokens/CPU-s counts the process's CPU time instead "
            "of wall time: with one thread, the rate on an otherwise idle core.",
        ]
        if ablation_rows:
            notes += harness.ablation_notes(ablation_rows, "tokens/s", ablation_steps, ablation_repeats)
        harness.publish("speed_word", results, table, headers, notes, args.quick)
    print(f"ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
