"""The Python API (rnnlab.train / load / Run) gives what the CLI gives."""

import json
import subprocess
import sys

import pytest
from conftest import REPO, TINY

import rnnlab
from rnnlab.cli import main
from rnnlab.errors import UserError


def overrides(path, **extra):
    base = dict(item.split("=", 1) for item in TINY)
    return {**base, "data.path": str(path), "train.max_steps": 40, **extra}


@pytest.fixture
def api_run(tiny_text, tmp_path):
    return rnnlab.train(preset="grimm-char", overrides=overrides(tiny_text, **{"train.samples": 1}),
                        run_dir=tmp_path / "run")


def test_train_returns_a_run_with_metrics(api_run, tmp_path):
    assert isinstance(api_run, rnnlab.Run) and api_run.path == tmp_path / "run"
    # typed overrides reach the configuration
    assert api_run.config.train.max_steps == 40 and api_run.config.model.hidden == 16
    metrics = api_run.metrics
    assert isinstance(metrics, list) and all(isinstance(m, dict) for m in metrics)
    assert [m["step"] for m in metrics if m["split"] == "valid"][:2] == [20, 40]
    assert api_run.summary["steps"] == 40
    (sample,) = api_run.samples  # train.samples=1: one sample, at the last step
    assert sample["step"] == 40 and isinstance(sample["text"], str) and sample["text"]


def test_evaluate_equals_the_cli(api_run, capsys):
    ours = api_run.evaluate("valid")
    assert main(["eval", str(api_run.path), "--split", "valid", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert ours["loss"] == pytest.approx(cli["loss"], rel=1e-9)
    assert ours["tokens"] == cli["tokens"] > 0 and ours["step"] == cli["step"] == 40
    with pytest.raises(UserError, match="split"):
        api_run.evaluate("dev")


def test_load_and_generate_are_reproducible(api_run):
    run = rnnlab.load(api_run.path)
    a = run.generate("the ", length=30, temperature=0.5, num=2, seed=3)
    b = api_run.generate("the ", length=30, temperature=0.5, num=2, seed=3)
    assert a == b and len(a) == 2 and all(len(s) == 30 for s in a)
    assert run.generate("the ", length=30, temperature=0.5, num=2, seed=4) != a
    stop = a[0][10:12]  # two characters the sample contains: it ends just before their first appearance
    cut = run.generate("the ", length=30, temperature=0.5, num=2, seed=3, stop=stop)
    assert cut[0] == a[0][:a[0].find(stop)] and stop not in cut[0]


def test_metrics_frame_matches_metrics_or_says_what_is_missing(api_run):
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match=r"pandas.*\[pandas\]"):
            api_run.metrics_frame()
        return
    frame = api_run.metrics_frame()
    assert len(frame) == len(api_run.metrics) and list(frame["step"]) == [m["step"] for m in api_run.metrics]


def test_bad_input_is_a_user_error(tiny_text, tmp_path):
    with pytest.raises(UserError, match="not a run directory"):
        rnnlab.load(tmp_path)
    with pytest.raises(UserError, match="unknown setting"):
        rnnlab.train(preset="grimm-char", overrides={"train.max_stepz": 3}, run_dir=tmp_path / "x")


def test_import_is_cheap_and_train_is_the_api_function_whatever_is_imported():
    # `import rnnlab` must not pull in torch. rnnlab.train is the API function, before and after
    # the training loop's module is imported: no submodule named `train` exists to rebind it.
    code = ("import sys, types, importlib.util, rnnlab; assert 'torch' not in sys.modules; f = rnnlab.train; "
            "from rnnlab import api; assert f is api.train and type(rnnlab) is types.ModuleType; "
            "import rnnlab.trainer, rnnlab.cli; from rnnlab import train; assert train is rnnlab.train is f; "
            "assert importlib.util.find_spec('rnnlab.train') is None")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
