"""The training loop: one loop for every model, cell and corpus, and the sequence tasks.

Each step: take the next batch, run the model from the carried (detached)
state, cross-entropy loss, backward, clip the global gradient norm, step.
The model computes its own loss: a language model's next-token softmax, the
neural n-gram model's, or a sequence classifier's (one prediction per sequence,
on a task's batches: rnnlab/data/tasks.py, rnnlab/models/classifier.py).
Around it: evaluation, samples, checkpoints, metrics, limits, faults.

Exact resumption: a checkpoint holds the weights, the optimizer state, the
RNG state, the carried recurrent state and the position in the epoch, so a
resumed run computes bit for bit what an uninterrupted run would have.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from tqdm import tqdm

from rnnlab import checkpoint, distributed, threads
from rnnlab.bounds import check_model_memory
from rnnlab.config import Config
from rnnlab.data.batching import make_batcher
from rnnlab.data.corpus import Corpus, load_corpus
from rnnlab.data.tasks import TaskData
from rnnlab.data.vocab import Vocab
from rnnlab.errors import Interrupted, UserError
from rnnlab.evaluate import metrics_from_totals
from rnnlab.fingerprint import fingerprint, refusal, resume_changes
from rnnlab.generate import generate, teacher_forced
from rnnlab.models import build_model
from rnnlab.models.lm import positions
from rnnlab.models.softmax import fit_output_to_corpus
from rnnlab.optim import Schedule, build_optimizer, load_optimizer, optimizer_tensors, set_lr
from rnnlab.runs import (
    RunLock,
    append_jsonl,
    load_model_tensors,
    log_sizes,
    model_tensors,
    prepare,
    read_config,
    read_jsonl,
    truncate_logs,
    write_initial,
)

STOPPING = threading.Event()  # a stop signal reached a training run of this process: it is on its way out
TIMING_KEYS = ("elapsed", "tokens_per_s")  # the only metrics that differ between identical runs


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda was asked for (--device / train.device) but no CUDA device is available; use cpu or auto")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else torch.ops.mkldnn._is_mkldnn_bf16_supported()


def use_bf16(cfg: Config, device: torch.device) -> bool:
    """Resolve train.bf16: auto means on wherever it pays (native bf16, float32 weights, the torch backend)."""
    t = cfg.train
    if t.bf16 == "on" and not native_bf16(device):
        raise UserError("train.bf16=on needs a CPU with native bf16 (AVX512-BF16 or AMX); on this one bf16 matmuls "
                        "are emulated, ~50x slower than float32; use train.bf16=auto or off")
    if t.bf16 == "auto":
        return native_bf16(device) and t.dtype == "float32" and cfg.model.backend == "torch"
    return t.bf16 == "on"


@dataclass
class Progress:
    """Where a run stands, besides its tensors: what a checkpoint's metadata
    carries to resume it exactly. Keys in the metadata are the field names,
    but for the three training totals, one list (`train_totals`)."""

    step: int = 0  # completed optimizer steps (skipped faulty ones included)
    epoch: int = 0
    index: int = 0  # batches done in this epoch
    best_valid: float = math.inf  # lowest validation loss so far (the 'best' checkpoint's)
    faults: int = 0  # non-finite losses or gradients so far
    consecutive_faults: int = 0
    fault_lr_scale: float = 1.0  # halved after every 3rd consecutive fault
    elapsed: float = 0.0  # training seconds, over all sessions of the run
    train_nll: float = 0.0  # training loss summed over tokens since the last evaluation
    train_correct: float = 0.0
    train_tokens: float = 0.0
    step_seconds: float = 0.0  # of `elapsed`, the time spent in training steps (batch assembly included)
    best_accuracy: float = -math.inf  # highest validation accuracy so far (for train.patience)
    best_accuracy_step: int = 0  # the step it was reached at
    early_stop: str = ""  # why the run ended before its budget: "accuracy" (train.stop_at_accuracy), "plateau" (train.patience)
    thread_steps: dict = field(default_factory=dict)  # {"2": steps run on 2 torch threads, ...}: auto follows the load

    TOTALS = ("train_nll", "train_correct", "train_tokens")
    NEWER = ("step_seconds", "best_accuracy", "best_accuracy_step", "early_stop", "thread_steps")  # added later

    def to_meta(self) -> dict:
        """The checkpoint metadata; the training totals are summed over the processes of a distributed run."""
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.TOTALS}
        meta["train_totals"] = list(distributed.all_sum(*(getattr(self, k) for k in self.TOTALS)))
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
        added after a checkpoint was written (NEWER) take their defaults, so older runs still resume."""
        kept = [f.name for f in fields(cls) if f.name not in cls.TOTALS and f.name not in cls.NEWER]
        newer = {name: meta[name] for name in cls.NEWER if name in meta}
        nll, correct, tokens = meta["train_totals"]
        return cls(**{name: meta[name] for name in kept}, **newer, train_nll=nll, train_correct=correct,
                   train_tokens=tokens)


