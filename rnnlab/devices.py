"""Where a run computes: the CPU's name, the torch device, and whether bf16 autocast pays on it."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from rnnlab.config import Config
from rnnlab.errors import UserError


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), as result files record it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda was asked for (--device / train.device) but no CUDA device is available; "
                        "use cpu or auto")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else torch.ops.mkldnn._is_mkldnn_bf16_supported()


def use_bf16(cfg: Config, device: torch.device) -> bool:
    """Resolve train.bf16: auto means on wherever it pays (native bf16, float32 weights, the torch backend)."""
    t = cfg.train
    if t.bf16 == "on" and not native_bf16(device):
        raise UserError("train.bf16=on needs a CPU with native bf16 (AVX512-BF16 or AMX); on this one bf16 matmuls "
                        "are emulated, ~50x slower than float32; use train.bf16=auto or off")
    if t.bf16 == "auto":
        return native_bf16(device) and t.dtype == "float32" and cfg.model.backend == "torch"
    return t.bf16 == "on"
