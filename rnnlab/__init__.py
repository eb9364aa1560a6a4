"""rnnlab: recurrent sequence models (RNN, LSTM, GRU, Phased LSTM) to train,
evaluate, sample and understand on an ordinary CPU."""

__version__ = "0.1.0"
