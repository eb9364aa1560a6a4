"""Checkpoints: exact round trip, atomic writes (a crash at any point leaves the
old or the new checkpoint), and every kind of damage gives one clear error.
Nothing here trains a model: the tensors are small random ones."""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from rnnlab import checkpoint
from rnnlab.errors import UserError


def tensors(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"model.w": torch.randn(7, 5, generator=g), "model.b": torch.randn(5, generator=g).double(),
            "optim.w.step": torch.tensor(float(seed)), "rng.torch": torch.randint(0, 255, (40,), dtype=torch.uint8)}


def meta(step: int) -> dict:
    return {"step": step, "vocab": {"level": "char", "tokens": ["<unk>", "a", "é", "\n"]}, "best_valid": float("inf"),
            "config": {"model": {"hidden": 5}}, "fingerprint": {"corpus": {}, "bf16": False}}


def save(run: Path, step: int, tag: str = "last") -> dict[str, torch.Tensor]:
    t = tensors(step)
    checkpoint.save(run, tag, t, meta(step))
    return t


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def files(run: Path, tag: str = "last") -> Path:
    return run / "checkpoints" / json.loads((run / "checkpoints" / f"{tag}.json").read_text())["dir"]


def rewrite_meta(run: Path, change, tag: str = "last") -> None:
    """Edit meta.json and re-sign it, as a deliberate (not accidental) change would."""
    path = files(run, tag) / checkpoint.META
    m = json.loads(path.read_text())
    change(m)
    m["meta_sha256"] = checkpoint._meta_checksum(m)
    path.write_text(json.dumps(m))


def test_round_trip_is_exact_and_replaces_the_old_checkpoint(tmp_path):
    save(tmp_path, 1)
    expected = save(tmp_path, 2)
    loaded, m = checkpoint.load(tmp_path)
    assert_same(loaded, expected)
    assert m["step"] == 2 and m["vocab"] == meta(2)["vocab"] and m["best_valid"] == float("inf")
    assert m["format_version"] == checkpoint.FORMAT_VERSION
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last-00000002", "last.json"]


def test_saving_twice_at_one_step_never_removes_the_current_checkpoint(tmp_path):
    save(tmp_path, 3)
    first = files(tmp_path)
    second_tensors = tensors(99)
    checkpoint.save(tmp_path, "last", second_tensors, meta(3))
    assert files(tmp_path) != first and not first.exists()
    assert_same(checkpoint.load(tmp_path)[0], second_tensors)


class Crash(BaseException):
    """Stands for SIGKILL: nothing after it runs, no except clause sees it."""


