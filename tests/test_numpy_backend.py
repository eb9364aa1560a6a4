"""`model.backend=numpy` inside the normal trainer: the same run, computed by
the hand-written NumPy passes, and its checkpoint usable by either backend."""

import pytest
import torch
from conftest import TINY
from safetensors.torch import load_file

from rnnlab.cli import main
from rnnlab.config import load_config
from rnnlab.models import LanguageModel, NumpyBackedLanguageModel
from rnnlab.models.stepper import Stepper
from rnnlab.trainer import train_config


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
    train_config(load_config("grimm-char", None, common + ["model.impl=explicit"]), tmp_path / "torch", progress=False)
    train_config(load_config("grimm-char", None, common + ["model.backend=numpy"]), tmp_path / "numpy", progress=False)
    a, b = final_weights(tmp_path / "torch"), final_weights(tmp_path / "numpy")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-6, atol=1e-8, msg=name)


def test_numpy_trained_run_generates_with_either_backend(tiny_text, tmp_path, capsys, monkeypatch):
    """Greedy text from a NumPy-trained run is the same whether every step runs
    through the PyTorch model or through the NumPy one. The NumPy sampling step
    (which both backends would otherwise share) is switched off, and each
    side's model is checked to have computed every step itself."""
    cfg = load_config("grimm-char", None,
                      TINY + [f"data.path={tiny_text}", "model.backend=numpy", "train.max_steps=20"])
    train_config(cfg, tmp_path / "run", progress=False)
    monkeypatch.setattr(Stepper, "supports", classmethod(lambda cls, model: False))
    calls = []
    for cls in (LanguageModel, NumpyBackedLanguageModel):
        real = cls.forward
        monkeypatch.setattr(cls, "forward",
                            lambda self, *a, real=real, cls=cls, **k: calls.append(cls) or real(self, *a, **k))
    outputs = {}
    for backend in ("torch", "numpy"):
        calls.clear()
        assert main(["generate", str(tmp_path / "run"), "--prompt", "the ", "--temperature", "0", "--length", "40",
                     "--backend", backend]) == 0
        outputs[backend] = capsys.readouterr().out
        expected = LanguageModel if backend == "torch" else NumpyBackedLanguageModel
        assert calls == [expected] * 40  # the prompt once, then 39 single steps, all by this backend
    assert outputs["torch"] == outputs["numpy"] and "the " in outputs["torch"]
