"""Sampling from a language model.

The prompt is read once; after that every new token costs one recurrent step,
because the state (h, c) is carried from step to step — the prefix is never
re-run. Decoding: greedy (temperature 0), temperature, top-k and nucleus
(top-p) sampling; several samples at once share one batched forward pass;
word models stop a sample at `<eos>`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from rnnlab.config import validate_generation
from rnnlab.data.vocab import EOS, Vocab
from rnnlab.models.lm import positions
from rnnlab.models.stepper import LSTMStepper


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set to -inf every logit outside the top-k and outside the smallest set
    whose probability reaches top_p (always keeping the most likely token)."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= top_p  # mass before this token already ≥ p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def never_sample(logits: torch.Tensor, vocab: Vocab) -> torch.Tensor:
    """A character model's <unk> stands for "a character not seen in training";
    it is not text, so it is never produced (word models may produce <unk>, as
    their corpora do)."""
    if vocab.level == "char":
        logits = logits.clone()
        logits[..., vocab.unk] = float("-inf")
    return logits


def choose(logits: torch.Tensor, temperature: float, top_k: int, top_p: float, generator) -> torch.Tensor:
    """logits [B, V] → next token ids [B]."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = filter_logits(logits.float() / temperature, top_k, top_p).softmax(-1)
    # Inverse-CDF sampling: torch.multinomial's distribution at a fraction of its
    # cost (~1 ms a draw over 17k words). u < total strictly (a float32 uniform
    # scaled in float64), so a token of probability 0 is never chosen.
    cdf = probs.double().cumsum(-1)
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device).double() * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1)


def prompt_ids(vocab: Vocab, prompt: str) -> torch.Tensor:
    if prompt:
        ids = vocab.encode_prompt(prompt)
        if len(ids):
            return torch.as_tensor(ids)
    # No prompt: start as if after a line break / at a sentence boundary.
    start = vocab.eos if vocab.level == "word" else vocab.stoi.get("\n", vocab.unk)
    return torch.tensor([start])


@torch.no_grad()
def sample_tokens(model, vocab: Vocab, prompt: str = "", length: int = 200, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, num: int = 1, seed: int | None = None,
                  device="cpu") -> Iterator[torch.Tensor]:
    """Yield the next token id of each of `num` samples, one step at a time."""
    validate_generation(temperature, top_k, top_p, length)
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else torch.seed())
    ids = prompt_ids(vocab, prompt).to(device)
    x = ids[:, None].expand(-1, num)  # [T, num]
    logits, state = model(x, None, positions(0, x))  # the prompt, once
    stepper = LSTMStepper(model) if LSTMStepper.supports(model) else None  # LSTMs step in NumPy: 4x less overhead
    try:
        for i in range(length):
            token = choose(never_sample(logits[-1], vocab), temperature, top_k, top_p, generator)
            yield token
            if stepper is not None:
                logits, state = stepper(token, state)
            else:  # one step, state carried; the position matters to a Phased LSTM's time gate
                logits, state = model(token[None, :], state, positions(len(ids) + i, token[None, :]))
    finally:
        model.train(was_training)


def generate(model, vocab: Vocab, prompt: str = "", length: int = 200, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, num: int = 1, seed: int | None = None, device="cpu",
             on_token: Callable[[int, str], None] | None = None) -> list[str]:
    """Return `num` continuations of `prompt` (without the prompt itself).

    `on_token(sample_index, text)` is called as each token is sampled, for streaming.
    """
    outputs: list[list[str]] = [[] for _ in range(num)]
    done = [False] * num
    for step in sample_tokens(model, vocab, prompt, length, temperature, top_k, top_p, num, seed, device):
        for i, t in enumerate(step.tolist()):
            if done[i]:
                continue
            token = vocab.itos[t]
            if vocab.level == "word" and token == EOS:
                done[i] = True
                continue
            piece = token if vocab.level == "char" or not outputs[i] else " " + token
            outputs[i].append(piece)
            if on_token:
                on_token(i, piece)
        if all(done):
            break
    return ["".join(o) for o in outputs]


@torch.no_grad()
def teacher_forced(model, vocab: Vocab, text: str, device="cpu") -> str:
    """The model's most likely next token after each prefix of `text`: shows
    what a character model has learned (printed under the progress bar)."""
    was_training = model.training
    model.eval()
    ids = torch.as_tensor(vocab.encode(list(text) if vocab.level == "char" else text.split()), device=device)
    logits, _ = model(ids[:, None])
    model.train(was_training)
    return vocab.decode(never_sample(logits[:, 0], vocab).argmax(-1).tolist())
