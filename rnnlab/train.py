"""The training loop: one loop for every language model, cell and corpus.

Each step: take the next batch, run the model from the carried (detached)
state, cross-entropy loss, backward, clip the global gradient norm, step.
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
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from rnnlab import checkpoint, distributed, threads
from rnnlab.config import Config
from rnnlab.data.batching import make_batcher
from rnnlab.data.corpus import Corpus, load_corpus
from rnnlab.data.vocab import Vocab
from rnnlab.errors import Interrupted, UserError
from rnnlab.evaluate import metrics_from_totals
from rnnlab.generate import generate, teacher_forced
from rnnlab.models import build_model
from rnnlab.models.lm import positions
from rnnlab.optim import Schedule, build_optimizer, load_optimizer, optimizer_tensors, set_lr
from rnnlab.runs import (append_jsonl, load_model_tensors, log_sizes, model_tensors, prepare, read_config,
                         read_jsonl, truncate_logs)

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


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, resume: bool = False, progress: bool = True,
                 overwrite: bool = False, echo=lambda text: tqdm.write(text, file=sys.stderr)):
        self.cfg, self.run_dir, self.progress, self.echo = cfg, Path(run_dir), progress, echo
        t = cfg.train
        self.device = resolve_device(t.device)
        distributed.setup(self.device, t.dist_timeout)  # only under torchrun / --nproc
        if not distributed.is_main():  # rank 0 alone prints
            self.progress, self.echo = False, lambda text: None
        self.bf16 = use_bf16(cfg, self.device)
        torch.manual_seed(t.seed)
        stored = None
        if resume:
            stored = checkpoint.load(self.run_dir, "last")
        vocab = Vocab.from_json(stored[1]["vocab"]) if stored else None
        self.corpus: Corpus = load_corpus(cfg.data, vocab)
        if vocab is not None and Vocab.build(_train_tokens(cfg), cfg.data.level, cfg.data.min_count,
                                             cfg.data.max_vocab).itos != vocab.itos:
            raise UserError(f"the vocabulary stored in {run_dir} does not match the data at '{cfg.data.path or 'bundled:grimm'}'")
        self.vocab = self.corpus.vocab
        self.model = build_model(cfg.model, len(self.vocab)).to(self.device, getattr(torch, t.dtype))
        threads.configure(t.threads, self.model, t.batch_size)  # 0: the auto rule (rnnlab/threads.py)
        self.names = [n for n, _ in self.model.named_parameters()]
        self.params = [p for _, p in self.model.named_parameters()]
        self.optimizer = build_optimizer(self.params, t)
        self.ddp = distributed.wrap(self.model)  # averages gradients over processes; the model itself in one
        distributed.seed_rank(t.seed)
        self.batcher = distributed.shard(make_batcher(cfg.data.batcher, self.corpus.train, t.batch_size, t.seq_len, t.seed))
        per_epoch = self.batcher.steps_per_epoch
        self.total_steps = min(t.max_steps or math.inf, t.epochs * per_epoch)
        self.schedule = Schedule(t, self.total_steps)
        # Position and bookkeeping; all of it goes into the checkpoint.
        self.step = self.epoch = self.index = 0
        self.best_valid = math.inf
        self.faults = self.consecutive_faults = 0
        self.fault_lr_scale = 1.0
        self.elapsed = 0.0
        self.train_nll = self.train_tokens = self.train_correct = 0.0
        self.saved_step, self.stop_requested = -1, False
        self.state = self.model.init_state(self.batcher.batch_size) if self.batcher.carries_state else None
        if stored:
            self._restore(*stored)
        elif distributed.is_main():
            prepare(self.run_dir, overwrite=overwrite)
            self._write_run_files()
        steps = self.total_steps
        self.sample_steps = {round(steps * (i + 1) / t.samples) for i in range(t.samples)} if steps < math.inf else set()

    # ----------------------------------------------------------------- files
    def _write_run_files(self) -> None:
        (self.run_dir / "config.toml").write_text(self.cfg.to_toml(), encoding="utf-8")
        (self.run_dir / "vocab.json").write_text(json.dumps(self.vocab.to_json()), encoding="utf-8")

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
            self.echo(f"warning: non-finite weights or optimizer state at step {self.step}; '{tag}' checkpoint not written")
            return
        meta = {"step": self.step, "epoch": self.epoch, "index": self.index, "config": self.cfg.to_dict(),
                "vocab": self.vocab.to_json(), "optimizer": opt_extra, "schedule": self.schedule.state(),
                "best_valid": self.best_valid, "faults": self.faults, "consecutive_faults": self.consecutive_faults,
                "fault_lr_scale": self.fault_lr_scale, "elapsed": self.elapsed,
                "train_totals": list(distributed.all_sum(self.train_nll, self.train_correct, self.train_tokens)),
                "parameters": self.model.num_parameters(), "logs": log_sizes(self.run_dir)}
        if distributed.is_main():
            checkpoint.save(self.run_dir, tag, tensors, meta)
        distributed.barrier()  # no process may exit while rank 0 is still writing
        if tag == "last":
            self.saved_step = self.step

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
                self.state = tuple(tensors[f"state.{i}"].to(self.device) for i in range(len(self.state)))
            self.step, self.epoch, self.index = meta["step"], meta["epoch"], meta["index"]
            self.schedule.load(meta["schedule"])
            self.best_valid = meta["best_valid"]
            self.faults, self.consecutive_faults = meta["faults"], meta["consecutive_faults"]
            self.fault_lr_scale, self.elapsed = meta["fault_lr_scale"], meta["elapsed"]
            self.train_nll, self.train_correct, self.train_tokens = meta["train_totals"]
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise UserError(f"the 'last' checkpoint in {self.run_dir} cannot be resumed: missing or invalid {e}") from None
        self.saved_step = self.step
        # Whatever the killed run logged after this checkpoint is recomputed.
        if distributed.is_main():
            truncate_logs(self.run_dir, meta.get("logs"), self.step)
            checkpoint.write_atomic(self.run_dir / "config.toml", self.cfg.to_toml().encode())

    # ------------------------------------------------------------ evaluation
    def _evaluate(self, final: bool = False) -> dict:
        t = self.cfg.train
        results = {}
        self.train_nll, self.train_correct, self.train_tokens = distributed.all_sum(
            self.train_nll, self.train_correct, self.train_tokens)
        if self.train_tokens:
            results["train"] = metrics_from_totals(self.train_nll, int(self.train_correct), int(self.train_tokens))
            if self.cfg.model.softmax == "adaptive":
                results["train"]["accuracy"] = math.nan  # not counted in training (see Loss in models/softmax.py)
            self.train_nll = self.train_correct = self.train_tokens = 0.0
        splits = ["valid"] + (["test"] if self.corpus.test is not None else [])
        for split in splits:
            results[split] = distributed.evaluate(self.model, self.corpus.split(split), t.eval_batch_size, t.eval_seq_len, self.device)
        for split, m in results.items():
            self._record({"step": self.step, "epoch": self.epoch + self.index / self.batcher.steps_per_epoch,
                          "split": split, **m, "lr": self.optimizer.param_groups[0]["lr"], "elapsed": self.elapsed})
        improved = results["valid"]["loss"] < self.best_valid
        if not final:
            self.schedule.observe(improved)
        if improved:
            self.best_valid = results["valid"]["loss"]
            self._save("best")
        return results

    def _sample(self) -> None:
        g, level = self.cfg.generate, self.vocab.level
        text = generate(self.model, self.vocab, length=self.cfg.train.sample_length, temperature=g.temperature,
                        top_k=g.top_k, top_p=g.top_p, seed=self.cfg.train.seed + self.step, device=self.device)[0]
        record = {"step": self.step, "temperature": g.temperature, "text": text}
        lines = [f"── sample at step {self.step} (temperature {g.temperature}) ──", text.strip()]
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
        lr = self.schedule.lr(self.epoch, self.step) * self.fault_lr_scale
        set_lr(self.optimizer, lr)
        state = self.state if self.state is not None else None
        times = positions(self.index * t.seq_len, x) if state is not None else None  # token positions
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
        self.consecutive_faults = 0
        if self.state is not None:
            self.state = tuple(s.detach() for s in new_state)
        self.train_nll += loss_value * y.numel()
        if out.correct is not None:  # None: an adaptive head in training (rnnlab/models/softmax.py)
            self.train_correct += out.correct.item()
        self.train_tokens += y.numel()
        return loss_value

    def _fault(self, loss_value: float) -> None:
        step = self.step + 1  # the step being skipped (self.step counts completed steps)
        self.faults += 1
        self.consecutive_faults += 1
        self._record({"step": step, "event": "fault", "loss": str(loss_value), "faults": self.faults,
                      "lr": self.optimizer.param_groups[0]["lr"]})
        self.echo(f"warning: non-finite loss or gradient at step {step}; step skipped ({self.faults} so far)")
        if not all(torch.isfinite(p).all() for p in self.params):
            raise UserError(f"training diverged: the weights are no longer finite at step {step}; "
                            "try a lower train.lr or train.clip")
        if self.consecutive_faults % 3 == 0:
            self.fault_lr_scale /= 2  # repeated faults: the step size is the usual culprit
        if self.faults > self.cfg.train.max_faults:
            raise UserError(f"training aborted: {self.faults} non-finite losses or gradients "
                            f"(limit train.max_faults={self.cfg.train.max_faults}); try a lower train.lr or train.clip")

    def run(self) -> dict:
        t = self.cfg.train
        tokens_per_step = t.batch_size * t.seq_len
        per_epoch = self.batcher.steps_per_epoch
        last_ckpt_time = time.monotonic()
        bar = tqdm(total=self.total_steps if self.total_steps < math.inf else None, initial=self.step,
                   disable=not self.progress, unit="step", dynamic_ncols=True, file=sys.stderr, mininterval=0.5)
        previous_handlers = self._catch_stop_signals()
        start, start_step, start_elapsed = time.monotonic() - self.elapsed, self.step, self.elapsed
        smooth = None
        try:
            while self.step < self.total_steps and self.epoch < t.epochs:
                if t.max_minutes and distributed.agree(self.elapsed >= t.max_minutes * 60):
                    self.echo(f"time limit train.max_minutes={t.max_minutes} reached at step {self.step}")
                    break
                x, y = self.batcher.batch(self.epoch, self.index)
                loss = self._train_step(x.to(self.device), y.to(self.device))
                self.step += 1
                self.index += 1
                self.elapsed = time.monotonic() - start
                if loss is not None:
                    smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
                    rate = (self.step - start_step) * tokens_per_step / max(self.elapsed - start_elapsed, 1e-9)
                    bar.set_postfix_str(_postfix(smooth, self.vocab.level, rate), refresh=False)
                bar.update(1)
                epoch_end = self.index >= per_epoch
                if epoch_end:
                    self.epoch, self.index = self.epoch + 1, 0
                    if self.state is not None:
                        self.state = self.model.init_state(self.batcher.batch_size)
                if (t.eval_every and self.step % t.eval_every == 0) or (not t.eval_every and epoch_end):
                    self._report(self._evaluate())
                if self.step in self.sample_steps and distributed.is_main():
                    self._sample()
                minutes_due = t.checkpoint_minutes and distributed.agree(time.monotonic() - last_ckpt_time >= t.checkpoint_minutes * 60)
                if (t.checkpoint_every and self.step % t.checkpoint_every == 0) or minutes_due:
                    self._save("last")
                    last_ckpt_time = time.monotonic()
                if distributed.agree(self.stop_requested):  # Ctrl-C / SIGTERM, acted on between steps so the checkpoint is exact
                    bar.close()
                    if self.saved_step != self.step:
                        self._save("last")
                    raise Interrupted(f"interrupted at step {self.step}; resume with: rnnlab train --resume {self.run_dir}")
        except KeyboardInterrupt:  # a second Ctrl-C: quit now, the last checkpoint written stays valid
            raise Interrupted(f"interrupted; resume from the last checkpoint with: rnnlab train --resume {self.run_dir}") from None
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            bar.close()
        if self.saved_step != self.step:
            # Saved before the final evaluation: resuming a finished run (or one
            # killed during that evaluation) redoes exactly the evaluation.
            self._save("last")
        results = self._evaluate(final=True)
        summary = self._summary(results, tokens_per_step)
        if distributed.is_main():
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
            from rnnlab.report.plots import plot_run_curves  # matplotlib only when a run ends

            plot_run_curves(self.run_dir)
        return summary

    def _catch_stop_signals(self) -> dict:
        """Ctrl-C and SIGTERM only set a flag; the loop stops at the next step boundary."""
        if threading.current_thread() is not threading.main_thread():
            return {}  # signals can only be caught in the main thread

        def request_stop(signum, frame):
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True

        return {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}

    def _report(self, results: dict) -> None:
        v = results["valid"]
        score = f"bpc {v['bpc']:.3f}" if self.vocab.level == "char" else f"ppl {v['perplexity']:.1f}"
        self.echo(f"step {self.step} (epoch {self.epoch}): valid loss {v['loss']:.4f}, {score}, accuracy {v['accuracy']:.3f}")

    def _summary(self, results: dict, tokens_per_step: int) -> dict:
        return {"name": self.cfg.name, "level": self.vocab.level, "cell": self.cfg.model.cell,
                "hidden": self.cfg.model.hidden, "layers": self.cfg.model.layers,
                "parameters": self.model.num_parameters(), "vocab_size": len(self.vocab), "steps": self.step,
                "epochs": self.epoch + self.index / self.batcher.steps_per_epoch, "wall_seconds": self.elapsed,
                "tokens_per_s": self.step * tokens_per_step / max(self.elapsed, 1e-9), "faults": self.faults,
                "bf16": self.bf16, "best_valid_loss": self.best_valid, "final": results}


def _postfix(loss: float, level: str, rate: float) -> str:
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