@pytest.mark.parametrize("same_step", [False, True], ids=["next-step", "same-step"])
def test_a_crash_at_any_point_of_a_save_leaves_the_old_or_the_new_checkpoint(tmp_path, monkeypatch, same_step):
    operations = [(checkpoint.os, "replace"), (checkpoint.os, "fsync"), (checkpoint, "save_file"),
                  (checkpoint.shutil, "rmtree"), (checkpoint.os, "open"), (checkpoint.Path, "write_text")]
    originals = {(obj, name): getattr(obj, name) for obj, name in operations}

    def arm(crash_at: int) -> list:
        calls = []
        for (obj, name), original in originals.items():
            def wrapped(*args, _original=original, **kwargs):
                calls.append(1)
                if len(calls) == crash_at:
                    raise Crash
                return _original(*args, **kwargs)
            monkeypatch.setattr(obj, name, wrapped)
        return calls

    new_step = 5 if same_step else 6
    n_calls, k = None, 1
    while n_calls is None or k <= n_calls:
        run = tmp_path / f"crash-{k}"
        old = save(run, 5)
        calls = arm(crash_at=k)
        try:
            new = tensors(7)
            checkpoint.save(run, "last", new, meta(new_step))
            n_calls = len(calls)  # no crash: k went past the last operation
        except Crash:
            pass
        monkeypatch.undo()
        loaded, _ = checkpoint.load(run)  # must not raise
        assert torch.equal(loaded["model.w"], old["model.w"]) or torch.equal(loaded["model.w"], new["model.w"])
        latest = save(run, 8)  # the run goes on: the next save works and wins
        assert_same(checkpoint.load(run)[0], latest)
        assert [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")] == []
        k += 1
    assert n_calls >= 8  # the crash points really covered the whole save


def damage_truncate(run):
    p = files(run) / checkpoint.TENSORS
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def damage_flip_tensor_data(run):
    p = files(run) / checkpoint.TENSORS
    data = bytearray(p.read_bytes())
    data[-3] ^= 0x10
    p.write_bytes(bytes(data))


def damage_flip_tensor_header(run):
    p = files(run) / checkpoint.TENSORS
    data = bytearray(p.read_bytes())
    data[12] ^= 0x01
    p.write_bytes(bytes(data))


def damage_empty_meta(run):
    (files(run) / checkpoint.META).write_bytes(b"")


def damage_binary_meta(run):
    (files(run) / checkpoint.META).write_bytes(b"\xff\xfe\x00garbage")


def damage_remove_tensors(run):
    (files(run) / checkpoint.TENSORS).unlink()


def damage_remove_directory(run):
    shutil.rmtree(files(run))


def damage_pointer_garbage(run):
    (run / "checkpoints" / "last.json").write_text("{not json")


def damage_pointer_escapes(run):
    (run / "checkpoints" / "last.json").write_text(json.dumps({"dir": "../..", "step": 2}))


def damage_swap_tensor_files(run):
    a, b = files(run, "last") / checkpoint.TENSORS, files(run, "best") / checkpoint.TENSORS
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def damage_swap_meta_files(run):
    a, b = files(run, "last") / checkpoint.META, files(run, "best") / checkpoint.META
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def damage_swap_directories(run):
    a, b = files(run, "last"), files(run, "best")
    a.rename(run / "tmp")
    b.rename(a)
    (run / "tmp").rename(b)


def damage_edit_step(run):
    p = files(run) / checkpoint.META
    p.write_text(p.read_text().replace('"step": 2', '"step": 3'))


@pytest.mark.parametrize("damage", [
    damage_truncate, damage_flip_tensor_data, damage_flip_tensor_header, damage_empty_meta, damage_binary_meta,
    damage_remove_tensors, damage_remove_directory, damage_pointer_garbage, damage_pointer_escapes,
    damage_swap_tensor_files, damage_swap_meta_files, damage_swap_directories, damage_edit_step,
], ids=lambda f: f.__name__.removeprefix("damage_"))
def test_damaged_checkpoints_give_one_clear_error(tmp_path, damage):
    save(tmp_path, 1, "best")
    save(tmp_path, 2, "last")
    damage(tmp_path)
    with pytest.raises(UserError) as info:
        checkpoint.load(tmp_path, "last")
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "corrupted" in message or "not a valid" in message


def test_every_single_byte_flip_in_the_metadata_is_detected(tmp_path):
    save(tmp_path, 2)
    path = files(tmp_path) / checkpoint.META
    original = path.read_bytes()
    for i in range(len(original)):
        data = bytearray(original)
        data[i] ^= 0x04
        path.write_bytes(bytes(data))
        with pytest.raises(UserError):
            checkpoint.load(tmp_path)
    path.write_bytes(original)
    checkpoint.load(tmp_path)


def test_a_missing_checkpoint_and_a_wrong_format_version_are_named(tmp_path):
    with pytest.raises(UserError, match="has no 'last' checkpoint"):
        checkpoint.load(tmp_path)
    save(tmp_path, 2)
    rewrite_meta(tmp_path, lambda m: m.update(format_version=99))
    with pytest.raises(UserError, match=f"format version 99; this rnnlab reads version {checkpoint.FORMAT_VERSION}"):
        checkpoint.load(tmp_path)


class Payload:
    """Unpickling this runs code: it creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_a_planted_pickle_is_rejected_and_never_run(tmp_path, kind):
    run, marker = tmp_path / "run", tmp_path / "pwned"
    save(run, 2)
    pickle.loads(pickle.dumps(Payload(tmp_path / "sanity")))  # the payload does work when unpickled
    assert (tmp_path / "sanity").exists()
    target = files(run) / checkpoint.TENSORS
    if kind == "pickle":
        target.write_bytes(pickle.dumps({"model.w": Payload(marker)}))
    else:
        torch.save({"model.w": Payload(marker)}, target)
    # Re-sign it, so that only the safetensors parser stands in the way.
    rewrite_meta(run, lambda m: m.update(sha256=checkpoint._sha256(target)))
    with pytest.raises(UserError, match="not a valid safetensors file"):
        checkpoint.load(run)
    assert not marker.exists()
    (files(run) / checkpoint.META).write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(UserError, match="corrupted"):
        checkpoint.load(run)
    assert not marker.exists()


def test_loading_uses_neither_pickle_nor_torch_load(tmp_path, monkeypatch):
    expected = save(tmp_path, 2)

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading a checkpoint")

    for obj, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(obj, name, forbidden)
    assert_same(checkpoint.load(tmp_path)[0], expected)


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    expected = save(tmp_path, 2)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(UserError, match="No space left on device.*previous checkpoint is intact"):
        checkpoint.save(tmp_path, "last", tensors(3), meta(3))
    monkeypatch.undo()
    loaded, m = checkpoint.load(tmp_path)
    assert m["step"] == 2
    assert_same(loaded, expected)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last-00000002", "last.json"]


def test_an_unwritable_checkpoint_directory_is_one_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(UserError, match="cannot write checkpoint"):
        checkpoint.save(tmp_path / "file", "last", tensors(1), meta(1))


def test_write_atomic_leaves_no_temporary_behind_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    checkpoint.write_atomic(target, b"old")

    def fail(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", fail)
    with pytest.raises(OSError):
        checkpoint.write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_reader_racing_a_writer_reads_the_new_checkpoint(tmp_path, monkeypatch):
    # Readers take no lock: a save that lands between reading the pointer and
    # reading the tensors deletes the directory the reader was about to open.
    save(tmp_path, 1)
    real, raced = checkpoint._sha256, {}

    def sha256_while_a_save_lands(path):
        if not raced:
            raced["step 2"] = None
            raced["step 2"] = save(tmp_path, 2)  # the writer moves the pointer and deletes step 1's directory
        return real(path)

    monkeypatch.setattr(checkpoint, "_sha256", sha256_while_a_save_lands)
    loaded, meta_ = checkpoint.load(tmp_path)
    assert raced and meta_["step"] == 2
    assert_same(loaded, raced["step 2"])


def test_a_damaged_checkpoint_is_not_retried_into_success(tmp_path):
    save(tmp_path, 1)
    damage_remove_tensors(tmp_path)
    with pytest.raises(UserError, match="tensor file missing"):
        checkpoint.load(tmp_path)


@pytest.mark.parametrize("config, problem", [({"task": {"kind": "palindrome"}}, None),
                                             ({"model": {"hidden": 5}}, "'vocab' is missing")])
def test_only_a_task_run_may_have_no_vocabulary(tmp_path, config, problem):
    meta_ = {**meta(1), "vocab": None, "config": config, "sha256": "0" * 64}
    found = checkpoint.schema_problem(meta_, tmp_path)
    assert (found is None) if problem is None else (problem in found)
