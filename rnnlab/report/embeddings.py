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

    size = 8 if len(ids) <= 200 else 14
    fig = Figure(figsize=(size, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.4)
    fontsize = 8 if len(ids) <= 200 else 6
    for (px, py), i in zip(xy, ids):
        ax.annotate(tokens[int(i)], (px, py), fontsize=fontsize, alpha=0.8)
    ax.set_title(title or f"{len(ids)} most frequent words, {method.upper()}")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


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
