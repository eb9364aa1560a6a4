"""PyTorch models: explicit cells, the recurrent stack (explicit or fused), the
language model and the neural n-gram model.

`build_model` lives here, above the models, so that no model module imports
another to choose between them (lm.py's base class is what numpy_backend.py
extends).
"""

from torch import nn

from rnnlab.config import ModelConfig, TaskConfig
from rnnlab.data import tasks
from rnnlab.models.classifier import SequenceClassifier
from rnnlab.models.lm import LanguageModel
from rnnlab.models.nplm import NeuralNgramModel, NumpyBackedNgramModel
from rnnlab.models.numpy_backend import NumpyBackedLanguageModel


def build_model(cfg: ModelConfig, vocab_size: int, task: TaskConfig | None = None) -> nn.Module:
    """The model of `cfg.arch` (rnn: LanguageModel; nplm: the neural n-gram model; classifier:
    for the sequence task `task`, vocab_size unused) in `cfg.backend` (numpy: the same
    parameters, NumPy's hand-written forward and backward)."""
    if cfg.arch == "classifier":
        symbols, features, classes = tasks.shape(task)
        return SequenceClassifier.from_config(cfg, features, classes, symbols)
    if cfg.arch == "nplm":
        return (NumpyBackedNgramModel if cfg.backend == "numpy" else NeuralNgramModel)(vocab_size, cfg)
    if cfg.backend == "numpy":
        return NumpyBackedLanguageModel(vocab_size, cfg)
    return LanguageModel(vocab_size, cfg)


__all__ = [
    "LanguageModel",
    "NeuralNgramModel",
    "NumpyBackedLanguageModel",
    "NumpyBackedNgramModel",
    "SequenceClassifier",
    "build_model",
]
