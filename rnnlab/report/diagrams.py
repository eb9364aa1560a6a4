"""`rnnlab plot cell`: a diagram of one step of a recurrent cell, drawn with matplotlib.

Each cell is a small graph — inputs, gate layers (σ or tanh of an affine map
of x_t and h_{t-1}), element-wise operations, outputs — placed on a grid by
hand and drawn as boxes, circles and arrows. The recurrent connections are
drawn too: dashed wires carry h_t (and the LSTM's c_t) round to the next
step's h_{t-1} (c_{t-1}). Under the picture go the cell's equations, read
from the docstring of the explicit PyTorch cell (rnnlab/models/cells.py) and
typeset with matplotlib's mathtext, so picture and code are shown side by side.

Which cells exist, their gates and their options come from the cell table
(rnnlab/cell_registry.py); this module only knows how to lay out the cells it
has a drawing for (DRAWINGS), and checks that a drawing's gate layers are the
gates the table lists. A cell of the table without a drawing is one UserError.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
SIZES = {"layer": (1.5, 0.95), "io": (0.95, 0.6)}
LOOP = "loop"  # wires between points whose names start with this are the recurrent connections (dashed)
NEXT_STEP = "to the next step"

Graph = tuple[dict[str, Node], list[tuple[str, str, str]]]


def _bus(n: dict[str, Node], src: str, taps: dict[str, str], y: float) -> list[tuple[str, str, str]]:
    """A horizontal wire from `src` with one upward arrow into each layer of `taps` (point -> layer)."""
    for point, layer in taps.items():
        n[point] = Node(n[layer].x, y, "", "point")
    chain = [src] + sorted(taps, key=lambda p: n[p].x)
    return list(zip(chain, chain[1:], [""] * len(taps))) + [(point, layer, "") for point, layer in taps.items()]


def _loop(n: dict[str, Node], src: str, dst: str, y: float, x_back: float, name: str) -> list[tuple[str, str, str]]:
    """The recurrent connection from output `src` to the next step's input `dst`: out of `src`
    to height `y`, back to `x_back`, then into `dst` (whose wire enters from the left)."""
    a, b = n[src], n[dst]
    n[f"{LOOP}_{name}_0"] = Node(a.x + 0.9, a.y, "", "point")
    n[f"{LOOP}_{name}_1"] = Node(a.x + 0.9, y, "", "point")
    n[f"{LOOP}_{name}_2"] = Node(x_back, y, "", "point")
    n[f"{LOOP}_{name}_3"] = Node(x_back, b.y, "", "point")
    chain = [src, f"{LOOP}_{name}_0", f"{LOOP}_{name}_1", f"{LOOP}_{name}_2", f"{LOOP}_{name}_3", dst]
    labels = ["", "", NEXT_STEP, "", ""]
    return list(zip(chain, chain[1:], labels))


def _gate(symbol: str, name: str, letter: str) -> str:
    return f"${symbol}$\n{name} ${letter}$"


def rnn_graph(options: dict | None = None) -> Graph:
    """Nodes and edges of one Elman RNN step (one row block, h); the layer's φ is the nonlinearity."""
    phi = (options or {}).get("nonlinearity", "tanh")
    n = {
        "h_prev": Node(0.0, 0.0, "$h_{t-1}$", "io"), "x": Node(1.6, -1.5, "$x_t$", "io"),
        "cat": Node(1.6, 0.0, "[h, x]", "op"),
        "h": Node(3.8, 0.0, _gate("\\tanh" if phi == "tanh" else "\\mathrm{relu}", "new state", "h"), "layer"),
        "h_t": Node(6.0, 0.0, "$h_t$", "io"),
    }
    e = [("h_prev", "cat", ""), ("x", "cat", ""), ("cat", "h", ""), ("h", "h_t", "")]
    e += _loop(n, "h_t", "h_prev", -2.6, -1.2, "h")
    return n, e


