"""Generation speed: rnnlab's single-stream sampling (`rnnlab.generate.sample_tokens`,
the state carried, one NumPy step per token) against the loop a PyTorch user
already has: pytorch/examples `word_language_model/generate.py`, as written.

The baseline (headline) is that script's model and loop: an Embedding, an
nn.LSTM and a Linear decoder returning log_softmax, stepped one token at a
time with the hidden state carried, `output.squeeze().div(T).exp()` and
`torch.multinomial`, float32, under torch.no_grad(). For the character model
the two sides run the *same weights* (rnnlab's contract uses nn.LSTM's tensor
layout, so the weights copy over; checked by comparing the first step's
distributions). The word model's adaptive softmax has no counterpart in the
examples model, which has a full softmax over the vocabulary: there the
baseline has its own weights of the same sizes, as a user of that script
would train.

A secondary row keeps the older comparison: re-running the whole prefix for
every new token through rnnlab's own model (same weights, same sampler and
seed as the streaming path, so the two give the same sample, checked).

Each path's per-token latency is recorded (the time from one token to the
next, the prompt's first token excluded): the playground streams tokens, so
p99 matters as well as throughput.

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
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness  # noqa: E402
from rnnlab.config import load_config  # noqa: E402
from rnnlab.data.corpus import load_corpus  # noqa: E402
from rnnlab.generate import choose, never_sample, prompt_ids, sample_tokens, uniforms  # noqa: E402
from rnnlab.models import build_model  # noqa: E402
from rnnlab.models.softmax import fit_output_to_corpus  # noqa: E402

PROMPTS = {"char": "The king said to his daughter", "word": "the king said"}


class ExamplesRNNModel(nn.Module):
    """pytorch/examples word_language_model/model.py's RNNModel (LSTM), eval mode:
    encoder → nn.LSTM → decoder → log_softmax."""

    def __init__(self, ntoken: int, ninp: int, nhid: int, nlayers: int):
        super().__init__()
        self.drop = nn.Dropout(0.0)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nlayers, self.nhid = nlayers, nhid

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.decoder.out_features)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


def examples_model(model, cfg, vocab_size: int) -> tuple[ExamplesRNNModel, bool]:
    """The examples model at the same sizes; with rnnlab's weights where the
    architectures match (full softmax, untied, two bias vectors). Returns (model, same_weights)."""
    m = cfg.model
    embed = m.embed or m.hidden
    ex = ExamplesRNNModel(vocab_size, embed, m.hidden, m.layers).eval()
    ours = model.state_dict()
    same = (m.cell == "lstm" and m.softmax == "full" and not m.tie_weights and m.bias == "double"
            and "decoder.weight" in ours)
    if same:
        mapped = {"encoder.weight": ours["embedding.weight"], "decoder.weight": ours["decoder.weight"],
                  "decoder.bias": ours["decoder.bias"]}
        for k in range(m.layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                mapped[f"rnn.{name}_l{k}"] = ours[f"rnn.layers.{k}.{name}"]
        ex.load_state_dict(mapped)
    return ex, same


def first_step_gap(model, ex: ExamplesRNNModel, vocab, prompt: str) -> float:
    """max |log p_rnnlab − log p_examples| after the prompt (the same weights give the same distribution)."""
    ids = prompt_ids(vocab, prompt)[:, None]
    with torch.no_grad():
        logits, _ = model(ids)
        ours = logits[-1, 0].log_softmax(-1)
        theirs, _ = ex(ids, ex.init_hidden(1))
    return float((ours - theirs[-1]).abs().max())


def streaming(model, vocab, prompt: str, length: int, seed: int, ticks: list) -> list[int]:
    out = []
    for t in sample_tokens(model, vocab, prompt, length, temperature=1.0, seed=seed):
        ticks.append(time.perf_counter())
        out.append(int(t[0]))
    return out


def examples_loop(ex: ExamplesRNNModel, vocab, prompt: str, length: int, seed: int, ticks: list) -> list[int]:
    """word_language_model/generate.py's loop as written (the prompt read first,
    token by token, as that script would if given one)."""
    torch.manual_seed(seed)
    temperature = 1.0
    hidden = ex.init_hidden(1)
    words = []
    with torch.no_grad():
        for t in prompt_ids(vocab, prompt).tolist():
            input = torch.tensor([[t]], dtype=torch.long)
            output, hidden = ex(input, hidden)
        out = []
        for _ in range(length):
            word_weights = output.squeeze().div(temperature).exp().cpu()
            word_idx = torch.multinomial(word_weights, 1)[0]
            input.fill_(word_idx)
            words.append(vocab.itos[int(word_idx)])
            out.append(int(word_idx))
            ticks.append(time.perf_counter())
            output, hidden = ex(input, hidden)
    return out


@torch.no_grad()
def prefix_rerun(model, vocab, prompt: str, length: int, seed: int, ticks: list) -> list[int]:
    """For every new token, the whole prefix from a zero state through rnnlab's
    model; output layer on the last position; rnnlab's sampler and seed."""
    u = uniforms(torch.Generator().manual_seed(seed), 1)
    ids = prompt_ids(vocab, prompt).tolist()
    out = []
    for _ in range(length):
        h, _ = model.features(torch.tensor(ids)[:, None])
        token = int(choose(never_sample(model.decoder.logits(h[-1]), vocab), 1.0, 0, 1.0, next(u))[0])
        ids.append(token)
        out.append(token)
        ticks.append(time.perf_counter())
    return out


