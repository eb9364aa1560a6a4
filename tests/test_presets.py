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
    assert {"grimm-char", "nplm", "nplm-tanh", "palindrome-course", "gru-dropout-adam", "tv-script"} <= set(preset_names())
