"""Optimizers and learning-rate schedules named by `train.optimizer` / `train.schedule`.

Schedules (the lr used during epoch e, counting from 0):
  constant   lr
  zaremba    lr / lr_decay ** max(0, e + 1 - decay_after)   (Zaremba et al.: halve after epoch 4)
  plateau    lr is divided by lr_decay whenever validation loss fails to improve
  cosine     min_lr + (lr - min_lr) (1 + cos(π step / total_steps)) / 2
  step       lr / lr_decay ** floor(step / decay_every)        (the course's Grimm LSTM: x0.95 every 10,000 steps)
"""

from __future__ import annotations

import math

import torch

from rnnlab.config import TrainConfig


def build_optimizer(params, t: TrainConfig) -> torch.optim.Optimizer:
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, nesterov=t.nesterov and t.momentum > 0,
                               weight_decay=t.weight_decay)
    if t.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


class Schedule:
    """Learning rate as a function of progress; `plateau` also keeps a state."""

    def __init__(self, t: TrainConfig, total_steps: int):
        self.t, self.total_steps = t, max(total_steps, 1)
        self.plateau_lr = t.lr

    def lr(self, epoch: int, step: int) -> float:
        t = self.t
        if t.schedule == "zaremba":
            return t.lr / t.lr_decay ** max(0, epoch + 1 - t.decay_after)
        if t.schedule == "plateau":
            return self.plateau_lr
        if t.schedule == "step":
            return t.lr / t.lr_decay ** (step // t.decay_every)
        if t.schedule == "cosine":
            return t.min_lr + (t.lr - t.min_lr) * 0.5 * (
                1 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps)
            )
        return t.lr

    def observe(self, improved: bool) -> None:
        if self.t.schedule == "plateau" and not improved:
            self.plateau_lr /= self.t.lr_decay

    def state(self) -> dict:
        return {"plateau_lr": self.plateau_lr}

    def load(self, state: dict) -> None:
        self.plateau_lr = state.get("plateau_lr", self.plateau_lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def optimizer_tensors(optimizer: torch.optim.Optimizer, names: list[str]) -> tuple[dict, dict]:
    """Split optimizer state into tensors (for safetensors) and JSON-able rest."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{names[idx]}.{key}"] = value
            else:
                scalars[f"{names[idx]}.{key}"] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def load_optimizer(optimizer: torch.optim.Optimizer, names: list[str], tensors: dict, extra: dict) -> None:
    state: dict[int, dict] = {}
    index = {n: i for i, n in enumerate(names)}
    for key, value in tensors.items():
        if key.startswith("optim."):
            name, _, field = key[len("optim."):].rpartition(".")
            state.setdefault(index[name], {})[field] = value
    for key, value in extra.get("scalars", {}).items():
        name, _, field = key.rpartition(".")
        state.setdefault(index[name], {})[field] = value
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in extra["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