def latencies_ms(ticks: list[float]) -> list[float]:
    """Milliseconds between consecutive tokens (the first token, which includes the prompt, excluded)."""
    return [(b - a) * 1e3 for a, b in zip(ticks, ticks[1:])]


def measure(name: str, preset: str, overrides: list[str], length: int, repeats: int) -> dict:
    cfg = load_config(preset, None, overrides)
    corpus = load_corpus(cfg.data)
    vocab = corpus.vocab
    fit_output_to_corpus(cfg.model, corpus)  # cutoffs="auto", as training resolves it
    torch.manual_seed(0)
    model = build_model(cfg.model, len(vocab)).eval()
    ex, same_weights = examples_model(model, cfg, len(vocab))
    prompt = PROMPTS[vocab.level]
    paths = {"streaming": lambda *a: streaming(model, vocab, *a),
             "examples": lambda *a: examples_loop(ex, vocab, *a),
             "prefix": lambda *a: prefix_rerun(model, vocab, *a)}
    for fn in paths.values():  # warm-up
        fn(prompt, 5, 0, [])
    wall = {k: [] for k in paths}
    cpu = {k: [] for k in paths}
    lat = {k: [] for k in paths}
    same = True
    for r in range(repeats):  # interleaved, the order rotating
        order = list(paths.items())
        order = order[r % 3:] + order[: r % 3]
        tokens = {}
        for label, fn in order:
            ticks: list[float] = []
            start, start_cpu = time.perf_counter(), time.process_time()
            tokens[label] = fn(prompt, length, r, ticks)
            wall[label].append(time.perf_counter() - start)
            cpu[label].append(time.process_time() - start_cpu)
            lat[label] += latencies_ms(ticks)
        same = same and tokens["streaming"] == tokens["prefix"]  # same model, same seed: the same sample
    med = {k: harness.median(v) for k, v in wall.items()}
    med_cpu = {k: harness.median(v) for k, v in cpu.items()}
    unit = "chars" if vocab.level == "char" else "words"

    def row(k):
        return {"tokens_per_s": round(length / med[k], 1),
                "latency_ms_p50": round(float(np.percentile(lat[k], 50)), 3),
                "latency_ms_p99": round(float(np.percentile(lat[k], 99)), 3)}

    return {"model": name, "preset": preset, "unit": unit, "vocab_size": len(vocab), "tokens": length,
            "prompt": prompt, "repeats": repeats, "threads": torch.get_num_threads(),
            "rnnlab": row("streaming"), "examples_loop": row("examples"), "prefix_rerun": row("prefix"),
            "same_weights_as_examples": same_weights,
            "first_step_logprob_gap": round(first_step_gap(model, ex, vocab, prompt), 7) if same_weights else None,
            "same_tokens_as_prefix_rerun": same,
            "ratio": round(med["examples"] / med["streaming"], 2),
            "cpu_time_ratio": round(med_cpu["examples"] / med_cpu["streaming"], 2),
            "ratio_vs_prefix_rerun": round(med["prefix"] / med["streaming"], 2),
            "seconds": {k: [round(t, 4) for t in v] for k, v in wall.items()}}


