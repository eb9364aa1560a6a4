"""notebooks/quickstart.ipynb runs from top to bottom (at tiny settings) and
produces what it promises: a curve, samples and the cell diagram."""

import os
import sys

import pytest
from conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
TINY = '''from pathlib import Path
PRESET = "grimm-char"
STEPS = 30
OVERRIDES = {"train.max_steps": STEPS, "train.eval_every": 15, "train.samples": 0, "model.hidden": 16,
             "model.layers": 1, "train.batch_size": 8, "train.threads": 1, "train.bf16": "off"}
RUN_DIR = Path("runs") / "quickstart"
SAMPLE_LENGTH = 40
'''


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    (params,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    lines = [line for line in params.source.splitlines() if "=" in line and not line.startswith("#")]
    names = {line.split("=")[0].strip() for line in lines}
    assert names == {"PRESET", "STEPS", "OVERRIDES", "RUN_DIR", "SAMPLE_LENGTH"}  # TINY replaces all of them
    params.source = TINY
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('kernel:', sys.executable)"))
    # The kernel is a child process: it must import this checkout's rnnlab and use one thread.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows the figures
    # "python3", the notebook's kernel name, is ipykernel's built-in spec: it launches
    # sys.executable, i.e. this interpreter, on a fresh venv with no kernel installed.
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the learning curve and the cell diagram
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert text.count("--- temperature") == 3 and "The king" in text
    assert f"kernel: {sys.executable}" in text  # the kernel is this interpreter, not whatever `python` is on PATH
    run = tmp_path / "runs" / "quickstart"
    assert (run / "summary.json").is_file() and (run / "plots" / "cell-lstm.png").is_file()


def stored_outputs():
    """(markdown text, the parameters cell's source, the stored evaluate('valid') result) of the committed notebook."""
    import ast

    nb = nbformat.read(NOTEBOOK, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    (params,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    (evaluated,) = [c for c in nb.cells if c.cell_type == "code" and c.source.strip() == 'run.evaluate("valid")']
    (result,) = [o for o in evaluated.outputs if o.output_type == "execute_result"]
    return markdown, params.source, ast.literal_eval(result.data["text/plain"])


def test_figures_the_notebook_quotes_are_its_stored_outputs_and_the_preset():
    """Every bits/char figure in the notebook's text is the stored evaluation (at the digits shown),
    'after N steps' is its STEPS and the stored evaluation's step, and the preset budget it quotes
    is the preset's train.max_steps. Rerun the notebook and edit its text together."""
    import re

    from rnnlab.config import load_config

    markdown, params, valid = stored_outputs()
    steps = int(re.search(r"^STEPS = (\d+)", params, re.M)[1])
    budget = re.findall(r"preset's own budget is ([\d,]+) steps", markdown)
    assert budget == [f"{load_config('grimm-char', None, []).train.max_steps:,}"]
    quoted = re.findall(r"\*\*(\d+\.\d+) bits/char\*\*", markdown)
    assert quoted, "the notebook quotes its validation score"
    for figure in quoted:
        digits = len(figure.split(".")[1])
        assert abs(valid["bpc"] - float(figure)) <= 0.5 * 10**-digits + 1e-12, (figure, valid["bpc"])
    for figure in re.findall(r"after ([\d,]+) steps", markdown):
        assert int(figure.replace(",", "")) == steps == valid["step"]
    accuracy = re.findall(r"accuracy (\d+\.\d) %", markdown)
    assert all(abs(100 * valid["accuracy"] - float(a)) <= 0.05 + 1e-9 for a in accuracy)
