"""`model.backend = "numpy"`: the language model computed by the NumPy
reference backend (rnnlab/numpy), inside the same trainer.

The module owns exactly the parameters of the PyTorch `LanguageModel` (same
names, shapes and initialisation), and hands their memory to
`rnnlab.numpy.NumpyLanguageModel` as NumPy views. The forward pass and every
gradient are NumPy's hand-written ones: PyTorch contributes no arithmetic to
the model, only the container — the optimizer (whose updates equal
`rnnlab.numpy.optim`'s, tested to 1e-10), clipping, checkpoints and the
training loop — so a NumPy-trained run is a normal run that evaluates and
generates with either backend.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnlab.config import ModelConfig
from rnnlab.errors import UserError
from rnnlab.models.lm import LanguageModel
from rnnlab.models.numpy_bridge import through_numpy
from rnnlab.models.softmax import Loss, full_loss
from rnnlab.numpy import NumpyLanguageModel


class NumpyBackedLanguageModel(LanguageModel):
    def __init__(self, vocab_size: int, cfg: ModelConfig):
        if cfg.softmax != "full":
            raise UserError("model.backend=numpy supports model.softmax=full only")
        super().__init__(vocab_size, cfg)
        self.np = NumpyLanguageModel(vocab_size, embed=cfg.embed, hidden=cfg.hidden, layers=cfg.layers, cell=cfg.cell,
                                     dropout=cfg.dropout, tie_weights=cfg.tie_weights, bias=cfg.bias,
                                     **cfg.cell_options())
        self.names = [name for name, _ in self.named_parameters()]
        if set(self.names) != set(self.np.params):
            raise UserError(f"model.backend=numpy has no layout for this model ({cfg.cell}, softmax {cfg.softmax})")

    def _link(self) -> None:
        """Point the NumPy model at this module's current tensors (views, no copies)."""
        params = dict(self.named_parameters())
        self.np.params = {name: params[name].detach().numpy() for name in self.np.params}
        self.np.dtype = self.np.params["embedding.weight"].dtype
        if self.np.needs_times:
            # The torch Phased LSTM keeps tau and r_on positive in its forward; do the same here.
            for key, value in self.np.params.items():
                if key.endswith((".tau", ".r_on")):
                    np.maximum(value, 1e-3, out=value)

    def forward(self, x: torch.Tensor, state=None, times=None, targets=None):
        if x.device.type != "cpu":
            raise UserError("model.backend=numpy runs on the CPU only (use train.device=cpu)")
        self._link()
        np_state = None if state is None else self.np.unstack_state([s.detach().numpy() for s in state])
        np_times = None if times is None else times.numpy()
        if targets is not None and self.training:
            seed = int(torch.randint(0, 2**62, (1,)))  # dropout masks follow torch's RNG: resumable
            y = targets.numpy()
            loss, new_state, cache = self.np.forward_loss(x.numpy(), y, np_state, train=True,
                                                          rng=np.random.default_rng(seed), times=np_times)

            def vjp(dloss):
                grads, scale = self.np.backward(cache), float(dloss)
                return [grads[name] * scale for name in self.names]

            loss = through_numpy(loss, vjp, list(self.parameters()))
            # dlogits = (softmax − onehot(y)) / N, so the probabilities' argmax is free.
            probs = cache["dlogits"] * y.size
            np.put_along_axis(probs, y[..., None], np.take_along_axis(probs, y[..., None], -1) + 1, -1)
            correct = int((probs.argmax(-1) == y).sum())
            new_state = self.np.stack_state(new_state)
            return Loss(loss, torch.tensor(correct)), tuple(torch.from_numpy(s) for s in new_state)
        logits, new_state = self.np.logits(x.numpy(), np_state, times=np_times)
        logits = torch.from_numpy(logits)
        new_state = tuple(torch.from_numpy(s) for s in self.np.stack_state(new_state))
        if targets is None:
            return logits, new_state
        return full_loss(logits, targets), new_state