def lstm_graph(options: dict | None = None) -> Graph:
    """Nodes and edges (src, dst, label) of one LSTM step (rows i, f, g, o)."""
    n = {
        "c_prev": Node(0.0, 4.4, "$c_{t-1}$", "io"), "h_prev": Node(-0.6, 0.0, "$h_{t-1}$", "io"),
        "x": Node(0.9, -1.5, "$x_t$", "io"), "cat": Node(0.9, 0.0, "[h, x]", "op"),
        "f": Node(2.6, 1.7, _gate("\\sigma", "forget", "f"), "layer"),
        "i": Node(4.5, 1.7, _gate("\\sigma", "input", "i"), "layer"),
        "g": Node(6.4, 1.7, _gate("\\tanh", "candidate", "g"), "layer"),
        "o": Node(8.3, 1.7, _gate("\\sigma", "output", "o"), "layer"),
        "mul_f": Node(2.6, 4.4, "×", "op"), "mul_i": Node(6.4, 3.2, "×", "op"), "add": Node(6.4, 4.4, "+", "op"),
        "tanh_c": Node(10.0, 3.2, "tanh", "op"), "mul_o": Node(10.0, 1.7, "×", "op"),
        "c_t": Node(11.6, 4.4, "$c_t$", "io"), "h_t": Node(11.6, 0.0, "$h_t$", "io"),
    }
    e = [("h_prev", "cat", ""), ("x", "cat", ""),
         ("c_prev", "mul_f", ""), ("f", "mul_f", "$f$"), ("mul_f", "add", "$f \\odot c_{t-1}$"),
         ("i", "mul_i", "$i$"), ("g", "mul_i", "$g$"), ("mul_i", "add", "$i \\odot g$"), ("add", "c_t", ""),
         ("add", "tanh_c", ""), ("tanh_c", "mul_o", ""), ("o", "mul_o", "$o$"), ("mul_o", "h_t", "")]
    e += _bus(n, "cat", {"tap_f": "f", "tap_i": "i", "tap_g": "g", "tap_o": "o"}, 0.0)
    # h_t runs to the mul_o junction's height first: the wire leaves h_t to the right and goes round below.
    e += _loop(n, "c_t", "c_prev", 5.6, -1.2, "c")
    e += _loop(n, "h_t", "h_prev", -2.7, -1.8, "h")
    return n, e


def gru_graph(options: dict | None = None) -> Graph:
    """Nodes and edges of one GRU step (rows r, z, n). `gru_z` picks which side z weighs; `gru_reset`
    where r acts: after the recurrent product, r ⊙ (W_hn h), or before it, W_hn (r ⊙ h)."""
    options = {"gru_z": "old", "gru_reset": "after", **(options or {})}
    keep, take = ("z", "1−z") if options["gru_z"] == "old" else ("1−z", "z")
    n = {
        "h_prev": Node(0.0, 4.6, "$h_{t-1}$", "io"), "x": Node(0.0, -1.5, "$x_t$", "io"),
        "cat": Node(0.0, 0.0, "[h, x]", "op"), "tap_h": Node(3.9, 4.6, "", "point"),
        "r": Node(2.2, 1.7, _gate("\\sigma", "reset", "r"), "layer"),
        "z": Node(9.0, 1.7, _gate("\\sigma", "update", "z"), "layer"),
        "n": Node(7.3, 3.2, _gate("\\tanh", "candidate", "n"), "layer"), "x_n": Node(7.3, -1.5, "", "point"),
        "keep": Node(9.0, 4.6, f"× {keep}", "op"), "take": Node(10.7, 3.2, f"× {take}", "op"),
        "add": Node(10.7, 4.6, "+", "op"), "h_t": Node(12.3, 4.6, "$h_t$", "io"),
    }
    if options["gru_reset"] == "after":  # PyTorch, cuDNN: r ⊙ (W_hn h + b_hn)
        n["hn"] = Node(3.9, 3.2, "$W_{hn}h$", "op")
        n["mul_r"] = Node(5.5, 3.2, "×", "op")
        n["r_out"] = Node(5.5, 1.7, "", "point")
        e = [("tap_h", "hn", ""), ("hn", "mul_r", ""), ("r", "r_out", ""), ("r_out", "mul_r", "$r$"),
             ("mul_r", "n", "")]
    else:  # Cho et al. 2014: W_hn (r ⊙ h) + b_hn
        n["mul_r"] = Node(3.9, 3.2, "×", "op")
        n["hn"] = Node(5.5, 3.2, "$W_{hn}$", "op")
        n["r_out"] = Node(3.9, 1.7, "", "point")
        e = [("tap_h", "mul_r", ""), ("r", "r_out", ""), ("r_out", "mul_r", "$r$"), ("mul_r", "hn", ""),
             ("hn", "n", "")]
    e += [("h_prev", "cat", ""), ("x", "cat", ""), ("h_prev", "tap_h", ""), ("tap_h", "keep", ""),
          ("x", "x_n", ""), ("x_n", "n", "$W_{in}x$"), ("z", "keep", ""), ("z", "take", ""), ("n", "take", ""),
          ("keep", "add", ""), ("take", "add", ""), ("add", "h_t", "")]
    e += _bus(n, "cat", {"tap_r": "r", "tap_z": "z"}, 0.0)
    e += _loop(n, "h_t", "h_prev", 5.8, -1.2, "h")
    return n, e


