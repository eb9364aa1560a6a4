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
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from rnnlab import checkpoint, distributed, threads
from rnnlab.bounds import check_model_memory
from rnnlab.config import Config
from rnnlab.console import bar as progress_bar
from rnnlab.console import counter, echo, waiting
from rnnlab.data.batching import make_batcher
from rnnlab.data.corpus import Corpus, load_corpus
from rnnlab.data.tasks import TaskData
from rnnlab.data.vocab import Vocab
from rnnlab.errors import Interrupted, UserError
from rnnlab.evaluate import evaluate_task, metrics_from_totals
from rnnlab.fingerprint import fingerprint, refusal, resume_changes
from rnnlab.generate import generate, teacher_forced
from rnnlab.models import build_model
from rnnlab.models.lm import positions
from rnnlab.models.softmax import fit_output_to_corpus
from rnnlab.optim import Schedule, build_optimizer, load_optimizer, optimizer_tensors, set_lr
from rnnlab.progress import Progress
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
# How the notes a run starts with begin (Trainer.echo: stderr, or stdout in Jupyter), e.g. for tests
# that expect an error line and nothing else.
NOTES = ("run directory: ", "training ", "resuming ", "estimated: ")


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


AUTO_EVALS = 10  # train.eval_every = 0: about this many evaluations over a language model's step budget


