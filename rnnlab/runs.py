"""Run directories: everything one training run leaves behind.

    RUN_DIR/config.toml      the fully resolved configuration
    RUN_DIR/vocab.json       the vocabulary ({"level": ..., "tokens": [...]})
    RUN_DIR/metrics.jsonl    one JSON object per line: train / valid / test measurements, faults
    RUN_DIR/samples.jsonl    text sampled during training
    RUN_DIR/summary.json     final figures (written when training ends)
    RUN_DIR/checkpoints/     'last' and 'best' (see rnnlab.checkpoint)
    RUN_DIR/plots/           PNG plots
    RUN_DIR/.lock            held (flock) by the one process writing the run

One writer at a time: `lock` takes an exclusive flock on RUN_DIR/.lock. The
kernel drops it when the process ends, however it ends, so a SIGKILLed run
leaves no stale lock; the PID in the file only names the holder in the
error. Readers (eval, generate, report, serve) never take it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
import time
from pathlib import Path

import torch

from rnnlab import checkpoint, safejson
from rnnlab.bounds import INFERENCE_COPIES, check_model_memory
from rnnlab.config import Config, config_from_dict, read_toml
from rnnlab.data.vocab import Vocab
from rnnlab.errors import UserError
from rnnlab.models import build_model

MODEL_PREFIX = "model."
LOGS = ("metrics.jsonl", "samples.jsonl")  # appended during training, cut back on resume
LOCK = ".lock"


class RunLock:
    """An exclusive lock on a run directory, held until `release` or process exit.

    RUN_DIR/.lock is opened without following a symbolic link (O_NOFOLLOW) and
    must be a regular file: a planted link would otherwise have the PID written
    through it (a dangling one would create its target), and a FIFO or device
    cannot be locked. `created_dir` tells whether this lock created RUN_DIR."""

    def __init__(self, run_dir: Path):
        run_dir = Path(run_dir)
        path = run_dir / LOCK
        self.fd = None
        self.created_dir = not run_dir.exists()
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UserError(f"{path} is a symbolic link, not a lock file rnnlab wrote; remove it") from None
            if e.errno in (errno.ENXIO, errno.EISDIR) or (path.exists() and not path.is_file()):
                raise UserError(f"{path} is not a regular file; remove it") from None
            raise UserError(
                f"run directory {run_dir} is not writable: cannot create {path}: {e.strerror or e}"
            ) from None
        if not stat.S_ISREG(os.fstat(self.fd).st_mode):
            self.release()
            raise UserError(f"{path} is not a regular file; remove it")
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "unknown"
            self.release()
            raise UserError(f"run directory {run_dir} is in use by another rnnlab process (PID {holder}); "
                            "wait for it to finish or stop it") from None
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:  # a full disk
            self.release()
            raise UserError(f"cannot write {path}: {e.strerror or e}") from None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    __del__ = release  # a lock nobody holds on to any more (distributed.preflight's) is let go at once


def _not_a_lock(path: Path) -> bool:
    """A .lock that no rnnlab process can hold: a symbolic link, FIFO, device, directory."""
    try:
        return not stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def prepare(run_dir: Path, overwrite: bool = False) -> RunLock:
    """Make `run_dir` ready for a new run (emptied for --overwrite) and lock it.

    Everything that can be refused is checked before anything is created, so
    a refused run leaves no trace; the checks are repeated under the lock,
    against a writer that got there in between. --overwrite also replaces a
    .lock that is not a regular file (a symbolic link is removed, never followed)."""
    run_dir = Path(run_dir)

    def contents() -> list[Path]:
        if run_dir.exists() and not run_dir.is_dir():
            raise UserError(f"run directory {run_dir} exists and is not a directory")
        found = [p for p in run_dir.iterdir() if p.name != LOCK] if run_dir.is_dir() else []
        if found and not overwrite:
            raise UserError(f"run directory {run_dir} is not empty: use --resume to continue it or --overwrite to "
                            "replace it")
        if found and not is_run(run_dir):
            raise UserError(f"refusing to overwrite {run_dir}: it is not an rnnlab run directory")
        return found

    contents()
    if overwrite and _not_a_lock(run_dir / LOCK):
        try:
            (run_dir / LOCK).unlink()  # the link itself, not what it points to
        except OSError as e:
            raise UserError(f"cannot remove {run_dir / LOCK}: {e.strerror or e}") from None
    lock = RunLock(run_dir)
    try:
        for p in contents():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        lock.release()
        raise UserError(f"run directory {run_dir} is not writable: {e.strerror or e}") from None
    except BaseException:
        lock.release()
        raise
    return lock


def write_initial(run_dir: Path, files: dict[str, bytes], lock: RunLock | None) -> None:
    """Write a new run's first files (config.toml, vocab.json), each atomically.
    On failure (a full disk) nothing half-made is left: the files written here
    are removed, and so is the directory if `lock` created it; the error names
    the file that could not be written."""
    run_dir, written = Path(run_dir), []
    try:
        for name, data in files.items():
            checkpoint.write_atomic(run_dir / name, data)
            written.append(run_dir / name)
    except OSError as e:
        for path in written:
            path.unlink(missing_ok=True)
        if lock is not None and lock.created_dir:
            lock.release()
            (run_dir / LOCK).unlink(missing_ok=True)
            try:
                run_dir.rmdir()  # only if nothing else is in it
            except OSError:
                pass
        raise UserError(
            f"cannot write {run_dir / name}: {e.strerror or e} (disk {checkpoint._disk(run_dir)})"
        ) from None


def is_run(run_dir: Path) -> bool:
    return (Path(run_dir) / "config.toml").is_file()


def read_config(run_dir: Path) -> Config:
    if not Path(run_dir).exists():
        raise UserError(f"run directory not found: {run_dir}")
    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir} is not a run directory (it is a file)")
    if not is_run(run_dir):
        raise UserError(f"{run_dir} is not a run directory (no config.toml)")
    return config_from_dict(read_toml(Path(run_dir) / "config.toml", f"{run_dir}/config.toml"))


def append_jsonl(path: Path, record: dict) -> None:
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as e:  # a full disk: the line names the file
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines log; a last line cut short by a kill is ignored."""
    if not Path(path).is_file():
        return []
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    lines = [line for line in text.split("\n") if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(safejson.loads(line))
        except ValueError:
            if i < len(lines) - 1 or text.endswith("\n"):
                raise UserError(f"{path} is corrupted at record {i + 1}") from None
    return records


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Drop records written after `max_step` (by a run killed after its last checkpoint)."""
    if Path(path).is_file():
        kept = [r for r in read_jsonl(path) if r.get("step", 0) <= max_step]
        checkpoint.write_atomic(Path(path), "".join(json.dumps(r) + "\n" for r in kept).encode())


def log_sizes(run_dir: Path) -> dict[str, int]:
    """Byte length of each log, flushed to disk: stored in a checkpoint, so that
    resuming it cuts away exactly what was logged after it."""
    sizes = {}
    for name in LOGS:
        path = Path(run_dir) / name
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                sizes[name] = os.fstat(fd).st_size
            finally:
                os.close(fd)
    return sizes


def truncate_logs(run_dir: Path, sizes: dict[str, int] | None, step: int) -> None:
    """Forget what a killed run logged after the checkpoint being resumed (it is recomputed)."""
    for name in LOGS:
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        size = (sizes or {}).get(name)
        if size is not None and path.stat().st_size >= size:
            os.truncate(path, size)
        else:  # a checkpoint without sizes: fall back to the step numbers
            truncate_jsonl(path, step)


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {MODEL_PREFIX + k: v for k, v in model.state_dict().items()}


def load_model_tensors(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    state = {k[len(MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    expected = model.state_dict()
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise UserError(f"checkpoint in {where} does not match its config (missing {missing[:3]}, unexpected "
                        f"{extra[:3]})")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise UserError(f"checkpoint in {where}: {k} has shape {tuple(v.shape)}, config expects "
                            f"{tuple(expected[k].shape)}")
    model.load_state_dict(state)


def load_run(run_dir: Path, tag: str = "best", device="cpu", impl: str | None = None, backend: str = "torch",
             task_ok: bool = False):
    """(model, vocab, config, meta) of a finished or running run, for eval/generate/serve.

    Whatever backend trained it, the weights load into the model of `backend`
    (PyTorch by default): both backends share parameter names and shapes.
    A sequence task's run (a classifier, vocab None) only where the caller
    says it handles one (`task_ok`: eval); elsewhere a one-line error.
    """
    cfg = read_config(run_dir)
    if cfg.task.kind and not task_ok:
        raise UserError(f"{run_dir} is a {cfg.task.kind} task run (a sequence classifier, not a language model); "
                        "of the run commands only 'rnnlab eval' applies to it")
    if tag == "best" and not checkpoint.exists(run_dir, "best"):
        tag = "last"
    tensors, meta = checkpoint.load(run_dir, tag)
    vocab = Vocab.from_json(meta["vocab"]) if not cfg.task.kind else None
    cfg.model.backend = backend
    if impl:
        cfg.model.impl = impl
    if vocab is not None:  # a forged config.toml may ask for any size (a task's classifier is small)
        check_model_memory(cfg.model, len(vocab), copies=INFERENCE_COPIES)
    model = build_model(cfg.model, len(vocab) if vocab else 0, cfg.task)
    load_model_tensors(model, tensors, str(run_dir))
    return model.to(device).eval(), vocab, cfg, meta


def default_run_dir(name: str) -> Path:
    """Where a run goes when no --run-dir is given: runs/NAME-TIMESTAMP."""
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
