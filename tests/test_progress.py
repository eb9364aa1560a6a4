"""The checkpointed progress is described once (rnnlab/progress.py): the
Trainer's Progress writes and reads it, the checkpoint reader validates it."""

import json
import math
from dataclasses import asdict, fields

import pytest

from rnnlab import checkpoint
from rnnlab.progress import Progress

GARBLED = ["x", -1, None, math.nan, [1.0], True]


def test_the_checkpoint_schema_checks_each_key_a_progress_writes():
    p = Progress(step=7, epoch=1, index=3, best_valid=1.5, early_stop="plateau", thread_steps={"2": 7})
    meta = json.loads(json.dumps(p.to_meta()))  # as a checkpoint stores it
    assert meta.keys() == Progress.meta_schema().keys()
    for key, value in meta.items():
        required, ok = checkpoint.SCHEMA[key]
        assert required == (key == "step") and ok(value), key
        assert not all(ok(bad) for bad in GARBLED), key  # each key has a real check
    assert checkpoint.SCHEMA["best_valid"][1](math.inf) and checkpoint.SCHEMA["best_accuracy"][1](-math.inf)
    assert not checkpoint.SCHEMA["train_totals"][1]([1.0, 2.0])


def test_a_checkpoint_without_the_newer_fields_resumes_with_their_defaults():
    p = Progress(step=7, epoch=1, index=3, train_nll=2.0, train_tokens=4.0)
    newer = [f.name for f in fields(Progress) if f.metadata["newer"]]
    assert set(newer) == {"step_seconds", "best_accuracy", "best_accuracy_step", "early_stop", "thread_steps",
                          "eval_every"}
    meta = {k: v for k, v in p.to_meta().items() if k not in newer}  # a checkpoint written before they existed
    assert asdict(Progress.from_meta(meta)) == asdict(p)
    del meta["index"]  # in every checkpoint: resuming without it would be wrong, not old
    with pytest.raises(KeyError):
        Progress.from_meta(meta)


def test_a_distributed_run_stores_the_totals_it_is_given():
    p = Progress(train_nll=1.0, train_correct=2.0, train_tokens=3.0)
    assert p.to_meta()["train_totals"] == [1.0, 2.0, 3.0]
    assert p.to_meta((4.0, 5.0, 6.0))["train_totals"] == [4.0, 5.0, 6.0]
