"""Every preset loads and validates; the course's Grimm setting is kept as its own preset."""

import pytest

from rnnlab.config import load_config, preset_names


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_validates(name):
    cfg = load_config(name)
    assert cfg.name == name


def test_the_course_preset_is_the_course_setting():
    m, t = (c := load_config("grimm-course")).model, c.train
    assert (m.cell, m.layers, m.hidden, m.dropout) == ("lstm", 2, 128, 0.3)
    assert (t.optimizer, t.lr, t.schedule, t.decay_every) == ("adam", 2e-3, "step", 10_000)
    assert 1 / t.lr_decay == pytest.approx(0.95)
    assert (t.batch_size, t.seq_len) == (64, 30)


def test_the_former_default_job_is_kept():
    m, t = (c := load_config("grimm-char-2x128")).model, c.train
    assert (m.layers, m.hidden, m.dropout, t.max_steps, t.schedule) == (2, 128, 0.0, 6000, "cosine")
