"""The neural probabilistic language model of Bengio et al. (2003), `model.arch = "nplm"`.

Given the previous c = `model.context` words w_{t-c+1} .. w_t::

    x = [C(w_{t-c+1}); ...; C(w_t)]          concatenated embeddings, size c·E   (dropout)
    h = act(A x + d)                          act = tanh, or the identity ("linear")   (dropout)
    y = b + U h  (+ W x with model.direct)    one logit per word
    P(w_{t+1} = i | context) = softmax(y)_i

With `model.reader = "recurrent"` (the course's RNN extension) the hidden
layer is instead the last state of one recurrent layer (`model.cell`, H units)
that reads the same c embeddings in order::

    h_0 = 0,   h_k = cell(C(w_{t-c+k}), h_{k-1})  for k = 1..c,   h = h_c   (dropout)

and `model.bptt = k > 0` truncates backpropagation to the last k of those c
steps (the state entering them is detached).

It is a language model like the recurrent one (rnnlab/models/lm.py) and
trains, evaluates, samples and checkpoints through the same code: it reads
token batches x [T, B], and its "state" is the last c words of the batch
[1, B, c], so contexts run on across segments as a recurrent state does and
every token is predicted from the c words before it in its stream. Before the
start of a stream the context is `<eos>` (the start of a line). The output
layer is the language model's (`decoder.*`: full or adaptive softmax).

Parameters: `embedding.weight` [V, E], `hidden.weight` [H, c·E], `hidden.bias`
[H], `decoder.weight` [V, H], `decoder.bias` [V] and, with direct connections,
`direct.weight` [V, c·E] (starting at zero). The NumPy twin, with its
hand-written backward pass, is rnnlab/numpy/ngram.py.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from rnnlab.config import ModelConfig, parse_cutoffs
from rnnlab.errors import UserError
from rnnlab.models.lm import Decoder
from rnnlab.models.numpy_bridge import through_numpy
from rnnlab.models.softmax import AdaptiveSoftmax, full_loss
from rnnlab.models.stack import RecurrentStack
from rnnlab.numpy import ngram as ngram_np

START = 1  # <eos>'s id in a word vocabulary (Vocab.build: <unk>, <eos>, then by frequency)
EMBED_INIT = 0.1  # embeddings ~ U(-0.1, 0.1) unless model.init is set: tanh units start in their linear range


class NeuralNgramModel(nn.Module):
    def __init__(self, vocab_size: int, cfg: ModelConfig):
        super().__init__()
        self.cfg, self.vocab_size, self.context = cfg, vocab_size, cfg.context
        embed = cfg.embed or cfg.hidden
        self.embedding = nn.Embedding(vocab_size, embed)
        if cfg.reader == "recurrent":
            self.reader = RecurrentStack(cfg.cell, embed, cfg.hidden, 1, 0.0, cfg.impl, cfg.bias, **cfg.cell_options())
        else:
            self.hidden = nn.Linear(cfg.context * embed, cfg.hidden)
        if cfg.softmax == "adaptive":
            if cfg.cutoffs == "auto":
                raise UserError("model.cutoffs=auto is chosen from the training data when a run starts "
                                "(models/softmax.py:fit_output); a model built by hand needs numeric cutoffs")
            self.decoder = AdaptiveSoftmax(cfg.hidden, vocab_size, parse_cutoffs(cfg.cutoffs), cfg.div_value)
        else:
            self.decoder = Decoder(cfg.hidden, vocab_size)
        self.direct = nn.Linear(cfg.context * embed, vocab_size, bias=False) if cfg.direct else None
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.init > 0:
            for p in self.parameters():
                nn.init.uniform_(p, -cfg.init, cfg.init)
        else:
            nn.init.uniform_(self.embedding.weight, -EMBED_INIT, EMBED_INIT)
        if self.direct is not None:
            nn.init.zeros_(self.direct.weight)

    def init_state(self, batch_size: int) -> tuple[torch.Tensor]:
        """The context before a stream starts: c `<eos>` tokens per stream."""
        start = min(START, self.vocab_size - 1)
        return (
            torch.full((1, batch_size, self.context), start, dtype=torch.long, device=self.embedding.weight.device),
        )

    def contexts(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        """x [T, B] → the c words ending at each x_t [T, B, c] (oldest first), and the new state."""
        before = (state if state is not None else self.init_state(x.shape[1]))[0][0].t()  # [c, B]
        stream = torch.cat([before, x], 0)  # [c + T, B]
        windows = stream.unfold(0, self.context, 1)  # [T + 1, B, c]: windows[s] = stream[s : s + c]
        return windows[1:], (stream[-self.context:].t()[None].contiguous(),)

    def features(self, x: torch.Tensor, state=None):
        """(x_cat [T, B, c·E], h [T, B, H]) after dropout, and the new state."""
        ctx, state = self.contexts(x, state)
        if self.cfg.reader == "recurrent":
            return None, self.drop(self.read_recurrently(self.drop(self.embedding(ctx)))), state
        e = self.drop(self.embedding(ctx).flatten(2))
        h = self.hidden(e)
        if self.cfg.activation == "tanh":
            h = torch.tanh(h)
        return e, self.drop(h), state

    def read_recurrently(self, e: torch.Tensor) -> torch.Tensor:
        """Embeddings [T, B, c, E] → the reader's state after the c-th word [T, B, H]."""
        T, B, c, E = e.shape
        steps = e.reshape(T * B, c, E).transpose(0, 1)  # [c, T·B, E]: each window is a sequence of c steps
        k = self.cfg.bptt or c
        state = None
        if k < c:  # truncated BPTT: no gradient flows into the steps before the last k
            _, state = self.reader(steps[: c - k], state)
            state = tuple(s.detach() for s in state)
        out, _ = self.reader(steps[c - k:], state)
        return out[-1].view(T, B, -1)

    def forward(self, x: torch.Tensor, state=None, times=None, targets=None):
        """As LanguageModel.forward: logits [T, B, V] (or with targets the Loss), and the new state.
        `times` is accepted and ignored (only the Phased LSTM reads it)."""
        e, h, state = self.features(x, state)
        if self.direct is None:
            return (self.decoder.logits(h) if targets is None else self.decoder.loss(h, targets)), state
        logits = self.decoder.logits(h) + self.direct(e)
        return (logits if targets is None else full_loss(logits, targets)), state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# NumPy's names for the output layer (rnnlab/numpy/ngram.py); the rest are the same.
