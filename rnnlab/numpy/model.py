"""Word/character language model on the NumPy backend.

    e_t     = drop(E[x_t])                                   E: embedding.weight [V, E]
    h^l_t   = cell_l(drop(h^{l-1}_t), state^l_{t-1}),  h^0 = e
    z_t     = W_dec drop(h^L_t) + b_dec                      W_dec [V, H] (or E when tied)
    loss    = mean_{t,b} CE(z_t, y_t)

Dropout (inverted, prob p) sits on the embedding output, between layers and
on the last layer's output, never on the recurrent connections (Zaremba et
al. 2014): the masks act on what flows up the stack, not along time.

Backward is the chain above in reverse: softmax-CE -> decoder (Linear) ->
dropout masks -> each layer's BPTT (:mod:`rnnlab.numpy.cells`, whose ``dx``
feeds the layer below) -> embedding scatter-add. With tied weights the
decoder's weight gradient is added to the embedding's.

Parameter names and shapes are the shared contract with the PyTorch model:
``embedding.weight``, ``rnn.layers.{l}.{weight_ih,weight_hh,bias_ih[,bias_hh]
[,tau,shift,r_on]}``, ``decoder.weight`` (absent when tied), ``decoder.bias``.
"""

from __future__ import annotations

import numpy as np

from rnnlab.cell_registry import numpy_layer, resolve

from .layers import (
    apply_mask,
    dropout_mask,
    embedding_backward,
    embedding_forward,
    linear_backward,
    linear_forward,
    softmax_cross_entropy,
)