@dataclass(frozen=True)
class Drawing:
    graph: Callable[[dict], Graph]
    title: Callable[[dict], str]


# The cells this module can lay out. Which cells exist, and their gates, is the cell table's to say.
DRAWINGS: dict[str, Drawing] = {
    "rnn": Drawing(rnn_graph, lambda o: f"RNN step (nonlinearity = {o['nonlinearity']}): one layer, "
                                        "the new state is the output"),
    "lstm": Drawing(lstm_graph, lambda o: "LSTM step: three σ gates (forget, input, output), one tanh "
                                          "candidate, a cell state c"),
    "gru": Drawing(gru_graph, lambda o: f"GRU step (gru_z = {o['gru_z']}, gru_reset = {o['gru_reset']}): two σ "
                                        "gates (reset, update), one tanh candidate, no cell state"),
}


def drawable() -> list[str]:
    """The cells of the cell table that have a drawing."""
    from rnnlab import cell_registry

    return [name for name in cell_registry.CELLS if name in DRAWINGS]


def cell_graph(cell: str, **options: str) -> tuple[Graph, dict, str]:
    """(graph, the cell's full options, title) for a cell of the table; one UserError for a
    cell the table does not know, a cell without a drawing, or a drawing whose gate layers
    are not the gates the table lists."""
    from rnnlab import cell_registry

    try:
        entry, chosen = cell_registry.resolve(cell, options)
    except ValueError as e:
        raise UserError(f"--cell: {e}") from None
    drawing = DRAWINGS.get(entry.name)
    if drawing is None:
        raise UserError(f"rnnlab plot cell has no diagram of the {entry.name} cell (it draws {', '.join(drawable())})")
    nodes, edges = drawing.graph(chosen)
    layers = [k for k, node in nodes.items() if node.kind == "layer"]
    if sorted(layers) != sorted(entry.gates):
        raise UserError(f"the {entry.name} diagram draws the gates {', '.join(layers)} but the cell table lists "
                        f"{', '.join(entry.gates)}")
    return (nodes, edges), chosen, drawing.title(chosen)


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


SYMBOLS = {"σ": r"\sigma", "φ": r"\phi", "⊙": r"\odot", "−": "-", "×": r"\times", "·": r"\cdot"}
TOKEN = re.compile(r"[A-Za-z]+_(?:\{[^}]*\}|[A-Za-z0-9]+)|[A-Za-z]+|\s+|.")


def mathtext(line: str) -> str:
    """A docstring equation as matplotlib mathtext: `W_hn h_{t-1}` -> `$W_{hn} h_{t-1}$`,
    σ, ⊙ and tanh as symbols, words of prose upright."""
    out = []
    for token in TOKEN.findall(line):
        if token[0].isalpha() and "_" in token:
            base, sub = token.split("_", 1)
            out.append(f"{base}_{{{sub.strip('{}')}}}")
        elif token == "tanh":
            out.append(r"\tanh")
        elif token.isalpha() and len(token) > 1:
            out.append(rf"\mathrm{{{token}}}")
        elif token.isspace():
            out.append(r"\quad" if len(token) >= 3 else r"\ ")
        else:
            out.append(SYMBOLS.get(token, token.replace("$", r"\$").replace("%", r"\%").replace("#", r"\#")))
    return "$" + "".join(out) + "$"


def _radius(node: Node) -> float:
    return 0.3 if len(node.label) <= 3 else 0.5