class Sampler:
    """The sampling callback: at the given steps, the main process samples
    from the model (Trainer.sample)."""

    def __init__(self, steps):
        self.steps = set(steps)

    @classmethod
    def spread(cls, samples: int, total_steps: float) -> Sampler:
        """`samples` samples at evenly spaced steps (none for a run without a step bound)."""
        if total_steps == math.inf:
            return cls(())
        return cls(round(total_steps * (i + 1) / samples) for i in range(samples))

    def __call__(self, trainer: Trainer) -> None:
        if trainer.progress.step in self.steps and distributed.is_main():
            trainer.sample()


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, resume: bool = False, progress: bool = True,
                 overwrite: bool = False, echo=lambda text: tqdm.write(text, file=sys.stderr),
                 callbacks: list[Callable[[Trainer], None]] | None = None):
        self.cfg, self.run_dir, self.show_bar, self.echo = cfg, Path(run_dir), progress, echo
        t = cfg.train
        self.device = resolve_device(t.device)
        distributed.setup(self.device, t.dist_timeout)  # only under torchrun / --nproc
        if not distributed.is_main():  # rank 0 alone prints
            self.show_bar, self.echo = False, lambda text: None
        self.bf16 = use_bf16(cfg, self.device)
        torch.manual_seed(t.seed)
        stored, self.lock = None, None
        if resume:
            self.lock = RunLock(self.run_dir) if distributed.is_main() else None  # one writer per run
            stored = checkpoint.load(self.run_dir, "last")
        self.fingerprint = fingerprint(cfg, self.bf16)
        if stored and (changes := resume_changes(stored[1], cfg, self.fingerprint)):
            raise UserError(refusal(self.run_dir, changes))
        # The data: a sequence task's generated batches and sets, or a text corpus and its vocabulary.
        self.task = TaskData(cfg.task, t.batch_size, t.seed) if cfg.task.kind else None
        if self.task is not None and distributed.is_active():
            raise UserError(f"task.kind={cfg.task.kind} trains in one process (its batches are not sharded): drop --nproc")
        self.corpus: Corpus | None = None
        self.vocab: Vocab | None = None
        if self.task is None:
            vocab = Vocab.from_json(stored[1]["vocab"]) if stored else None
            self.corpus = load_corpus(cfg.data, vocab)
            if vocab is not None and Vocab.build(_train_tokens(cfg), cfg.data.level, cfg.data.min_count,
                                                 cfg.data.max_vocab).itos != vocab.itos:
                raise UserError(f"the vocabulary stored in {run_dir} does not match the data at '{cfg.data.path or 'bundled:grimm'}'")
            self.vocab = self.corpus.vocab
            fit_output_to_corpus(cfg.model, self.corpus)  # cutoffs="auto"
        vocab_size = len(self.vocab) if self.vocab is not None else 0
        check_model_memory(cfg.model, vocab_size, torch.finfo(getattr(torch, t.dtype)).bits // 8)
        self.model = build_model(cfg.model, vocab_size, cfg.task).to(self.device, getattr(torch, t.dtype))
        self.governor = threads.configure(t.threads, self.model, t.batch_size)  # 0: auto (rnnlab/threads.py)
        self.names = [n for n, _ in self.model.named_parameters()]
        self.params = [p for _, p in self.model.named_parameters()]
        self.optimizer = build_optimizer(self.params, t)
        self.ddp = distributed.wrap(self.model)  # averages gradients over processes; the model itself in one
        distributed.seed_rank(t.seed)
        self.batcher = distributed.shard(self.task.batcher if self.task is not None else
                                         make_batcher(cfg.data.batcher, self.corpus.train, t.batch_size, t.seq_len, t.seed))
        per_epoch = self.batcher.steps_per_epoch
        self.total_steps = min(t.max_steps or math.inf, t.epochs * per_epoch)
        self.schedule = Schedule(t, self.total_steps)
        self.progress = Progress()  # position and bookkeeping; all of it goes into the checkpoint
        self.saved_step, self.stop_requested = -1, False
        self.signalled = self.quitting = False  # a stop signal came / a second one: leaving now
        self.state = self.model.init_state(self.batcher.batch_size) if self.batcher.carries_state else None
        if stored:
            self._restore(*stored)
        elif distributed.is_main():
            self.lock = prepare(self.run_dir, overwrite=overwrite)
            self._write_run_files()
            self.echo(f"run directory: {self.run_dir}")
        # Called after every step with the trainer; `callbacks` replaces the default (samples, train.samples;
        # a classifier has no text to sample).
        default = [Sampler.spread(t.samples, self.total_steps)] if self.vocab is not None else []
        self.callbacks = list(callbacks) if callbacks is not None else default

    # ----------------------------------------------------------------- files
    def _write_run_files(self) -> None:
        files = {"config.toml": self.cfg.to_toml().encode()}
        if self.vocab is not None:  # a task run's inputs are all in its config
            files["vocab.json"] = json.dumps(self.vocab.to_json()).encode()
        write_initial(self.run_dir, files, self.lock)  # all or nothing: no config.toml without vocab.json

    def _record(self, record: dict) -> None:
        if distributed.is_main():
            append_jsonl(self.run_dir / "metrics.jsonl", record)

    # ----------------------------------------------------------- checkpoints
    def _save(self, tag: str) -> None:
        opt_tensors, opt_extra = optimizer_tensors(self.optimizer, self.names)
        tensors = {**model_tensors(self.model), **opt_tensors, "rng.torch": torch.get_rng_state(), **distributed.rng_states()}
        if self.state is not None:
            tensors.update({f"state.{i}": s for i, s in enumerate(distributed.gather_state(self.state))})
        if not all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point()):
            self.echo(f"warning: non-finite weights or optimizer state at step {self.progress.step}; '{tag}' checkpoint not written")
            return
        meta = {**self.progress.to_meta(), "config": self.cfg.to_dict(),
                "vocab": self.vocab.to_json() if self.vocab is not None else None,
                "optimizer": opt_extra, "schedule": self.schedule.state(),
                "parameters": self.model.num_parameters(), "logs": log_sizes(self.run_dir),
                "fingerprint": self.fingerprint}
        if distributed.is_main():
            checkpoint.save(self.run_dir, tag, tensors, meta)
        distributed.barrier()  # no process may exit while rank 0 is still writing
        if tag == "last":
            self.saved_step = self.progress.step

    def _restore(self, tensors: dict, meta: dict) -> None:
        tensors, meta = distributed.localize(tensors, meta, self.cfg.train.seed)  # this rank's streams and RNG
        load_model_tensors(self.model, tensors, str(self.run_dir))
        if self.state is not None and tensors.get("state.0", self.state[0]).shape != self.state[0].shape:
            raise UserError(f"cannot resume {self.run_dir} with a different train.batch_size "
                            f"(the checkpoint carries state for {tensors['state.0'].shape[1]} streams)")
        try:
            load_optimizer(self.optimizer, self.names, tensors, meta["optimizer"])
            torch.set_rng_state(tensors["rng.torch"])
            if self.state is not None:
                # in the model's dtype (older checkpoints of bf16 runs stored bf16 state)
                self.state = tuple(tensors[f"state.{i}"].to(self.device, s.dtype) for i, s in enumerate(self.state))
            self.progress = Progress.from_meta(meta)
            self.schedule.load(meta["schedule"])
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise UserError(f"the 'last' checkpoint in {self.run_dir} cannot be resumed: missing or invalid {e}") from None
        problem = self.progress.out_of_bounds(self.batcher.steps_per_epoch)
        if problem:
            raise UserError(f"the 'last' checkpoint in {self.run_dir} cannot be resumed: {problem}")
        self.saved_step = self.progress.step
        # Whatever the killed run logged after this checkpoint is recomputed.
        if distributed.is_main():
            truncate_logs(self.run_dir, meta.get("logs"), self.progress.step)
            checkpoint.write_atomic(self.run_dir / "config.toml", self.cfg.to_toml().encode())

    # ------------------------------------------------------------ evaluation
    def _evaluate(self, final: bool = False) -> dict:
        t = self.cfg.train
        results = {}
        self.progress.train_nll, self.progress.train_correct, self.progress.train_tokens = distributed.all_sum(
            self.progress.train_nll, self.progress.train_correct, self.progress.train_tokens)
        if self.progress.train_tokens:
            results["train"] = metrics_from_totals(self.progress.train_nll, int(self.progress.train_correct), int(self.progress.train_tokens))
            if self.cfg.model.softmax == "adaptive":
                results["train"]["accuracy"] = math.nan  # not counted in training (see Loss in models/softmax.py)
            self.progress.train_nll = self.progress.train_correct = self.progress.train_tokens = 0.0
        if self.task is not None:  # a task's test set is scored once, at the end (like the experiments' tables)
            for split in ["valid"] + (["test"] if final else []):
                results[split] = self.task.evaluate(self.model, split, device=self.device)
        else:
            for split in ["valid"] + (["test"] if self.corpus.test is not None else []):
                results[split] = distributed.evaluate(self.model, self.corpus.split(split), t.eval_batch_size,
                                                      t.eval_seq_len, self.device)
        for split, m in results.items():
            self._record({"step": self.progress.step, "epoch": self.progress.epoch + self.progress.index / self.batcher.steps_per_epoch,
                          "split": split, **m, "lr": self.optimizer.param_groups[0]["lr"], "elapsed": self.progress.elapsed})
        improved = results["valid"]["loss"] < self.progress.best_valid
        if not final:
            self.schedule.observe(improved)
        if improved:
            self.progress.best_valid = results["valid"]["loss"]
            self._save("best")
        if not final:
            self._check_early_stop(results["valid"]["accuracy"])
        return results

    def _check_early_stop(self, accuracy: float) -> None:
        """Early stopping, the one place it is decided (the loop ends before the next step): the
        validation accuracy reached train.stop_at_accuracy, or has not gained a point in train.patience steps."""
        t, p = self.cfg.train, self.progress
        if accuracy >= p.best_accuracy + 0.01:
            p.best_accuracy, p.best_accuracy_step = accuracy, p.step
        if t.stop_at_accuracy and accuracy >= t.stop_at_accuracy:
            p.early_stop = "accuracy"
        elif t.patience and p.step - p.best_accuracy_step >= t.patience:
            p.early_stop = "plateau"

    def sample(self) -> None:
        """Print a sample (and for a char model a teacher-forced line) and append it to samples.jsonl."""
        g, level = self.cfg.generate, self.vocab.level
        text = generate(self.model, self.vocab, length=self.cfg.train.sample_length, temperature=g.temperature,
                        top_k=g.top_k, top_p=g.top_p, seed=self.cfg.train.seed + self.progress.step, device=self.device)[0]
        record = {"step": self.progress.step, "temperature": g.temperature, "text": text}
        lines = [f"── sample at step {self.progress.step} (temperature {g.temperature}) ──", text.strip()]
        if level == "char":
            line = _first_line(self.corpus, self.vocab)
            if line:
                predicted = teacher_forced(self.model, self.vocab, line, self.device)
                record["teacher_forced"] = {"input": line, "predicted": predicted}
                lines += ["teacher-forced, next-char guesses under each input character:",
                          f"  input: {line}", f"  model: {predicted}"]
        append_jsonl(self.run_dir / "samples.jsonl", record)
        self.echo("\n".join(lines))

    # --------------------------------------------------------------- the loop
    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> float | None:
        t = self.cfg.train
        lr = self.schedule.lr(self.progress.epoch, self.progress.step) * self.progress.fault_lr_scale
        set_lr(self.optimizer, lr)
        state = self.state if self.state is not None else None
        times = positions(self.progress.index * t.seq_len, x) if state is not None else None  # token positions
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out, new_state = self.ddp(x, state, times, targets=y)  # the model's loss head (full or adaptive softmax)
        loss = out.loss
        self.optimizer.zero_grad(set_to_none=True)
        (loss * x.shape[0] if t.loss == "sum_time" else loss).backward()  # sum_time: Zaremba's convention
        norm = torch.nn.utils.clip_grad_norm_(self.params, t.clip if t.clip > 0 else math.inf)
        loss_value = distributed.mean(loss.item())  # the global batch's loss, so every process skips alike
        if not (math.isfinite(loss_value) and math.isfinite(norm.item())):
            self._fault(loss_value)
            if self.state is not None:
                self.state = self.model.init_state(x.shape[1])
            return None
        self.optimizer.step()
        self.progress.consecutive_faults = 0
        if self.state is not None:
            # in the model's dtype: under bf16 autocast the kernels hand back bf16
            self.state = tuple(s.detach().to(self.state[i].dtype) for i, s in enumerate(new_state))
        self.progress.train_nll += loss_value * y.numel()
        if out.correct is not None:  # None: an adaptive head in training (rnnlab/models/softmax.py)
            self.progress.train_correct += out.correct.item()
        self.progress.train_tokens += y.numel()
        return loss_value

    def _fault(self, loss_value: float) -> None:
        step = self.progress.step + 1  # the step being skipped (self.progress.step counts completed steps)
        self.progress.faults += 1
        self.progress.consecutive_faults += 1
        self._record({"step": step, "event": "fault", "loss": str(loss_value), "faults": self.progress.faults,
                      "lr": self.optimizer.param_groups[0]["lr"]})
        self.echo(f"warning: non-finite loss or gradient at step {step}; step skipped ({self.progress.faults} so far)")
        if not all(torch.isfinite(p).all() for p in self.params):
            raise UserError(f"training diverged: the weights are no longer finite at step {step}; "
                            "try a lower train.lr or train.clip")
        if self.progress.consecutive_faults % 3 == 0:
            self.progress.fault_lr_scale /= 2  # repeated faults: the step size is the usual culprit
        if self.progress.faults > self.cfg.train.max_faults:
            raise UserError(f"training aborted: {self.progress.faults} non-finite losses or gradients "
                            f"(limit train.max_faults={self.cfg.train.max_faults}); try a lower train.lr or train.clip")

    def run(self) -> dict:
        """Train to the end; the run directory's lock is let go however this ends."""
        try:
            return self._run()
        finally:
            if self.lock is not None:
                self.lock.release()

    def train_step(self) -> tuple[float | None, bool]:
        """One optimizer step on the next batch, the position moved on (the
        carried state reset where an epoch ends). Returns the loss (None for a
        skipped faulty step) and whether the epoch ended. The training loop and
        the speed benchmarks both run exactly this."""
        # auto: the thread count follows the load (rnnlab/threads.py)
        n = str(self.governor() if self.governor is not None else torch.get_num_threads())
        self.progress.thread_steps[n] = self.progress.thread_steps.get(n, 0) + 1
        step_start = time.perf_counter()
        x, y = self.batcher.batch(self.progress.epoch, self.progress.index)
        loss = self._train_step(x.to(self.device), y.to(self.device))
        self.progress.step_seconds += time.perf_counter() - step_start
        self.progress.step += 1
        self.progress.index += 1
        epoch_end = self.progress.index >= self.batcher.steps_per_epoch
        if epoch_end:
            self.progress.epoch, self.progress.index = self.progress.epoch + 1, 0
            if self.state is not None:
                self.state = self.model.init_state(self.batcher.batch_size)
        return loss, epoch_end

    def _run(self) -> dict:
        t = self.cfg.train
        tokens_per_step = t.batch_size * (t.seq_len if self.task is None else 1)  # a task's: sequences
        last_ckpt_time = time.monotonic()
        bar = tqdm(total=self.total_steps if self.total_steps < math.inf else None, initial=self.progress.step,
                   disable=not self.show_bar, unit="step", dynamic_ncols=True, file=sys.stderr, mininterval=0.5)
        previous_handlers = self._catch_stop_signals()
        start, start_step, start_elapsed = time.monotonic() - self.progress.elapsed, self.progress.step, self.progress.elapsed
        smooth = None
        try:
            while self.progress.step < self.total_steps and self.progress.epoch < t.epochs and not self.progress.early_stop:
                if t.max_minutes and distributed.agree(self.progress.elapsed >= t.max_minutes * 60):
                    self.echo(f"time limit train.max_minutes={t.max_minutes} reached at step {self.progress.step}")
                    break
                loss, epoch_end = self.train_step()
                self.progress.elapsed = time.monotonic() - start
                if loss is not None:
                    smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
                    rate = (self.progress.step - start_step) * tokens_per_step / max(self.progress.elapsed - start_elapsed, 1e-9)
                    bar.set_postfix_str(_postfix(smooth, self.vocab.level if self.vocab else "task", rate), refresh=False)
                bar.update(1)
                if (t.eval_every and self.progress.step % t.eval_every == 0) or (not t.eval_every and epoch_end):
                    self._report(self._evaluate())
                for callback in self.callbacks:
                    callback(self)
                minutes_due = t.checkpoint_minutes and distributed.agree(time.monotonic() - last_ckpt_time >= t.checkpoint_minutes * 60)
                if (t.checkpoint_every and self.progress.step % t.checkpoint_every == 0) or minutes_due:
                    self._save("last")
                    last_ckpt_time = time.monotonic()
                if distributed.agree(self.stop_requested):  # Ctrl-C / SIGTERM, acted on between steps so the checkpoint is exact
                    bar.close()
                    if self.saved_step != self.progress.step:
                        self._save("last")
                    raise Interrupted(self._interrupted(f"interrupted at step {self.progress.step}", "resume with"))
        except KeyboardInterrupt:  # a second Ctrl-C: quit now, the last checkpoint written stays valid
            raise Interrupted(self._interrupted("interrupted", "resume from the last checkpoint with")) from None
        finally:
            self._release_stop_signals(previous_handlers)
            bar.close()
        if self.saved_step != self.progress.step:
            # Saved before the final evaluation: resuming a finished run (or one
            # killed during that evaluation) redoes exactly the evaluation.
            self._save("last")
        # 'last' is saved: a stop signal from here on ends the run at once (resuming redoes the evaluation).
        self.stop_requested = True
        previous_handlers = self._catch_stop_signals()
        try:
            results = self._evaluate(final=True)
            summary = self._summary(results, tokens_per_step)
            if distributed.is_main():
                checkpoint.write_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=1).encode())
                from rnnlab.report.plots import plot_run_curves  # matplotlib only when a run ends

                plot_run_curves(self.run_dir)
        except KeyboardInterrupt:
            raise Interrupted(self._interrupted("interrupted during the final evaluation", "resume with")) from None
        finally:
            self._release_stop_signals(previous_handlers)
        return summary

    def _interrupted(self, what: str, resume: str) -> str:
        """The line for an interrupted run: how to resume it only where a checkpoint can be resumed."""
        if checkpoint.exists(self.run_dir, "last"):
            return f"{what}; {resume}: rnnlab train --resume {self.run_dir}"
        return (f"{what}; no checkpoint was written yet, so nothing can be resumed: start again "
                f"(--run-dir {self.run_dir} --overwrite reuses the directory)")

    def _catch_stop_signals(self) -> dict:
        """Ctrl-C and SIGTERM only set a flag; the loop stops at the next step boundary. A second
        one quits at once (KeyboardInterrupt); any later one, while the process is on its way
        out, is ignored, so that it always ends with its message and status 130."""
        if threading.current_thread() is not threading.main_thread():
            return {}  # signals can only be caught in the main thread

        def request_stop(signum, frame):
            self.signalled = True
            STOPPING.set()
            if self.quitting:
                return
            if self.stop_requested:
                self.quitting = True
                raise KeyboardInterrupt
            self.stop_requested = True

        return {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}

    def _release_stop_signals(self, previous: dict) -> None:
        """Give the signals back to their previous handlers. The `rnnlab` program's own
        (cli._stop_on_signals) ignore any signal once STOPPING is set, so a late one cannot
        kill the process on its way out."""
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _report(self, results: dict) -> None:
        v = results["valid"]
        if self.vocab is None:
            score = ""
        else:
            score = f"bpc {v['bpc']:.3f}, " if self.vocab.level == "char" else f"ppl {v['perplexity']:.1f}, "
        self.echo(f"step {self.progress.step} (epoch {self.progress.epoch}): valid loss {v['loss']:.4f}, {score}accuracy {v['accuracy']:.3f}")

    def _summary(self, results: dict, tokens_per_step: int) -> dict:
        m = self.cfg.model
        nplm = m.arch == "nplm"  # one hidden layer; a recurrent one only with model.reader=recurrent
        return {"name": self.cfg.name, "level": self.vocab.level if self.vocab else None, "arch": m.arch,
                "task": self.cfg.task.kind or None, "cell": m.cell if not nplm or m.reader == "recurrent" else None,
                "model": " ".join(m.kind_and_size()), "hidden": m.hidden, "layers": 1 if nplm else m.layers,
                "parameters": self.model.num_parameters(), "vocab_size": len(self.vocab) if self.vocab else 0,
                "steps": self.progress.step, "step_seconds": self.progress.step_seconds,
                "early_stop": self.progress.early_stop or None,
                "epochs": self.progress.epoch + self.progress.index / self.batcher.steps_per_epoch, "wall_seconds": self.progress.elapsed,
                "tokens_per_s": self.progress.step * tokens_per_step / max(self.progress.elapsed, 1e-9), "faults": self.progress.faults,
                "bf16": self.bf16, "threads": dict(sorted(self.progress.thread_steps.items(), key=lambda kv: int(kv[0]))),
                "best_valid_loss": self.progress.best_valid, "final": results}


