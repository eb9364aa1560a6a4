"""The memory check's parameter count, from the configuration alone, is the built model's."""

import pytest

from rnnlab import cell_registry
from rnnlab.bounds import parameter_count
from rnnlab.config import ModelConfig
from rnnlab.models import build_model


@pytest.mark.parametrize("cell", sorted(cell_registry.CELLS))
@pytest.mark.parametrize("layers, embed, tie, bias", [(1, 0, False, "double"), (3, 5, False, "single"),
                                                      (2, 0, True, "double")])
def test_parameter_count_is_the_language_models(cell, layers, embed, tie, bias):
    cfg = ModelConfig(cell=cell, hidden=6, layers=layers, embed=embed, tie_weights=tie, bias=bias)
    vocab_size = 11
    assert parameter_count(cfg, vocab_size) == build_model(cfg, vocab_size).num_parameters()
