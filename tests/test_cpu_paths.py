"""The kernel paths `make test` runs: as this CPU runs them, and limited to AVX2
(ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2), where torch must report no
native bf16 and rnnlab must take its float32 path (train.bf16=auto -> off)."""

import json
import os
import subprocess
import sys

import torch

from rnnlab.devices import native_bf16

AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
PROBE = """
import json, torch
from rnnlab.config import load_config
from rnnlab.devices import native_bf16, use_bf16
cpu = torch.device("cpu")
cfg = load_config("grimm-char", None, ["train.bf16=auto"])
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": native_bf16(cpu),
                  "bf16_auto": use_bf16(cfg, cpu)}))
"""


def _probe(**env: str) -> dict:
    p = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, OMP_NUM_THREADS="1", **env))
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


def test_the_avx2_pass_takes_the_float32_path():
    """What the second pass of `make test` runs, on any x86-64 CPU: AVX2 kernels at most
    (DEFAULT on a CPU without AVX2), no native bf16, so bf16=auto resolves to float32."""
    limited = _probe(**AVX2_ENV)
    assert limited["capability"] in ("AVX2", "DEFAULT"), limited
    assert limited["native_bf16"] is False and limited["bf16_auto"] is False, limited


def test_this_process_reports_the_path_it_tests():
    """The pass this process belongs to: under the AVX2 limits, the float32 path; otherwise
    bf16=auto follows the CPU (on where torch reports native bf16)."""
    limited = all(os.environ.get(k, "").lower() == v.lower() for k, v in AVX2_ENV.items())
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"kernels: {capability}, native bf16: {native_bf16(torch.device('cpu'))}")  # shown with pytest -s
    if limited:
        assert capability in ("AVX2", "DEFAULT") and not native_bf16(torch.device("cpu"))
    else:
        assert _probe()["native_bf16"] is native_bf16(torch.device("cpu"))  # a fresh process sees the same CPU
