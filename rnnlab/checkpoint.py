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
and never executed. The checksums are computed by the writer, so they catch
damage, not forgery: the metadata is also checked against a schema (`SCHEMA`:
types and ranges, log offsets within the logs) and the tensors must be finite,
so that a hand-edited checkpoint is one clear error, never a traceback.
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

from rnnlab import safejson
from rnnlab.errors import UserError
from rnnlab.progress import Progress
from rnnlab.progress import integer as _int

FORMAT_VERSION = 2  # 2: meta.json carries its own checksum (meta_sha256)
TENSORS, META = "tensors.safetensors", "meta.json"


def _file_mode() -> int:
    """The mode of an ordinary new file under the current umask (0666 less it).
    safetensors creates its file 0600 whatever the umask, so every checkpoint
    file is set to this mode explicitly."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


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
            os.chmod(f.fileno(), _file_mode())
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
    placed = None  # the new checkpoint's directory once renamed into place
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
                os.chmod(fh.fileno(), _file_mode())
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        name = _unused_name(root, f"{tag}-{int(meta.get('step', 0)):08d}")
        os.replace(tmp, root / name)
        placed = root / name
        _fsync_dir(root)
        write_atomic(root / f"{tag}.json", json.dumps({"dir": name, "step": meta.get("step", 0)}).encode())
    except (OSError, SafetensorError) as e:  # safetensors reports a full disk as its own error type
        shutil.rmtree(tmp, ignore_errors=True)
        if placed is not None and _pointed_to(root, tag) != placed.name:  # never referenced: not a checkpoint
            shutil.rmtree(placed, ignore_errors=True)
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip().splitlines()[0]
        raise UserError(f"cannot write checkpoint in {root} (disk {_disk(root)}): {reason} "
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


def _pointed_to(root: Path, tag: str) -> str | None:
    try:
        return safejson.read(root / f"{tag}.json").get("dir")
    except (OSError, ValueError, AttributeError):
        return None


def _disk(path: Path) -> str:
    """The mount point holding `path`, to name the disk that is full."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return str(path)


def exists(run_dir: Path, tag: str) -> bool:
    return (Path(run_dir) / "checkpoints" / f"{tag}.json").is_file()


