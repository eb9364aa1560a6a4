"""Recording what a trained network computes at every step of a text.

For each layer l and time step t the recording holds the hidden state h_t,
the cell state c_t where the cell has one, and every gate's activation, by
the names the cell table gives them (`Cell.signals`, rnnlab/cell_registry.py):
the LSTM's i, f, g, o; the GRU's r, z, n; the Phased LSTM's gates and its time
gate k; the MGU's f and candidate h̃ ("h_tilde"); minGRU's z, minLSTM's f and
i (and their candidates); the RNN's h only. Step t's values are those after
reading token t, from the zero state at t = 0.

PyTorch's fused kernels (torch.lstm, torch.gru, ...) return h and c but no
gates, so the signals come from the explicit layers, which run the same
weights through the cell's equations step by step (`backend="torch"`,
rnnlab/models/cells.py & co., their `record` argument), or from the NumPy
reference layers' forward caches (`backend="numpy"`, rnnlab/numpy, each
layer's `signals(cache)`). The loss and the predictions come from the run's
own model (its fused kernel where it has one), so they are what `rnnlab
eval` scores; tests/test_states_record.py checks that the explicit h equals
that model's, and that both backends record the same values.

    loss[t] = −log p(token_t | tokens_<t)  (nats; loss[0] is NaN: nothing precedes token 0)
    top[t]  = the top_k most likely tokens at t + 1, given tokens_≤t, with their probabilities

A word model scores a word it does not know as <unk>; a character model's
unknown characters likewise (with a warning).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnlab import cell_registry
from rnnlab.bounds import MAX_RECORD, check_recording_memory
from rnnlab.errors import UserError

CHUNK = 500  # steps per piece: progress is reported after each, and at most CHUNK × V logits are held at once
BACKENDS = ("torch", "numpy")


@dataclass
class Recording:
    tokens: list[str]  # the text's tokens, one per time step (chars or words)
    level: str  # "char" | "word"
    layers: list[dict[str, np.ndarray]]  # per layer: signal name -> float32 [T, H] (Cell.signals' names and order)
    loss: np.ndarray  # [T] nats: −log p(token_t | tokens before t); loss[0] is NaN
    top: list[list[tuple[str, float]]]  # at position t, the top-k predictions for token t+1 with probabilities
    # signal name -> "gate" ([0, 1]), "tanh" ([−1, 1]) or "free" (unbounded): Cell.signals (saturation reads it)
    kinds: dict[str, str] = field(default_factory=dict)
    cell: str = ""  # the cell table's name of the network's cell

    def __len__(self) -> int:
        return len(self.tokens)


def _signal_kinds(model) -> dict[str, str]:
    """The cell table's signals for the model's cell and options; an unknown cell is an error."""
    cfg = model.cfg
    try:
        cell, options = cell_registry.resolve(cfg.cell, cfg.cell_options())
    except ValueError as e:
        raise UserError(str(e)) from None
    kinds = cell.recorded_signals(options)
    if not kinds:
        raise UserError(f"the cell table declares no signals to record for cell {cell.name} (Cell.signals)")
    return kinds


def _check_model(model) -> None:
    from rnnlab.models.lm import LanguageModel

    if not isinstance(model, LanguageModel):
        arch = getattr(getattr(model, "cfg", None), "arch", type(model).__name__)
        raise UserError(f"only a recurrent language model (model.arch=rnn) has states to record; this is {arch}")


def encode(vocab, text: str, max_tokens: int) -> tuple[list[str], np.ndarray]:
    """(tokens, ids) of `text` at the vocabulary's level. Refused in one line: an empty text, one
    longer than `max_tokens` tokens, one with no token the model knows."""
    from rnnlab.data.vocab import UNK, tokenize

    if not isinstance(text, str):
        raise UserError(f"text must be a string, got {type(text).__name__}")
    tokens = tokenize(text, vocab.level)
    unit = "characters" if vocab.level == "char" else "words"
    if len(tokens) < 2:
        raise UserError(f"the text has {len(tokens)} {unit}; recording needs at least 2")
    if len(tokens) > max_tokens:
        raise UserError(f"the text has {len(tokens):,} {unit}; at most {max_tokens:,} are recorded at once")
    ids = vocab.encode(tokens)
    unknown = [t for t, i in zip(tokens, ids) if i == vocab.unk and t != UNK]
    if len(unknown) == len(tokens):
        raise UserError(f"the text has no {unit[:-1]} the model knows (its vocabulary has {len(vocab)} tokens)")
    if unknown:
        shown = ", ".join(repr(t) for t in sorted(set(unknown))[:10])
        warnings.warn(f"{len(unknown)} of {len(tokens)} {unit} are not in the model's vocabulary and are read as "
                      f"{UNK}: {shown}", stacklevel=2)
    return tokens, ids


@contextmanager
def one_sequence_threads(model):
    """Torch's intra-op threads while one sequence is read a step at a time: one for a small
    model (more only add overhead, a lot of it on a busy machine), the cores for a large one
    (rnnlab/threads.py's rule for training); the caller's setting is restored after."""
    import torch

    from rnnlab import threads

    before = torch.get_num_threads()
    torch.set_num_threads(threads.thread_ceiling(threads.model_work(model, 1), threads.usable_cores()))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _pieces(T: int):
    return [(s, min(s + CHUNK, T)) for s in range(0, T, CHUNK)]


def _model_outputs(model, x, vocab, top_k: int, tick: Callable[[int], None]):
    """The run's own forward (fused kernel where the cell has one), piece by piece with the
    state carried: loss [T] (nats) and the top-k predictions after every step."""
    import torch

    from rnnlab.models.lm import positions

    T = x.shape[0]
    loss = np.full(T, np.nan, dtype=np.float64)
    top: list[list[tuple[str, float]]] = []
    state = None
    k = min(top_k, len(vocab))
    for start, end in _pieces(T):
        xs = x[start:end]
        h, state = model.features(xs, state, positions(start, xs))
        logp = torch.log_softmax(model.decoder.logits(h)[:, 0].double(), dim=-1)  # [t, V]
        following = x[start + 1 : end + 1, 0]  # token t+1 for every t of the piece that has one
        loss[start + 1 : start + 1 + len(following)] = (
            -logp[: len(following)].gather(1, following[:, None])[:, 0].numpy()
        )
        if k:
            p, ids = logp.exp().topk(k, dim=-1)
            top.extend([(vocab.itos[int(j)], float(q)) for j, q in zip(row_ids, row_p)]
                       for row_ids, row_p in zip(ids.tolist(), p.tolist()))
        else:
            top.extend([] for _ in range(end - start))
        tick(end - start)
    return loss, top


def _torch_signals(model, x, tick) -> list[dict[str, np.ndarray]]:
    """Every layer's signals from the explicit PyTorch layers (the `record` path of their forward)."""
    import torch

    from rnnlab.models.lm import positions

    stack = model.rnn
    states = [tuple(torch.zeros(1, stack.hidden) for _ in range(stack.n_states)) for _ in stack.layers]
    pieces: list[list[dict]] = [[] for _ in stack.layers]
    for start, end in _pieces(x.shape[0]):
        xs = x[start:end]
        inp, times = model.embedding(xs), positions(start, xs)
        for l, layer in enumerate(stack.layers):
            record: dict = {}
            inp, states[l] = layer(inp, states[l], times=times, record=record)
            pieces[l].append({name: v[:, 0].numpy() for name, v in record.items()})
        tick(end - start)
    return [{name: np.concatenate([p[name] for p in layer]) for name in layer[0]} for layer in pieces]


def _numpy_signals(model, x, tick) -> list[dict[str, np.ndarray]]:
    """Every layer's signals from the NumPy reference layers (rnnlab/numpy), with the same weights:
    each layer's forward over the whole text, then its `signals(cache)`."""
    from rnnlab.models.lm import positions

    cfg = model.cfg
    ids = x.numpy()
    inp = model.embedding.weight.detach().numpy()[ids]  # [T, 1, E]
    times = positions(0, x).numpy()
    layers = []
    for torch_layer in model.rnn.layers:
        layer = cell_registry.numpy_layer(cfg.cell, inp.shape[-1], cfg.hidden, cfg.bias, **cfg.cell_options())
        params = {name: p.detach().numpy() for name, p in torch_layer.named_parameters()}
        inp, _, cache = layer.forward(params, inp, None, times=times, train=False)
        layers.append({name: v[:, 0] for name, v in layer.signals(cache).items()})
        tick(len(ids) // len(model.rnn.layers))
    return layers


def record_model(model, vocab, text: str, *, backend: str = "torch", top_k: int = 5, max_tokens: int = MAX_RECORD,
                 progress: Callable[[int, int], None] | None = None) -> Recording:
    """Run `model` (a recurrent LanguageModel, either backend's; evaluation mode) over `text` and
    record every layer's signals (module docstring). `backend`: "torch" (the explicit PyTorch
    layers) or "numpy" (the NumPy reference layers) computes the signals; the loss and
    predictions always come from the model's own forward. `progress(done, total)` is called as
    the work advances (in tokens: each token is read twice, by the model and by the recording
    layers). The text must have 2 to `max_tokens` tokens (at most MAX_RECORD)."""
    import torch

    if backend not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise UserError(f"top_k must be a non-negative integer, got {top_k!r}")
    _check_model(model)
    kinds = _signal_kinds(model)
    max_tokens = min(max_tokens, MAX_RECORD)
    tokens, ids = encode(vocab, text, max_tokens)
    check_recording_memory(len(tokens), model.cfg.layers, len(kinds), model.cfg.hidden)
    if next(model.parameters()).device.type != "cpu":
        model = model.cpu()
    model.eval()
    x = torch.from_numpy(ids)[:, None]
    total, done = 2 * len(tokens), [0]

    def tick(tokens_read: int) -> None:
        done[0] = min(done[0] + tokens_read, total)
        if progress is not None:
            progress(done[0], total)

    with torch.no_grad(), one_sequence_threads(model):
        loss, top = _model_outputs(model, x, vocab, top_k, tick)
        layers = (_torch_signals if backend == "torch" else _numpy_signals)(model, x, tick)
    ordered = []
    for l, signals in enumerate(layers):
        if set(signals) != set(kinds):
            raise RuntimeError(f"layer {l} recorded {sorted(signals)}, the cell table declares {list(kinds)}")
        ordered.append({name: np.ascontiguousarray(signals[name], dtype=np.float32) for name in kinds})
    return Recording(tokens, vocab.level, ordered, loss, top, kinds, model.cfg.cell)


def load_recordable(run_dir, checkpoint: str = "best"):
    """(model, vocab, config, meta) of a run whose states can be recorded: a recurrent language
    model (model.arch=rnn), loaded into PyTorch whichever backend trained it (both share the
    weights' names and shapes). A neural n-gram model or a sequence task's classifier is refused
    in one line."""
    from rnnlab.runs import load_run, read_config

    if checkpoint not in ("best", "last"):
        raise UserError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    cfg = read_config(Path(run_dir))
    if cfg.model.arch != "rnn":
        what = (
            "a neural n-gram model" if cfg.model.arch == "nplm" else f"a {cfg.task.kind or cfg.model.arch} classifier"
        )
        raise UserError(f"{run_dir} is {what} (model.arch={cfg.model.arch}): only a recurrent language model's states "
                        "are recorded")
    return load_run(Path(run_dir), checkpoint, "cpu", backend="torch")


def record_run(run_dir, text: str, *, checkpoint: str = "best", backend: str = "torch", top_k: int = 5,
               max_tokens: int = MAX_RECORD, progress: Callable[[int, int], None] | None = None) -> Recording:
    """`record_model` on a run's model (`load_recordable`): checkpoint "best" (the lowest
    validation loss; "last" where the run has no best yet, as every command that reads a run),
    or "last"."""
    model, vocab, _, _ = load_recordable(run_dir, checkpoint)
    return record_model(model, vocab, text, backend=backend, top_k=top_k, max_tokens=max_tokens, progress=progress)
