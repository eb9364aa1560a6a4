"""Generation speed: single-stream sampling with the recurrent state carried
from step to step (`rnnlab.generate.sample_tokens`) against naive re-running
of the whole prefix for every new token.

Both sample 200 tokens after the same prompt with the same model, the same
sampling code (`rnnlab.generate.choose`) and the same random seed, so they
produce the same tokens (checked). The naive loop is given its best chance:
it applies the output layer to the last position only, and is timed both
with the model as configured and through nn.LSTM's fused kernel (the fastest
way to run a long sequence at batch 1 here).
Models: the grimm-char default (2×128 LSTM, character vocabulary) and the
brown-word default (2×200 LSTM, adaptive softmax over 17,129 words); the
weights are freshly initialised — speed does not depend on their values.

    .venv/bin/python benchmarks/generation.py            # 200 tokens, 5 repeats
    .venv/bin/python benchmarks/generation.py --quick    # ≤ 3 minutes; last line: ratio=<number>
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness  # noqa: E402
from rnnlab.config import load_config  # noqa: E402
from rnnlab.data.corpus import load_corpus  # noqa: E402
from rnnlab.generate import choose, never_sample, prompt_ids, sample_tokens, uniforms  # noqa: E402
from rnnlab.models import build_model  # noqa: E402
from rnnlab.models.softmax import fit_output  # noqa: E402

PROMPTS = {"char": "The king said to his daughter", "word": "the king said"}


def streaming(model, vocab, prompt: str, length: int, seed: int) -> list[int]:
    return [int(t[0]) for t in sample_tokens(model, vocab, prompt, length, temperature=1.0, seed=seed)]


@torch.no_grad()
def naive(model, vocab, prompt: str, length: int, seed: int, impl: str | None = None) -> list[int]:
    """For every new token, the whole prefix from a zero state through the
    model's own recurrent path (or `impl`); output layer on the last position."""
    u = uniforms(torch.Generator().manual_seed(seed), 1)
    own, model.rnn.impl = model.rnn.impl, impl or model.rnn.impl
    try:
        ids = prompt_ids(vocab, prompt).tolist()
        out = []
        for _ in range(length):
            h, _ = model.features(torch.tensor(ids)[:, None])
            token = int(choose(never_sample(model.decoder.logits(h[-1]), vocab), 1.0, 0, 1.0, next(u))[0])
            ids.append(token)
            out.append(token)
        return out
    finally:
        model.rnn.impl = own


def naive_fused(model, vocab, prompt: str, length: int, seed: int) -> list[int]:
    return naive(model, vocab, prompt, length, seed, impl="fused")


def measure(name: str, preset: str, overrides: list[str], length: int, repeats: int) -> dict:
    cfg = load_config(preset, None, overrides)
    corpus = load_corpus(cfg.data)
    vocab = corpus.vocab
    fit_output(cfg.model, np.bincount(corpus.train, minlength=len(vocab)))  # cutoffs="auto", as training resolves it
    torch.manual_seed(0)
    model = build_model(cfg.model, len(vocab)).eval()
    prompt = PROMPTS[vocab.level]
    paths = {"streaming": streaming, "naive": naive, "naive_fused": naive_fused}
    for fn in paths.values():  # warm-up
        fn(model, vocab, prompt, 5, 0)
    wall = {k: [] for k in paths}
    cpu = {k: [] for k in paths}
    same = True
    for r in range(repeats):  # interleaved, the order rotating
        order = list(paths.items())
        order = order[r % 3 :] + order[: r % 3]
        tokens = {}
        for label, fn in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            tokens[label] = fn(model, vocab, prompt, length, seed=r)
            wall[label].append(time.perf_counter() - start)
            cpu[label].append(time.process_time() - start_cpu)
        same = same and tokens["streaming"] == tokens["naive"]  # same model, same seed: the same sample
    med = {k: harness.median(v) for k, v in wall.items()}
    med_cpu = {k: harness.median(v) for k, v in cpu.items()}
    unit = "chars" if vocab.level == "char" else "words"
    return {"model": name, "preset": preset, "impl": cfg.model.impl, "unit": unit, "vocab_size": len(vocab),
            "tokens": length, "prompt": prompt, "repeats": repeats, "same_tokens": same,
            "streaming_tokens_per_s": round(length / med["streaming"], 1),
            "naive_tokens_per_s": round(length / med["naive"], 1),
            "naive_fused_tokens_per_s": round(length / med["naive_fused"], 1),
            "ratio": round(med["naive"] / med["streaming"], 2),
            "ratio_vs_fused": round(med["naive_fused"] / med["streaming"], 2),
            "cpu_time_ratio": round(med_cpu["naive"] / med_cpu["streaming"], 2),
            "cpu_time_ratio_vs_fused": round(med_cpu["naive_fused"] / med_cpu["streaming"], 2),
            "seconds": {k: [round(t, 4) for t in v] for k, v in wall.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="≤ 3 minutes: fewer repeats, same length")
    p.add_argument("--length", type=int, default=200)
    p.add_argument("--repeats", type=int, default=0, help="default 5; quick 3")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: PyTorch's choice)")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 5)
    rows = [measure("char LSTM 2x128 (grimm-char)", "grimm-char", [], args.length, repeats)]
    brown = harness.data_path("brown")
    if brown is not None:
        rows.append(measure("word LSTM 2x200, adaptive softmax (brown-word)", "brown-word", [f"data.path={brown}"],
                            args.length, repeats))
    else:
        print("generation: ../shared/data/brown not found; word model skipped")
    table = [[r["model"], f"{r['streaming_tokens_per_s']:.0f} {r['unit']}/s",
              f"{r['naive_tokens_per_s']:.0f} {r['unit']}/s", f"{r['ratio']:.1f} (CPU time {r['cpu_time_ratio']:.1f})",
              f"{r['naive_fused_tokens_per_s']:.0f} {r['unit']}/s",
              f"{r['ratio_vs_fused']:.1f} (CPU time {r['cpu_time_ratio_vs_fused']:.1f})",
              "yes" if r["same_tokens"] else "no"] for r in rows]
    headers = ["model", "state carried", "prefix re-run (same model)", "ratio", "prefix re-run (nn.LSTM kernel)",
               "ratio", "same sample"]
    harness.print_table(table, headers)
    ratio = rows[0]["ratio"]
    if not args.no_write:
        notes = [f"{args.length} tokens after a short prompt, one stream, temperature 1, medians of {repeats} "
                 "interleaved repeats; torch threads "
                 f"{torch.get_num_threads()}, load average {harness.load_average()} (the machine is shared).",
                 "State carried: rnnlab.generate.sample_tokens (the prompt once, then one NumPy step per token, "
                 "rnnlab/models/stepper.py; the word model's adaptive softmax is sampled cluster by cluster, a tail "
                 "cluster computed only when drawn, which picks the same token as the full distribution). "
                 "Prefix re-run: for every token the whole prefix from a zero state, output layer on the last "
                 "position only; 'same model' runs the model as configured (model(prefix)), 'nn.LSTM kernel' forces the fused oneDNN kernel, the fastest way to run a long "
                 "sequence at batch 1 here. Ratio = re-run time / streaming time; same sample: the streaming and "
                 "same-model re-run produced identical tokens.",
                 "The headline ratio (last line, ratio=...) is the character model's, against the same model."]
        harness.publish("generation", {"quick": args.quick, "models": rows, "ratio": ratio}, table, headers, notes,
                        args.quick)
    print(f"ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
