"""The cell table: every recurrent cell rnnlab knows, described once.

Each entry says what the rest of the code needs to know about a cell: its
PyTorch layer and its NumPy layer, its gate blocks (the row order of
`weight_ih`/`weight_hh`), how many state tensors it carries, which model
options it reads (and their allowed values, default first), the PyTorch
fused kernel that computes it (if any, per option setting), whether it
gates on timestamps, whether it has recurrent weights at all, which gate
keeps the memory (`model.forget_bias`) and which biases chrono init sets, the
NumPy sampling step (if any), the option settings ("variants") that the
tests and `rnnlab gradcheck` cover, and the signals `rnnlab inspect` records
(rnnlab/states). Nothing else in rnnlab decides anything
by a cell's name: an unknown name is an error (`resolve`).

Configuration validation, the recurrent stack, the sampling stepper, the
gradient check, the parameter counts and the tests read this table; adding
a cell means adding its two layers and one entry here (docs/adding-a-cell.md).

The layers are named ("module:Class") rather than imported: importing this
module loads neither torch nor NumPy, so `rnnlab.config` can validate a
cell name cheaply, and no layer module has to import the table back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module


@dataclass(frozen=True)
class Chrono:
    """The biases chrono init (Tallec & Ollivier 2018; models/classifier.py:chrono_init) sets:
    b = log(1 + u (horizon − 2)), u ~ U(0, 1) per unit, on the input bias of `gate`, the gate
    that decides between keeping the state and overwriting it. `keeps`: True where an open gate
    keeps the state (the LSTM's f: its bias is +b), False where an open gate overwrites it (the
    MGU's f, minGRU's z: −b). `opposite`: a gate set to the negative of the gate's bias (the
    LSTM's input gate i). The hidden-side biases of these gates are zeroed."""

    gate: str
    keeps: bool = True
    opposite: str | None = None


@dataclass(frozen=True)
class Cell:
    name: str
    torch_layer: str  # "module:Class" of the explicit PyTorch layer (rnnlab/models)
    numpy_layer: str  # "module:Class" of the NumPy layer with the hand-written backward (rnnlab/numpy)
    gates: tuple[str, ...]  # gate blocks of the weight rows, in order
    n_states: int  # state tensors: 1 = (h,), 2 = (h, c)
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)  # model.<key> -> allowed values, default first
    # The name of the torch kernel (torch.lstm, torch.gru, torch.rnn_tanh, ...) that computes the
    # cell for a full option setting, or None where PyTorch has none: the stack then runs the
    # explicit layer. This function is the only place that decides fused against explicit.
    kernel: Callable[[dict], str | None] = lambda options: None
    unit_params: tuple[str, ...] = ()  # per-unit vectors [H] besides the gate matrices (Phased LSTM: tau, ...)
    layer_kwargs: tuple[str, ...] = ()  # further constructor arguments the layers take (not model options)
    needs_times: bool = False  # forward takes timestamps [T, B]
    # False: the gates read only x_t (weight_ih and bias_ih; no weight_hh, no bias_hh, whatever
    # model.bias says), so the layer runs the whole sequence as one parallel scan (minGRU, minLSTM)
    recurrent_weights: bool = True
    forget_gate: str | None = None  # the gate that keeps the memory when open: model.forget_bias is added to its bias
    chrono: Callable[[dict], Chrono | None] = lambda options: None  # per option setting; None: no gate to set
    # "module:Class" of the NumPy sampling step (rnnlab/models/stepper.py runs it); None: generation
    # runs the PyTorch model one token at a time
    stepper: str | None = None
    variants: tuple[tuple[str, dict], ...] = ()  # (label, options) that tests and gradcheck run
    # Per option setting, what `rnnlab inspect` records at every step (rnnlab/states/record.py), in
    # order: signal name -> the range of its values, "gate" ([0, 1]: a sigmoid, the time gate k),
    # "tanh" ([−1, 1]) or "free" (unbounded: the cell state c, relu, the minimal cells' g(k)).
    # "h" (the hidden state, the layer's output) first, then "c" where the cell carries one, then the
    # gates by their row names; a gate row named "h" that is a candidate h̃ (MGU, minGRU, minLSTM) is
    # recorded as "h_tilde". Both layers of the cell record exactly these names. {}: not recordable.
    signals: Callable[[dict], dict[str, str]] = lambda options: {}

    def defaults(self) -> dict:
        return {key: values[0] for key, values in self.options.items()}

    def fused_kernel(self, options: dict) -> str | None:
        return self.kernel({**self.defaults(), **options})

    def torch_class(self):
        return _load(self.torch_layer)

    def numpy_class(self):
        return _load(self.numpy_layer)

    def stepper_class(self):
        if self.stepper is None:
            raise ValueError(f"the cell table names no NumPy sampling step for {self.name}")
        return _load(self.stepper)

    def recorded_signals(self, options: dict) -> dict[str, str]:
        return self.signals({**self.defaults(), **options})

    def chrono_gates(self, options: dict) -> Chrono | None:
        return self.chrono({**self.defaults(), **options})

    def count_params(self, m: int, n: int, bias: str) -> int:
        """Parameters of one layer, input size m, n units: G(mn + n² + b·n) + u·n,
        b = 1 (single bias) or 2 (double), u = len(unit_params); G(mn + n) + u·n
        without recurrent weights."""
        if not self.recurrent_weights:
            return len(self.gates) * (m * n + n) + len(self.unit_params) * n
        nbias = 1 if bias == "single" else 2
        return len(self.gates) * (m * n + n * n + nbias * n) + len(self.unit_params) * n


