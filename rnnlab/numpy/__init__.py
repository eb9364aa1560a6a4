"""NumPy reference backend: recurrent layers with hand-written, gradient-checked
backward passes, a language model built from them, and torch-identical
optimizers. Parameters are plain ``dict[str, np.ndarray]`` with the same names
and shapes as the PyTorch side, so one weight set loads into either backend.

Modules (one job each):
    cells      RNN / LSTM / GRU / Phased LSTM layers, forward + BPTT over a sequence
               (built by name with make_cell, from the cell table rnnlab/cell_registry.py)
    layers     Embedding, Linear, dropout, softmax cross-entropy
    model      NumpyLanguageModel (embedding -> stacked cells -> decoder)
    optim      SGD, Adagrad, RMSprop, Adam, clip_grad_norm (schedules: rnnlab.optim.Schedule)
    gradcheck  finite-difference check of every backward pass
    params     closed-form parameter counts
    gradflow   ||dL_T/dh_t|| against T - t, and its plot
"""

from rnnlab.cell_registry import numpy_layer as make_cell

from .cells import (
                    GRULayer,
                    LayerGrads,
                    LSTMLayer,
                    PhasedLSTMLayer,
                    RNNLayer,
                    forward_backward,
                    phase_gate,
                    phase_gate_backward,
)
from .gradcheck import format_table, run_gradcheck
from .gradflow import gradient_flow, plot_gradient_flow
from .model import NumpyLanguageModel
from .optim import SGD, Adagrad, Adam, RMSprop, clip_grad_norm, make_optimizer
from .params import count_params

__all__ = [
    "RNNLayer", "LSTMLayer", "GRULayer", "PhasedLSTMLayer", "LayerGrads", "make_cell",
    "forward_backward",
    "phase_gate", "phase_gate_backward", "NumpyLanguageModel",
    "SGD", "Adagrad", "RMSprop", "Adam", "make_optimizer", "clip_grad_norm",
    "run_gradcheck", "format_table", "count_params", "gradient_flow", "plot_gradient_flow",
]