def _postfix(loss: float, level: str, rate: float) -> str:
    if level == "task":
        return f"loss {loss:.3f} {rate:.0f} seq/s"
    score = f"bpc {loss / math.log(2):.3f}" if level == "char" else f"ppl {math.exp(min(loss, 50)):.1f}"
    return f"loss {loss:.3f} {score} {rate / 1000:.1f}k tok/s"


def _train_tokens(cfg: Config) -> list[str]:
    from rnnlab.data.corpus import read_split_texts
    from rnnlab.data.vocab import tokenize

    text = read_split_texts(cfg.data)[0]["train"]
    return tokenize(text.lower() if cfg.data.lowercase else text, cfg.data.level)


def _first_line(corpus: Corpus, vocab: Vocab, width: int = 70) -> str:
    text = vocab.decode(corpus.valid[:2000].tolist())
    lines = [ln for ln in text.split("\n") if len(ln.strip()) > 30]
    return lines[0][:width] if lines else ""


def train(cfg: Config, run_dir: Path, progress: bool = True, overwrite: bool = False) -> dict:
    return Trainer(cfg, run_dir, progress=progress, overwrite=overwrite).run()


def resume(run_dir: Path, overrides=(), progress: bool = True) -> dict:
    from rnnlab.config import apply, validate

    cfg = read_config(run_dir)
    for item in overrides:
        key, _, value = item.partition("=")
        apply(cfg, key.strip(), value)
    validate(cfg)
    return Trainer(cfg, run_dir, resume=True, progress=progress).run()


def read_metrics(run_dir: Path) -> list[dict]:
    return read_jsonl(Path(run_dir) / "metrics.jsonl")
