"""rnnlab: recurrent sequence models (RNN, LSTM, GRU, Phased LSTM) to train,
evaluate, sample and understand on an ordinary CPU."""

import sys
import types

__version__ = "0.1.0"

__all__ = ["train", "load", "Run", "__version__"]


def __getattr__(name: str):
    # Lazy: `import rnnlab` stays cheap (no torch); the API is loaded on first use.
    if name == "train":  # the module rnnlab/train.py, made callable as the API function (see _TrainModule)
        import importlib

        return importlib.import_module("rnnlab.train")
    if name in ("load", "Run"):
        from rnnlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")


class _TrainModule(types.ModuleType):
    """The class of the module rnnlab.train once it is imported: calling it
    calls the API function rnnlab.api.train, so `rnnlab.train(preset=...)`
    works whatever was imported first, while `rnnlab.train.Trainer` & co.
    stay reachable."""

    def __call__(self, *args, **kwargs):
        from rnnlab import api

        return api.train(*args, **kwargs)


class _Package(types.ModuleType):
    # Python sets every loaded submodule on its package, so importing
    # rnnlab/train.py rebinds `rnnlab.train` from the API function to the module;
    # the module is made callable here, where that rebinding happens.
    def __setattr__(self, name, value):
        if name == "train" and isinstance(value, types.ModuleType):
            value.__class__ = _TrainModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
