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
(rnnlab.train, rnnlab.evaluate, rnnlab.generate), so the two never disagree.
The model is loaded on first use and kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnlab.errors import UserError

if TYPE_CHECKING:  # only for the annotations: importing them costs torch
    import pandas
    import torch

    from rnnlab.config import Config
    from rnnlab.data.vocab import Vocab


class Run:
    """A run directory: its configuration, logs, checkpoints and model."""

    def __init__(self, run_dir: str | Path, checkpoint: str = "best"):
        from rnnlab.runs import read_config

        self.path = Path(run_dir)
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
        path = self.path / "summary.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    # ------------------------------------------------------------ the model
    def _model(self) -> tuple:
        if self._loaded is None:
            from rnnlab.runs import load_run
            from rnnlab.train import resolve_device

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

        if split not in ("train", "valid", "test"):
            raise UserError(f"split must be train, valid or test, got '{split}'")
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
        non-empty `stop` ends each where that text first appears (as `--stop`)."""
        from rnnlab.generate import generate, with_prompt

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
    from rnnlab.train import train as train_config

    cfg = load_config(preset, str(config) if config is not None else None)
    for key, value in (overrides or {}).items():
        apply(cfg, key, value)
    validate(cfg)
    if run_dir is None:
        from rnnlab.runs import default_run_dir

        run_dir = default_run_dir(cfg.name)
    train_config(cfg, Path(run_dir), progress=progress, overwrite=overwrite)
    return Run(run_dir)


def load(run_dir: str | Path, checkpoint: str = "best") -> Run:
    """An existing run directory ('best' checkpoint, or 'last' when there is no best yet)."""
    return Run(run_dir, checkpoint)
