"""`rnnlab plot cell`: a diagram of one LSTM or GRU step, drawn with matplotlib.

Each cell is a small graph — inputs, gate layers (σ or tanh of an affine map
of x_t and h_{t-1}), element-wise operations, outputs — placed on a grid by
hand and drawn as boxes, circles and arrows. Under the picture go the cell's
equations, read from the docstring of the explicit PyTorch cell
(rnnlab/models/cells.py), so picture and code are shown side by side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rnnlab.errors import UserError


@dataclass(frozen=True)
class Node:
    x: float
    y: float
    label: str
    # "io": a vector entering or leaving; "layer": σ or tanh of an affine map;
    # "op": an element-wise operation; "point": a bend or junction of wires (not drawn)
    kind: str


# Colours by role, so a gate reads differently from a candidate.
COLOURS = {"sigmoid": "#f4c27a", "tanh": "#9cc8e8", "op": "#ffffff", "io": "#e6e6e6"}

Graph = tuple[dict[str, Node], list[tuple[str, str, str]]]


def _bus(n: dict[str, Node], src: str, taps: dict[str, str], y: float) -> list[tuple[str, str, str]]:
    """A horizontal wire from `src` with one upward arrow into each layer of `taps` (point -> layer)."""
    for point, layer in taps.items():
        n[point] = Node(n[layer].x, y, "", "point")
    chain = [src] + sorted(taps, key=lambda p: n[p].x)
    return list(zip(chain, chain[1:], [""] * len(taps))) + [(point, layer, "") for point, layer in taps.items()]


def lstm_graph() -> Graph:
    """Nodes and edges (src, dst, label) of one LSTM step (rows i, f, g, o)."""
    n = {
        "c_prev": Node(0.0, 4.0, "c$_{t-1}$", "io"), "h_prev": Node(-0.6, 0.0, "h$_{t-1}$", "io"),
        "x": Node(0.8, -1.2, "x$_t$", "io"), "cat": Node(0.8, 0.0, "[h, x]", "op"),
        "f": Node(2.2, 1.5, "σ\nforget f", "layer"), "i": Node(3.7, 1.5, "σ\ninput i", "layer"),
        "g": Node(5.2, 1.5, "tanh\ncandidate g", "layer"), "o": Node(6.7, 1.5, "σ\noutput o", "layer"),
        "mul_f": Node(2.2, 4.0, "×", "op"), "mul_i": Node(5.2, 2.9, "×", "op"), "add": Node(5.2, 4.0, "+", "op"),
        "tanh_c": Node(8.2, 2.9, "tanh", "op"), "mul_o": Node(8.2, 1.5, "×", "op"),
        "c": Node(9.8, 4.0, "c$_t$", "io"), "h": Node(9.8, 0.0, "h$_t$", "io"),
    }
    e = [("h_prev", "cat", ""), ("x", "cat", ""),
         ("c_prev", "mul_f", ""), ("f", "mul_f", "f"), ("mul_f", "add", "f⊙c$_{t-1}$"),
         ("i", "mul_i", "i"), ("g", "mul_i", "g"), ("mul_i", "add", "i⊙g"), ("add", "c", ""),
         ("add", "tanh_c", ""), ("tanh_c", "mul_o", ""), ("o", "mul_o", "o"), ("mul_o", "h", "")]
    e += _bus(n, "cat", {"tap_f": "f", "tap_i": "i", "tap_g": "g", "tap_o": "o"}, 0.0)
    return n, e


def gru_graph(gru_z: str = "old") -> Graph:
    """Nodes and edges of one GRU step (rows r, z, n); `gru_z` picks which side z weighs."""
    keep, take = ("z", "1−z") if gru_z == "old" else ("1−z", "z")
    n = {
        "h_prev": Node(0.0, 4.0, "h$_{t-1}$", "io"), "x": Node(-0.4, -1.2, "x$_t$", "io"),
        "cat": Node(0.0, 0.0, "[h, x]", "op"), "tap_h": Node(2.2, 4.0, "", "point"),
        "r": Node(2.2, 1.3, "σ\nreset r", "layer"), "z": Node(7.0, 1.3, "σ\nupdate z", "layer"),
        "hn": Node(2.2, 2.7, "W$_{hn}$h", "op"), "mul_r": Node(3.7, 2.7, "×", "op"),
        "n": Node(5.2, 2.7, "tanh\ncandidate n", "layer"), "x_n": Node(5.2, -1.2, "", "point"),
        "keep": Node(7.0, 4.0, f"× {keep}", "op"), "take": Node(8.5, 2.7, f"× {take}", "op"),
        "add": Node(8.5, 4.0, "+", "op"), "h": Node(9.9, 4.0, "h$_t$", "io"),
    }
    e = [("h_prev", "cat", ""), ("x", "cat", ""), ("h_prev", "keep", ""), ("h_prev", "tap_h", ""), ("tap_h", "hn", ""),
         ("hn", "mul_r", ""), ("r", "mul_r", ""), ("mul_r", "n", ""), ("x", "x_n", ""), ("x_n", "n", "W$_{in}$x"),
         ("z", "keep", ""), ("z", "take", ""), ("n", "take", ""),
         ("keep", "add", ""), ("take", "add", ""), ("add", "h", "")]
    e += _bus(n, "cat", {"tap_r": "r", "tap_z": "z"}, 0.0)
    return n, e


def equations(cell: str, **options: str) -> list[str]:
    """The equation lines of the explicit cell's docstring: the lines indented
    past the prose (a top-level class's docstring prose sits at 4 spaces). A
    line written for one option setting (`gru_z="old" (...):  h_t = ...`) is
    kept, without its label, only when `options` (the cell's defaults filled
    in) has that setting."""
    from rnnlab import cell_registry

    entry, chosen = cell_registry.resolve(cell, options)
    doc = entry.torch_class().__doc__ or ""
    lines = []
    for ln in doc.splitlines():
        if "=" not in ln or len(ln) - len(ln.lstrip()) <= 4:
            continue
        label = re.match(r'\s*(\w+)="(\w+)"[^:]*:\s*(.*)$', ln)
        if label is None:
            lines.append(ln.strip())
        elif chosen.get(label[1]) == label[2]:
            lines.append(label[3].strip())
    return lines


def _radius(node: Node) -> float:
    return 0.3 if len(node.label) <= 3 else 0.45


def _kind_colour(node: Node) -> str:
    if node.kind == "layer":
        return COLOURS["sigmoid"] if node.label.startswith("σ") else COLOURS["tanh"]
    return COLOURS[node.kind]


def plot_cell(cell: str, out: Path, gru_z: str = "old") -> Path:
    if cell not in ("lstm", "gru"):
        raise UserError(f"--cell must be lstm or gru, got '{cell}'")
    if gru_z not in ("old", "new"):
        raise UserError(f"--gru-z must be old or new, got '{gru_z}'")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, FancyBboxPatch

    nodes, edges = lstm_graph() if cell == "lstm" else gru_graph(gru_z)
    lines = equations(cell, **({"gru_z": gru_z} if cell == "gru" else {}))
    fig, ax = plt.subplots(figsize=(10, 5.2 + 0.28 * len(lines)))
    sizes = {"layer": (1.3, 0.75), "io": (0.8, 0.5)}

    def boundary(node: Node, towards: Node) -> tuple[float, float]:
        """Where an arrow from/to `node` leaves its shape, heading for `towards`."""
        dx, dy = towards.x - node.x, towards.y - node.y
        length = max((dx * dx + dy * dy) ** 0.5, 1e-9)
        if node.kind == "point":
            return node.x, node.y
        if node.kind == "op":
            r = _radius(node)
            return node.x + dx / length * r, node.y + dy / length * r
        w, h = sizes[node.kind]
        scale = min(w / 2 / abs(dx) if dx else 1e9, h / 2 / abs(dy) if dy else 1e9)
        return node.x + dx * scale, node.y + dy * scale

    for src, dst, label in edges:
        a, b = nodes[src], nodes[dst]
        start, end = boundary(a, b), boundary(b, a)
        style = "-" if b.kind == "point" else "-|>"  # wires end in an arrow only where they enter something
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle=style, color="#444", lw=1.1,
                                                              shrinkA=0, shrinkB=0))
        if label:
            ax.text((start[0] + end[0]) / 2 + 0.08, (start[1] + end[1]) / 2 + 0.08, label, fontsize=8,
                    color="#8a2b2b")
    for node in nodes.values():
        if node.kind == "point":
            continue
        colour = _kind_colour(node)
        if node.kind == "op":
            r = _radius(node)
            ax.add_patch(Circle((node.x, node.y), r, facecolor=colour, edgecolor="#333", lw=1.2, zorder=3))
            ax.text(node.x, node.y, node.label, ha="center", va="center", fontsize=10 if r < 0.4 else 8, zorder=4)
        else:
            w, h = sizes[node.kind]
            ax.add_patch(FancyBboxPatch((node.x - w / 2, node.y - h / 2), w, h, boxstyle="round,pad=0.04",
                                        facecolor=colour, edgecolor="#333", lw=1.2, zorder=3))
            ax.text(node.x, node.y, node.label, ha="center", va="center", fontsize=9, zorder=4)
    bottom = -2.0
    for k, line in enumerate(lines):
        ax.text(0.0, bottom - 0.42 * k, line, fontsize=9, family="monospace", va="top")
    title = {"lstm": "LSTM step: three σ gates (forget, input, output), one tanh candidate, a cell state c",
             "gru": f"GRU step (gru_z = \"{gru_z}\"): two σ gates (reset, update), one tanh candidate, no cell state"}
    ax.set_title(title[cell], fontsize=11)
    ax.set_xlim(-1.1, 10.4)
    ax.set_ylim(bottom - 0.42 * len(lines) - 0.2, 4.7)
    ax.set_aspect("equal")
    ax.axis("off")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
