"""What a training run tells its user: the lines it prints and the files that summarise it.

The loop (rnnlab/trainer.py) calls these; none of them changes the run:

    describe        the line a run starts with (model, data, budget, threads)
    estimate        the time left, printed once the first steps are timed
    evaluation      one line per evaluation
    bar_postfix     the progress bar's running loss and speed
    summary         summary.json, written when the run ends
    draw_curves     plots/curves.png from metrics.jsonl
    Sampler         the callback that prints samples during training (sample_text)
"""

from __future__ import annotations

import math
from pathlib import Path

from rnnlab import distributed
from rnnlab.config import Config

ESTIMATE_AFTER = 3.0  # seconds of training before the time left is estimated (the first steps warm up)


def describe(cfg: Config, source, parameters: int, total_steps: float, eval_every: int) -> str:
    """The line a run starts with: model and parameter count, data and token counts, budget, threads."""
    t, m = cfg.train, cfg.model
    kind, size = m.kind_and_size()
    model = f"{kind} classifier, hidden {m.hidden}" if m.arch == "classifier" else f"{kind} {size}"
    budget = f"{total_steps:,} steps" + (f" or {t.max_minutes:g} min" if t.max_minutes else "")
    shape = f"batch {t.batch_size}" + (f" x {t.seq_len}" if source.vocab is not None else "")
    threads_text = f"{t.threads} thread{'s' if t.threads > 1 else ''}" if t.threads else "threads auto"
    return (f"training {model}, {parameters:,} parameters; {source.describe()}; {budget} of {shape}; "
            f"evaluating every {eval_every:,}; {threads_text}; time: estimating")


def duration(seconds: float) -> str:
    return (f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min" if seconds < 5400
            else f"{seconds / 3600:.1f} h")


def estimate(step_seconds: float, step: int, total_steps: float, elapsed: float, max_minutes: float,
             eval_every: int, auto_eval: bool) -> str:
    """The time left from the seconds a step took so far, and the evaluations still to come."""
    left = (total_steps - step) * step_seconds
    if max_minutes:
        left = min(left, max(max_minutes * 60 - elapsed, 0.0))
    last = min(total_steps, step + math.ceil(left / step_seconds))
    evals = last // eval_every - step // eval_every  # on the way, then the final one
    if auto_eval and last == total_steps and last % eval_every == 0:
        evals -= 1  # auto skips the last step's: the final evaluation scores it
    return (f"estimated: {duration(left)} of training left at {step_seconds * 1000:.0f} ms a step, "
            f"plus {evals + 1} evaluation{'s' if evals else ''}")


def evaluation(results: dict, step: int, epoch: int, level: str) -> str:
    v = results["valid"]
    score = ""  # a task's: accuracy only
    if level == "char":
        score = f"bpc {v['bpc']:.3f}, "
    elif level == "word":
        score = f"ppl {v['perplexity']:.1f}, "
    return f"step {step} (epoch {epoch}): valid loss {v['loss']:.4f}, {score}accuracy {v['accuracy']:.3f}"


def bar_postfix(loss: float, level: str, rate: float) -> str:
    if level == "task":
        return f"loss {loss:.3f} {rate:.0f} seq/s"
    score = f"bpc {loss / math.log(2):.3f}" if level == "char" else f"ppl {math.exp(min(loss, 50)):.1f}"
    return f"loss {loss:.3f} {score} {rate / 1000:.1f}k tok/s"


def summary(trainer, results: dict) -> dict:
    """summary.json: what the run was, how far it got, how fast, and its final evaluation."""
    from rnnlab.data.source import vocab_size

    cfg, p, m = trainer.cfg, trainer.progress, trainer.cfg.model
    nplm = m.arch == "nplm"  # one hidden layer; a recurrent one only with model.reader=recurrent
    vocab = trainer.source.vocab
    tokens_per_step = trainer.source.tokens_per_step(cfg.train)
    return {"name": cfg.name, "level": vocab.level if vocab else None, "arch": m.arch,
            "task": cfg.task.kind or None, "cell": m.cell if not nplm or m.reader == "recurrent" else None,
            "model": " ".join(m.kind_and_size()), "hidden": m.hidden, "layers": 1 if nplm else m.layers,
            "parameters": trainer.model.num_parameters(), "vocab_size": vocab_size(trainer.source),
            "steps": p.step, "step_seconds": p.step_seconds, "early_stop": p.early_stop or None,
            "epochs": p.epoch + p.index / trainer.batcher.steps_per_epoch, "wall_seconds": p.elapsed,
            "tokens_per_s": p.step * tokens_per_step / max(p.elapsed, 1e-9), "faults": p.faults,
            "bf16": trainer.bf16, "threads": dict(sorted(p.thread_steps.items(), key=lambda kv: int(kv[0]))),
            "best_valid_loss": p.best_valid, "final": results}


def draw_curves(run_dir: Path, show_progress: bool) -> None:
    from rnnlab.console import waiting

    with waiting("drawing plots/curves.png", show_progress):
        from rnnlab.report.plots import plot_run_curves  # matplotlib only when a run ends

        plot_run_curves(run_dir)


def sample_text(trainer) -> None:
    """Print a sample (and for a char model a teacher-forced line) and append it to samples.jsonl."""
    from rnnlab.generate import generate, teacher_forced
    from rnnlab.runs import append_jsonl

    cfg, step, vocab = trainer.cfg, trainer.progress.step, trainer.source.vocab
    g = cfg.generate
    text = generate(trainer.model, vocab, length=cfg.train.sample_length, temperature=g.temperature,
                    top_k=g.top_k, top_p=g.top_p, seed=cfg.train.seed + step, device=trainer.device)[0]
    record = {"step": step, "temperature": g.temperature, "text": text}
    lines = [f"── sample at step {step} (temperature {g.temperature}) ──", text.strip()]
    if vocab.level == "char" and (line := trainer.source.first_line()):
        predicted = teacher_forced(trainer.model, vocab, line, trainer.device)
        record["teacher_forced"] = {"input": line, "predicted": predicted}
        lines += ["teacher-forced, next-char guesses under each input character:",
                  f"  input: {line}", f"  model: {predicted}"]
    append_jsonl(trainer.run_dir / "samples.jsonl", record)
    trainer.echo("\n".join(lines))


class Sampler:
    """The sampling callback: at the given steps, the main process prints a sample (sample_text)."""

    def __init__(self, steps):
        self.steps = set(steps)

    @classmethod
    def spread(cls, samples: int, total_steps: float) -> Sampler:
        """`samples` samples at evenly spaced steps (none for a run without a step bound)."""
        if total_steps == math.inf:
            return cls(())
        return cls(round(total_steps * (i + 1) / samples) for i in range(samples))

    def __call__(self, trainer) -> None:
        if trainer.progress.step in self.steps and distributed.is_main():
            sample_text(trainer)