class NumpyLanguageModel:
    """Embedding -> ``layers`` stacked recurrent layers -> linear decoder.

    Args:
        vocab_size, embed, hidden, layers: sizes (embed 0/None = hidden, as
            ``ModelConfig.embed``).
        cell: a cell of the cell table (rnnlab/cell_registry.py: "lstm", "gru",
            "rnn" with ``nonlinearity``, "phased_lstm", "mgu", "mingru", "minlstm")
            or an alias ("rnn_tanh", "rnn_relu").
        dropout: inverted-dropout probability on non-recurrent connections.
        tie_weights: decoder uses ``embedding.weight`` (needs embed == hidden).
        init: "default", None or 0 -> PyTorch's defaults (embedding N(0, 1);
            recurrent weights and biases U(+-1/sqrt(H)); decoder U(+-1/sqrt(H))
            like ``nn.Linear``). A number u > 0 -> every tensor U(-u, u)
            (Zaremba style; same meaning as ``ModelConfig.init``); Phased LSTM
            timing parameters always use their own init.
        bias: "double" (bias_ih and bias_hh, like PyTorch) or "single".
        dtype: "float32" or "float64"; all parameters and math use it.
        seed: seeds the initialisation; dropout uses a separate stream
            (``self.rng``) unless ``rng`` is passed to :meth:`forward_loss`.
        **cell_options: the cell's options by the cell table (rnnlab/cell_registry.py):
            nonlinearity (rnn), gru_z and gru_reset (gru), leak and r_on_init (Phased LSTM);
            options of other cells are ignored.

    State is a list with one tuple per layer: ``(h, c)`` for LSTM/Phased
    LSTM, ``(h,)`` for GRU/RNN, each [B, H]. ``forward_loss`` and ``logits``
    return fresh arrays for the final state, so carrying it to the next
    truncated-BPTT segment is already "detached". :meth:`stack_state` /
    :meth:`unstack_state` convert to and from the PyTorch model's layout (a
    tuple of [L, B, H] arrays).
    """

    def __init__(self, vocab_size: int, embed: int = 200, hidden: int = 200, layers: int = 2,
                 cell: str = "lstm", dropout: float = 0.0, tie_weights: bool = False,
                 init="default", bias: str = "double", dtype="float32", seed: int = 0, **cell_options):
        embed = embed or hidden
        if tie_weights and embed != hidden:
            raise ValueError(f"tie_weights needs embed == hidden, got {embed} != {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.vocab_size, self.embed, self.hidden = int(vocab_size), int(embed), int(hidden)
        self.num_layers = int(layers)
        self.cell = cell
        self.dropout = float(dropout)
        self.tie_weights = bool(tie_weights)
        self.dtype = np.dtype(dtype)
        self.cells = [numpy_layer(cell, embed if l == 0 else hidden, hidden, bias, **cell_options)
                      for l in range(self.num_layers)]
        self.needs_times = resolve(cell)[0].needs_times  # Phased LSTM
        init_rng = np.random.default_rng(seed)
        self.rng = np.random.default_rng([seed, 1])  # dropout stream
        self.params: dict[str, np.ndarray] = self._init_params(init, init_rng)

    # --- parameters -----------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {"embedding.weight": (self.vocab_size, self.embed)}
        for l, c in enumerate(self.cells):
            shapes.update({f"rnn.layers.{l}.{k}": s for k, s in c.param_shapes().items()})
        if not self.tie_weights:
            shapes["decoder.weight"] = (self.vocab_size, self.hidden)
        shapes["decoder.bias"] = (self.vocab_size,)
        return shapes

    def _init_params(self, init, rng) -> dict[str, np.ndarray]:
        default = init is None or (isinstance(init, str) and init in ("default", "pytorch"))
        default = default or float(init) <= 0.0
        u = None if default else float(init)
        params = {}
        if default:
            params["embedding.weight"] = rng.standard_normal((self.vocab_size, self.embed))
        else:
            params["embedding.weight"] = rng.uniform(-u, u, (self.vocab_size, self.embed))
        for l, c in enumerate(self.cells):
            for k, v in c.init_params(rng, self.dtype, init=u).items():
                params[f"rnn.layers.{l}.{k}"] = v
        bound = 1.0 / np.sqrt(self.hidden) if default else u
        if not self.tie_weights:
            params["decoder.weight"] = rng.uniform(-bound, bound, (self.vocab_size, self.hidden))
        params["decoder.bias"] = rng.uniform(-bound, bound, self.vocab_size)
        return {k: np.ascontiguousarray(v, dtype=self.dtype) for k, v in params.items()}

    def layer_params(self, l: int) -> dict[str, np.ndarray]:
        """Layer ``l``'s parameters under the cell's local names (same arrays)."""
        prefix = f"rnn.layers.{l}."
        return {k: self.params[prefix + k] for k in self.cells[l].param_shapes()}

    def num_params(self) -> int:
        return int(sum(v.size for v in self.params.values()))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays (NumPy, or anything ``np.asarray`` accepts, e.g. CPU
        torch tensors) into ``params``, casting to the model dtype."""
        shapes = self.param_shapes()
        missing = set(shapes) - set(state)
        unexpected = set(state) - set(shapes)
        if strict and (missing or unexpected):
            raise KeyError(f"missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        for k in shapes:
            if k in state:
                v = np.asarray(state[k], dtype=self.dtype)
                if v.shape != shapes[k]:
                    raise ValueError(f"{k}: expected shape {shapes[k]}, got {v.shape}")
                self.params[k] = np.ascontiguousarray(v).copy()

    # --- state ------------------------------------------------------------
    def zero_state(self, batch: int) -> list[tuple]:
        return [c.zero_state(batch, self.dtype) for c in self.cells]

    @staticmethod
    def stack_state(state: list[tuple]) -> tuple:
        """Per-layer tuples -> tuple of [L, B, H] arrays ((h, c) or (h,)),
        the layout of the PyTorch model's state."""
        return tuple(np.stack([layer[k] for layer in state]) for k in range(len(state[0])))

    def unstack_state(self, stacked) -> list[tuple]:
        """Tuple of [L, B, H] arrays (NumPy or detached CPU torch) -> per-layer tuples."""
        arrays = [np.asarray(s, dtype=self.dtype) for s in stacked]
        return [tuple(a[l].copy() for a in arrays) for l in range(self.num_layers)]

    # --- forward / backward ----------------------------------------------
    def _times(self, times, T, B):
        if not self.needs_times:
            return None
        if times is None:
            # One time unit per token, counted from the segment start. Pass
            # absolute positions to keep phases continuous across segments.
            return np.broadcast_to(np.arange(T, dtype=self.dtype)[:, None], (T, B))
        return np.asarray(times, dtype=self.dtype)

    def _run(self, x, state, train, rng, times):
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"x must be int [T, B], got shape {x.shape}")
        T, B = x.shape
        state = self.zero_state(B) if state is None else state
        times = self._times(times, T, B)
        p = 0.0 if not train else self.dropout
        rng = self.rng if rng is None else rng
        h = embedding_forward(self.params["embedding.weight"], x)
        masks = [dropout_mask(h.shape, p, rng, self.dtype)]
        h = apply_mask(h, masks[0])
        caches, new_state = [], []
        for l, c in enumerate(self.cells):
            h, st, cache = c.forward(self.layer_params(l), h, state[l], times=times, train=train)
            caches.append(cache)
            new_state.append(st)
            masks.append(dropout_mask(h.shape, p, rng, self.dtype))
            h = apply_mask(h, masks[-1])
        w_dec = self.params["embedding.weight" if self.tie_weights else "decoder.weight"]
        logits = linear_forward(h, w_dec, self.params["decoder.bias"])
        return logits, new_state, {"x": x, "masks": masks, "caches": caches, "top": h}

    def forward_loss(self, x, y, state=None, train: bool = True,
                     rng: np.random.Generator | None = None, times=None):
        """Mean cross-entropy (nats) of predicting ``y`` from ``x``.

        x, y: int [T, B]. state: as from :meth:`zero_state` (None = zeros).
        train: dropout on and Phased LSTM leak 1e-3; False = evaluation.
        times: [T, B] timestamps for Phased LSTM (default 0..T-1).
        Returns ``(loss, new_state, cache)`` (loss: ``np.float64``, a ``float``); pass ``cache`` to
        :meth:`backward`.
        """
        if np.shape(y) != np.shape(x):
            raise ValueError(f"y must have the shape of x {np.shape(x)}, got {np.shape(y)}")
        logits, new_state, cache = self._run(x, state, train, rng, times)
        loss, dlogits = softmax_cross_entropy(logits, y)
        cache["dlogits"] = dlogits
        return loss, new_state, cache

    def backward(self, cache) -> dict[str, np.ndarray]:
        """Gradients of the loss of :meth:`forward_loss` w.r.t. every
        parameter, as a dict with the same keys (and order) as ``params``."""
        x, masks, caches, top = cache["x"], cache["masks"], cache["caches"], cache["top"]
        tied = self.tie_weights
        w_dec = self.params["embedding.weight" if tied else "decoder.weight"]
        grads = {}
        d, dw_dec, grads["decoder.bias"] = linear_backward(top, w_dec, cache["dlogits"])
        if not tied:
            grads["decoder.weight"] = dw_dec
        d = apply_mask(d, masks[-1])
        for l in range(self.num_layers - 1, -1, -1):
            lg = self.cells[l].backward(self.layer_params(l), caches[l], d, None)
            grads.update({f"rnn.layers.{l}.{k}": v for k, v in lg.params.items()})
            d = apply_mask(lg.dx, masks[l])
        d_emb = embedding_backward(x, d, self.vocab_size)
        if tied:
            d_emb += dw_dec
        grads["embedding.weight"] = d_emb
        return {k: grads[k] for k in self.params}

    def logits(self, x, state=None, times=None):
        """Evaluation forward (no dropout, no leak): ``(logits [T, B, V], new_state)``.
        Use T=1 steps with the returned state for generation."""
        logits, new_state, _ = self._run(x, state, False, None, times)
        return logits, new_state