def _load(path: str):
    module, name = path.split(":")
    return getattr(import_module(module), name)


def _list(values) -> str:
    return ", ".join(values)


CELLS: dict[str, Cell] = {
    cell.name: cell
    for cell in (
        Cell("rnn", "rnnlab.models.cells:RNNLayer", "rnnlab.numpy.cells:RNNLayer", gates=("h",), n_states=1,
             options={"nonlinearity": ("tanh", "relu")},
             kernel=lambda o: f"rnn_{o['nonlinearity']}", stepper="rnnlab.models.stepper:RNNStep",
             signals=lambda o: {"h": "tanh" if o["nonlinearity"] == "tanh" else "free"},
             variants=(("rnn_tanh", {"nonlinearity": "tanh"}), ("rnn_relu", {"nonlinearity": "relu"}))),
        Cell("lstm", "rnnlab.models.cells:LSTMLayer", "rnnlab.numpy.cells:LSTMLayer",
             gates=("i", "f", "g", "o"), n_states=2, kernel=lambda o: "lstm", stepper="rnnlab.models.stepper:LSTMStep",
             forget_gate="f", chrono=lambda o: Chrono("f", keeps=True, opposite="i"),
             signals=lambda o: {"h": "tanh", "c": "free", "i": "gate", "f": "gate", "g": "tanh", "o": "gate"},
             variants=(("lstm", {}),)),
        # PyTorch's and cuDNN's kernels apply the reset gate after the recurrent product,
        # r ⊙ (W_hn h + b_hn); Cho et al.'s "before", W_hn (r ⊙ h) + b_hn, has no kernel.
        Cell("gru", "rnnlab.models.cells:GRULayer", "rnnlab.numpy.cells:GRULayer", gates=("r", "z", "n"), n_states=1,
             options={"gru_z": ("old", "new"), "gru_reset": ("after", "before")},
             kernel=lambda o: "gru" if o["gru_reset"] == "after" else None, stepper="rnnlab.models.stepper:GRUStep",
             # z keeps h_{t-1} when open with gru_z="old" (h = (1 − z) n + z h), overwrites it with "new"
             chrono=lambda o: Chrono("z", keeps=o["gru_z"] == "old"),
             signals=lambda o: {"h": "tanh", "r": "gate", "z": "gate", "n": "tanh"},
             variants=(("gru_old", {"gru_z": "old"}), ("gru_new", {"gru_z": "new"}),
                       ("gru_reset_before", {"gru_reset": "before"}),
                       ("gru_new_reset_before", {"gru_z": "new", "gru_reset": "before"}))),
        Cell("phased_lstm", "rnnlab.models.phased:PhasedLSTMLayer", "rnnlab.numpy.cells:PhasedLSTMLayer",
             gates=("i", "f", "g", "o"), n_states=2, unit_params=("tau", "shift", "r_on"),
             layer_kwargs=("leak", "tau_log_range", "r_on_init"), needs_times=True,
             forget_gate="f", chrono=lambda o: Chrono("f", keeps=True, opposite="i"),
             # k: the time gate's openness (0 closed, 1 open), after the LSTM's gates
             signals=lambda o: {"h": "tanh", "c": "free", "i": "gate", "f": "gate", "g": "tanh", "o": "gate",
                                "k": "gate"},
             variants=(("phased_lstm", {}),)),
        # Minimal gated unit (Zhou et al. 2016): one gate f, which overwrites h when open.
        Cell("mgu", "rnnlab.models.mgu:MGULayer", "rnnlab.numpy.mgu:MGULayer", gates=("f", "h"), n_states=1,
             chrono=lambda o: Chrono("f", keeps=False), stepper="rnnlab.models.mgu:MGUStep",
             signals=lambda o: {"h": "tanh", "f": "gate", "h_tilde": "tanh"},
             variants=(("mgu", {}),)),
        # Feng et al. 2024: gates of x_t only, trained as a parallel scan (rnnlab/models/minimal.py).
        Cell("mingru", "rnnlab.models.minimal:MinGRULayer", "rnnlab.numpy.minimal:MinGRULayer", gates=("z", "h"),
             n_states=1, recurrent_weights=False, chrono=lambda o: Chrono("z", keeps=False),
             stepper="rnnlab.models.minimal:MinGRUStep", variants=(("mingru", {}),),
             signals=lambda o: {"h": "free", "z": "gate", "h_tilde": "free"}),
        Cell("minlstm", "rnnlab.models.minimal:MinLSTMLayer", "rnnlab.numpy.minimal:MinLSTMLayer",
             gates=("f", "i", "h"), n_states=1, recurrent_weights=False, forget_gate="f",
             chrono=lambda o: Chrono("f", keeps=True, opposite="i"),
             stepper="rnnlab.models.minimal:MinLSTMStep", variants=(("minlstm", {}),),
             signals=lambda o: {"h": "free", "f": "gate", "i": "gate", "h_tilde": "free"}),
    )
}

