"""End-to-end training behaviour on tiny corpora."""

import json
import math

import pytest
from conftest import TINY

from rnnlab.cli import main
from rnnlab.config import load_config
from rnnlab.trainer import TIMING_KEYS, read_metrics, resume, train_config


def config(path, *extra):
    return load_config("grimm-char", None, TINY + [f"data.path={path}", *extra])


def strip_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def test_model_overfits_tiny_text(tiny_text, tmp_path):
    cfg = config(tiny_text, "model.hidden=48", "train.max_steps=300", "train.eval_every=100", "train.lr=1e-2")
    summary = train_config(cfg, tmp_path / "run", progress=False)
    # The text is two sentences repeated: a model that learned it needs far
    # less than the ~4 bits/char of the character distribution alone.
    # Margins: train.seed 0-4 on AVX-512 and AVX2 kernels gave bpc 0.077-0.121, accuracy 0.968-0.989.
    assert summary["final"]["valid"]["bpc"] < 0.5
    assert summary["final"]["valid"]["accuracy"] > 0.85


def test_same_seed_same_metrics(tiny_text, tmp_path):
    cfg = config(tiny_text, "train.max_steps=40", "model.dropout=0.2", "model.layers=2")
    train_config(cfg, tmp_path / "a", progress=False)
    train_config(cfg, tmp_path / "b", progress=False)
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert len(a) >= 4 and strip_timing(a) == strip_timing(b)
    cfg.train.seed = 1
    train_config(cfg, tmp_path / "c", progress=False)
    assert strip_timing(read_metrics(tmp_path / "c")) != strip_timing(a)


def test_window_batcher_trains(tiny_text, tmp_path):
    cfg = config(tiny_text, "data.batcher=window", "train.max_steps=60", "train.lr=1e-2")
    summary = train_config(cfg, tmp_path / "run", progress=False)
    first = read_metrics(tmp_path / "run")[0]
    assert summary["final"]["valid"]["loss"] < first["loss"]


