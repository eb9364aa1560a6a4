"""Every preset loads, validates and says what it is; `rnnlab presets` lists them all."""

import pytest

from rnnlab.cli import main
from rnnlab.config import load_config, preset_description, preset_names


@pytest.mark.parametrize("name", preset_names())
def test_preset_loads_and_validates(name):
    cfg = load_config(name, None, [])
    assert cfg.name == name and preset_description(name)


def test_presets_command_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in preset_names())
    assert {"grimm-char", "nplm", "nplm-tanh", "palindrome-course", "gru-dropout-adam", "tv-script", "grimm-course",
            "grimm-char-2x128"} <= set(preset_names())


def test_the_course_preset_is_the_course_setting():
    m, t = (c := load_config("grimm-course")).model, c.train
    assert (m.cell, m.layers, m.hidden, m.dropout) == ("lstm", 2, 128, 0.3)
    assert (t.optimizer, t.lr, t.schedule, t.decay_every) == ("adam", 2e-3, "step", 10_000)
    assert 1 / t.lr_decay == pytest.approx(0.95)
    assert (t.batch_size, t.seq_len) == (64, 30)


def test_the_former_default_job_is_kept():
    m, t = (c := load_config("grimm-char-2x128")).model, c.train
    assert (m.layers, m.hidden, m.dropout, t.max_steps, t.schedule) == (2, 128, 0.0, 6000, "cosine")
