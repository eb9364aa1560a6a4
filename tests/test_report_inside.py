"""The report's look inside a recurrent language model (rnnlab/report/inside.py): the strongest unit
per feature, the saturation plot and the excerpt shaded by loss are those of rnnlab/states over the
start of the validation split; a model without states gets a note, not an error."""

import re

import numpy as np
import pytest

from rnnlab.report.build import assemble, build_report
from rnnlab.report.inside import REPORT_TOKENS, validation_excerpt
from rnnlab.runs import load_run
from rnnlab.states.features import text_features
from rnnlab.states.record import record_model
from rnnlab.states.units import strongest_units, unit_feature_table

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_report_shows_the_strongest_units_saturation_and_surprise(tiny_lm_run, tmp_path):
    report = assemble([tiny_lm_run], samples=False, progress=False)
    (sec,) = report.sections
    (table,) = [t for t in sec.tables if t.title == "Inside grimm-tiny: the strongest unit per feature"]
    model, vocab, cfg, _ = load_run(tiny_lm_run)
    text, source = validation_excerpt(cfg, "char")
    assert source == f"the first {REPORT_TOKENS['char']:,} characters of the validation split"
    rec = record_model(model, vocab, text)
    best = strongest_units(unit_feature_table(rec, text_features(rec.tokens, "char")), 1)
    assert [row[0] for row in table.rows] == list(best)
    for row in table.rows:
        (top,) = best[row[0]]
        assert row[2] == f"layer {top['layer']} {top['signal']}[{top['unit']}]" and row[3] == f"{top['r']:+.3f}"
    assert any(i.title == "grimm-tiny: gate saturation" and i.png.startswith(b"\x89PNG") for i in sec.images)
    (shaded,) = sec.shaded
    assert "".join(piece for piece, _ in shaded.pieces) == text[:600]
    bits = [b for _, b in shaded.pieces]
    assert bits[0] is None and np.allclose(bits[1:], rec.loss[1:600] / np.log(2))
    html = build_report([tiny_lm_run], tmp_path / "r.html", samples=False, progress=False).read_text()
    shades = re.findall(r'<span title="([\d.]+) bits" style="background: rgba\(220, 60, 40, ([\d.]+)\)">', html)
    assert len(shades) == 599 and all(float(a) == pytest.approx(min(float(b) / 8, 1), abs=0.01) for b, a in shades)
    assert "strongest unit per feature" not in assemble([tiny_lm_run], samples=False, progress=False,
                                                        states=False).sections[0].tables


def test_a_model_without_states_gets_a_note(tmp_path, tiny_text):
    from conftest import TINY

    from rnnlab.config import load_config
    from rnnlab.trainer import train_config

    cfg = load_config("nplm", None, TINY + [f"data.path={tiny_text}", "train.max_steps=5", "train.threads=1"])
    train_config(cfg, tmp_path / "runs" / "ngram", progress=False)
    out = build_report([tmp_path / "runs"], tmp_path / "r.md", samples=False, progress=False)
    text = out.read_text()
    assert "### Inside ngram" in text and "not shown: not a recurrent language model (model.arch=nplm)" in text
