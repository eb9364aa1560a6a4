"""Where a run stands, besides its tensors: the one description of the
progress a checkpoint carries to resume a run exactly.

The Trainer keeps a `Progress` and writes it into every checkpoint's
metadata (`to_meta`); resuming reads it back (`from_meta`); the checkpoint
reader validates the metadata against the same fields (`meta_schema`, used
by rnnlab/checkpoint.py's SCHEMA). Each field declares its check and whether
it was added after the first checkpoint format (`newer`: an older checkpoint
lacks it, and resuming one gives it its default).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields


def integer(low: int = 0) -> Callable[[object], bool]:
    """A check: an int (not a bool) >= low."""
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def number(low: float = -math.inf, finite: bool = True) -> Callable[[object], bool]:
    """A check: an int or float, not NaN, >= low (and finite unless finite=False)."""
    def ok(v) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            return False
        return (math.isfinite(v) or not finite) and v >= low
    return ok


def _entry(default, check: Callable[[object], bool], newer: bool = False):
    factory = {"default_factory": default} if callable(default) else {"default": default}
    return field(**factory, metadata={"check": check, "newer": newer})


@dataclass
class Progress:
    """Keys in the metadata are the field names, but for the three training
    totals, one list (`train_totals`)."""

    step: int = _entry(0, integer())  # completed optimizer steps (skipped faulty ones included)
    epoch: int = _entry(0, integer())
    index: int = _entry(0, integer())  # batches done in this epoch
    # lowest validation loss so far (the 'best' checkpoint's); inf before the first evaluation
    best_valid: float = _entry(math.inf, number(finite=False))
    faults: int = _entry(0, integer())  # non-finite losses or gradients so far
    consecutive_faults: int = _entry(0, integer())
    fault_lr_scale: float = _entry(1.0, lambda v: number()(v) and v > 0)  # halved after every 3rd consecutive fault
    elapsed: float = _entry(0.0, number(0))  # training seconds, over all sessions of the run
    train_nll: float = _entry(0.0, number(0))  # training loss summed over tokens since the last evaluation
    train_correct: float = _entry(0.0, number(0))
    train_tokens: float = _entry(0.0, number(0))
    # of `elapsed`, the time spent in training steps (batch assembly included)
    step_seconds: float = _entry(0.0, number(0), newer=True)
    # highest validation accuracy so far (for train.patience); -inf before the first evaluation
    best_accuracy: float = _entry(-math.inf, number(finite=False), newer=True)
    best_accuracy_step: int = _entry(0, integer(), newer=True)  # the step it was reached at
    # why the run ended before its budget: "accuracy" (train.stop_at_accuracy), "plateau" (train.patience)
    early_stop: str = _entry("", lambda v: v in ("", "accuracy", "plateau"), newer=True)
    # {"2": steps run on 2 torch threads, ...}: auto follows the load
    thread_steps: dict = _entry(dict, lambda v: isinstance(v, dict) and all(k.isdigit() and integer()(n)
                                                                         for k, n in v.items()), newer=True)
    # Steps between evaluations as the run began (train.eval_every, or auto_eval_every's), kept so that a
    # resumed run evaluates where the uninterrupted one would have; 0 in checkpoints from before auto.
    eval_every: int = _entry(0, integer(), newer=True)

    TOTALS = ("train_nll", "train_correct", "train_tokens")  # stored as one list, "train_totals"

    def totals(self) -> tuple[float, ...]:
        return tuple(getattr(self, k) for k in self.TOTALS)

    def to_meta(self, totals: tuple[float, ...] | None = None) -> dict:
        """The checkpoint metadata. `totals`: the training totals to store, this process's
        own by default (a distributed run stores them summed over its processes)."""
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.TOTALS}
        meta["train_totals"] = list(self.totals() if totals is None else totals)
        return meta

    def out_of_bounds(self, steps_per_epoch: int) -> str | None:
        """What in a position read from a checkpoint cannot be where its run stands (a forged
        or damaged one), or None. Every step moves `index` on by one, wrapping into `epoch`."""
        if not 0 <= self.index < steps_per_epoch:
            return f"'index' {self.index} is outside an epoch of {steps_per_epoch} batches"
        if self.epoch * steps_per_epoch + self.index > self.step:
            return (f"'epoch' {self.epoch} and 'index' {self.index} are further than 'step' {self.step} "
                    f"can reach ({steps_per_epoch} batches an epoch)")
        for name, value, limit in (("best_accuracy_step", self.best_accuracy_step, "step"),
                                   ("faults", self.faults, "step"),
                                   ("consecutive_faults", self.consecutive_faults, "faults"),
                                   ("thread_steps", sum(self.thread_steps.values()), "step")):
            if value > getattr(self, limit):
                return f"'{name}' ({value}) is more than '{limit}' ({getattr(self, limit)})"
        return None

    @classmethod
    def from_meta(cls, meta: dict) -> Progress:
        """Raises KeyError / TypeError / ValueError on metadata that lacks or garbles a field. Fields
        added after a checkpoint was written (`newer`) take their defaults, so older runs still resume."""
        kept = {f.name: meta[f.name] for f in fields(cls)
                if f.name not in cls.TOTALS and (f.name in meta or not f.metadata["newer"])}
        nll, correct, tokens = meta["train_totals"]
        return cls(**kept, train_nll=nll, train_correct=correct, train_tokens=tokens)

    @classmethod
    def meta_schema(cls) -> dict[str, Callable[[object], bool]]:
        """Each metadata key a Progress writes, with its check."""
        schema = {f.name: f.metadata["check"] for f in fields(cls) if f.name not in cls.TOTALS}
        totals = [f.metadata["check"] for f in fields(cls) if f.name in cls.TOTALS]
        schema["train_totals"] = lambda v: (isinstance(v, list) and len(v) == len(totals)
                                            and all(ok(x) for ok, x in zip(totals, v)))
        return schema
