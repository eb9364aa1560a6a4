"""PyTorch models: explicit cells, the recurrent stack (explicit or fused) and the language model.

`build_model` lives here, above both language models, so that neither module
imports the other (lm.py's base class is what numpy_backend.py extends).
"""

from rnnlab.config import ModelConfig
from rnnlab.models.lm import LanguageModel
from rnnlab.models.numpy_backend import NumpyBackedLanguageModel


def build_model(cfg: ModelConfig, vocab_size: int) -> LanguageModel:
    if cfg.backend == "numpy":  # same parameters, NumPy's hand-written forward and backward
        return NumpyBackedLanguageModel(vocab_size, cfg)
    return LanguageModel(vocab_size, cfg)


__all__ = ["LanguageModel", "NumpyBackedLanguageModel", "build_model"]
