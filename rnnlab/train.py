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
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from rnnlab import checkpoint
from rnnlab.config import Config
from rnnlab.data.batching import make_batcher
from rnnlab.data.corpus import Corpus, load_corpus
from rnnlab.data.vocab import Vocab
from rnnlab.errors import Interrupted, UserError
from rnnlab.evaluate import evaluate, metrics_from_totals
from rnnlab.generate import generate, teacher_forced
from rnnlab.models import build_model
from rnnlab.optim import Schedule, build_optimizer, load_optimizer, optimizer_tensors, set_lr
from rnnlab.runs import (append_jsonl, load_model_tensors, model_tensors, prepare, read_config, read_jsonl,
                         truncate_jsonl)

TIMING_KEYS = ("elapsed", "tokens_per_s")  # the only metrics that differ between identical runs


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device=cuda but no CUDA device is available (use cpu or auto)")
    return torch.device(name)


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, resume: bool = False, progress: bool = True,
                 overwrite: bool = False, echo=lambda text: tqdm.write(text, file=sys.stderr)):
        self.cfg, self.run_dir, self.progress, self.echo = cfg, Path(run_dir), progress, echo
        t = cfg.train
        self.device = resolve_device(t.device)
        if t.threads:
            torch.set_num_threads(t.threads)
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
        self.model = build_model(cfg.model, len(self.vocab)).to(self.device)
        self.names = [n for n, _ in self.model.named_parameters()]
        self.params = [p for _, p in self.model.named_parameters()]
        self.optimizer = build_optimizer(self.params, t)
        self.batcher = make_batcher(cfg.data.batcher, self.corpus.train, t.batch_size, t.seq_len, t.seed)
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
        self.state = self.model.init_state(t.batch_size) if self.batcher.carries_state else None
        if stored:
            self._restore(*stored)
        else:
            prepare(self.run_dir, overwrite=overwrite)
            self._write_run_files()
        steps = self.total_steps
        self.sample_steps = {round(steps * (i + 1) / t.samples) for i in range(t.samples)} if steps < math.inf else set()

    # ----------------------------------------------------------------- files
    def _write_run_files(self) -> None:
        (self.run_dir / "config.toml").write_text(self.cfg.to_toml(), encoding="utf-8")
        (self.run_dir / "vocab.json").write_text(json.dumps(self.vocab.to_json()), encoding="utf-8")

    def _record(self, record: dict) -> None:
        append_jsonl(self.run_dir / "metrics.jsonl", record)

    # ----------------------------------------------------------- checkpoints
    def _save(self, tag: str) -> None:
        if not all(torch.isfinite(p).all() for p in self.params):
            self.echo("warning: parameters are not finite; checkpoint not written")
            return
        opt_tensors, opt_extra = optimizer_tensors(self.optimizer, self.names)
        tensors = {**model_tensors(self.model), **opt_tensors, "rng.torch": torch.get_rng_state()}
        if self.state is not None:
            tensors.update({f"state.{i}": s for i, s in enumerate(self.state)})
        meta = {"step": self.step, "epoch": self.epoch, "index": self.index, "config": self.cfg.to_dict(),
                "vocab": self.vocab.to_json(), "optimizer": opt_extra, "schedule": self.schedule.state(),
                "best_valid": self.best_valid, "faults": self.faults, "consecutive_faults": self.consecutive_faults,
                "fault_lr_scale": self.fault_lr_scale, "elapsed": self.elapsed,
                "train_totals": [self.train_nll, self.train_correct, self.train_tokens],
                "parameters": self.model.num_parameters()}
        checkpoint.save(self.run_dir, tag, tensors, meta)

    def _restore(self, tensors: dict, meta: dict) -> None:
        load_model_tensors(self.model, tensors, str(self.run_dir))
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
        # Whatever the killed run logged after this checkpoint is recomputed.
        truncate_jsonl(self.run_dir / "metrics.jsonl", self.step)
        truncate_jsonl(self.run_dir / "samples.jsonl", self.step)
        (self.run_dir / "config.toml").write_text(self.cfg.to_toml(), encoding="utf-8")

    # ------------------------------------------------------------ evaluation
    def _evaluate(self, final: bool = False) -> dict:
        t = self.cfg.train
        results = {}
        if self.train_tokens:
            results["train"] = metrics_from_totals(self.train_nll, int(self.train_correct), int(self.train_tokens))
            self.train_nll = self.train_correct = self.train_tokens = 0.0
        splits = ["valid"] + (["test"] if self.corpus.test is not None else [])
        for split in splits:
            results[split] = evaluate(self.model, self.corpus.split(split), t.eval_batch_size, t.eval_seq_len, self.device)
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
        logits, new_state = self.model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, t.clip if t.clip > 0 else math.inf)
        loss_value = loss.item()
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
        self.train_correct += (logits.detach().argmax(-1) == y).sum().item()
        self.train_tokens += y.numel()
        return loss_value

    def _fault(self, loss_value: float) -> None:
        self.faults += 1
        self.consecutive_faults += 1
        self._record({"step": self.step, "event": "fault", "loss": str(loss_value), "faults": self.faults})
        self.echo(f"warning: non-finite loss or gradient at step {self.step}; step skipped ({self.faults} so far)")
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
        previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
        start, start_step, start_elapsed = time.monotonic() - self.elapsed, self.step, self.elapsed
        smooth = None
        try:
            while self.step < self.total_steps and self.epoch < t.epochs:
                if t.max_minutes and self.elapsed >= t.max_minutes * 60:
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
                        self.state = self.model.init_state(t.batch_size)
                if (t.eval_every and self.step % t.eval_every == 0) or (not t.eval_every and epoch_end):
                    self._report(self._evaluate())
                if self.step in self.sample_steps:
                    self._sample()
                minutes_due = t.checkpoint_minutes and time.monotonic() - last_ckpt_time >= t.checkpoint_minutes * 60
                if (t.checkpoint_every and self.step % t.checkpoint_every == 0) or minutes_due:
                    self._save("last")
                    last_ckpt_time = time.monotonic()
        except KeyboardInterrupt:
            bar.close()
            self._save("last")
            raise Interrupted(f"interrupted at step {self.step}; resume with: rnnlab train --resume {self.run_dir}") from None
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
            bar.close()
        results = self._evaluate(final=True)
        self._save("last")
        summary = self._summary(results, tokens_per_step)
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
        return summary

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
                "best_valid_loss": self.best_valid, "final": results}


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


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
