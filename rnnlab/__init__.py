"""rnnlab: recurrent sequence models (RNN, LSTM, GRU, Phased LSTM) to train,
evaluate, sample and understand on an ordinary CPU.

`rnnlab.train`, `rnnlab.load` and `rnnlab.Run` are the Python API
(rnnlab/api.py), loaded on first use so that `import rnnlab` stays cheap (no
torch). The training loop is the module `rnnlab.trainer`; no submodule is
named `train`, so importing one never rebinds the name `rnnlab.train`.
"""

__version__ = "0.1.0"

__all__ = ["train", "load", "Run", "__version__"]


def __getattr__(name: str):
    if name in ("train", "load", "Run"):
        from rnnlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")
