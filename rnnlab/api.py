"""The Python API: what the CLI does, for a notebook or a script.

    import rnnlab
    run = rnnlab.train(preset="grimm-char", overrides={"train.max_steps": 500}, run_dir="runs/nb")
    run.evaluate("valid")              # {"loss", "perplexity", "bpc", "accuracy", "tokens", ...}
    run.generate("The king", length=100, temperature=0.5)   # [one string per sample]
    run.metrics                        # list of dicts, one per line of metrics.jsonl
    run.metrics_frame()                # the same as a pandas DataFrame (needs the pandas extra)
    run = rnnlab.load("runs/nb")       # any run directory, finished or not

A `Run` is a thin view of a run directory: every figure it returns is read
from the directory or computed by the same functions the CLI calls
(rnnlab.trainer, rnnlab.evaluate, rnnlab.generate), so the two never disagree.
The model is loaded on first use and kept.

Every argument is checked, its type and its value, before anything is
loaded or written: a wrong one raises `rnnlab.errors.UserError` with a
one-line reason, as the CLI prints it (bounds: rnnlab/bounds.py).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnlab.errors import UserError

if TYPE_CHECKING:  # only for the annotations: importing them costs torch
    import pandas
    import torch

    from rnnlab.config import Config
    from rnnlab.data.vocab import Vocab


CHECKPOINTS = ("best", "last")


def _show(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _path(name: str, value) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not isinstance(os.fspath(value), str):
        raise UserError(f"{name} must be a path (a str or pathlib.Path), got {_show(value)}")
    if not os.fspath(value) or "\0" in os.fspath(value):
        raise UserError(f"{name} must be a non-empty path without NUL characters, got {os.fspath(value)[:60]!r}")
    return Path(value)


def _int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name} must be an integer, got {_show(value)}")
    if not low <= value <= high:
        raise UserError(f"{name} must be between {low:,} and {high:,}, got {value:,}")
    return value


def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {_show(value)}")
    return float(value)


def _str(name: str, value, optional: bool = False) -> str | None:
    if (value is None and optional) or isinstance(value, str):
        return value
    raise UserError(f"{name} must be a string{' or None' if optional else ''}, got {_show(value)}")


def _bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{name} must be True or False, got {_show(value)}")
    return value


def _checkpoint(value) -> str:
    if not isinstance(value, str) or value not in CHECKPOINTS:
        raise UserError(f"checkpoint must be 'best' or 'last', got {_show(value)}")
    return value


class Run:
    """A run directory: its configuration, logs, checkpoints and model."""

    def __init__(self, run_dir: str | Path, checkpoint: str = "best"):
        from rnnlab.runs import read_config

        self.path = _path("run_dir", run_dir)
        _checkpoint(checkpoint)
        self.config: Config = read_config(self.path)  # UserError when it is not a run directory
        self.checkpoint = checkpoint
        self._loaded: tuple | None = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # ------------------------------------------------------------ the logs
    @property
    def metrics(self) -> list[dict[str, Any]]:
        """Every measurement logged so far (metrics.jsonl), re-read at each access."""
        from rnnlab.runs import read_jsonl

        return read_jsonl(self.path / "metrics.jsonl")

    def metrics_frame(self) -> pandas.DataFrame:
        """`metrics` as a pandas DataFrame, one row per measurement."""
        try:
            import pandas
        except ImportError:
            raise UserError("Run.metrics_frame() needs pandas: pip install -e '.[pandas]' (or pip install pandas); "
                            "Run.metrics has the same records as a list of dicts") from None
        return pandas.DataFrame(self.metrics)

    @property
    def samples(self) -> list[dict[str, Any]]:
        """The text sampled during training (samples.jsonl)."""
        from rnnlab.runs import read_jsonl

        return read_jsonl(self.path / "samples.jsonl")

    @property
    def summary(self) -> dict[str, Any] | None:
        """summary.json (final figures), or None while the run has not finished."""
        from rnnlab import safejson

        path = self.path / "summary.json"
        if not path.is_file():
            return None
        try:
            summary = safejson.read(path)  # bounded: size and nesting depth checked before parsing
        except OSError as e:
            raise UserError(f"cannot read {path}: {e.strerror or e}") from None
        except safejson.BadJSON as e:
            raise UserError(f"{path} is corrupted: {e}") from None
        if not isinstance(summary, dict):
            raise UserError(f"{path} is corrupted: not a JSON object")
        return summary

    # ------------------------------------------------------------ the model
    def _model(self) -> tuple:
        if self._loaded is None:
            from rnnlab.devices import resolve_device
            from rnnlab.runs import load_run

            device = resolve_device(self.config.train.device)
            model, vocab, cfg, meta = load_run(self.path, self.checkpoint, device)
            self._loaded = (model, vocab, cfg, meta, device)
        return self._loaded

    @property
    def model(self) -> torch.nn.Module:
        """The trained torch model (the `checkpoint` given to load: 'best', else 'last')."""
        return self._model()[0]

    @property
    def vocab(self) -> Vocab:
        return self._model()[1]

    def evaluate(self, split: str = "valid") -> dict[str, Any]:
        """Loss, perplexity, bits per token and accuracy on 'train', 'valid' or 'test'."""
        from rnnlab.data.corpus import load_corpus
        from rnnlab.evaluate import evaluate

        if not isinstance(split, str) or split not in ("train", "valid", "test"):
            raise UserError(f"split must be train, valid or test, got {split!r:.60}")
        model, vocab, cfg, meta, device = self._model()
        corpus = load_corpus(cfg.data, vocab)
        result = evaluate(model, corpus.split(split), cfg.train.eval_batch_size, cfg.train.eval_seq_len, device)
        return {"split": split, **result, "step": meta["step"]}

    def generate(self, prompt: str = "", length: int = 200, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, num: int = 1, seed: int | None = None, stop: str = "",
                 include_prompt: bool = False) -> list[str]:
        """`num` continuations of `prompt`, as `rnnlab generate` samples them: by default the
        continuation alone, without the prompt; `include_prompt=True` returns prompt + continuation
        as the CLI prints it (a word model's continuation joined to the prompt by a space). A
        non-empty `stop` ends each where that text first appears (as `--stop`).
        Bounds: length 1..1,000,000 tokens, num 1..1,000 samples, stop at most
        1,000 characters, seed None or 0..2**63-1 (rnnlab/bounds.py)."""
        from rnnlab.bounds import MAX_LENGTH, MAX_SAMPLES, MAX_SEED
        from rnnlab.generate import check_stop, generate, with_prompt

        _str("prompt", prompt)
        _int("length", length, 1, MAX_LENGTH)
        _real("temperature", temperature)
        _int("top_k", top_k, 0, 2**63 - 1)
        _real("top_p", top_p)
        _int("num", num, 1, MAX_SAMPLES)
        if seed is not None:
            _int("seed", seed, 0, MAX_SEED)
        if not isinstance(include_prompt, bool):
            raise UserError(f"include_prompt must be True or False, got {type(include_prompt).__name__}")
        check_stop(_str("stop", stop))
        model, vocab, _, _, device = self._model()
        texts = generate(model, vocab, prompt, length, temperature, top_k, top_p, num, seed, device, stop=stop)
        return [with_prompt(vocab, prompt, text) for text in texts] if include_prompt else texts


def train(preset: str | None = None, overrides: Mapping[str, Any] | None = None,
          run_dir: str | Path | None = None, config: str | Path | None = None,
          progress: bool = False, overwrite: bool = False) -> Run:
    """Train like `rnnlab train --preset PRESET --set KEY=VALUE ...` and return the run.

    `overrides` maps dotted keys to values ({"train.max_steps": 500,
    "model.cell": "gru"}); values may be typed or strings. Without
    `run_dir` the run goes where the CLI would put it (runs/NAME-TIMESTAMP).
    """
    from rnnlab.config import apply, load_config, validate
    from rnnlab.trainer import train_config

    _str("preset", preset, optional=True)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise UserError(f"overrides must be a mapping of dotted keys to values, such as "
                        f"{{'train.max_steps': 500}}, got {_show(overrides)}")
    bad = [key for key in (overrides or {}) if not isinstance(key, str)]
    if bad:
        raise UserError(f"overrides keys must be dotted setting names such as 'train.max_steps', got {_show(bad[0])}")
    if run_dir is not None:
        run_dir = _path("run_dir", run_dir)
    if config is not None:
        config = _path("config", config)
    _bool("progress", progress)
    _bool("overwrite", overwrite)
    cfg = load_config(preset, str(config) if config is not None else None)
    for key, value in (overrides or {}).items():
        apply(cfg, key, value)
    validate(cfg)
    if run_dir is None:
        from rnnlab.runs import default_run_dir

        run_dir = default_run_dir(cfg.name)
    with _own_signal_handlers():  # an interrupted run leaves Ctrl-C ignored until the process ends; not here
        train_config(cfg, Path(run_dir), progress=progress, overwrite=overwrite)
    return Run(run_dir)


@contextlib.contextmanager
def _own_signal_handlers():
    """The caller's SIGINT and SIGTERM handlers, as they were, after training however it ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def load(run_dir: str | Path, checkpoint: str = "best") -> Run:
    """An existing run directory ('best' checkpoint, or 'last' when there is no best yet)."""
    return Run(run_dir, checkpoint)