NUMPY_NAMES = {"decoder.weight": "output.weight", "decoder.bias": "output.bias"}


class NumpyBackedNgramModel(NeuralNgramModel):
    """`model.backend = "numpy"`: the same parameters, computed by rnnlab/numpy/ngram.py
    (forward and backward by hand); PyTorch holds the weights and runs the optimizer."""

    def __init__(self, vocab_size: int, cfg: ModelConfig):
        if cfg.softmax != "full":
            raise UserError("model.backend=numpy supports model.softmax=full only")
        super().__init__(vocab_size, cfg)

    def numpy_params(self) -> dict:
        """NumPy views of this module's tensors (no copies), under NumPy's names."""
        return {NUMPY_NAMES.get(name, name): p.detach().numpy() for name, p in self.named_parameters()}

    def forward(self, x: torch.Tensor, state=None, times=None, targets=None):
        if x.device.type != "cpu":
            raise UserError("model.backend=numpy runs on the CPU only (use train.device=cpu)")
        ctx, state = self.contexts(x, state)
        flat = ctx.reshape(-1, self.context)
        logits = torch.from_numpy(ngram_np.forward(self.numpy_params(), flat.numpy(), self.cfg.activation)[0])
        logits = logits.view(*x.shape, self.vocab_size)
        if targets is None:
            return logits, state
        out = full_loss(logits, targets)
        if self.training:  # the loss whose gradient NumPy computes (the value is the same)
            loss, grads = ngram_np.loss_and_grads(self.numpy_params(), flat.numpy(), targets.reshape(-1).numpy(),
                                                  self.cfg.activation)

            def vjp(dloss):
                scale = float(dloss)
                return [grads[NUMPY_NAMES.get(name, name)] * scale for name, _ in self.named_parameters()]

            out = out._replace(loss=through_numpy(loss, vjp, list(self.parameters())))
        return out, state
