"""The training loop: one loop for every model, cell and corpus, and the sequence tasks.

A run is wired from parts with one job each: its data source, a text corpus
or a sequence task behind one interface (rnnlab/data/source.py); the model,
optimizer, schedule and batcher (rnnlab/run_setup.py); the lines and files
that report on it (rnnlab/run_report.py); clean stops (rnnlab/stop_signals.py).
This module turns the loop and keeps the run's progress and checkpoints.

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
import time
from collections.abc import Callable
from pathlib import Path

import torch

from rnnlab import checkpoint, distributed, run_report
from rnnlab.config import Config
from rnnlab.console import bar as progress_bar
from rnnlab.console import counter, echo, waiting
from rnnlab.data.source import open_source
from rnnlab.devices import resolve_device, use_bf16
from rnnlab.errors import Interrupted, UserError
from rnnlab.evaluate import metrics_from_totals
from rnnlab.fingerprint import fingerprint, refusal, resume_changes
from rnnlab.models.lm import positions
from rnnlab.optim import load_optimizer, optimizer_tensors, set_lr
from rnnlab.progress import Progress
from rnnlab.run_report import Sampler
from rnnlab.run_setup import build_parts, eval_interval
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
from rnnlab.stop_signals import StopSignals

TIMING_KEYS = ("elapsed", "tokens_per_s")  # the only metrics that differ between identical runs
# How the notes a run starts with begin (Trainer.echo: stderr, or stdout in Jupyter), e.g. for tests
# that expect an error line and nothing else.
NOTES = ("run directory: ", "training ", "resuming ", "estimated: ")


class Trainer:
    """One training run: wired from its data source (rnnlab/data/source.py) and its parts
    (rnnlab/run_setup.py), turned by `run`, reported through rnnlab/run_report.py."""

    def __init__(self, cfg: Config, run_dir: Path, resume: bool = False, progress: bool = True,
                 overwrite: bool = False, echo=echo,
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
        self.source = open_source(cfg, self.show_bar)  # a corpus is read here, once
        self.vocab = self.source.vocab
        self.fingerprint = fingerprint(self.source.fingerprint, self.bf16)
        if stored and (changes := resume_changes(stored[1], cfg, self.fingerprint)):
            raise UserError(refusal(self.run_dir, changes))
        if not self.source.sharded and distributed.is_active():
            raise UserError(f"task.kind={cfg.task.kind} trains in one process (its batches are not sharded): "
                            "drop --nproc")
        if stored:
            self.source.check_stored(stored[1], self.run_dir)
        self.source.fit_output(cfg.model)
        parts = build_parts(cfg, self.source, self.device, self.show_bar)
        self.model, self.governor, self.optimizer, self.ddp = parts.model, parts.governor, parts.optimizer, parts.ddp
        self.names, self.params, self.batcher = parts.names, parts.params, parts.batcher
        self.total_steps, self.schedule = parts.total_steps, parts.schedule
        self.progress = Progress()  # position and bookkeeping; all of it goes into the checkpoint
        self.saved_step = -1
        self.stop = StopSignals()
        self.state = self.model.init_state(self.batcher.batch_size) if self.batcher.carries_state else None
        if stored:
            self._restore(*stored)
        self.auto_eval = not t.eval_every
        self.progress.eval_every = eval_interval(cfg, self.source, parts, self.progress.eval_every, bool(stored))
        if not stored and distributed.is_main():
            self.lock = prepare(self.run_dir, overwrite=overwrite)
            # all or nothing: no config.toml without vocab.json
            write_initial(self.run_dir, {"config.toml": cfg.to_toml().encode(), **self.source.run_files()}, self.lock)
            self.echo(f"run directory: {self.run_dir}")
        if stored:
            self.echo(f"resuming {self.run_dir} at step {self.progress.step:,} (epoch {self.progress.epoch}, "
                      f"batch {self.progress.index:,} of {self.batcher.steps_per_epoch:,})")
        self.echo(run_report.describe(cfg, self.source, self.model.num_parameters(), self.total_steps,
                                      self.progress.eval_every))
        # Called after every step with the trainer; `callbacks` replaces the default (samples, train.samples;
        # a classifier has no text to sample).
        default = [Sampler.spread(t.samples, self.total_steps)] if self.vocab is not None else []
        self.callbacks = list(callbacks) if callbacks is not None else default

    def _record(self, record: dict) -> None:
        if distributed.is_main():
            append_jsonl(self.run_dir / "metrics.jsonl", record)

    # ----------------------------------------------------------- checkpoints
    def _save(self, tag: str) -> None:
        opt_tensors, opt_extra = optimizer_tensors(self.optimizer, self.names)
        tensors = {**model_tensors(self.model), **opt_tensors, "rng.torch": torch.get_rng_state(),
                   **distributed.rng_states()}
        if self.state is not None:
            tensors.update({f"state.{i}": s for i, s in enumerate(distributed.gather_state(self.state))})
        if not all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point()):
            self.echo(f"warning: non-finite weights or optimizer state at step {self.progress.step}; "
                      f"'{tag}' checkpoint not written")
            return
        totals = distributed.all_sum(*self.progress.totals())  # over the processes of a distributed run
        meta = {**self.progress.to_meta(totals), "config": self.cfg.to_dict(),
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
            raise UserError(f"the 'last' checkpoint in {self.run_dir} cannot be resumed: "
                            f"missing or invalid {e}") from None
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
        results = {}
        p = self.progress
        p.train_nll, p.train_correct, p.train_tokens = distributed.all_sum(p.train_nll, p.train_correct, p.train_tokens)
        if p.train_tokens:
            results["train"] = metrics_from_totals(p.train_nll, int(p.train_correct), int(p.train_tokens))
            if self.cfg.model.softmax == "adaptive":
                results["train"]["accuracy"] = math.nan  # not counted in training (see Loss in models/softmax.py)
            p.train_nll = p.train_correct = p.train_tokens = 0.0
        for split in self.source.eval_splits(final):
            with counter(f"evaluating {split}", self.show_bar) as on_batch:
                results[split] = self.source.evaluate(self.model, split, self.cfg.train, self.device, on_batch)
        for split, m in results.items():
            self._record({"step": p.step, "epoch": p.epoch + p.index / self.batcher.steps_per_epoch, "split": split,
                          **m, "lr": self.optimizer.param_groups[0]["lr"], "elapsed": p.elapsed})
        improved = results["valid"]["loss"] < p.best_valid
        if not final:
            self.schedule.observe(improved)
        if improved:
            p.best_valid = results["valid"]["loss"]
            with waiting("saving the 'best' checkpoint", self.show_bar):
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

    # --------------------------------------------------------------- the loop
    def _update(self, x: torch.Tensor, y: torch.Tensor) -> float | None:
        """One optimizer update on the batch (x, y), the carried state moved on: the
        loss, or None for a faulty step that was skipped. The position is train_next_batch's."""
        t = self.cfg.train
        lr = self.schedule.lr(self.progress.epoch, self.progress.step) * self.progress.fault_lr_scale
        set_lr(self.optimizer, lr)
        times = positions(self.progress.index * t.seq_len, x) if self.state is not None else None  # token positions
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            # the model's loss head (full or adaptive softmax)
            out, new_state = self.ddp(x, self.state, times, targets=y)
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

    def train_next_batch(self) -> tuple[float | None, bool]:
        """Fetch the next batch, update on it (`_update`) and move the position
        on (the carried state reset where an epoch ends). Returns the loss (None for a
        skipped faulty step) and whether the epoch ended. The training loop and
        the speed benchmarks both run exactly this."""
        # auto: the thread count follows the load (rnnlab/threads.py)
        n = str(self.governor() if self.governor is not None else torch.get_num_threads())
        self.progress.thread_steps[n] = self.progress.thread_steps.get(n, 0) + 1
        step_start = time.perf_counter()
        x, y = self.batcher.batch(self.progress.epoch, self.progress.index)
        loss = self._update(x.to(self.device), y.to(self.device))
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
        t, p = self.cfg.train, self.progress
        tokens_per_step = self.source.tokens_per_step(t)
        last_ckpt_time = time.monotonic()
        bar = progress_bar(total=self.total_steps if self.total_steps < math.inf else None, initial=p.step,
                           disable=not self.show_bar, unit="step", dynamic_ncols=True, mininterval=0.5)
        start, start_step, start_elapsed = time.monotonic() - p.elapsed, p.step, p.elapsed
        smooth, estimated = None, False
        try:
            with self.stop:
                while p.step < self.total_steps and p.epoch < t.epochs and not p.early_stop:
                    if t.max_minutes and distributed.agree(p.elapsed >= t.max_minutes * 60):
                        self.echo(f"time limit train.max_minutes={t.max_minutes} reached at step {p.step}")
                        break
                    loss, epoch_end = self.train_next_batch()
                    p.elapsed = time.monotonic() - start
                    if loss is not None:
                        smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
                        rate = (p.step - start_step) * tokens_per_step / max(p.elapsed - start_elapsed, 1e-9)
                        bar.set_postfix_str(run_report.bar_postfix(smooth, self.source.level, rate), refresh=False)
                    bar.update(1)
                    if not estimated and p.elapsed - start_elapsed >= run_report.ESTIMATE_AFTER:
                        estimated = True
                        self.echo(run_report.estimate((p.elapsed - start_elapsed) / (p.step - start_step), p.step,
                                                      self.total_steps, p.elapsed, t.max_minutes, p.eval_every,
                                                      self.auto_eval))
                    # (auto: not at the last step, which the final evaluation scores anyway)
                    if p.step % p.eval_every == 0 and not (self.auto_eval and p.step >= self.total_steps):
                        self.echo(run_report.evaluation(self._evaluate(), p.step, p.epoch, self.source.level))
                    for callback in self.callbacks:
                        callback(self)
                    minutes_due = t.checkpoint_minutes and distributed.agree(
                        time.monotonic() - last_ckpt_time >= t.checkpoint_minutes * 60)
                    if (t.checkpoint_every and p.step % t.checkpoint_every == 0) or minutes_due:
                        self._save("last")
                        last_ckpt_time = time.monotonic()
                    # Ctrl-C / SIGTERM, acted on between steps so that the checkpoint is exact
                    if distributed.agree(self.stop.requested):
                        bar.close()
                        if self.saved_step != p.step:
                            self._save("last")
                        raise Interrupted(self._interrupted(f"interrupted at step {p.step}", "resume with"))
        except KeyboardInterrupt:  # a second Ctrl-C: quit now, the last checkpoint written stays valid
            raise Interrupted(self._interrupted("interrupted", "resume from the last checkpoint with")) from None
        finally:
            bar.close()
        if self.saved_step != p.step:
            # Saved before the final evaluation: resuming a finished run (or one
            # killed during that evaluation) redoes exactly the evaluation.
            self._save("last")
        # 'last' is saved: a stop signal from here on ends the run at once (resuming redoes the evaluation).
        self.stop.request()
        try:
            with self.stop:
                summary = run_report.summary(self, self._evaluate(final=True))
                if distributed.is_main():
                    checkpoint.write_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=1).encode())
                    run_report.draw_curves(self.run_dir, self.show_bar)
        except KeyboardInterrupt:
            raise Interrupted(self._interrupted("interrupted during the final evaluation", "resume with")) from None
        return summary

    def _interrupted(self, what: str, resume: str) -> str:
        """The line for an interrupted run: how to resume it only where a checkpoint can be resumed."""
        if checkpoint.exists(self.run_dir, "last"):
            return f"{what}; {resume}: rnnlab train --resume {self.run_dir}"
        return (f"{what}; no checkpoint was written yet, so nothing can be resumed: start again "
                f"(--run-dir {self.run_dir} --overwrite reuses the directory)")


def train_config(cfg: Config, run_dir: Path, progress: bool = True, overwrite: bool = False) -> dict:
    """Train a configuration into a new run directory; the run's summary. (The public
    API, `rnnlab.train`, takes a preset and overrides and returns a Run: rnnlab/api.py.)"""
    return Trainer(cfg, run_dir, progress=progress, overwrite=overwrite).run()


def resume(run_dir: Path, overrides=(), progress: bool = True, echo=echo) -> dict:
    """Continue a run from its 'last' checkpoint (`overrides`: KEY=VALUE strings); its summary."""
    from rnnlab.config import apply, validate

    cfg = read_config(run_dir)
    for item in overrides:
        key, _, value = item.partition("=")
        apply(cfg, key.strip(), value)
    validate(cfg)
    return Trainer(cfg, run_dir, resume=True, progress=progress, echo=echo).run()


def read_metrics(run_dir: Path) -> list[dict]:
    return read_jsonl(Path(run_dir) / "metrics.jsonl")
