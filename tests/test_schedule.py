"""The step-decay learning-rate schedule (train.schedule = "step")."""

import pytest
from conftest import TINY

from rnnlab.config import TrainConfig, load_config
from rnnlab.errors import UserError
from rnnlab.optim import Schedule
from rnnlab.trainer import read_metrics, train_config


def test_step_schedule_divides_every_decay_every_steps():
    s = Schedule(TrainConfig(lr=2e-3, schedule="step", lr_decay=1 / 0.95, decay_every=10_000), total_steps=50_000)
    assert s.lr(0, 0) == s.lr(0, 9_999) == 2e-3
    assert s.lr(0, 10_000) == pytest.approx(2e-3 * 0.95, rel=1e-12)
    assert s.lr(0, 25_000) == pytest.approx(2e-3 * 0.95**2, rel=1e-12)
    assert s.lr(7, 25_000) == s.lr(0, 25_000)  # steps, not epochs


def test_step_schedule_needs_a_positive_period():
    with pytest.raises(UserError, match="train.decay_every must be positive"):
        load_config("grimm-char", None, ["train.schedule=step", "train.decay_every=0"])


def test_a_run_with_the_step_schedule_logs_the_decayed_lr(tiny_text, tmp_path):
    cfg = load_config("grimm-char", None, TINY + [f"data.path={tiny_text}", "train.max_steps=40", "train.eval_every=10",
                                                  "train.schedule=step", "train.decay_every=20", "train.lr_decay=2",
                                                  "train.lr=1e-2", "train.threads=1"])
    train_config(cfg, tmp_path / "run", progress=False)
    lrs = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "run") if r.get("split") == "valid"}
    # The lr logged at step s is the one its last step used (step index s - 1).
    assert lrs[10] == lrs[20] == 1e-2
    assert lrs[30] == lrs[40] == 5e-3