def test_run_directory_layout(tiny_text, tmp_path):
    cfg = config(tiny_text, "train.max_steps=20", "train.samples=2")
    train_config(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("config.toml", "vocab.json", "metrics.jsonl", "samples.jsonl", "summary.json",
                 "checkpoints/last.json", "checkpoints/best.json"):
        assert (run / name).is_file(), name
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [10, 20]
    assert "teacher_forced" in samples[0]
    assert len(samples[0]["teacher_forced"]["predicted"]) == len(samples[0]["teacher_forced"]["input"])


def test_eval_json_fields(tiny_text, tmp_path, capsys):
    cfg = config(tiny_text, "train.max_steps=20")
    train_config(cfg, tmp_path / "run", progress=False)
    assert main(["eval", str(tmp_path / "run"), "--split", "valid", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("split", "loss", "perplexity", "bpc", "accuracy", "tokens"):
        assert key in result
    assert result["split"] == "valid"
    assert math.isclose(result["perplexity"], math.exp(result["loss"]), rel_tol=1e-9)
    assert math.isclose(result["bpc"], result["loss"] / math.log(2), rel_tol=1e-9)


def test_resume_continues_from_checkpoint(tiny_text, tmp_path):
    """A run stopped at step 30 and resumed to 60 equals one run to 60."""
    common = ["train.checkpoint_every=10", "model.dropout=0.1", "model.layers=2", "train.schedule=constant"]
    full = config(tiny_text, "train.max_steps=60", *common)
    train_config(full, tmp_path / "full", progress=False)
    half = config(tiny_text, "train.max_steps=30", *common)
    train_config(half, tmp_path / "half", progress=False)
    summary = resume(tmp_path / "half", ["train.max_steps=60"], progress=False)
    assert summary["steps"] == 60
    full_valid = [r for r in read_metrics(tmp_path / "full") if r.get("split") == "valid"]
    half_valid = [r for r in read_metrics(tmp_path / "half") if r.get("split") == "valid"]
    assert full_valid[-1]["loss"] == half_valid[-1]["loss"]


def test_cosine_schedule_reaches_min_lr(tiny_text, tmp_path):
    cfg = config(tiny_text, "train.max_steps=40", "train.schedule=cosine", "train.min_lr=1e-4", "train.lr=2e-3")
    train_config(cfg, tmp_path / "run", progress=False)
    last = [r for r in read_metrics(tmp_path / "run") if r.get("split") == "valid"][-1]
    lrs = [r["lr"] for r in read_metrics(tmp_path / "run") if r.get("split") == "valid"]
    assert lrs == sorted(lrs, reverse=True)
    assert last["lr"] == pytest.approx(1e-4, rel=0.05)


def test_word_level_corpus_directory(tmp_path):
    data = tmp_path / "words"
    data.mkdir()
    line = "the cat sat on the mat\nthe dog sat on the log\n"
    for split in ("train", "valid", "test"):
        (data / f"{split}.txt").write_text(line * 30)
    cfg = load_config("grimm-char", None, TINY + [f"data.path={data}", "data.level=word", "train.max_steps=60",
                                                  "train.lr=1e-2", "train.seq_len=8"])
    summary = train_config(cfg, tmp_path / "run", progress=False)
    assert "test" in summary["final"]
    assert summary["vocab_size"] == 9  # <unk> <eos> the cat sat on mat dog log
    assert summary["final"]["test"]["perplexity"] < 4  # train.seed 0-4, AVX-512 and AVX2: 1.44-1.58


def test_sum_time_loss_is_the_mean_loss_scaled_by_seq_len(tiny_text, tmp_path):
    """Zaremba's convention (loss summed over the T steps, averaged over the batch)
    is plain SGD on the mean loss with an lr T times larger: same weights after training."""
    from safetensors.numpy import load_file

    T = 16
    common = ["train.optimizer=sgd", "train.clip=0", "train.max_steps=6", "train.schedule=constant",
              f"train.seq_len={T}"]
    runs = {"sum": config(tiny_text, *common, "train.loss=sum_time", "train.lr=0.05"),
            "mean": config(tiny_text, *common, "train.loss=mean", f"train.lr={0.05 * T}")}
    weights = {}
    for name, c in runs.items():
        summary = train_config(c, tmp_path / name, progress=False)
        pointer = json.loads((tmp_path / name / "checkpoints" / "last.json").read_text())
        weights[name] = load_file(tmp_path / name / "checkpoints" / pointer["dir"] / "tensors.safetensors")
        assert math.isfinite(summary["final"]["valid"]["loss"])
    model_keys = [k for k in weights["sum"] if k.startswith("model.")]
    assert model_keys
    for k in model_keys:
        a, b = weights["sum"][k], weights["mean"][k]
        assert abs(a - b).max() <= 1e-5 * max(1.0, abs(b).max()), k


def test_progress_round_trips_through_checkpoint_metadata():
    from dataclasses import asdict

    from rnnlab.progress import Progress

    p = Progress(step=7, epoch=1, index=3, best_valid=1.5, faults=2, consecutive_faults=1, fault_lr_scale=0.5,
                 elapsed=9.25, train_nll=12.0, train_correct=4.0, train_tokens=30.0, thread_steps={"1": 3, "2": 4})
    meta = json.loads(json.dumps(p.to_meta()))  # as a checkpoint stores it
    assert meta["train_totals"] == [12.0, 4.0, 30.0] and meta["step"] == 7
    assert asdict(Progress.from_meta(meta)) == asdict(p)
    del meta["faults"]
    with pytest.raises(KeyError):
        Progress.from_meta(meta)


def test_callbacks_run_after_every_step_and_sampling_is_one(tiny_text, tmp_path):
    from rnnlab.run_report import Sampler
    from rnnlab.trainer import Trainer

    seen = []
    cfg = config(tiny_text, "train.max_steps=12", "train.sample_length=20")
    Trainer(cfg, tmp_path / "a", progress=False, callbacks=[lambda trainer: seen.append(trainer.progress.step),
                                                           Sampler([4, 9])]).run()
    assert seen == list(range(1, 13))
    samples = [json.loads(line) for line in (tmp_path / "a" / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [4, 9] and all(len(s["text"]) > 0 for s in samples)
    assert Sampler.spread(3, 12).steps == {4, 8, 12} and Sampler.spread(3, math.inf).steps == set()
