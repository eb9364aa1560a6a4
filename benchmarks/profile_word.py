"""Where a word-LM training step's time goes: the `brown-word` preset's
`Trainer.train_next_batch` under torch.profiler, self CPU time per operator, and the
same step with two changes that the profile suggests (measured, not assumed):

  rand-mask dropout   x * (rand_like(x) >= p) / (1 - p) instead of F.dropout's bernoulli_
  foreach             SGD(foreach=True) and clip_grad_norm_(foreach=True): one call for all tensors
  bf16 output layer   the adaptive softmax alone under bf16 autocast (its products are a quarter
                      of the step; only where the CPU has native bf16)
  sparse embedding    a sparse embedding gradient (700 rows instead of 17,129), so that zero-filling,
                      clipping and the SGD update skip the rows no token used

    .venv/bin/python benchmarks/profile_word.py            # 20 profiled steps, 8 interleaved rounds of the variants
    .venv/bin/python benchmarks/profile_word.py --quick    # fewer of both (seconds)
    .venv/bin/python benchmarks/profile_word.py --threads 2  # on 2 threads: profile_word-2threads.*

Writes benchmarks/results/profile_word.{json,md}. One torch thread: shares of
one core's time, and CPU time for the variants, so that a second process on
the machine moves the figures less (wall time is recorded too; with
--threads 2 it is the figure that matters).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks import harness  # noqa: E402
from rnnlab.config import load_config  # noqa: E402
from rnnlab.devices import native_bf16  # noqa: E402
from rnnlab.trainer import Trainer  # noqa: E402

GROUPS = {  # operator → what it is in this model
    "aten::mkldnn_rnn_layer_backward": "LSTM layers, backward (oneDNN kernel)",
    "aten::mkldnn_rnn_layer": "LSTM layers, forward (oneDNN kernel)",
    "aten::mm": "matrix products (adaptive softmax, its gradients)",
    "aten::addmm": "matrix products (adaptive softmax, its gradients)",
    "aten::bernoulli_": "dropout masks",
    "aten::_log_softmax": "log-softmax (head and clusters)",
    "aten::_log_softmax_backward_data": "log-softmax (head and clusters)",
    "aten::fill_": "zero-filling (dense embedding gradient, buffers)",
    "aten::linalg_vector_norm": "gradient-norm clipping",
    "aten::add_": "gradient accumulation and SGD update",
    "aten::mul_": "gradient scaling (clipping) and dropout scaling",
}


def rand_dropout(x, p=0.5, training=True, inplace=False):
    if not training or p == 0:
        return x
    return x * ((torch.rand_like(x) >= p) * (1.0 / (1 - p))).to(x.dtype)


def sparse_clip(params, max_norm, **kwargs):
    """clip_grad_norm_ that also takes sparse gradients (torch's does not)."""
    params = list(params)
    sparse = [p for p in params if p.grad is not None and p.grad.is_sparse]
    if not sparse:
        return torch.nn.utils.clip_grad.clip_grad_norm_(params, max_norm)
    for p in sparse:
        p.grad = p.grad.coalesce()  # repeated rows summed: their norm is the gradient's
    dense = [p.grad for p in params if p.grad is not None and not p.grad.is_sparse]
    total = torch.stack([*torch._foreach_norm(dense), *(p.grad._values().norm() for p in sparse)]).norm()
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(dense, scale)
    for p in sparse:
        p.grad._values().mul_(scale)
    return total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1); other counts write profile_word-Nthreads.{json,md} and also time "
                        "wall clock")
    args = p.parse_args(argv)
    brown = harness.data_path("brown")
    if brown is None:
        print("profile_word: ../shared/data/brown not found; skipped")
        return 0
    torch.set_num_threads(args.threads)
    steps, rounds, block = (5, 2, 3) if args.quick else (20, 8, 8)
    cfg = load_config("brown-word", None, [f"data.path={brown}", "train.samples=0", f"train.threads={args.threads}"])
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(cfg, Path(tmp) / "run", progress=False, overwrite=True)
        tr.model.train()
        for _ in range(5):
            tr.train_next_batch()
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                tr.train_next_batch()
        events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
        total = sum(e.self_cpu_time_total for e in events)
        grouped: dict[str, float] = {}
        for e in events:
            grouped[GROUPS.get(e.key, "everything else")] = (
                grouped.get(GROUPS.get(e.key, "everything else"), 0) + e.self_cpu_time_total
            )
        # the variants, interleaved, CPU time per step
        original_dropout, original_clip, loop_sgd = F.dropout, torch.nn.utils.clip_grad_norm_, tr.optimizer
        foreach_sgd = torch.optim.SGD(tr.params, lr=cfg.train.lr, foreach=True)

        original_loss = tr.model.decoder.loss

        def bf16_loss(h, targets):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return original_loss(h, targets)

        def use(name: str) -> None:
            torch.nn.functional.dropout = rand_dropout if "rand" in name else original_dropout
            torch.nn.utils.clip_grad_norm_ = ((lambda ps, m, **k: original_clip(ps, m, foreach=True))
                                              if "foreach" in name
                                              else sparse_clip if "sparse" in name else original_clip)
            tr.optimizer = foreach_sgd if "foreach" in name else loop_sgd
            tr.model.decoder.loss = bf16_loss if "bf16" in name else original_loss
            tr.model.embedding.sparse = "sparse" in name

        names = ["as shipped", "rand-mask dropout", "foreach", "rand-mask dropout + foreach",
                 *(["bf16 output layer"] if native_bf16(torch.device("cpu")) else []), "sparse embedding gradient"]
        cpu = {n: [] for n in names}
        wall = {n: [] for n in names}
        try:
            for r in range(rounds):
                for n in names[r % len(names):] + names[: r % len(names)]:
                    use(n)
                    start, start_wall = time.process_time(), time.perf_counter()
                    for _ in range(block):
                        tr.train_next_batch()
                    cpu[n].append((time.process_time() - start) / block * 1000)
                    wall[n].append((time.perf_counter() - start_wall) / block * 1000)
        finally:
            use("as shipped")
    ms = {n: statistics.median(v) for n, v in cpu.items()}
    wall_ms = {n: statistics.median(v) for n, v in wall.items()}
    table = [
        [g, f"{t / 1000 / steps:.1f}", f"{t / total:.1%}"] for g, t in sorted(grouped.items(), key=lambda kv: -kv[1])
    ]
    variants = [{"variant": n, "cpu_ms_per_step": round(ms[n], 2), "speed_vs_shipped": round(ms[names[0]] / ms[n], 3),
                 "wall_ms_per_step": round(wall_ms[n], 2),
                 "wall_speed_vs_shipped": round(wall_ms[names[0]] / wall_ms[n], 3)}
                for n in names]
    harness.print_table(table, ["where", "ms/step", "share"])
    harness.print_table([list(v.values()) for v in variants],
                        ["variant", "CPU ms/step", "speed vs shipped", "wall ms/step", "wall speed vs shipped"])
    notes = [f"brown-word (2x200 LSTM, adaptive softmax, batch 20 x 35, SGD, clip, dropout), {args.threads} thread(s); "
             f"{steps} profiled steps after 5 of warm-up; load average {harness.load_average()} at the end.", "",
             "| variant | CPU ms/step | speed vs shipped | wall ms/step | wall speed vs shipped |",
             "|---|---|---|---|---|",
             *[f"| {v['variant']} | {v['cpu_ms_per_step']} | {v['speed_vs_shipped']} | {v['wall_ms_per_step']} | "
               f"{v['wall_speed_vs_shipped']} |" for v in variants], "",
             f"Variants: {rounds} interleaved rounds of {block} steps each, medians per step of CPU time and of wall "
             "time."]
    name = "profile_word" if args.threads == 1 else f"profile_word-{args.threads}threads"
    harness.write_results(name, {"quick": args.quick, "threads": args.threads,
                                 "groups": {g: t / total for g, t in grouped.items()}, "variants": variants},
                          table, ["where", "ms/step", "share"], notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