FLOORS = {"char": 5.0, "word": 10.0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="≤ 3 minutes: fewer repeats, same length")
    p.add_argument("--length", type=int, default=200)
    p.add_argument("--repeats", type=int, default=0, help="default 5; quick 3")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for both sides (default 1: one stream at batch 1 gains nothing from a second)")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 5)
    rows = [measure("char LSTM 2x128 (grimm-char-2x128)", "grimm-char-2x128", [], args.length, repeats)]
    brown = harness.data_path("brown")
    if brown is not None:
        rows.append(measure("word LSTM 2x200, adaptive softmax (brown-word)", "brown-word",
                            [f"data.path={brown}", "model.cutoffs=2000,10000"], args.length, repeats))
    else:
        print("generation: ../shared/data/brown not found; word model skipped")
    table = []
    for r in rows:
        u = r["unit"]
        for label, key, ratio in (("pytorch/examples generate.py loop", "examples_loop", r["ratio"]),
                                  ("prefix re-run (rnnlab model)", "prefix_rerun", r["ratio_vs_prefix_rerun"])):
            b, o = r[key], r["rnnlab"]
            table.append([r["model"], label, f"{b['tokens_per_s']:,.0f} {u}/s",
                          f"{b['latency_ms_p50']:.2f} / {b['latency_ms_p99']:.2f}", f"{o['tokens_per_s']:,.0f} {u}/s",
                          f"{o['latency_ms_p50']:.3f} / {o['latency_ms_p99']:.3f}", f"**{ratio:.1f}×**"])
    headers = ["model", "baseline", "baseline tokens/s", "baseline ms/token p50 / p99", "rnnlab tokens/s",
               "rnnlab ms/token p50 / p99", "ratio"]
    harness.print_table(table, headers)
    ratio = rows[0]["ratio"]
    if not args.no_write:
        checks = []
        for r in rows:
            floor = FLOORS["char" if r["unit"] == "chars" else "word"]
            weights = (f"same weights on both sides (first-step max |Δ log p| = {r['first_step_logprob_gap']:.1e})"
                       if r["same_weights_as_examples"] else
                       "the examples model has a full softmax, rnnlab an adaptive one: each side has its own weights "
                       "of the same sizes")
            checks.append(f"- {r['model']}: {weights}; rnnlab and the prefix re-run produced "
                          f"{'the same' if r['same_tokens_as_prefix_rerun'] else 'DIFFERENT'} tokens; floor "
                          f"{floor:.0f}× against the examples loop: {'met' if r['ratio'] >= floor else 'MISSED'} "
                          f"(CPU-time ratio {r['cpu_time_ratio']:.1f}×).")
        notes = [f"{args.length} tokens after a short prompt, one stream, temperature 1, float32, medians of "
                 f"{repeats} interleaved repeats (the order rotating); torch threads {torch.get_num_threads()} on both "
                 f"sides; load average {harness.load_average()} at the end.",
                 "",
                 "Baseline: pytorch/examples word_language_model/generate.py as written (nn.LSTM stepped one token "
                 "at a time with the hidden state carried, `output.squeeze().div(T).exp()`, `torch.multinomial`). "
                 "rnnlab: rnnlab.generate.sample_tokens (the prompt once, then one NumPy step per token, "
                 "rnnlab/models/stepper.py; inverse-CDF sampling; the word model's adaptive softmax sampled cluster by "
                 "cluster, a tail cluster computed only when drawn). Prefix re-run: the whole prefix from a zero state "
                 "for every token, through rnnlab's model. Latency: ms from one token to the next, over all repeats, "
                 "the first token (which includes the prompt) excluded.",
                 "", *checks, "",
                 "The headline ratio (last line, ratio=...) is the character model's, against the examples loop."]
        harness.publish("generation", {"quick": args.quick, "models": rows, "ratio": ratio}, table, headers, notes,
                        args.quick)
    print(f"ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
