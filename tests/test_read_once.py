"""A run reads its corpus once per process: the vocabulary, the token ids and the
checkpoint's fingerprint of the corpus all come from that one read."""

import pytest
from conftest import TINY

from rnnlab.config import load_config
from rnnlab.data import corpus
from rnnlab.errors import UserError
from rnnlab.trainer import Trainer, resume


@pytest.fixture
def reads(monkeypatch):
    paths, real = [], corpus.read_text

    def read_text(path):
        paths.append(str(path))
        return real(path)

    monkeypatch.setattr(corpus, "read_text", read_text)
    return paths


def test_starting_and_resuming_a_run_read_the_corpus_once(tiny_text, tmp_path, reads):
    cfg = load_config("grimm-char", None, [*TINY, f"data.path={tiny_text}", "train.max_steps=2", "train.threads=1"])
    Trainer(cfg, tmp_path / "run", progress=False).run()
    assert reads == [str(tiny_text)]
    reads.clear()
    resume(tmp_path / "run", ["train.max_steps=4"], progress=False)
    assert reads == [str(tiny_text)]


def test_a_resumed_run_still_refuses_a_changed_corpus(tiny_text, tmp_path, reads):
    cfg = load_config("grimm-char", None, [*TINY, f"data.path={tiny_text}", "train.max_steps=2", "train.threads=1"])
    Trainer(cfg, tmp_path / "run", progress=False).run()
    tiny_text.write_text(tiny_text.read_text() + "the end.\n", encoding="utf-8")
    with pytest.raises(UserError, match="the corpus's train split"):
        resume(tmp_path / "run", ["train.max_steps=4"], progress=False)
