"""Closed-form parameter counts of stacked recurrent layers.

A layer with G gate blocks, input size m and hidden size n has
W_ih (G·n × m), W_hh (G·n × n) and one (G·n) bias per bias vector, plus u
per-unit vectors of n (the Phased LSTM's tau, shift and r_on: u = 3):

    single bias:  G(mn + n² + n) + u·n          double bias:  G(mn + n² + 2n) + u·n

G and u come from the cell table (rnnlab/cell_registry.py): G = 1 (RNN),
2 (MGU, minGRU), 3 (GRU, minLSTM), 4 (LSTM, Phased LSTM). Layers after the
first have m = n. A cell without recurrent weights (minGRU, minLSTM) has
W_ih and one bias only, whatever the bias mode: G(mn + n) + u·n.
PyTorch's nn.RNN/GRU/LSTM use two bias vectors, i.e. the "double" count.
"""

from __future__ import annotations

from rnnlab.cell_registry import get


def count_params(cell: str, input: int, hidden: int, layers: int = 1,
                 bias: str = "single") -> tuple[int, str]:
    """Number of recurrent-layer parameters and the formula that gives it.

    >>> count_params("lstm", 200, 200)
    (320800, '4(mn + n² + n) with m=200, n=200 = 320,800')
    """
    spec = get(cell)
    if bias not in ("single", "double"):
        raise ValueError(f"bias must be 'single' or 'double', got {bias!r}")
    if layers < 1:
        raise ValueError("layers must be >= 1")
    g, u, m, n, L = len(spec.gates), len(spec.unit_params), int(input), int(hidden), int(layers)
    count = spec.count_params(m, n, bias) + (L - 1) * spec.count_params(n, n, bias)

    bias_term = "n" if bias == "single" else "2n"
    tail = f" + {u}n" if u else ""

    def term(first: str) -> str:
        inner = f"{first} + n² + {bias_term}" if spec.recurrent_weights else f"{first} + n"
        return (f"({inner})" if g == 1 else f"{g}({inner})") + tail

    formula = term("mn")
    if L > 1:
        formula += f" + {L - 1}·[{term('n²')}]"
    formula += f" with m={m}, n={n}" + (f", L={L}" if L > 1 else "") + f" = {count:,}"
    return count, formula
