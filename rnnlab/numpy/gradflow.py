"""How far back does the gradient reach? ||dL_T/dh_t|| against T - t.

L_T = sum_b w . h_T^(b) is a loss on the last step only (w a random unit
vector), so dL_T/dh_T = w has norm 1 and the norm of dL_T/dh_t for earlier
t measures how much of that signal survives T - t steps of backpropagation.
The NumPy backward passes return dL/dh_t for every step (``LayerGrads.dh``)
and the initial state (distance T), which is exactly this quantity; no
autograd tricks are needed. Weights use PyTorch's default U(+-1/sqrt(H)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnlab.cell_registry import get, numpy_layer

DEFAULT_CELLS = ("rnn_tanh", "lstm", "gru")


def gradient_flow(cell: str | Sequence[str] = DEFAULT_CELLS, hidden: int = 64, T: int = 50,
                  seed: int = 0, input_size: int | None = None, batch: int = 16,
                  gru_z: str = "old", dtype=np.float64, **options) -> list[dict]:
    """Rows ``{"cell", "distance", "grad_norm"}`` for distance = T - t in
    0..T (t = T is the last output, t = 0 the initial state).

    ``grad_norm`` is ||dL_T/dh_t||_2 averaged over ``batch`` independent
    sequences with N(0, 1) inputs. ``cell`` is one name or several
    ("rnn"/"rnn_tanh", "rnn_relu", "lstm", "gru", "phased_lstm" is not
    supported here because it needs timestamps). Every cell gets the same
    seed, hence the same inputs and read-out vector. ``options`` are further
    cell options (e.g. gru_reset), passed through the cell table.
    """
    cells = [cell] if isinstance(cell, str) else list(cell)
    input_size = hidden if input_size is None else input_size
    rows = []
    for name in cells:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((T, batch, input_size)).astype(dtype)
        w = rng.standard_normal(hidden)
        w /= np.linalg.norm(w)
        if get(name).needs_times:
            raise ValueError(f"gradient_flow does not support {name} (needs timestamps)")
        layer = numpy_layer(name, input_size, hidden, gru_z=gru_z, **options)
        params = layer.init_params(rng, dtype)
        out, _, cache = layer.forward(params, x)
        dout = np.zeros_like(out)
        dout[-1] = w  # L_T = sum_b w . h_T
        g = layer.backward(params, cache, dout, None)
        # dh[j] is dL/dh_{j+1}: distance T - (j + 1); the initial state has distance T.
        per_step = np.concatenate([np.linalg.norm(g.dh, axis=-1),
                                   np.linalg.norm(g.state[0], axis=-1)[None]]).mean(axis=1)
        distances = np.concatenate([T - 1 - np.arange(T), [T]])
        label = layer.name
        for d, n in sorted(zip(distances.tolist(), per_step.tolist())):
            rows.append({"cell": label, "distance": int(d), "grad_norm": float(n)})
    return rows


def plot_gradient_flow(rows: list[dict], path, title: str | None = None):
    """Write a PNG of :func:`gradient_flow_figure`. Returns ``path``."""
    gradient_flow_figure(rows, title).savefig(path)
    return path


def gradient_flow_figure(rows: list[dict], title: str | None = None):
    """One line per cell, grad_norm (log scale) against T - t. Uses the Agg
    canvas directly, so it never touches pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name in dict.fromkeys(r["cell"] for r in rows):
        pts = sorted((r["distance"], r["grad_norm"]) for r in rows
                     if r["cell"] == name and r["grad_norm"] > 0)  # log axis: drop exact zeros
        if pts:
            d, n = zip(*pts)
            ax.plot(d, n, marker=".", markersize=3, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("distance T - t (steps)")
    ax.set_ylabel(r"$\|\partial L_T / \partial h_t\|_2$")
    ax.set_title(title or "Gradient flow at random initialisation")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
