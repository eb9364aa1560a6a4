"""The neural probabilistic language model of Bengio et al. (2003), in PyTorch.

Given the previous n-1 words w_{t-n+1} .. w_{t-1} (``context`` = n-1 of them)::

    x  = [C(w_{t-n+1}); ...; C(w_{t-1})]         concatenated embeddings, size context*embed
    h  = act(H x + d)                             act = tanh or identity ("linear")
    y  = b + U h  (+ W x with direct connections)  one logit per vocabulary word
    P(w_t = i | context) = softmax(y)_i           exact softmax over the whole vocabulary

``output="adaptive"`` replaces the last two lines by an adaptive softmax
(Grave et al. 2017; ``torch.nn.AdaptiveLogSoftmaxWithLoss``): the ids are
sorted by frequency, so a head softmax covers the ``cutoffs[0]`` most frequent
words plus one entry per tail cluster, and each tail cluster (rarer words) has
its own softmax over a smaller projection of h. P(w) = P_head(cluster of w) *
P_tail(w | cluster): still an exactly normalised distribution over the whole
vocabulary (perplexities stay exact and comparable), but training costs several
times less than the full softmax, whose V x H product dominates everything
else. No direct connections with it.

Parameter names (also the tensor names in ``model.safetensors``):
``embedding.weight`` [V, E], ``hidden.weight`` [H, c*E], ``hidden.bias`` [H],
``output.weight`` [V, H], ``output.bias`` [V] and, with direct connections,
``direct.weight`` [V, c*E].

Data: a split is one token stream (``<eos>`` after every line, as the recurrent
models see it). Training draws minibatches of random target positions (every
position once per epoch, in a fresh random order). Evaluation predicts every
token of a stream but the first -- the same targets as the recurrent models and
the Kneser-Ney baseline; positions with fewer than ``context`` words before
them are padded on the left with ``<eos>`` (the start of a line).

A run directory holds ``config.json``, ``metrics.jsonl`` (one JSON object per
evaluation: step, epoch, split, loss, ppl, accuracy, tokens, elapsed),
``vocab.json``, ``model.safetensors`` (the best weights by validation
perplexity) and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from rnnlab import safejson
from rnnlab.checkpoint import write_atomic
from rnnlab.data.corpus import Corpus
from rnnlab.data.vocab import Vocab
from rnnlab.errors import UserError

ACTIVATIONS = ("tanh", "linear")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "linear", "plateau")
OUTPUTS = ("full", "adaptive")


@dataclass
class NgramConfig:
    # model
    context: int = 3  # n-1 previous words (n = 4)
    embed: int = 16  # embedding size per word
    hidden: int = 128  # hidden units
    activation: str = "tanh"  # tanh | linear
    direct: bool = False  # direct input -> output connections (Bengio's W x); output=full only
    output: str = "full"  # full: softmax over the vocabulary | adaptive: adaptive softmax (exact, faster)
    cutoffs: tuple = (2000, 8000)  # adaptive: ids below cutoffs[0] in the head, then tail clusters
    div_value: float = 4.0  # adaptive: each tail cluster's projection is this many times smaller
    dropout: float = 0.0  # on the concatenated embeddings and on the hidden layer
    embed_init: float = 0.1  # embeddings start ~ U(-a, a); with a small a the tanh units start (and may stay) in
    #                          their linear range, where tanh and linear models are the same model
    # training
    seed: int = 0
    batch_size: int = 256
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "linear"  # constant | linear (to 0 over the budget) | plateau (halve when valid worsens)
    epochs: float = 10.0  # upper bound on passes over the training stream
    max_minutes: float = 0.0  # training-time budget (evaluation not counted); 0 = none
    max_steps: int = 0  # 0 = none
    eval_every: int = 0  # evaluate on valid every N steps; 0 = once per epoch
    eval_batch_size: int = 2048
    train_tokens: int = 0  # use only the first N training tokens (quick runs); 0 = all
    eval_tokens: int = 0  # evaluate on the first N tokens of each split (quick runs); 0 = all
    threads: int = 0  # torch intra-op threads; 0 = leave PyTorch's choice

    def validate(self) -> None:
        if self.context < 1 or self.embed < 1 or self.hidden < 1:
            raise UserError("neural n-gram: context, embed and hidden must be at least 1")
        if self.activation not in ACTIVATIONS:
            raise UserError(f"neural n-gram: activation must be one of {', '.join(ACTIVATIONS)}, got '{self.activation}'")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"neural n-gram: optimizer must be one of {', '.join(OPTIMIZERS)}, got '{self.optimizer}'")
        if self.schedule not in SCHEDULES:
            raise UserError(f"neural n-gram: schedule must be one of {', '.join(SCHEDULES)}, got '{self.schedule}'")
        if not self.embed_init > 0:
            raise UserError(f"neural n-gram: embed_init must be positive, got {self.embed_init}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"neural n-gram: dropout must be in [0, 1), got {self.dropout}")
        if self.output not in OUTPUTS:
            raise UserError(f"neural n-gram: output must be one of {', '.join(OUTPUTS)}, got '{self.output}'")
        if self.output == "adaptive" and self.direct:
            raise UserError("neural n-gram: direct connections need output=full")
        if self.batch_size < 1 or self.lr <= 0:
            raise UserError("neural n-gram: batch_size and lr must be positive")

    @property
    def name(self) -> str:
        return f"mlp-{self.activation}-h{self.hidden}"


class NeuralNgramLM(nn.Module):
    def __init__(self, vocab_size: int, context: int = 3, embed: int = 16, hidden: int = 128,
                 activation: str = "tanh", direct: bool = False, dropout: float = 0.0, output: str = "full",
                 cutoffs=(2000, 8000), div_value: float = 4.0, embed_init: float = 0.1):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise UserError(f"activation must be one of {', '.join(ACTIVATIONS)}, got '{activation}'")
        self.vocab_size, self.context, self.activation = vocab_size, context, activation
        self.adaptive = output == "adaptive"
        self.embedding = nn.Embedding(vocab_size, embed)
        self.hidden = nn.Linear(context * embed, hidden)
        if self.adaptive:
            cuts = [int(c) for c in cutoffs if 0 < int(c) < vocab_size - 1]
            if not cuts or cuts != sorted(set(cuts)):
                raise UserError(f"adaptive softmax cutoffs {list(cutoffs)} do not fit a vocabulary of {vocab_size}")
            self.output = nn.AdaptiveLogSoftmaxWithLoss(hidden, vocab_size, cuts, div_value=div_value)
        else:
            self.output = nn.Linear(hidden, vocab_size)
            nn.init.zeros_(self.output.bias)
        self.direct = nn.Linear(context * embed, vocab_size, bias=False) if direct else None
        if self.direct is not None and self.adaptive:
            raise UserError("direct connections need output=full")
        self.drop = nn.Dropout(dropout)
        nn.init.uniform_(self.embedding.weight, -embed_init, embed_init)
        if self.direct is not None:
            nn.init.zeros_(self.direct.weight)

    @classmethod
    def from_config(cls, cfg: NgramConfig, vocab_size: int) -> NeuralNgramLM:
        return cls(vocab_size, cfg.context, cfg.embed, cfg.hidden, cfg.activation, cfg.direct, cfg.dropout,
                   cfg.output, cfg.cutoffs, cfg.div_value, cfg.embed_init)

    def features(self, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, h): concatenated embeddings [B, c*E] and hidden layer [B, H], dropout applied."""
        x = self.drop(self.embedding(ctx).flatten(1))
        h = self.hidden(x)
        if self.activation == "tanh":
            h = torch.tanh(h)
        return x, self.drop(h)

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:
        """ctx: int [B, context] (oldest word first) -> scores [B, V] whose
        softmax is the next-word distribution (logits; log-probabilities for
        the adaptive softmax)."""
        x, h = self.features(ctx)
        if self.adaptive:
            return self.output.log_prob(h)
        y = self.output(h)
        if self.direct is not None:
            y = y + self.direct(x)
        return y

    @torch.no_grad()
    def nll_and_correct(self, ctx: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
        """Summed negative log-likelihood (exact) and number of correct argmax predictions."""
        if self.adaptive:
            return self._adaptive_nll_and_correct(self.features(ctx)[1], targets)
        logits = self(ctx)
        return F.cross_entropy(logits, targets, reduction="sum").item(), (logits.argmax(-1) == targets).sum().item()

    def _adaptive_nll_and_correct(self, h: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
        """Target log-probabilities and argmax with one pass through the head:
        log P(w) = log P_head(w) for head words, log P_head(cluster) + log P_tail(w | cluster)
        otherwise; the argmax is the head's unless the head's best entry is a
        cluster, in which case the whole distribution of that row is compared."""
        out = self.output
        head = torch.log_softmax(out.head(h), dim=-1)
        logp = torch.zeros(len(targets), dtype=head.dtype)
        in_head = targets < out.shortlist_size
        logp[in_head] = head[in_head, targets[in_head]]
        for i in range(out.n_clusters):
            lo, hi = out.cutoffs[i], out.cutoffs[i + 1]
            rows = ((targets >= lo) & (targets < hi)).nonzero().squeeze(1)
            if len(rows):
                tail = torch.log_softmax(out.tail[i](h[rows]), dim=-1)
                logp[rows] = head[rows, out.shortlist_size + i] + tail[torch.arange(len(rows)), targets[rows] - lo]
        pred = head.argmax(-1)
        unsure = (pred >= out.shortlist_size).nonzero().squeeze(1)
        if len(unsure):
            pred[unsure] = out.log_prob(h[unsure]).argmax(-1)
        return -logp.double().sum().item(), (pred == targets).sum().item()

    def loss(self, ctx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats), computed the cheap way for the adaptive softmax."""
        if self.adaptive:
            return self.output(self.features(ctx)[1], targets).loss
        return F.cross_entropy(self(ctx), targets)


# -- data ---------------------------------------------------------------------


def contexts(stream: np.ndarray, positions: np.ndarray, context: int, pad: int) -> np.ndarray:
    """[len(positions), context] ids of the words before each position (oldest
    first), left-padded with `pad` before the start of the stream."""
    offs = positions[:, None] - np.arange(context, 0, -1)[None, :]
    out = stream[np.maximum(offs, 0)]
    out[offs < 0] = pad
    return out


def _pad_id(vocab: Vocab) -> int:
    return vocab.eos if vocab.eos is not None else vocab.unk


@torch.no_grad()
def evaluate(model: NeuralNgramLM, stream: np.ndarray, pad: int, batch_size: int = 2048) -> dict:
    """Exact full-softmax loss (nats/token), perplexity and top-1 accuracy over stream[1:]."""
    was_training = model.training
    model.eval()
    stream = np.asarray(stream, dtype=np.int64)
    nll, correct, n = 0.0, 0, 0
    for start in range(1, len(stream), batch_size):
        pos = np.arange(start, min(start + batch_size, len(stream)))
        x = torch.from_numpy(contexts(stream, pos, model.context, pad))
        y = torch.from_numpy(stream[pos])
        batch_nll, batch_correct = model.nll_and_correct(x, y)
        nll += batch_nll
        correct += batch_correct
        n += len(pos)
    model.train(was_training)
    loss = nll / max(n, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 700.0)), "accuracy": correct / max(n, 1), "tokens": n}


# -- training -----------------------------------------------------------------


def _write_json(path: Path, data) -> None:
    write_atomic(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def _state_tensors(model: NeuralNgramLM) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def save_weights(model: NeuralNgramLM, path: Path, state: dict | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state if state is not None else _state_tensors(model), str(tmp))
    tmp.replace(path)


def train(corpus: Corpus, cfg: NgramConfig, run_dir: str | Path | None = None, log=print) -> dict:
    """Train one neural n-gram model on corpus.train; returns the summary
    (valid/test perplexity of the best-on-valid weights, minutes of training).

    Time spent evaluating is not counted in ``max_minutes`` / ``train_minutes``.
    """
    cfg.validate()
    if corpus.vocab.level != "word":
        raise UserError("the neural n-gram model is a word model: use data.level=word")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    vocab, pad = corpus.vocab, _pad_id(corpus.vocab)
    train_ids = np.asarray(corpus.train, dtype=np.int64)
    if cfg.train_tokens:
        train_ids = train_ids[: cfg.train_tokens]
    valid_ids = np.asarray(corpus.valid, dtype=np.int64)
    test_ids = None if corpus.test is None else np.asarray(corpus.test, dtype=np.int64)
    if cfg.eval_tokens:
        valid_ids = valid_ids[: cfg.eval_tokens]
        test_ids = None if test_ids is None else test_ids[: cfg.eval_tokens]
    if len(train_ids) < 2:
        raise UserError("training stream is too short for the neural n-gram model")

    model = NeuralNgramLM.from_config(cfg, len(vocab))
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    run = Path(run_dir) if run_dir is not None else None
    if run is not None:
        run.mkdir(parents=True, exist_ok=True)
        (run / "metrics.jsonl").unlink(missing_ok=True)
        _write_json(run / "config.json", {"model": "neural-ngram", **dataclasses.asdict(cfg), "vocab_size": len(vocab),
                                          "source": corpus.source})
        _write_json(run / "vocab.json", vocab.to_json())

    positions = np.arange(1, len(train_ids))
    steps_per_epoch = max(1, len(positions) // cfg.batch_size)
    max_steps = int(cfg.epochs * steps_per_epoch)
    if cfg.max_steps:
        max_steps = min(max_steps, cfg.max_steps)
    budget_s = cfg.max_minutes * 60.0
    eval_every = cfg.eval_every or steps_per_epoch

    def progress(step: int, train_s: float) -> float:
        frac = step / max_steps
        if budget_s:
            frac = max(frac, train_s / budget_s)
        return min(frac, 1.0)

    def record(split: str, m: dict, step: int, train_s: float) -> None:
        rec = {"step": step, "epoch": step / steps_per_epoch, "split": split, "loss": m["loss"], "ppl": m["ppl"],
               "accuracy": m["accuracy"], "tokens": m["tokens"], "elapsed": train_s}
        if run is not None:
            with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")

    best = {"ppl": math.inf, "step": 0, "state": _state_tensors(model), "metrics": None}
    cpu0 = time.process_time()
    lr_scale, last_valid = 1.0, math.inf
    train_s, step, order, cursor = 0.0, 0, rng.permutation(positions), 0
    run_loss, run_n = 0.0, 0
    model.train()
    while step < max_steps and (not budget_s or train_s < budget_s):
        t0 = time.perf_counter()
        if cursor + cfg.batch_size > len(order):
            order, cursor = rng.permutation(positions), 0
        pos = order[cursor : cursor + cfg.batch_size]
        cursor += cfg.batch_size
        x = torch.from_numpy(contexts(train_ids, pos, cfg.context, pad))
        y = torch.from_numpy(train_ids[pos])
        lr = cfg.lr * lr_scale * (1.0 - progress(step, train_s) if cfg.schedule == "linear" else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        run_loss += loss.item() * len(pos)
        run_n += len(pos)
        train_s += time.perf_counter() - t0
        done = step >= max_steps or (budget_s and train_s >= budget_s)
        if step % eval_every == 0 or done:
            tm = {"loss": run_loss / run_n, "accuracy": None, "tokens": run_n}  # (dropout on; no argmax kept)
            tm["ppl"] = math.exp(min(tm["loss"], 700.0))
            record("train", tm, step, train_s)
            run_loss, run_n = 0.0, 0
            vm = evaluate(model, valid_ids, pad, cfg.eval_batch_size)
            record("valid", vm, step, train_s)
            log(f"{cfg.name}: step {step} epoch {step / steps_per_epoch:.2f} train ppl {tm['ppl']:.1f} "
                f"valid ppl {vm['ppl']:.1f} lr {lr:.2e} ({train_s / 60:.1f} min)")
            if vm["ppl"] < best["ppl"]:
                best = {"ppl": vm["ppl"], "step": step, "state": _state_tensors(model), "metrics": vm}
            if cfg.schedule == "plateau" and vm["ppl"] > last_valid:
                lr_scale /= 2.0
            last_valid = vm["ppl"]

    cpu_minutes = (time.process_time() - cpu0) / 60.0  # training and evaluation, this process
    model.load_state_dict(best["state"])
    valid = best["metrics"]  # the weights kept are those of the best validation
    if valid is None:  # no step was taken (zero budget)
        valid = evaluate(model, valid_ids, pad, cfg.eval_batch_size)
        record("valid", valid, 0, train_s)
    summary = {"model": cfg.name, "valid_ppl": valid["ppl"], "valid_accuracy": valid["accuracy"],
               "test_ppl": None, "test_accuracy": None, "train_minutes": train_s / 60.0,
               "cpu_minutes": cpu_minutes, "steps": step,
               "epochs": step / steps_per_epoch, "best_step": best["step"],
               "params": sum(p.numel() for p in model.parameters())}
    if test_ids is not None and len(test_ids) >= 2:
        test = evaluate(model, test_ids, pad, cfg.eval_batch_size)
        record("test", test, best["step"], train_s)
        summary.update(test_ppl=test["ppl"], test_accuracy=test["accuracy"])
    if run is not None:
        save_weights(model, run / "model.safetensors", best["state"])
        _write_json(run / "summary.json", summary)
    log(f"{cfg.name}: valid ppl {summary['valid_ppl']:.1f} test ppl "
        f"{summary['test_ppl'] if summary['test_ppl'] is None else round(summary['test_ppl'], 1)} "
        f"after {summary['train_minutes']:.1f} min")
    summary["_model"] = model
    return summary


# -- loading and generation ---------------------------------------------------


def load_run(run_dir: str | Path) -> tuple[NeuralNgramLM, Vocab, NgramConfig]:
    """(model, vocab, config) of a neural n-gram run directory."""
    run = Path(run_dir)
    for name in ("config.json", "vocab.json", "model.safetensors"):
        if not (run / name).is_file():
            raise UserError(f"{run} is not a neural n-gram run directory (no {name})")
    try:
        raw, vocab_json = safejson.read(run / "config.json"), safejson.read(run / "vocab.json")
    except (OSError, ValueError) as e:
        raise UserError(f"{run} has an unreadable config.json or vocab.json: {e}") from None
    if not isinstance(raw, dict) or not isinstance(vocab_json, dict):
        raise UserError(f"{run}: config.json and vocab.json must each hold a JSON object")
    known = {f.name for f in dataclasses.fields(NgramConfig)}
    cfg = NgramConfig(**{k: v for k, v in raw.items() if k in known})
    vocab = Vocab.from_json(vocab_json)
    model = NeuralNgramLM.from_config(cfg, len(vocab))
    state = load_file(str(run / "model.safetensors"))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{run}/model.safetensors does not match its config.json: {str(e).splitlines()[0]}") from None
    return model.eval(), vocab, cfg


@torch.no_grad()
def generate(model: NeuralNgramLM, vocab: Vocab, prompt: str = "", length: int = 20, temperature: float = 1.0,
             seed: int | None = None) -> list[str]:
    """Continue `prompt` (space-separated words) by `length` words; temperature 0
    is greedy (argmax). Returns the generated words (prompt not included)."""
    if temperature < 0:
        raise UserError(f"temperature must be >= 0, got {temperature}")
    model.eval()
    pad = _pad_id(vocab)
    ids = list(vocab.encode_prompt(prompt)) if prompt.strip() else []
    history = [pad] * model.context + [int(i) for i in ids]
    gen = torch.Generator().manual_seed(seed if seed is not None else 0)
    out = []
    for _ in range(length):
        logits = model(torch.tensor([history[-model.context:]]))[0]
        if temperature == 0:
            nxt = int(logits.argmax())
        else:
            nxt = int(torch.multinomial((logits / temperature).softmax(-1), 1, generator=gen))
        history.append(nxt)
        out.append(vocab.itos[nxt])
    return out
