"""The Python API refuses wrong argument types and values the way the CLI does
(tests/test_cli_errors.py): one `UserError` with a clear reason, never a raw
TypeError / RuntimeError / JSONDecodeError from deep inside (issue 21, break 4),
and nothing written for a refused `rnnlab.train`."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY

import rnnlab
from rnnlab.errors import UserError


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("api")
    corpus = root / "tiny.txt"
    corpus.write_text("the cat sat on the mat. the dog sat on the log.\n" * 60, encoding="utf-8")
    overrides = {**dict(item.split("=", 1) for item in TINY), "data.path": str(corpus), "train.max_steps": 4,
                 "train.threads": 1}
    rnnlab.train(overrides=overrides, run_dir=root / "run")
    return root / "run", corpus


GENERATE = [  # keyword arguments of Run.generate → what the message says
    ({"num": -1}, "num must be between 1 and 1,000, got -1"),
    ({"num": 0}, "num must be between 1 and 1,000, got 0"),
    ({"num": 10**9}, "num must be between 1 and 1,000, got 1,000,000,000"),
    ({"num": 2.0}, "num must be an integer, got float 2.0"),
    ({"length": 10.5}, "length must be an integer, got float 10.5"),
    ({"length": 0}, "length must be between 1 and 1,000,000, got 0"),
    ({"length": 10**7}, "length must be between 1 and 1,000,000"),
    ({"length": "10"}, "length must be an integer, got str '10'"),
    ({"top_k": 2.5}, "top_k must be an integer, got float 2.5"),
    ({"top_k": -1}, "top_k must be between 0 and"),
    ({"seed": 1.5}, "seed must be an integer, got float 1.5"),
    ({"seed": -1}, "seed must be between 0 and 9,223,372,036,854,775,807, got -1"),
    ({"seed": True}, "seed must be an integer, got bool True"),
    ({"temperature": "hot"}, "temperature must be a finite number, got str 'hot'"),
    ({"temperature": float("nan")}, "temperature must be a finite number"),
    ({"temperature": -1.0}, "temperature must be 0 (greedy) or in [0.001, 100]"),
    ({"top_p": None}, "top_p must be a finite number, got NoneType None"),
    ({"top_p": 2.0}, "top_p must be in [1e-06, 1]"),
    ({"stop": None}, "stop must be a string, got NoneType None"),
    ({"stop": 5}, "stop must be a string, got int 5"),
    ({"stop": "x" * 100_000}, "the stop string has 100,000 characters; at most 1,000 are allowed"),
    ({"prompt": 5}, "prompt must be a string, got int 5"),
    ({"prompt": b"the"}, "prompt must be a string, got bytes b'the'"),
]


@pytest.mark.parametrize("kwargs, message", GENERATE, ids=[repr(k)[:40] for k, _ in GENERATE])
def test_run_generate_refuses_wrong_types_and_values(trained, kwargs, message):
    run = rnnlab.load(trained[0])
    with pytest.raises(UserError) as caught:
        run.generate(**{"length": 5, **kwargs})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def _garbage(path: Path) -> None:
    path.write_text("{not json")


def _deep(path: Path) -> None:
    path.write_text("[" * 100_000 + "]" * 100_000)


def _binary(path: Path) -> None:
    path.write_bytes(b"\xff\xfe\x00\x81" * 100)


def _a_list(path: Path) -> None:
    path.write_text("[1, 2]")


@pytest.mark.parametrize("plant, message", [
    (_garbage, "is corrupted: not valid JSON"),
    (_deep, "is corrupted: nested more than 64 levels deep"),
    (_binary, "is corrupted: not UTF-8"),
    (_a_list, "is corrupted: not a JSON object"),
])
def test_run_summary_of_a_damaged_file_is_a_user_error(trained, tmp_path, plant, message):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    plant(run / "summary.json")
    with pytest.raises(UserError, match=message) as caught:
        rnnlab.load(run).summary  # noqa: B018 (a property)
    assert str(run / "summary.json") in str(caught.value)


@pytest.mark.parametrize("call, message", [
    (lambda root, corpus: rnnlab.train(overrides={1: 2}, run_dir=root / "x"),
     "overrides keys must be dotted setting names"),
    (lambda root, corpus: rnnlab.train(overrides="train.max_steps=3", run_dir=root / "x"),
     "overrides must be a mapping of dotted keys to values"),
    (lambda root, corpus: rnnlab.train(overrides=[("train.max_steps", 3)], run_dir=root / "x"),
     "overrides must be a mapping"),
    (lambda root, corpus: rnnlab.train(overrides={"train.max_steps": None}, run_dir=root / "x"),
     "train.max_steps expects int, got None"),
    (lambda root, corpus: rnnlab.train(overrides={"train.threads": 10**6}, run_dir=root / "x"),
     "train.threads must be at most"),
    (lambda root, corpus: rnnlab.train(run_dir=5), "run_dir must be a path (a str or pathlib.Path), got int 5"),
    (lambda root, corpus: rnnlab.train(run_dir=""), "run_dir must be a non-empty path"),
    (lambda root, corpus: rnnlab.train(preset=3, run_dir=root / "x"), "preset must be a string or None, got int 3"),
    (lambda root, corpus: rnnlab.train(preset="no-such-preset", run_dir=root / "x"), "no-such-preset"),
    (lambda root, corpus: rnnlab.train(config=1.5, run_dir=root / "x"), "config must be a path"),
    (lambda root, corpus: rnnlab.train(progress="yes", run_dir=root / "x"), "progress must be True or False"),
    (lambda root, corpus: rnnlab.train(overwrite=1, run_dir=root / "x"), "overwrite must be True or False, got int 1"),
    (lambda root, corpus: rnnlab.load(None), "run_dir must be a path (a str or pathlib.Path), got NoneType None"),
    (lambda root, corpus: rnnlab.load(b"runs/x"), "run_dir must be a path"),
    (lambda root, corpus: rnnlab.load(root / "run", checkpoint="../../etc"), "checkpoint must be 'best' or 'last'"),
    (lambda root, corpus: rnnlab.load(root / "run", checkpoint=None), "checkpoint must be 'best' or 'last'"),
    (lambda root, corpus: rnnlab.Run(3.5), "run_dir must be a path"),
    (lambda root, corpus: rnnlab.load(root / "run").evaluate(split=["valid"]), "split must be train, valid or test"),
    (lambda root, corpus: rnnlab.load(root / "run").evaluate(split="dev"), "split must be train, valid or test"),
])
def test_train_load_and_run_refuse_wrong_arguments_and_write_nothing(trained, call, message):
    root = trained[0].parent
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(UserError) as caught:
        call(root, trained[1])
    assert message in str(caught.value) and "\n" not in str(caught.value), str(caught.value)
    assert sorted(p.name for p in root.iterdir()) == before  # no run directory left behind