def _kind_colour(node: Node) -> str:
    if node.kind == "layer":
        return COLOURS["sigmoid"] if node.label.startswith("$\\sigma") else COLOURS["tanh"]
    return COLOURS[node.kind]


def cell_figure(cell: str, **options: str):
    """The diagram of one step of `cell` with its equations (a Figure on the Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, FancyBboxPatch

    (nodes, edges), chosen, title = cell_graph(cell, **options)
    lines = [mathtext(line) for line in equations(cell, **chosen)]
    xs, ys = [n.x for n in nodes.values()], [n.y for n in nodes.values()]
    left, right, top, bottom = min(xs) - 0.8, max(xs) + 0.8, max(ys) + 0.6, min(ys) - 0.9
    middle = (max(ys) + min(ys)) / 2
    step = 0.62  # height of one equation line
    width = right - left
    fig = Figure(figsize=(0.8 * width, 0.8 * (top - bottom + step * len(lines) + 0.4)))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))

    def boundary(node: Node, towards: Node) -> tuple[float, float]:
        """Where an arrow from/to `node` leaves its shape, heading for `towards`."""
        dx, dy = towards.x - node.x, towards.y - node.y
        length = max((dx * dx + dy * dy) ** 0.5, 1e-9)
        if node.kind == "point":
            return node.x, node.y
        if node.kind == "op":
            r = _radius(node)
            return node.x + dx / length * r, node.y + dy / length * r
        w, h = SIZES[node.kind]
        scale = min(w / 2 / abs(dx) if dx else 1e9, h / 2 / abs(dy) if dy else 1e9)
        return node.x + dx * scale, node.y + dy * scale

    for src, dst, label in edges:
        a, b = nodes[src], nodes[dst]
        start, end = boundary(a, b), boundary(b, a)
        recurrent = src.startswith(LOOP) or dst.startswith(LOOP)
        style = "-" if b.kind == "point" else "-|>"  # wires end in an arrow only where they enter something
        ax.annotate("", xy=end, xytext=start,
                    arrowprops=dict(arrowstyle=style, color="#2b5d8a" if recurrent else "#444", lw=1.2,
                                    linestyle="--" if recurrent else "-", shrinkA=0, shrinkB=0))
        if label == NEXT_STEP:  # on the loop's long side, outside the loop
            above = start[1] >= middle
            ax.text((start[0] + end[0]) / 2, start[1] + (0.1 if above else -0.1), label, ha="center",
                    va="bottom" if above else "top", fontsize=9.5, color="#2b5d8a", style="italic")
        elif label:
            ax.text((start[0] + end[0]) / 2 + 0.1, (start[1] + end[1]) / 2 + 0.08, label, fontsize=10,
                    color="#8a2b2b")
    for node in nodes.values():
        if node.kind == "point":
            continue
        colour = _kind_colour(node)
        if node.kind == "op":
            r = _radius(node)
            ax.add_patch(Circle((node.x, node.y), r, facecolor=colour, edgecolor="#333", lw=1.2, zorder=3))
            ax.text(node.x, node.y, node.label, ha="center", va="center", fontsize=11 if r < 0.4 else 9, zorder=4)
        else:
            w, h = SIZES[node.kind]
            ax.add_patch(FancyBboxPatch((node.x - w / 2, node.y - h / 2), w, h, boxstyle="round,pad=0.04",
                                        facecolor=colour, edgecolor="#333", lw=1.2, zorder=3))
            ax.text(node.x, node.y, node.label, ha="center", va="center", fontsize=10 if node.kind == "layer" else 11,
                    zorder=4, linespacing=1.3)
    for k, line in enumerate(lines):
        ax.text(left + 0.3, bottom - 0.2 - step * k, line, fontsize=12, va="top")
    ax.text(left + 0.3, top + 0.05, title, fontsize=11.5, va="bottom")
    ax.set_xlim(left, right)
    ax.set_ylim(bottom - 0.2 - step * len(lines), top + 0.55)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


def plot_cell(cell: str, out: Path, gru_z: str | None = None, **options: str) -> Path:
    """Write the diagram of `cell` (PNG or SVG by the suffix of `out`); returns `out`."""
    if gru_z is not None:
        options["gru_z"] = gru_z
    fig = cell_figure(cell, **options)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=110, bbox_inches="tight", facecolor="white")
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    return out
