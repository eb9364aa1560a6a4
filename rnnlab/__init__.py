"""rnnlab: recurrent sequence models (RNN, LSTM, GRU, Phased LSTM) to train,
evaluate, sample and understand on an ordinary CPU."""

__version__ = "0.1.0"

__all__ = ["train", "load", "Run", "__version__"]


def __getattr__(name: str):
    # Lazy: `import rnnlab` stays cheap (no torch) and rnnlab.api, which imports
    # the training code, is loaded only when the API is first used.
    if name in ("train", "load", "Run"):
        from rnnlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")