# Older names the NumPy API and `rnnlab gradflow --cells` accept: the RNN with its nonlinearity.
ALIASES: dict[str, tuple[str, dict]] = {"rnn_tanh": ("rnn", {"nonlinearity": "tanh"}),
                                        "rnn_relu": ("rnn", {"nonlinearity": "relu"})}

# Every model option any cell reads (config.ModelConfig has a field of each name).
OPTIONS: dict[str, tuple[str, ...]] = {key: values for cell in CELLS.values() for key, values in cell.options.items()}


def get(name: str) -> Cell:
    """The entry of a cell name (hyphens or an alias accepted)."""
    return resolve(name)[0]


def resolve(name: str, options: dict | None = None) -> tuple[Cell, dict]:
    """(entry, the cell's full options): defaults filled in, an alias's options
    applied, options of other cells dropped (a configuration holds every cell's
    options), unknown or invalid ones rejected with ValueError."""
    key = name.lower().replace("-", "_")
    options = dict(options or {})
    if key in ALIASES:
        key, implied = ALIASES[key]
        options.update(implied)
    if key not in CELLS:
        raise ValueError(f"unknown cell {name!r}; expected one of {_list([*CELLS, *ALIASES])}")
    cell = CELLS[key]
    unknown = set(options) - set(OPTIONS) - set(cell.layer_kwargs)
    if unknown:
        raise ValueError(f"unknown cell option(s) {_list(sorted(unknown))} for {key}")
    chosen = cell.defaults()
    for option, value in options.items():
        if option in cell.options:
            if value not in cell.options[option]:
                raise ValueError(f"{option} must be one of {_list(cell.options[option])}, got {value!r}")
            chosen[option] = value
        elif option in cell.layer_kwargs:
            chosen[option] = value
    return cell, chosen


def torch_layer(name: str, input_size: int, hidden: int, bias: str = "double", **options):
    """The explicit PyTorch layer of a cell (rnnlab/models)."""
    cell, chosen = resolve(name, options)
    return cell.torch_class()(input_size, hidden, bias, **chosen)


def numpy_layer(name: str, input_size: int, hidden: int, bias: str = "double", **options):
    """The NumPy layer of a cell (rnnlab/numpy/cells.py)."""
    cell, chosen = resolve(name, options)
    return cell.numpy_class()(input_size, hidden, bias, **chosen)


def variants():
    """(cell, label, options) of every variant of every cell: what the tests run."""
    return [(cell, label, options) for cell in CELLS.values() for label, options in cell.variants]
