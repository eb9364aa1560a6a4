"""Closed-form parameter counts of stacked recurrent layers.

A layer with G gate blocks, input size m and hidden size n has
W_ih (G·n × m), W_hh (G·n × n) and one (G·n) bias per bias vector:

    single bias:  G(mn + n² + n)          double bias:  G(mn + n² + 2n)

G = 1 (RNN), 3 (GRU), 4 (LSTM, Phased LSTM; the latter adds tau, shift and
r_on, 3n). Layers after the first have m = n. PyTorch's nn.RNN/GRU/LSTM use
two bias vectors, i.e. the "double" count.
"""

from __future__ import annotations

GATES = {"rnn": 1, "rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4, "phased_lstm": 4}


def _layer_count(g: int, m: int, n: int, nbias: int, extra: int) -> int:
    return g * (m * n + n * n + nbias * n) + extra * n


def count_params(cell: str, input: int, hidden: int, layers: int = 1,
                 bias: str = "single") -> tuple[int, str]:
    """Number of recurrent-layer parameters and the formula that gives it.

    >>> count_params("lstm", 200, 200)
    (320800, '4(mn + n² + n) with m=200, n=200 = 320,800')
    """
    key = cell.lower().replace("-", "_")
    if key not in GATES:
        raise ValueError(f"unknown cell {cell!r}; expected one of {sorted(GATES)}")
    if bias not in ("single", "double"):
        raise ValueError(f"bias must be 'single' or 'double', got {bias!r}")
    if layers < 1:
        raise ValueError("layers must be >= 1")
    g, m, n, L = GATES[key], int(input), int(hidden), int(layers)
    nbias = 1 if bias == "single" else 2
    extra = 3 if key == "phased_lstm" else 0
    count = _layer_count(g, m, n, nbias, extra) + (L - 1) * _layer_count(g, n, n, nbias, extra)

    bias_term = "n" if nbias == 1 else "2n"
    tail = " + 3n" if extra else ""

    def term(first: str) -> str:
        inner = f"{first} + n² + {bias_term}"
        return (f"({inner})" if g == 1 else f"{g}({inner})") + tail

    formula = term("mn")
    if L > 1:
        formula += f" + {L - 1}·[{term('n²')}]"
    formula += f" with m={m}, n={n}" + (f", L={L}" if L > 1 else "") + f" = {count:,}"
    return count, formula
