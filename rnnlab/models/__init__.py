"""PyTorch models: explicit cells, the recurrent stack (explicit or fused) and the language model."""

from rnnlab.models.cells import CELL_TYPES
from rnnlab.models.lm import LanguageModel, build_model

__all__ = ["CELL_TYPES", "LanguageModel", "build_model"]
