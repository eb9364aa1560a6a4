"""Checkpoints: safetensors for tensors, JSON for everything else; never pickle.

Layout inside a run directory:

    checkpoints/last.json              pointer: {"dir": "last-00001500", "step": 1500}
    checkpoints/last-00001500/tensors.safetensors
    checkpoints/last-00001500/meta.json   format version, SHA-256 of the tensors and of
                                          the metadata itself, config, vocabulary, step,
                                          RNG and optimizer scalars

A checkpoint is written into a temporary directory, fsynced, renamed into
place under a name no other checkpoint has, and only then does the pointer
move (itself written to a temporary file, fsynced and renamed). The directory
the pointer names is never touched before the pointer has moved on, so a kill
at any moment leaves the pointer naming either the old or the new complete
checkpoint, never a torn one.

Reading trusts nothing: the pointer, the metadata checksum, the format
version and the tensor checksum are all verified, and tensors are parsed by
safetensors (a JSON header and raw bytes), so a planted pickle is rejected
and never executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rnnlab.errors import UserError

FORMAT_VERSION = 2  # 2: meta.json carries its own checksum (meta_sha256)
TENSORS, META = "tensors.safetensors", "meta.json"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see either the old or the new content."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _meta_checksum(meta: dict) -> str:
    """SHA-256 of the metadata without its own checksum, in a canonical form."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _unused_name(root: Path, base: str) -> str:
    # Saving twice at one step must not replace the directory the pointer names.
    name, n = base, 0
    while (root / name).exists():
        n += 1
        name = f"{base}.{n}"
    return name


def save(run_dir: Path, tag: str, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write checkpoint `tag` (e.g. "last", "best") atomically; returns its directory."""
    root = Path(run_dir) / "checkpoints"
    tmp = root / f".tmp-{tag}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(tensors, str(tmp / TENSORS))
        meta = dict(meta, format_version=FORMAT_VERSION, sha256=_sha256(tmp / TENSORS))
        meta["meta_sha256"] = _meta_checksum(meta)
        (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        for f in (TENSORS, META):
            with open(tmp / f, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        name = _unused_name(root, f"{tag}-{int(meta.get('step', 0)):08d}")
        os.replace(tmp, root / name)
        _fsync_dir(root)
        write_atomic(root / f"{tag}.json", json.dumps({"dir": name, "step": meta.get("step", 0)}).encode())
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write checkpoint in {root}: {e.strerror or e} "
                        "(the previous checkpoint is intact)") from None
    # Old checkpoints of this tag, and temporaries of killed writers, are no longer referenced.
    for old in [*root.glob(f"{tag}-*"), *root.glob(f".tmp-{tag}-*"), *root.glob(f".{tag}.json.tmp-*")]:
        if old.name == name:
            continue
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    return root / name


def exists(run_dir: Path, tag: str) -> bool:
    return (Path(run_dir) / "checkpoints" / f"{tag}.json").is_file()


def load(run_dir: Path, tag: str = "last") -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify a checkpoint. Every failure is one clear UserError."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / f"{tag}.json"
    what = f"checkpoint '{tag}' in {run_dir}"
    if not pointer.is_file():
        raise UserError(f"{run_dir} has no '{tag}' checkpoint (not a run directory, or it stopped before writing one)")
    try:
        where = json.loads(pointer.read_text(encoding="utf-8"))
        name = where["dir"]
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(name)
        meta = json.loads((root / name / META).read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise TypeError(type(meta))
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{what} is corrupted or incomplete (unreadable metadata)") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{what} has format version {meta.get('format_version')}; "
                        f"this rnnlab reads version {FORMAT_VERSION}")
    if meta.get("meta_sha256") != _meta_checksum(meta) or meta.get("step", 0) != where.get("step"):
        raise UserError(f"{what} is corrupted (metadata checksum mismatch)")
    path = root / name / TENSORS
    if not path.is_file() or _sha256(path) != meta.get("sha256"):
        raise UserError(f"{what} is corrupted (tensor file missing or checksum mismatch)")
    try:
        tensors = load_file(str(path))  # safetensors: a header and raw bytes, no code is ever run
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{what} is not a valid safetensors file: {e}") from None
    return tensors, meta
