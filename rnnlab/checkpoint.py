"""Checkpoints: safetensors for tensors, JSON for everything else; never pickle.

Layout inside a run directory:

    checkpoints/last.json              pointer: {"dir": "last-00001500", "step": 1500}
    checkpoints/last-00001500/tensors.safetensors
    checkpoints/last-00001500/meta.json   format version, SHA-256 of the tensors,
                                          config, vocabulary, step, RNG and optimizer scalars

A checkpoint is written into a temporary directory, fsynced, renamed into
place, and only then does the pointer move (itself written to a temporary
file, fsynced and renamed). A kill at any moment therefore leaves the pointer
naming either the old or the new complete checkpoint, never a torn one.
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

FORMAT_VERSION = 1
TENSORS, META = "tensors.safetensors", "meta.json"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see either the old or the new content."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(run_dir: Path, tag: str, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write checkpoint `tag` (e.g. "last", "best") atomically; returns its directory."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"{tag}-{int(meta.get('step', 0)):08d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(tensors, str(tmp / TENSORS))
        meta = dict(meta, format_version=FORMAT_VERSION, sha256=_sha256(tmp / TENSORS))
        (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        for f in (TENSORS, META):
            with open(tmp / f, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        final = root / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        write_atomic(root / f"{tag}.json", json.dumps({"dir": name, "step": meta.get("step", 0)}).encode())
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write checkpoint in {root}: {e.strerror or e}") from None
    # Old checkpoints of this tag are no longer referenced: remove them.
    for old in root.glob(f"{tag}-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def exists(run_dir: Path, tag: str) -> bool:
    return (Path(run_dir) / "checkpoints" / f"{tag}.json").is_file()


def load(run_dir: Path, tag: str = "last") -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify a checkpoint. Every failure is one clear UserError."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / f"{tag}.json"
    if not pointer.is_file():
        raise UserError(f"{run_dir} has no '{tag}' checkpoint (is it a run directory?)")
    try:
        ckdir = root / json.loads(pointer.read_text(encoding="utf-8"))["dir"]
        meta = json.loads((ckdir / META).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"checkpoint '{tag}' in {run_dir} is corrupted or incomplete (unreadable metadata)") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise UserError(f"checkpoint '{tag}' in {run_dir} has format version {version}; this rnnlab reads {FORMAT_VERSION}")
    path = ckdir / TENSORS
    if not path.is_file() or _sha256(path) != meta.get("sha256"):
        raise UserError(f"checkpoint '{tag}' in {run_dir} is corrupted (tensor file missing or checksum mismatch)")
    try:
        tensors = load_file(str(path))  # safetensors: a header and raw bytes, no code is ever run
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"checkpoint '{tag}' in {run_dir} is not a valid safetensors file: {e}") from None
    return tensors, meta
