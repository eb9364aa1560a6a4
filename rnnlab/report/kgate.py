"""`rnnlab plot kgate`: the Phased LSTM time gate k(t) for one unit.

Draws k(t) (from `rnnlab.models.phased.time_gate`, the very function the
cell uses) over a few periods and marks the shift s, the period τ and the
open phase of length r_on·τ in every cycle.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rnnlab.errors import UserError
from rnnlab.models.phased import time_gate


def gate_curve(tau: float, r_on: float, shift: float, alpha: float = 0.0, periods: float = 3.0,
               points: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, k(t)) on a fine grid from 0 over `periods` periods after the shift."""
    t = torch.linspace(0.0, shift + periods * tau, points, dtype=torch.float64)
    p = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731  (one unit)
    return t, time_gate(t, p(tau), p(shift), p(r_on), alpha)[:, 0]


def plot_kgate(tau: float, r_on: float, shift: float, out: Path, alpha: float = 0.0, periods: float = 3.0) -> Path:
    """Write the PNG of `kgate_figure`; returns its path."""
    fig = kgate_figure(tau, r_on, shift, alpha, periods)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out


def kgate_figure(tau: float, r_on: float, shift: float, alpha: float = 0.0, periods: float = 3.0):
    """k(t) with its open phases shaded, the shift and one period marked (a
    Figure on the Agg canvas: pyplot's global state is never touched)."""
    if tau <= 0:
        raise UserError(f"--tau must be positive, got {tau}")
    if not 0 < r_on <= 1:
        raise UserError(f"--r-on must be in (0, 1], got {r_on}")
    if alpha < 0 or periods <= 0:
        raise UserError("--alpha must be >= 0 and --periods positive")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t, k = gate_curve(tau, r_on, shift, alpha, periods)
    fig = Figure(figsize=(7, 3))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(t, k, color="C0", lw=1.5, label="k(t)")
    # Cycle starts s + nτ (n may be negative when s > 0 lies past t = 0).
    n0 = int(torch.floor(torch.tensor(-shift / tau)).item())
    starts = [shift + n * tau for n in range(n0, n0 + int(periods) + 3) if shift + n * tau <= float(t[-1])]
    for i, s0 in enumerate(starts):
        ax.axvspan(max(s0, 0.0), min(s0 + r_on * tau, float(t[-1])), color="C1", alpha=0.15,
                   label=f"open phase r_on·τ = {r_on * tau:g}" if i == 0 else None)
        ax.axvline(s0, color="grey", lw=0.6, ls=":")
    ax.axvline(shift, color="C3", lw=1.2, ls="--", label=f"shift s = {shift:g}")
    first = next((s0 for s0 in starts if s0 >= 0), shift)
    if first + tau <= float(t[-1]):
        ax.annotate("", xy=(first + tau, 1.06), xytext=(first, 1.06),
                    arrowprops=dict(arrowstyle="<->", color="C2"))
        ax.text(first + tau / 2, 1.09, f"τ = {tau:g}", ha="center", va="bottom", color="C2")
    ax.set(xlabel="time t", ylabel="gate openness k", ylim=(-0.05, 1.22), xlim=(0, float(t[-1])),
           title=f"Phased LSTM time gate (τ = {tau:g}, r_on = {r_on:g}, s = {shift:g}, α = {alpha:g})")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig
