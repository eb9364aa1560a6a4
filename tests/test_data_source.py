"""A text corpus and a sequence task are two implementations of one data-source interface
(rnnlab/data/source.py), so the training loop needs no corpus-or-task branches."""

import inspect

import pytest
from conftest import TINY

from rnnlab.config import load_config
from rnnlab.data.source import CorpusSource, DataSource, TaskSource, open_source

METHODS = [n for n, v in vars(DataSource).items() if callable(v) and not n.startswith("_")]


@pytest.mark.parametrize("impl", [CorpusSource, TaskSource])
def test_each_source_has_every_method_of_the_interface_with_its_parameters(impl):
    assert len(METHODS) >= 10
    for name in METHODS:
        ours, theirs = inspect.signature(getattr(impl, name)), inspect.signature(getattr(DataSource, name))
        assert list(ours.parameters) == list(theirs.parameters), f"{impl.__name__}.{name}{ours} != {theirs}"


def test_a_corpus_and_a_task_answer_the_same_questions(tiny_text):
    corpus = open_source(load_config("grimm-char", None, [*TINY, f"data.path={tiny_text}"]), show_progress=False)
    task = open_source(load_config("palindrome-course", None, ["task.train_size=64", "task.valid_size=32",
                                                                  "task.test_size=32"]))
    assert isinstance(corpus, CorpusSource) and isinstance(task, TaskSource)
    t = corpus.cfg.train
    assert corpus.tokens_per_step(t) == t.batch_size * t.seq_len and task.tokens_per_step(t) == t.batch_size
    assert corpus.eval_splits(final=False) == corpus.eval_splits(final=True)  # a corpus scores its test split each time
    assert task.eval_splits(final=False) == ["valid"] and task.eval_splits(final=True) == ["valid", "test"]
    assert set(corpus.fingerprint) == {"train", "valid"} and task.fingerprint == {}
    assert set(corpus.run_files()) == {"vocab.json"} and task.run_files() == {}
    assert corpus.first_line() and task.first_line() == ""
    assert corpus.level == "char" and task.level == "task" and task.vocab is None
    for source in (corpus, task):  # the interface's attributes, on the opened sources
        for name in DataSource.__annotations__:
            assert hasattr(source, name), f"{type(source).__name__} lacks {name}"
