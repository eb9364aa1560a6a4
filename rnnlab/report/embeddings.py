"""What a word model's embedding learned: nearest neighbours and 2-D maps.

Both functions take the embedding matrix [V, E] and the vocabulary's tokens
(id order), so they work for any word model: the neural n-gram run
(`model.safetensors`, tensor ``embedding.weight``) and a recurrent language
model's checkpoint alike. `load_embedding(path)` reads ``embedding.weight``
(or a tensor whose name ends in it) from a safetensors file.

Vocabularies list the special tokens (``<unk>``, ``<eos>``) first, then words
by decreasing training frequency, so "the N most frequent words" are the first
N non-special tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.errors import UserError

SPECIALS = ("<unk>", "<eos>", "<pad>")


def _frequent_ids(tokens: list[str], top_n: int | None) -> np.ndarray:
    """Ids of the `top_n` most frequent ordinary words (all of them if None/0)."""
    ids = [i for i, t in enumerate(tokens) if t not in SPECIALS]
    return np.asarray(ids[:top_n] if top_n else ids, dtype=np.int64)


def _check(embedding: np.ndarray, tokens: list[str]) -> np.ndarray:
    emb = np.asarray(embedding, dtype=np.float64)
    if emb.ndim != 2:
        raise UserError(f"an embedding matrix must be 2-D [vocab, dim], got shape {emb.shape}")
    if emb.shape[0] != len(tokens):
        raise UserError(f"embedding has {emb.shape[0]} rows but the vocabulary has {len(tokens)} tokens")
    return emb


def _unit_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0)


def nearest_neighbors(embedding: np.ndarray, vocab_tokens: list[str], word: str, k: int = 5,
                      top_n: int | None = 10000) -> list[tuple[str, float]]:
    """The `k` words whose embeddings have the highest cosine similarity to
    `word`'s, among the `top_n` most frequent words (None or 0: all words),
    best first, as (word, cosine). The word itself and special tokens are
    never returned; `word` may be any vocabulary word, frequent or not."""
    emb = _check(embedding, vocab_tokens)
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    try:
        wid = vocab_tokens.index(word)
    except ValueError:
        lower = [t for t in vocab_tokens if t.lower() == word.lower()]
        hint = f" (did you mean '{lower[0]}'?)" if lower else ""
        raise UserError(f"'{word}' is not in the model's vocabulary{hint}") from None
    cand = _frequent_ids(vocab_tokens, top_n)
    cand = cand[cand != wid]
    if len(cand) == 0:
        return []
    q = _unit_rows(emb[wid : wid + 1])[0]
    sims = _unit_rows(emb[cand]) @ q
    order = np.argsort(-sims, kind="stable")[:k]
    return [(vocab_tokens[int(cand[i])], float(sims[i])) for i in order]


def project_2d(vectors: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """[N, E] -> [N, 2]: PCA (numpy SVD of the centred matrix), t-SNE (scikit-learn) or, for
    2-dimensional embeddings, raw (the embedding's own coordinates, no projection)."""
    x = np.asarray(vectors, dtype=np.float64)
    if method == "raw":
        if x.shape[1] != 2:
            raise UserError(f"--method raw plots 2-dimensional embeddings as they are; these have {x.shape[1]} "
                            "dimensions (train with model.embed=2, or use pca)")
        return x
    if method == "pca":
        x = x - x.mean(axis=0, keepdims=True)
        u, s, _ = np.linalg.svd(x, full_matrices=False)
        out = u[:, :2] * s[:2]
        if out.shape[1] < 2:  # 1-D embeddings: pad with zeros
            out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
        return out
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            raise UserError("t-SNE needs scikit-learn: pip install scikit-learn (or use --method pca)") from None
        perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    raise UserError(f"unknown projection method '{method}' (use pca, tsne or raw)")


def plot_embeddings(embedding: np.ndarray, tokens: list[str], top: int = 500, method: str = "pca",
                    path: str | Path = "embeddings.png", title: str | None = None) -> Path:
    """Write the PNG of `embeddings_figure`. Returns its path."""
    fig = embeddings_figure(embedding, tokens, top, method, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def embeddings_figure(embedding: np.ndarray, tokens: list[str], top: int = 500, method: str = "pca",
                      title: str | None = None):
    """A 2-D map of the `top` most frequent words' embeddings, each point
    labelled with its word (a Figure on the Agg canvas, no pyplot state)."""
    emb = _check(embedding, tokens)
    if top < 2:
        raise UserError(f"--top must be at least 2, got {top}")
    ids = _frequent_ids(tokens, top)
    if len(ids) < 2:
        raise UserError("the vocabulary has fewer than two ordinary words to plot")
    xy = project_2d(emb[ids], method)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    words = [tokens[int(i)] for i in ids]
    (x0, x1), (y0, y1) = robust_limits(xy[:, 0]), robust_limits(xy[:, 1])
    outside = (xy[:, 0] < x0) | (xy[:, 0] > x1) | (xy[:, 1] < y0) | (xy[:, 1] > y1)
    shown = np.column_stack([np.clip(xy[:, 0], x0, x1), np.clip(xy[:, 1], y0, y1)])  # outliers at the edge
    size = 8 if len(ids) <= 200 else 14
    fig = Figure(figsize=(size, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(shown[~outside, 0], shown[~outside, 1], s=4, alpha=0.4)
    if outside.any():
        ax.scatter(shown[outside, 0], shown[outside, 1], s=14, marker="x", color="#d62728",
                   label="beyond the axes, drawn at the edge")
    pad_x, pad_y = 0.03 * (x1 - x0), 0.03 * (y1 - y0)
    ax.set_xlim(x0 - pad_x, x1 + pad_x)
    ax.set_ylim(y0 - pad_y, y1 + pad_y)
    fontsize = 8 if len(ids) <= 200 else 6
    for k in labelled_points(ax, shown, words, fontsize):
        ax.annotate(words[k], shown[k], fontsize=fontsize, alpha=0.8,
                    color="#d62728" if outside[k] else "black")
    axis = {"pca": "principal component", "tsne": "t-SNE dimension", "raw": "embedding dimension"}[method]
    ax.set_xlabel(f"{axis} 1")
    ax.set_ylabel(f"{axis} 2")
    title = title or f"{len(ids)} most frequent words, {method.upper()}"
    if outside.any():
        far = [words[k] for k in np.flatnonzero(outside)][:8]
        title += f"\n{int(outside.sum())} far outside the bulk, drawn at the edge (x): " + " ".join(far)
        title += " …" if outside.sum() > len(far) else ""
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def robust_limits(values: np.ndarray, low: float = 5.0, high: float = 95.0, reach: float = 0.5) -> tuple[float, float]:
    """Axis limits that a few outliers cannot stretch: the `low`..`high` percentile range widened by
    `reach` of its width on each side (so the bulk of the points fills the plot)."""
    lo, hi = np.percentile(values, [low, high])
    width = hi - lo if hi > lo else max(abs(float(hi)), 1.0)
    return float(lo - reach * width), float(hi + reach * width)


def labelled_points(ax, xy: np.ndarray, words: list[str], fontsize: float) -> list[int]:
    """Indices of the points to label, most frequent first, skipping any whose label would overlap
    one already placed (an estimate of each label's box in pixels: 0.6 em a character)."""
    fig = ax.figure
    pixels = ax.transData.transform(xy)
    em = fontsize * fig.dpi / 72
    placed: list[tuple[float, float, float, float]] = []
    chosen = []
    for k, ((px, py), word) in enumerate(zip(pixels, words)):
        box = (px, py, px + 0.6 * em * len(word), py + 1.15 * em)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
            continue
        placed.append(box)
        chosen.append(k)
    return chosen


def load_embedding(path: str | Path, name: str = "embedding.weight") -> np.ndarray:
    """The tensor `name` (or the one whose name ends with it, e.g. ``model.embedding.weight``)
    of a safetensors file, as a float NumPy array."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        match = [k for k in keys if k == name] or [k for k in keys if k.endswith(name)]
        if not match:
            raise UserError(f"{path} has no '{name}' tensor (has: {', '.join(keys[:6])})")
        return f.get_tensor(match[0]).float().numpy()


def run_embedding(run_dir: str | Path) -> tuple[np.ndarray, list[str]]:
    """(embedding matrix, vocabulary tokens) of a run directory of either kind:

    - a neural n-gram run of the format before `model.arch = "nplm"`: model.safetensors + vocab.json;
    - a recurrent LM run (`rnnlab train`): its 'best' checkpoint (else 'last'),
      tensor ``model.embedding.weight``, vocabulary from the checkpoint's meta.
    """
    from rnnlab import safejson

    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"run directory not found: {run}")
    if (run / "model.safetensors").is_file() and (run / "vocab.json").is_file():
        try:
            tokens = safejson.read(run / "vocab.json")["tokens"]
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{run}/vocab.json is malformed (needs 'tokens')") from None
        return load_embedding(run / "model.safetensors"), list(tokens)
    from rnnlab import checkpoint

    tag = "best" if checkpoint.exists(run, "best") else "last"
    tensors, meta = checkpoint.load(run, tag)
    match = [k for k in tensors if k.endswith("embedding.weight")]
    if not match:
        raise UserError(f"the checkpoint in {run} has no embedding matrix")
    try:
        tokens = list(meta["vocab"]["tokens"])
    except (KeyError, TypeError):
        raise UserError(f"the checkpoint in {run} has no vocabulary") from None
    return tensors[match[0]].float().numpy(), tokens
