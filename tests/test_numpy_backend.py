"""`model.backend=numpy` inside the normal trainer: the same run, computed by
the hand-written NumPy passes, and its checkpoint usable by either backend."""

import pytest
import torch
from safetensors.torch import load_file

from rnnlab.cli import main
from rnnlab.config import load_config
from rnnlab.train import train

from conftest import TINY


def final_weights(run_dir):
    import json

    pointer = json.loads((run_dir / "checkpoints" / "last.json").read_text())
    tensors = load_file(str(run_dir / "checkpoints" / pointer["dir"] / "tensors.safetensors"))
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_numpy_and_torch_backends_train_alike(tiny_text, tmp_path, cell):
    """Same seed, float64, no dropout: 12 Adam steps give the same weights."""
    common = TINY + [f"data.path={tiny_text}", f"model.cell={cell}", "model.layers=2", "train.max_steps=12",
                     "train.eval_every=6", "train.dtype=float64", "model.dropout=0"]
    train(load_config("grimm-char", None, common + ["model.impl=explicit"]), tmp_path / "torch", progress=False)
    train(load_config("grimm-char", None, common + ["model.backend=numpy"]), tmp_path / "numpy", progress=False)
    a, b = final_weights(tmp_path / "torch"), final_weights(tmp_path / "numpy")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-6, atol=1e-8, msg=name)


def test_numpy_trained_run_generates_with_either_backend(tiny_text, tmp_path, capsys):
    cfg = load_config("grimm-char", None, TINY + [f"data.path={tiny_text}", "model.backend=numpy", "train.max_steps=20"])
    train(cfg, tmp_path / "run", progress=False)
    outputs = []
    for backend in ("torch", "numpy"):
        assert main(["generate", str(tmp_path / "run"), "--prompt", "the ", "--temperature", "0", "--length", "40",
                     "--backend", backend]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and "the " in outputs[0]