def auto_eval_every(total_steps: int, steps_per_epoch: int, tokens_per_step: int, eval_tokens: int) -> int:
    """The steps between evaluations for train.eval_every = 0: about AUTO_EVALS evaluations over
    the budget, whatever its length (so that a short run's curves have points), but never fewer
    than one per epoch (a budget of 10 or more epochs is evaluated at each epoch end), and no more
    evaluations than leave the tokens evaluated below the tokens trained on (a large validation
    set beside a short run: fewer, at least one, the final one)."""
    evals = max(1, min(AUTO_EVALS, total_steps * tokens_per_step // max(eval_tokens, 1)))
    return max(1, min(math.ceil(total_steps / evals), steps_per_epoch))


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
        # A text corpus is read here, once: its vocabulary is built from its train split, and its
        # fingerprint comes from the very text read (a sequence task's data is generated below).
        self.corpus: Corpus | None = None
        if not cfg.task.kind:
            with waiting(f"reading {cfg.data.path or 'the bundled corpus'}", self.show_bar):
                self.corpus = load_corpus(cfg.data)
        self.fingerprint = fingerprint(self.corpus, self.bf16)
        if stored and (changes := resume_changes(stored[1], cfg, self.fingerprint)):
            raise UserError(refusal(self.run_dir, changes))
        # The data: a sequence task's generated batches and sets, or a text corpus and its vocabulary.
        self.task = TaskData(cfg.task, t.batch_size, t.seed) if cfg.task.kind else None
        if self.task is not None and distributed.is_active():
            raise UserError(f"task.kind={cfg.task.kind} trains in one process (its batches are not sharded): drop --nproc")
        self.vocab: Vocab | None = None
        if self.corpus is not None:
            if stored and Vocab.from_json(stored[1]["vocab"]).itos != self.corpus.vocab.itos:
                raise UserError(f"the vocabulary stored in {run_dir} does not match the data at '{cfg.data.path or 'bundled:grimm'}'")
            self.vocab = self.corpus.vocab  # a resumed run's: equal to the stored one, so the same token ids
            fit_output_to_corpus(cfg.model, self.corpus)  # cutoffs="auto"
        vocab_size = len(self.vocab) if self.vocab is not None else 0
        check_model_memory(cfg.model, vocab_size, torch.finfo(getattr(torch, t.dtype)).bits // 8)
        self.model = build_model(cfg.model, vocab_size, cfg.task).to(self.device, getattr(torch, t.dtype))
        self.governor = threads.configure(t.threads, self.model, t.batch_size)  # 0: auto (rnnlab/threads.py)
        self.names = [n for n, _ in self.model.named_parameters()]
        self.params = [p for _, p in self.model.named_parameters()]
        with waiting("building the optimizer", self.show_bar):  # torch's first optimizer loads torch._dynamo: seconds
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
        # Evaluations: every train.eval_every steps; for 0 (auto) as the run began (a checkpoint from before
        # auto evaluated at each epoch end), else auto_eval_every's (a sequence task's run: each epoch end).
        self.auto_eval = not t.eval_every
        if t.eval_every:
            self.progress.eval_every = t.eval_every
        elif not self.progress.eval_every:
            self.progress.eval_every = per_epoch if stored or self.task is not None else auto_eval_every(
                self.total_steps, per_epoch, t.batch_size * t.seq_len,
                len(self.corpus.valid) + (len(self.corpus.test) if self.corpus.test is not None else 0))
        if not stored and distributed.is_main():
            self.lock = prepare(self.run_dir, overwrite=overwrite)
            self._write_run_files()
            self.echo(f"run directory: {self.run_dir}")
        if stored:
            self.echo(f"resuming {self.run_dir} at step {self.progress.step:,} (epoch {self.progress.epoch}, "
                      f"batch {self.progress.index:,} of {per_epoch:,})")
        self.echo(self.describe())
        # Called after every step with the trainer; `callbacks` replaces the default (samples, train.samples;
        # a classifier has no text to sample).
        default = [Sampler.spread(t.samples, self.total_steps)] if self.vocab is not None else []
        self.callbacks = list(callbacks) if callbacks is not None else default

    def describe(self) -> str:
        """The line a run starts with: model and parameter count, data and token counts, budget, threads."""
        t, m = self.cfg.train, self.cfg.model
        kind, size = m.kind_and_size()
        model = f"{kind} {size}" if self.task is None or m.arch != "classifier" else f"{kind} classifier, hidden {m.hidden}"
        if self.task is not None:
            k = self.cfg.task
            data = f"task {k.kind}: {k.train_size:,} training sequences an epoch, {k.valid_size:,} valid, {k.test_size:,} test"
        else:
            c = self.corpus
            test = f", {len(c.test):,} test" if c.test is not None else ""
            data = (f"{c.source}: {len(c.train):,} train, {len(c.valid):,} valid{test} {self.vocab.level}s, "
                    f"vocabulary {len(self.vocab):,}")
        budget = f"{self.total_steps:,} steps" + (f" or {t.max_minutes:g} min" if t.max_minutes else "")
        every = f"evaluating every {self.progress.eval_every:,}"
        threads_text = f"{t.threads} thread{'s' if t.threads > 1 else ''}" if t.threads else "threads auto"
        return (f"training {model}, {self.model.num_parameters():,} parameters; {data}; {budget} of batch {t.batch_size}"
                + (f" x {t.seq_len}" if self.task is None else "") + f"; {every}; {threads_text}; time: estimating")

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
                results[split] = evaluate_task(self.model, self.task, split, device=self.device)
        else:
            for split in ["valid"] + (["test"] if self.corpus.test is not None else []):
                with counter(f"evaluating {split}", self.show_bar) as on_batch:
                    results[split] = distributed.evaluate(self.model, self.corpus.split(split), t.eval_batch_size,
                                                          t.eval_seq_len, self.device, on_batch)
        for split, m in results.items():
            self._record({"step": self.progress.step, "epoch": self.progress.epoch + self.progress.index / self.batcher.steps_per_epoch,
                          "split": split, **m, "lr": self.optimizer.param_groups[0]["lr"], "elapsed": self.progress.elapsed})
        improved = results["valid"]["loss"] < self.progress.best_valid
        if not final:
            self.schedule.observe(improved)
        if improved:
            self.progress.best_valid = results["valid"]["loss"]
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
        t = self.cfg.train
        tokens_per_step = t.batch_size * (t.seq_len if self.task is None else 1)  # a task's: sequences
        last_ckpt_time = time.monotonic()
        bar = progress_bar(total=self.total_steps if self.total_steps < math.inf else None, initial=self.progress.step,
                           disable=not self.show_bar, unit="step", dynamic_ncols=True, mininterval=0.5)
        previous_handlers = self._catch_stop_signals()
        start, start_step, start_elapsed = time.monotonic() - self.progress.elapsed, self.progress.step, self.progress.elapsed
        smooth, estimated = None, False
        try:
            while self.progress.step < self.total_steps and self.progress.epoch < t.epochs and not self.progress.early_stop:
                if t.max_minutes and distributed.agree(self.progress.elapsed >= t.max_minutes * 60):
                    self.echo(f"time limit train.max_minutes={t.max_minutes} reached at step {self.progress.step}")
                    break
                loss, epoch_end = self.train_next_batch()
                self.progress.elapsed = time.monotonic() - start
                if loss is not None:
                    smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
                    rate = (self.progress.step - start_step) * tokens_per_step / max(self.progress.elapsed - start_elapsed, 1e-9)
                    bar.set_postfix_str(_postfix(smooth, self.vocab.level if self.vocab else "task", rate), refresh=False)
                bar.update(1)
                if not estimated and self.progress.elapsed - start_elapsed >= ESTIMATE_AFTER:
                    estimated = True
                    self._estimate((self.progress.elapsed - start_elapsed) / (self.progress.step - start_step))
                # (auto: not at the last step, which the final evaluation scores anyway)
                if self.progress.step % self.progress.eval_every == 0 and not (
                        self.auto_eval and self.progress.step >= self.total_steps):
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
                with waiting("drawing plots/curves.png", self.show_bar):
                    from rnnlab.report.plots import plot_run_curves  # matplotlib only when a run ends

                    plot_run_curves(self.run_dir)
        except KeyboardInterrupt:
            raise Interrupted(self._interrupted("interrupted during the final evaluation", "resume with")) from None
        finally:
            self._release_stop_signals(previous_handlers)
        return summary

    def _estimate(self, step_seconds: float) -> None:
        """The time left, from the steps so far (timed once, after ESTIMATE_AFTER seconds)."""
        t, step = self.cfg.train, self.progress.step
        left = (self.total_steps - step) * step_seconds
        if t.max_minutes:
            left = min(left, max(t.max_minutes * 60 - self.progress.elapsed, 0.0))
        last, every = min(self.total_steps, step + math.ceil(left / step_seconds)), self.progress.eval_every
        evals = last // every - step // every  # on the way, then the final one
        if self.auto_eval and last == self.total_steps and last % every == 0:
            evals -= 1  # auto skips the last step's: the final evaluation scores it
        self.echo(f"estimated: {_duration(left)} of training left at {step_seconds * 1000:.0f} ms a step, "
                  f"plus {evals + 1} evaluation{'s' if evals else ''}")

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


ESTIMATE_AFTER = 3.0  # seconds of training before the time left is estimated (the first steps warm up)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _postfix(loss: float, level: str, rate: float) -> str:
    if level == "task":
        return f"loss {loss:.3f} {rate:.0f} seq/s"
    score = f"bpc {loss / math.log(2):.3f}" if level == "char" else f"ppl {math.exp(min(loss, 50)):.1f}"
    return f"loss {loss:.3f} {score} {rate / 1000:.1f}k tok/s"


def _first_line(corpus: Corpus, vocab: Vocab, width: int = 70) -> str:
    text = vocab.decode(corpus.valid[:2000].tolist())
    lines = [ln for ln in text.split("\n") if len(ln.strip()) > 30]
    return lines[0][:width] if lines else ""


def train_config(cfg: Config, run_dir: Path, progress: bool = True, overwrite: bool = False) -> dict:
    """Train a configuration into a new run directory; the run's summary. (The public
    API, `rnnlab.train`, takes a preset and overrides and returns a Run: rnnlab/api.py.)"""
    return Trainer(cfg, run_dir, progress=progress, overwrite=overwrite).run()


def resume(run_dir: Path, overrides=(), progress: bool = True) -> dict:
    """Continue a run from its 'last' checkpoint (`overrides`: KEY=VALUE strings); its summary."""
    from rnnlab.config import apply, validate

    cfg = read_config(run_dir)
    for item in overrides:
        key, _, value = item.partition("=")
        apply(cfg, key.strip(), value)
    validate(cfg)
    return Trainer(cfg, run_dir, resume=True, progress=progress).run()


def read_metrics(run_dir: Path) -> list[dict]:
    return read_jsonl(Path(run_dir) / "metrics.jsonl")
