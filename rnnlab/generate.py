"""Sampling from a language model.

The prompt is read once; after that every new token costs one recurrent step,
because the state (h, c) is carried from step to step — the prefix is never
re-run. Decoding: greedy (temperature 0), temperature, top-k and nucleus
(top-p) sampling; several samples at once share one batched forward pass;
word models stop a sample at `<eos>`.

At one token per step the cost is dispatch, not arithmetic, so the step runs
in NumPy (rnnlab/models/stepper.py) and so does the sampler: inverse-CDF
sampling with uniforms drawn from a seeded torch generator in blocks.
Benchmark: benchmarks/generation.py (results in benchmarks/results/generation.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from rnnlab.bounds import MAX_SAMPLES, MAX_SEED, MAX_STOP
from rnnlab.config import validate_generation
from rnnlab.data.vocab import EOS, Vocab
from rnnlab.errors import UserError
from rnnlab.models.lm import positions
from rnnlab.models.stepper import Stepper


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


def never_sample(logits, vocab: Vocab) -> np.ndarray:
    """A character model's <unk> stands for "a character not seen in training";
    it is not text, so it is never produced (word models may produce <unk>, as
    their corpora do). Returns NumPy logits."""
    if torch.is_tensor(logits):
        logits = logits.detach().cpu().float().numpy()
    if vocab.level == "char":
        logits = logits.astype(np.float32)  # a copy: the caller's logits stay as they were
        logits[..., vocab.unk] = -np.inf
    return logits


def cumsum64(p: np.ndarray) -> np.ndarray:
    """Cumulative sums along the last axis in float64. NumPy's cumsum is a
    scalar loop (~4 ns a value, 75 µs over 17k words); PyTorch's is vectorised
    but costs a few µs to launch, which only pays off on long rows."""
    if p.shape[-1] < 2048:
        return np.cumsum(p, -1, dtype=np.float64)
    return torch.from_numpy(p).cumsum(-1, dtype=torch.float64).numpy()


def uniforms(generator: torch.Generator, num: int, block: int = 1024) -> Iterator[np.ndarray]:
    """u ~ U[0, 1) for each of `num` samples, one array [num] per step, drawn
    from the seeded torch `generator` `block` steps at a time (one draw per
    token would cost more than the rest of the sampling)."""
    while True:
        # float32 uniforms (u ≤ 1 − 2⁻²⁴) in float64: u · Σp < Σp strictly, see `choose`
        yield from torch.rand(block, num, generator=generator).double().numpy()


def argmax(logits: np.ndarray) -> np.ndarray:
    """Greedy choice along the last axis; NaN counts as -inf (a diverged model's logits)."""
    return np.where(np.isnan(logits), -np.inf, logits).argmax(-1)


def degenerate(total: float) -> bool:
    """A distribution with no positive, finite mass (every logit -inf, an inf or NaN
    logit, or an extreme temperature): nothing to sample, so the caller falls back to argmax."""
    return not (0 < total < np.inf)


def choose(logits: np.ndarray, temperature: float, top_k: int, top_p: float, u: np.ndarray) -> np.ndarray:
    """logits [B, V] → next token ids [B], given uniforms u [B] (see `uniforms`).

    Inverse-CDF sampling in NumPy (~15 µs a token, a fraction of
    torch.multinomial's dispatch): p = softmax(logits / T) after the top-k /
    top-p filter, then the first index whose cumulative probability exceeds
    u · Σp. As u · Σp < Σp strictly, a token of probability 0 is never chosen.
    Temperature 0 is greedy (argmax) and ignores u, and so is a row whose
    distribution degenerates (see `degenerate`).
    """
    if temperature == 0:
        return argmax(logits)
    z = logits - logits.max(-1, keepdims=True)  # a new array: the caller's logits stay as they were
    if temperature != 1:
        z /= np.float32(temperature)
    if top_k or top_p < 1.0:
        z = filter_logits(torch.from_numpy(z), top_k, top_p).numpy()
    np.exp(z, out=z)
    cdf = cumsum64(z)
    tokens = np.empty(len(cdf), np.int64)
    for b, row in enumerate(cdf):
        if degenerate(row[-1]):
            tokens[b] = argmax(logits[b])
        else:
            tokens[b] = np.searchsorted(row, u[b] * row[-1], side="right")
    return tokens


def choose_in_clusters(stepper: Stepper, u: np.ndarray) -> np.ndarray:
    """Temperature-1 sampling from an adaptive softmax without forming all V
    probabilities: inverse CDF over the head (shortlist words, then one entry
    per cluster); if a cluster is drawn, inverse CDF within it with what is left
    of the same uniform. The vocabulary lists the shortlist, then cluster 1's
    words, then cluster 2's, ..., so this picks the very token that `choose`
    picks from the full distribution with the same u (up to rounding), but a
    tail cluster is computed only when it is drawn."""
    head, shortlist = stepper.head(), stepper.shortlist
    tokens = np.empty(len(head), np.int64)
    for b, row in enumerate(head):
        cdf = cumsum64(np.exp(row - row.max()))
        if degenerate(cdf[-1]):
            j = int(argmax(row))
            if j < shortlist:
                tokens[b] = j
            else:
                first, scores = stepper.cluster(j - shortlist, b)
                tokens[b] = first + int(argmax(scores))
            continue
        target = u[b] * cdf[-1]
        j = int(np.searchsorted(cdf, target, side="right"))
        if j < shortlist:
            tokens[b] = j
            continue
        below = cdf[j - 1] if j else 0.0
        first, scores = stepper.cluster(j - shortlist, b)
        inner = cumsum64(np.exp(scores - scores.max()))
        if degenerate(inner[-1]):
            tokens[b] = first + int(argmax(scores))
            continue
        rest = (target - below) / (cdf[j] - below) * inner[-1]  # < inner[-1] but for rounding
        tokens[b] = first + min(int(np.searchsorted(inner, rest, side="right")), len(inner) - 1)
    return tokens


def prompt_ids(vocab: Vocab, prompt: str) -> torch.Tensor:
    if prompt:
        ids = vocab.encode_prompt(prompt)
        if len(ids):
            return torch.as_tensor(ids)
    # No prompt: start as if after a line break / at a sentence boundary.
    start = vocab.eos if vocab.level == "word" else vocab.stoi.get("\n", vocab.unk)
    return torch.tensor([start])


def sample_tokens(model, vocab: Vocab, prompt: str = "", length: int = 200, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, num: int = 1, seed: int | None = None,
                  device="cpu") -> Iterator[np.ndarray]:
    """Yield the next token ids [num] of the `num` samples, one step at a time."""
    # Not decorated with torch.no_grad: that would enter and leave the context at
    # every yield (~20 µs a token); the blocks below never span a yield instead.
    validate_generation(temperature, top_k, top_p, length)
    if not 1 <= num <= MAX_SAMPLES:
        raise UserError(f"num (samples at once) must be between 1 and {MAX_SAMPLES:,}, got {num}")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise UserError(f"seed must be between 0 and 2**63-1, got {seed}")
    was_training = model.training
    model.eval()
    u = uniforms(torch.Generator().manual_seed(seed if seed is not None else torch.seed()), num)
    ids = prompt_ids(vocab, prompt).to(device)
    with torch.no_grad():
        x = ids[:, None].expand(-1, num)  # [T, num]
        logits, state = model(x, None, positions(0, x))  # the prompt, once
        logits = logits[-1]
        stepper = Stepper(model, state) if Stepper.supports(model) else None  # 3-4x less overhead than torch
    # An adaptive softmax at temperature 1, unfiltered: sample cluster by cluster (same tokens, less work).
    by_cluster = (stepper is not None and stepper.adaptive and temperature == 1 and not top_k and top_p == 1.0
                  and vocab.level == "word")
    try:
        token = choose(never_sample(logits, vocab), temperature, top_k, top_p, next(u))
        yield token
        for i in range(1, length):
            if by_cluster:
                stepper.advance(token)
                token = choose_in_clusters(stepper, next(u))
            else:
                if stepper is not None:
                    logits = stepper(token)
                else:
                    with torch.no_grad():  # one step, state carried; a Phased LSTM's time gate needs the position
                        x = torch.from_numpy(token)[None, :].to(device)
                        logits, state = model(x, state, positions(len(ids) + i - 1, x))
                        logits = logits[-1]
                token = choose(never_sample(logits, vocab), temperature, top_k, top_p, next(u))
            yield token
    finally:
        model.train(was_training)


def generate(model, vocab: Vocab, prompt: str = "", length: int = 200, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, num: int = 1, seed: int | None = None, device="cpu",
             on_token: Callable[[int, str], None] | None = None, stop: str = "") -> list[str]:
    """Return `num` continuations of `prompt` (without the prompt itself).

    `on_token(sample_index, text)` is called as text is sampled, for streaming.
    A non-empty `stop` ends a sample where that string first appears (the
    string itself is not returned). As a stop string may span several tokens,
    text that could be the start of it is held back until it is not. The stop
    string is found by a `StopMatcher`, in time linear in the text; it has at
    most MAX_STOP characters.
    """
    check_stop(stop)
    texts = [""] * num
    emitted = [0] * num  # characters of texts[i] already handed to on_token
    done = [False] * num
    matcher = StopMatcher(stop) if stop else None
    held = [0] * num  # per sample: the matcher's state, the length of the end of the text that begins `stop`

    def emit(i: int, end: int) -> None:
        if on_token and end > emitted[i]:
            on_token(i, texts[i][emitted[i]:end])
            emitted[i] = end

    for step in sample_tokens(model, vocab, prompt, length, temperature, top_k, top_p, num, seed, device):
        for i, t in enumerate(step.tolist()):
            if done[i]:
                continue
            token = vocab.itos[t]
            if vocab.level == "word" and token == EOS:
                done[i] = True
                continue
            piece = token if vocab.level == "char" or not texts[i] else " " + token
            texts[i] += piece
            if matcher is not None:
                held[i], end = matcher.feed(held[i], piece)
                if end >= 0:  # the stop string ends `end` characters into the piece
                    at = len(texts[i]) - len(piece) + end - len(stop)
                    texts[i], done[i] = texts[i][:at], True
            emit(i, len(texts[i]) if done[i] else len(texts[i]) - held[i])
        if all(done):
            break
    for i in range(num):
        emit(i, len(texts[i]))
    return texts


def check_stop(stop: str) -> None:
    if len(stop) > MAX_STOP:
        raise UserError(f"the stop string has {len(stop):,} characters; at most {MAX_STOP:,} are allowed")


class StopMatcher:
    """Knuth-Morris-Pratt search for a stop string in text that arrives piece
    by piece: each character costs O(1) amortised, whatever the lengths (a
    search of the whole text at every token was quadratic, and the held-back
    prefix check cubic). A state is the length of the longest end of the text
    so far that is a beginning of `stop`, which is also what must be held back."""

    def __init__(self, stop: str):
        self.stop = stop
        self.fail = [0] * len(stop)  # fail[j]: longest proper border of stop[:j + 1]
        k = 0
        for j in range(1, len(stop)):
            while k and stop[j] != stop[k]:
                k = self.fail[k - 1]
            if stop[j] == stop[k]:
                k += 1
            self.fail[j] = k

    def feed(self, state: int, piece: str) -> tuple[int, int]:
        """(new state, index in `piece` just after the first complete `stop`, or -1)."""
        stop, fail = self.stop, self.fail
        for j, ch in enumerate(piece):
            while state and ch != stop[state]:
                state = fail[state - 1]
            if ch == stop[state]:
                state += 1
                if state == len(stop):
                    return state, j + 1
        return state, -1


def with_prompt(vocab: Vocab, prompt: str, text: str) -> str:
    """The prompt followed by its continuation, as printed: a word model's
    continuation starts without a space (tokens are joined by spaces), so one
    goes between them."""
    if vocab.level == "word" and prompt.strip() and text:
        return prompt.rstrip() + " " + text
    return prompt + text


def unescape(text: str) -> str:
    r"""A command-line stop string: `\n`, `\t`, `\r` and `\\` stand for newline, tab,
    carriage return and a backslash (a shell passes "\n" as two characters)."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "ntr\\":
            out.append({"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


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
