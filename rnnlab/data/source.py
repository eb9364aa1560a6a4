"""What a run trains on: a text corpus or a synthetic sequence task, behind one interface.

The Trainer asks its data source (`DataSource` below) for everything that
differs between the two, so that its loop has no corpus-or-task branches.

A corpus is read once, when its source is opened (tests/test_read_once.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from rnnlab.config import Config, TrainConfig
from rnnlab.data.vocab import Vocab
from rnnlab.errors import UserError


class DataSource(Protocol):
    vocab: Vocab | None  # None for a task: its inputs are numbers, and there is no text to sample
    level: str  # "char", "word" or "task": how progress and summaries name the scores
    fingerprint: dict  # what a checkpoint records of the data (rnnlab/fingerprint.py)
    sharded: bool  # a distributed run can split its batches and evaluation over processes
    eval_each_epoch: bool  # train.eval_every=0 evaluates at each epoch end (else ~10 times a run)

    def check_stored(self, meta: dict, run_dir: Path) -> None:
        """Refuse (UserError) to resume a checkpoint whose stored data differs."""

    def fit_output(self, m) -> None:
        """Settle the output layer's data-dependent settings (model.cutoffs=auto)."""

    def batcher(self, t: TrainConfig):
        """The training batches: batch(epoch, index), steps_per_epoch, batch_size, carries_state."""

    def tokens_per_step(self, t: TrainConfig) -> int:
        """Tokens (a task: sequences) in one training batch."""

    def eval_tokens(self) -> int:
        """Tokens (a task: sequences) one evaluation scores."""

    def eval_splits(self, final: bool) -> list[str]:
        """The splits an evaluation scores (`final`: the one after the last step)."""

    def evaluate(self, model, split: str, t: TrainConfig, device, on_batch: Callable | None = None) -> dict:
        """Score the model on one split: loss, accuracy (and bpc/perplexity for text)."""

    def describe(self) -> str:
        """The data half of the line a run starts with."""

    def run_files(self) -> dict[str, bytes]:
        """Files a new run directory gets beside config.toml."""

    def first_line(self, width: int = 70) -> str:
        """A line of validation text for the teacher-forced sample ('' where there is none)."""


class CorpusSource:
    """A text corpus: train/valid(/test) token ids and the vocabulary built from train."""

    sharded = True  # its batches and evaluation are split over the processes of a distributed run
    eval_each_epoch = False  # train.eval_every=0: about ten evaluations over the budget (rnnlab/run_setup.py)

    def __init__(self, cfg: Config, show_progress: bool = True):
        from rnnlab.console import waiting
        from rnnlab.data.corpus import load_corpus

        with waiting(f"reading {cfg.data.path or 'the bundled corpus'}", show_progress):
            self.corpus = load_corpus(cfg.data)
        self.cfg = cfg
        self.vocab: Vocab | None = self.corpus.vocab
        self.level = self.vocab.level
        self.fingerprint = self.corpus.fingerprint  # size and SHA-256 of each split's text, as read

    def check_stored(self, meta: dict, run_dir: Path) -> None:
        """A resumed run must use the token ids it was trained with: the stored vocabulary."""
        if Vocab.from_json(meta["vocab"]).itos != self.vocab.itos:
            raise UserError(f"the vocabulary stored in {run_dir} does not match the data at "
                            f"'{self.cfg.data.path or 'bundled:grimm'}'")

    def fit_output(self, m) -> None:
        """model.cutoffs=auto: the adaptive softmax's clusters from the training frequencies."""
        from rnnlab.models.softmax import fit_output_to_corpus

        fit_output_to_corpus(m, self.corpus)

    def batcher(self, t: TrainConfig):
        from rnnlab.data.batching import make_batcher

        return make_batcher(self.cfg.data.batcher, self.corpus.train, t.batch_size, t.seq_len, t.seed)

    def tokens_per_step(self, t: TrainConfig) -> int:
        return t.batch_size * t.seq_len

    def eval_tokens(self) -> int:
        """Tokens one evaluation scores (rnnlab/run_setup.py: auto_eval_every)."""
        return len(self.corpus.valid) + (len(self.corpus.test) if self.corpus.test is not None else 0)

    def eval_splits(self, final: bool) -> list[str]:
        return ["valid"] + (["test"] if self.corpus.test is not None else [])

    def evaluate(self, model, split: str, t: TrainConfig, device, on_batch: Callable | None = None) -> dict:
        from rnnlab import distributed

        return distributed.evaluate(model, self.corpus.split(split), t.eval_batch_size, t.eval_seq_len, device,
                                    on_batch)

    def describe(self) -> str:
        c = self.corpus
        test = f", {len(c.test):,} test" if c.test is not None else ""
        return (f"{c.source}: {len(c.train):,} train, {len(c.valid):,} valid{test} {self.level}s, "
                f"vocabulary {len(self.vocab):,}")

    def run_files(self) -> dict[str, bytes]:
        return {"vocab.json": json.dumps(self.vocab.to_json()).encode()}

    def first_line(self, width: int = 70) -> str:
        """A line of validation text (more than 30 characters) for the teacher-forced sample."""
        text = self.vocab.decode(self.corpus.valid[:2000].tolist())
        lines = [ln for ln in text.split("\n") if len(ln.strip()) > 30]
        return lines[0][:width] if lines else ""


class TaskSource:
    """A synthetic sequence task (task.* in the config): generated training batches and fixed
    validation and test sets; no vocabulary and no text to sample."""

    sharded = False
    eval_each_epoch = True  # train.eval_every=0: at each epoch end
    vocab: Vocab | None = None
    level = "task"
    fingerprint: dict = {}  # the data follows from task.* and the seed, which the config comparison covers

    def __init__(self, cfg: Config):
        from rnnlab.data.tasks import TaskData

        self.cfg = cfg
        self.task = TaskData(cfg.task, cfg.train.batch_size, cfg.train.seed)

    def check_stored(self, meta: dict, run_dir: Path) -> None:
        pass  # nothing beyond the configuration, which resume_changes compares

    def fit_output(self, m) -> None:
        pass  # a classifier's output is its task's classes

    def batcher(self, t: TrainConfig):
        return self.task.batcher

    def tokens_per_step(self, t: TrainConfig) -> int:
        return t.batch_size  # sequences

    def eval_tokens(self) -> int:
        return self.cfg.task.valid_size + self.cfg.task.test_size

    def eval_splits(self, final: bool) -> list[str]:
        return ["valid"] + (["test"] if final else [])  # the test set is scored once, at the end

    def evaluate(self, model, split: str, t: TrainConfig, device, on_batch: Callable | None = None) -> dict:
        from rnnlab.evaluate import evaluate_task

        return evaluate_task(model, self.task, split, device=device)  # one pass, a few batches: no counter

    def describe(self) -> str:
        k = self.cfg.task
        return (
            f"task {k.kind}: {k.train_size:,} training sequences an epoch, {k.valid_size:,} valid, {k.test_size:,} test"
        )

    def run_files(self) -> dict[str, bytes]:
        return {}  # a task run's inputs are all in its config

    def first_line(self, width: int = 70) -> str:
        return ""


def open_source(cfg: Config, show_progress: bool = True) -> DataSource:
    """The run's data: a task when task.kind is set, else the corpus at data.path (read here, once)."""
    return TaskSource(cfg) if cfg.task.kind else CorpusSource(cfg, show_progress)


def vocab_size(source: DataSource) -> int:
    return len(source.vocab) if source.vocab is not None else 0
