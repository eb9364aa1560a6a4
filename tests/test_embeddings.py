"""Embedding analysis on a synthetic embedding whose neighbours are known."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from rnnlab.errors import UserError
from rnnlab.report.embeddings import embeddings_figure, load_embedding, nearest_neighbors, plot_embeddings, project_2d

TOKENS = ["<unk>", "<eos>", "the", "king", "queen", "prince", "apple", "pear", "plum", "ran", "walked", "rare"]


def synthetic():
    """Three tight clusters (royals, fruit, motion verbs) on orthogonal axes, plus noise."""
    rng = np.random.default_rng(0)
    emb = rng.normal(0, 0.05, size=(len(TOKENS), 6))
    axis = {"king": 0, "queen": 0, "prince": 0, "apple": 1, "pear": 1, "plum": 1, "ran": 2, "walked": 2, "rare": 0}
    for word, a in axis.items():
        emb[TOKENS.index(word), a] += 1.0
    emb[TOKENS.index("queen"), 3] += 0.3  # queen a little off the royal axis: king's 2nd neighbour
    emb[TOKENS.index("<unk>")] = emb[TOKENS.index("king")]  # specials are never neighbours
    return emb


def test_nearest_neighbors():
    emb = synthetic()
    nn = nearest_neighbors(emb, TOKENS, "king", k=2, top_n=None)
    assert {w for w, _ in nn} == {"rare", "prince"}  # queen is off-axis, the specials never count
    assert {w for w, _ in nearest_neighbors(emb, TOKENS, "king", k=3, top_n=None)} == {"rare", "prince", "queen"}
    # Among the most frequent words only ('rare' is last in frequency order, so excluded by top_n=8).
    top = nearest_neighbors(emb, TOKENS, "king", k=2, top_n=8)
    assert [w for w, _ in top] == ["prince", "queen"]
    assert top[0][1] > top[1][1] > 0.8
    fruit = nearest_neighbors(emb, TOKENS, "pear", k=2)
    assert {w for w, _ in fruit} == {"apple", "plum"}
    assert all(-1.0 <= c <= 1.0 for _, c in fruit)
    cos = float(emb[6] @ emb[7] / np.linalg.norm(emb[6]) / np.linalg.norm(emb[7]))
    assert dict(nearest_neighbors(emb, TOKENS, "apple", k=5))["pear"] == pytest.approx(cos)
    # A rare word can be queried even when it is outside top_n.
    assert nearest_neighbors(emb, TOKENS, "rare", k=1, top_n=8)[0][0] in ("king", "prince", "queen")


def test_errors_are_user_errors():
    emb = synthetic()
    with pytest.raises(UserError, match="did you mean 'king'"):
        nearest_neighbors(emb, TOKENS, "King")
    with pytest.raises(UserError, match="not in the model's vocabulary"):
        nearest_neighbors(emb, TOKENS, "zebra")
    with pytest.raises(UserError, match="rows"):
        nearest_neighbors(emb[:5], TOKENS, "king")


def test_pca_and_plot(tmp_path):
    emb = synthetic()
    xy = project_2d(emb[2:], "pca")
    assert xy.shape == (10, 2)
    # The first principal axis separates the clusters: fruit far from royals.
    d = lambda a, b: np.linalg.norm(xy[TOKENS.index(a) - 2] - xy[TOKENS.index(b) - 2])
    assert d("apple", "pear") < d("apple", "king") and d("king", "prince") < d("king", "ran")
    # The map shows those points, labelled with their words where the labels do not collide:
    # the most frequent word always, one of each tight cluster at least, no two labels overlapping ...
    fig = embeddings_figure(emb, TOKENS, top=500, method="pca")
    ax = fig.axes[0]
    words = [t.get_text() for t in ax.texts]
    assert set(words) <= set(TOKENS[2:]) and "the" in words and len(set(words)) == len(words)
    assert all(set(words) & set(cluster) for cluster in (("king", "queen", "prince", "rare"),
                                                         ("apple", "pear", "plum")))
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    points = ax.collections[0].get_offsets()
    np.testing.assert_allclose(points, xy)
    for text in ax.texts:
        np.testing.assert_allclose(text.xy, xy[TOKENS.index(text.get_text()) - 2])
    assert ax.get_xlabel() == "principal component 1" and ax.get_ylabel() == "principal component 2"
    # ... and the PNG draws them: dark text and the scatter's points in C0 blue.
    out = plot_embeddings(emb, TOKENS, top=500, method="pca", path=tmp_path / "maps" / "map.png")
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert (img.max(-1) < 100).mean() > 0.002  # labels and frame
    assert (np.abs(img - [31, 119, 180]).max(-1) < 60).sum() + (np.abs(img - [165, 201, 225]).max(-1) < 25).sum() > 20


def test_tsne_needs_scikit_learn(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(UserError, match="pip install scikit-learn") as e:
        plot_embeddings(synthetic(), TOKENS, method="tsne", path=tmp_path / "t.png")
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="unknown projection"):
        project_2d(synthetic(), "umap")


def test_load_embedding_from_safetensors(tmp_path):
    emb = torch.randn(12, 6)
    save_file({"embedding.weight": emb, "output.bias": torch.zeros(12)}, str(tmp_path / "a.safetensors"))
    save_file({"model.embedding.weight": emb}, str(tmp_path / "b.safetensors"))
    for name in ("a", "b"):
        assert np.allclose(load_embedding(tmp_path / f"{name}.safetensors"), emb.numpy())
    save_file({"w": emb}, str(tmp_path / "c.safetensors"))
    with pytest.raises(UserError, match="no 'embedding.weight'"):
        load_embedding(tmp_path / "c.safetensors")


def test_run_embedding_reads_a_neural_ngram_run(tmp_path):
    import json

    from rnnlab.report.embeddings import run_embedding

    emb = synthetic()
    save_file({"embedding.weight": torch.from_numpy(emb).float()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "vocab.json").write_text(json.dumps({"level": "word", "tokens": TOKENS}))
    matrix, tokens = run_embedding(tmp_path)
    assert tokens == TOKENS and np.allclose(matrix, emb, atol=1e-6)
    assert [w for w, _ in nearest_neighbors(matrix, tokens, "apple", k=2)] in (["pear", "plum"], ["plum", "pear"])
    with pytest.raises(UserError, match="not found"):
        run_embedding(tmp_path / "missing")


def test_run_embedding_reads_a_recurrent_run(tiny_lm_run):
    from rnnlab.report.embeddings import run_embedding

    matrix, tokens = run_embedding(tiny_lm_run)
    assert matrix.shape[0] == len(tokens) and matrix.ndim == 2
    assert len(nearest_neighbors(matrix, tokens, "e", k=3)) == 3


def test_outliers_do_not_stretch_the_map():
    """A few far-off words (punctuation in a real model) are drawn at the edge and named in the title;
    the axes span the bulk of the points, not the outliers."""
    rng = np.random.default_rng(1)
    tokens = ["<unk>", "<eos>"] + [f"w{i}" for i in range(150)]
    emb = rng.normal(size=(len(tokens), 8))
    far = [tokens.index(w) for w in ("w3", "w40", "w90")]
    emb[far] *= 50
    ax = embeddings_figure(emb, tokens, top=150, method="pca").axes[0]
    xy = project_2d(emb[2:], "pca")
    inside = np.ones(len(xy), bool)
    inside[[f - 2 for f in far]] = False
    for lim, values in ((ax.get_xlim(), xy[:, 0]), (ax.get_ylim(), xy[:, 1])):
        bulk = values[inside]
        assert lim[0] <= bulk.min() and lim[1] >= bulk.max()  # no ordinary word cut off ...
        assert lim[1] - lim[0] < 3 * (bulk.max() - bulk.min())  # ... and the outliers did not widen the view
        assert (values[~inside].min() < lim[0]) or (values[~inside].max() > lim[1])
    edge = ax.collections[1].get_offsets()  # the outliers, clipped onto the frame
    assert len(edge) == 3 and all(
        ax.get_xlim()[0] <= x <= ax.get_xlim()[1] and ax.get_ylim()[0] <= y <= ax.get_ylim()[1] for x, y in edge
    )
    assert "3 far outside" in ax.get_title() and all(w in ax.get_title() for w in ("w3", "w40", "w90"))
