"""N-gram counts (`rnnlab data ngrams`) and the raw 2-D embedding view."""

import numpy as np
import pytest
from pictures import C0, assert_lines_drawn

from rnnlab.cli import main
from rnnlab.errors import UserError
from rnnlab.ngram.counts import count_of_counts, ngram_counts
from rnnlab.report.embeddings import project_2d


def test_every_window_is_counted():
    counts = ngram_counts(np.array([1, 2, 3, 1, 2, 3, 1]), 3)
    assert counts == {(1, 2, 3): 2, (2, 3, 1): 2, (3, 1, 2): 1}
    assert count_of_counts(counts) == {1: 1, 2: 2}
    assert ngram_counts(np.array([5, 6]), 3) == {}
    assert sum(ngram_counts(np.arange(100) % 7, 4).values()) == 97


def test_data_ngrams_prints_the_most_frequent_and_draws_the_histogram(tmp_path, capsys):
    (tmp_path / "train.txt").write_text("the cat sat on the mat\n" * 20 + "a dog ran\n", encoding="utf-8")
    for split in ("valid", "test"):
        (tmp_path / f"{split}.txt").write_text("the cat sat\n", encoding="utf-8")
    png = tmp_path / "hist.png"
    assert main(["data", "ngrams", str(tmp_path), "-n", "4", "--top", "3", "--plot", str(png)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # 20 lines of 7 tokens (6 words + <eos>) and one of 4: 144 tokens, 141 windows
    assert lines[0].startswith("141 4-grams in the training split")
    assert lines[1].split()[1] == "20" and len(lines) == 5  # the header, 3 n-grams, the plot's path
    assert_lines_drawn(png, colours=(C0,), pixels=20, span=0.05)


def test_raw_projection_is_the_embedding_itself():
    x = np.random.default_rng(0).normal(size=(7, 2))
    assert np.array_equal(project_2d(x, "raw"), x)
    with pytest.raises(UserError, match="2-dimensional"):
        project_2d(np.zeros((7, 16)), "raw")
