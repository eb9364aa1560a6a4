"""Optimizers and gradient clipping for dicts of NumPy arrays, written to
reproduce ``torch.optim`` exactly. Learning-rate schedules have one
implementation, ``rnnlab.optim.Schedule``: set ``opt.lr`` from it.

Each optimizer holds a reference to the parameter dict and updates its arrays
in place: ``opt.step(grads)`` with ``grads`` keyed like the parameters (a
missing or ``None`` gradient skips that parameter, as torch skips params
whose ``.grad`` is None). Names, argument order and defaults are those of
``torch.optim`` (torch 2.x); the update rules below are transcribed from its
single-tensor implementations, with ``g`` the gradient after weight decay
(``g = grad + weight_decay * p``) and ``s`` the per-parameter step count.
The learning rate lives in ``opt.lr`` so a schedule can change it.
"""

from __future__ import annotations

import math

import numpy as np


class Optimizer:
    """Base class: per-parameter state dicts, weight decay, ``step``."""

    def __init__(self, params: dict[str, np.ndarray], lr: float, weight_decay: float = 0.0):
        if lr < 0.0:
            raise ValueError(f"invalid learning rate {lr}")
        self.params = params
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.state: dict[str, dict] = {}

    def _decayed(self, p, grad):
        # L2 penalty folded into the gradient (torch's coupled weight decay).
        return grad + self.weight_decay * p if self.weight_decay else grad

    def step(self, grads: dict[str, np.ndarray]) -> None:
        for name, grad in grads.items():
            if grad is None:
                continue
            p = self.params[name]
            self._update(p, np.asarray(grad, dtype=p.dtype), self.state.setdefault(name, {}))

    def _update(self, p, grad, state):  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Hyper-parameters and state (plain numbers and arrays) for checkpoints."""
        hyper = {k: v for k, v in vars(self).items() if k not in ("params", "state")}
        return {"hyper": hyper, "state": {k: dict(v) for k, v in self.state.items()}}

    def load_state_dict(self, sd: dict) -> None:
        vars(self).update(sd["hyper"])
        self.state = {k: {kk: (vv.copy() if isinstance(vv, np.ndarray) else vv)
                          for kk, vv in v.items()} for k, v in sd["state"].items()}


class SGD(Optimizer):
    """torch.optim.SGD.

        b = g (first step), b = momentum * b + (1 - dampening) * g (later)
        d = g + momentum * b (nesterov) or b (momentum) or g (plain)
        p = p - lr * d
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, lr, weight_decay)
        self.momentum, self.dampening, self.nesterov = float(momentum), float(dampening), nesterov

    def _update(self, p, grad, state):
        g = self._decayed(p, grad)
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, copy=True)
            else:
                buf *= self.momentum
                buf += (1.0 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Adagrad(Optimizer):
    """torch.optim.Adagrad.

        S = S + g^2   (S starts at initial_accumulator_value)
        p = p - lr / (1 + (s - 1) lr_decay) * g / (sqrt(S) + eps)
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        super().__init__(params, lr, weight_decay)
        self.lr_decay, self.eps = float(lr_decay), float(eps)
        self.initial_accumulator_value = float(initial_accumulator_value)

    def _update(self, p, grad, state):
        if not state:
            state["step"] = 0
            state["sum"] = np.full_like(p, self.initial_accumulator_value)
        state["step"] += 1
        g = self._decayed(p, grad)
        clr = self.lr / (1 + (state["step"] - 1) * self.lr_decay)
        state["sum"] += g * g
        std = np.sqrt(state["sum"])
        std += self.eps
        p -= clr * (g / std)


class RMSprop(Optimizer):
    """torch.optim.RMSprop.

        v = alpha v + (1 - alpha) g^2
        centered: m = m + (1 - alpha)(g - m), den = sqrt(v - m^2) + eps
        else:     den = sqrt(v) + eps
        momentum > 0: b = momentum b + g / den, p = p - lr b
        else:         p = p - lr g / den
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(params, lr, weight_decay)
        self.alpha, self.eps, self.momentum, self.centered = float(alpha), float(eps), float(momentum), centered

    def _update(self, p, grad, state):
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p)
            if self.momentum > 0:
                state["momentum_buffer"] = np.zeros_like(p)
            if self.centered:
                state["grad_avg"] = np.zeros_like(p)
        state["step"] += 1
        g = self._decayed(p, grad)
        v = state["square_avg"]
        v *= self.alpha
        v += (1.0 - self.alpha) * (g * g)
        if self.centered:
            m = state["grad_avg"]
            m += (1.0 - self.alpha) * (g - m)
            den = np.sqrt(v - m * m)
        else:
            den = np.sqrt(v)
        den += self.eps
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g / den
            p -= self.lr * buf
        else:
            p -= self.lr * (g / den)


class Adam(Optimizer):
    """torch.optim.Adam (coupled L2 weight decay, like torch's default).

        m = m + (1 - b1)(g - m),   v = b2 v + (1 - b2) g^2
        den = sqrt(v) / sqrt(1 - b2^s) + eps    (amsgrad: max of all v so far)
        p = p - lr / (1 - b1^s) * m / den
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(params, lr, weight_decay)
        self.betas, self.eps, self.amsgrad = (float(betas[0]), float(betas[1])), float(eps), amsgrad

    def _update(self, p, grad, state):
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        s = state["step"]
        b1, b2 = self.betas
        g = self._decayed(p, grad)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1.0 - b1) * (g - m)
        v *= b2
        v += (1.0 - b2) * (g * g)
        if self.amsgrad:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        step_size = self.lr / (1.0 - b1 ** s)
        den = np.sqrt(v) / math.sqrt(1.0 - b2 ** s)
        den += self.eps
        p -= step_size * (m / den)


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam}


def make_optimizer(name: str, params: dict, **kwargs) -> Optimizer:
    """Optimizer by (case-insensitive) name: sgd, adagrad, rmsprop, adam."""
    try:
        return OPTIMIZERS[name.lower()](params, **kwargs)
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}") from None


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients in place so their global norm is at most max_norm,
    like ``torch.nn.utils.clip_grad_norm_``:

        N = || (||g_1||_p, ..., ||g_k||_p) ||_p,   g_i *= min(1, max_norm / (N + 1e-6))

    Returns N (the norm before clipping). Norms are accumulated in float64.
    """
    arrays = [g for g in grads.values() if g is not None]
    if not arrays:
        return 0.0
    norm_type = float(norm_type)
    norms = np.array([np.linalg.norm(g.ravel().astype(np.float64, copy=False), norm_type)
                      for g in arrays])
    total = float(norms.max() if math.isinf(norm_type) else np.linalg.norm(norms, norm_type))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in arrays:
            g *= g.dtype.type(coef)
    return total