def load(run_dir: Path, tag: str = "last") -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify a checkpoint. Every failure is one clear UserError.

    Readers take no lock, so a training run may replace the checkpoint while
    it is being read: it writes the new directory, moves the pointer, then
    deletes the old directory. A read that fails while the pointer moved is
    therefore read again (from the new directory); a failure with the pointer
    unchanged is a real one."""
    pointer = Path(run_dir) / "checkpoints" / f"{tag}.json"
    for attempt in range(READ_ATTEMPTS):
        before = _pointer_bytes(pointer)
        try:
            return _load_once(run_dir, tag)
        except UserError:
            if attempt == READ_ATTEMPTS - 1 or _pointer_bytes(pointer) == before:
                raise
    raise AssertionError("unreachable")


READ_ATTEMPTS = 5
FLOAT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _pointer_bytes(pointer: Path) -> bytes | None:
    try:
        return pointer.read_bytes()[:4096]
    except OSError:
        return None


def _load_once(run_dir: Path, tag: str) -> tuple[dict[str, torch.Tensor], dict]:
    root = Path(run_dir) / "checkpoints"
    pointer = root / f"{tag}.json"
    what = f"checkpoint '{tag}' in {run_dir}"
    if not pointer.is_file():
        raise UserError(f"{run_dir} has no '{tag}' checkpoint (not a run directory, or it stopped before writing one)")
    try:
        where = safejson.read(pointer, max_bytes=4096)
        name = where["dir"]
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise ValueError(name)
        meta = safejson.read(root / name / META)
        if not isinstance(meta, dict):
            raise TypeError(type(meta))
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{what} is corrupted or incomplete (unreadable metadata)") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{what} has format version {meta.get('format_version')}; "
                        f"this rnnlab reads version {FORMAT_VERSION}")
    if meta.get("meta_sha256") != _meta_checksum(meta) or meta.get("step", 0) != where.get("step"):
        raise UserError(f"{what} is corrupted (metadata checksum mismatch)")
    problem = schema_problem(meta, Path(run_dir), tag)
    if problem:
        raise UserError(f"{what} has invalid metadata: {problem}")
    path = root / name / TENSORS
    try:
        intact = _sha256(path) == meta.get("sha256")
    except OSError:  # missing, or deleted a moment ago by a writer replacing the checkpoint
        intact = False
    if not intact:
        raise UserError(f"{what} is corrupted (tensor file missing or checksum mismatch)")
    try:
        tensors = load_file(str(path))  # safetensors: a header and raw bytes, no code is ever run
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{what} is not a valid safetensors file: {e}") from None
    for k, v in tensors.items():  # RNG states are bytes, a neural n-gram's carried context is token ids
        wanted = ((torch.uint8,) if k.startswith("rng.") else (*FLOAT_DTYPES, torch.int64) if k.startswith("state.")
                  else FLOAT_DTYPES)
        if v.dtype not in wanted:
            raise UserError(f"{what}: {k} has dtype {str(v.dtype).removeprefix('torch.')}, expected "
                            + " or ".join(str(d).removeprefix("torch.") for d in wanted))
    bad = next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:  # never written by rnnlab (save refuses them): a forged or damaged file
        raise UserError(f"{what} has non-finite values in {bad}")
    return tensors, meta


# ------------------------------------------------------------------ schema
def _vocab(v) -> bool:
    return (isinstance(v, dict) and v.get("level") in ("char", "word") and isinstance(v.get("tokens"), list)
            and len(v["tokens"]) > 0 and all(isinstance(t, str) for t in v["tokens"]))


def _fingerprint(v) -> bool:  # rnnlab/fingerprint.py
    corpus = v.get("corpus") if isinstance(v, dict) else None
    return (isinstance(corpus, dict) and isinstance(v.get("bf16"), bool)
            and all(isinstance(f, dict) and _int()(f.get("bytes")) and isinstance(f.get("sha256"), str)
                    for f in corpus.values()))


# key: (required, check). Keys rnnlab itself writes; anything else in meta.json is ignored.
# The run's progress (step, epoch, index, ...) is described once, by rnnlab/progress.py.
SCHEMA = {
    **{key: (key == "step", ok) for key, ok in Progress.meta_schema().items()},
    "vocab": (True, lambda v: v is None or _vocab(v)),  # None: a sequence task's run (checked below)
    "config": (True, lambda v: isinstance(v, dict)),
    "sha256": (True, lambda v: isinstance(v, str) and len(v) == 64),
    "parameters": (False, _int()),
    "optimizer": (False, lambda v: isinstance(v, dict)),
    "schedule": (False, lambda v: isinstance(v, dict)),
    "fingerprint": (True, _fingerprint),  # required: without it resuming could not check the corpus
    "logs": (False, lambda v: isinstance(v, dict) and all(isinstance(k, str) and _int()(n) for k, n in v.items())),
}


def schema_problem(meta: dict, run_dir: Path, tag: str = "last") -> str | None:
    """What is wrong with checkpoint metadata, or None. Log offsets are checked
    for 'last' only: resuming cuts the logs back to them, while a 'best' taken
    after the last 'last' by a killed run may legitimately point past that cut."""
    for key, (required, ok) in SCHEMA.items():
        if key not in meta:
            if required:
                return f"'{key}' is missing"
        elif not ok(meta[key]):
            return f"'{key}' has an invalid value {json.dumps(meta[key])[:60]}"
    task = meta["config"].get("task")
    if meta["vocab"] is None and not (isinstance(task, dict) and task.get("kind")):
        return "'vocab' is missing (only a sequence task's run has none)"
    for name, offset in meta.get("logs", {}).items():
        if Path(name).name != name or not name.endswith(".jsonl"):
            return f"'logs' names {name!r}, not a log of the run"
        log = run_dir / name
        if tag == "last" and log.is_file() and offset > log.stat().st_size:
            return f"'logs' puts the end of {name} at byte {offset}, past its size {log.stat().st_size}"
    return None
