"""`rnnlab serve`'s explorer (rnnlab/explore.py): /api/record and /api/units against a real uvicorn server."""

import json

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from rnnlab.explore import MAX_TEXT  # noqa: E402
from rnnlab.runs import load_run  # noqa: E402
from rnnlab.serve import create_app, running  # noqa: E402
from rnnlab.states.record import record_model  # noqa: E402
from rnnlab.states.units import matches, units_on  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TEXT = "The king’s daughter said to the frog: ‘Go away.’\nAnd the frog went."


@pytest.fixture(scope="module")
def server(tiny_lm_run):
    with running(create_app(tiny_lm_run, max_workers=2)) as url:
        yield url


@pytest.fixture(scope="module")
def recorded(tiny_lm_run):
    model, vocab, _, _ = load_run(tiny_lm_run)
    return record_model(model, vocab, TEXT, top_k=5)


def test_record_answers_the_recording_of_the_text(server, recorded):
    r = httpx.post(f"{server}/api/record", json={"text": TEXT, "layer": 0, "signal": "c"}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    a = r.json()
    assert a["tokens"] == recorded.tokens == list(TEXT)
    assert (a["level"], a["cell"], a["layers"], a["hidden"], a["layer"], a["signal"]) == ("char", "lstm", 1, 16, 0, "c")
    assert list(a["signals"]) == ["h", "c", "i", "f", "g", "o"]
    values = np.array(a["values"])
    assert values.shape == (len(TEXT), 16)
    np.testing.assert_allclose(values, recorded.layers[0]["c"], atol=6e-5)  # sent to 4 decimals
    assert a["loss"][0] is None
    np.testing.assert_allclose(a["loss"][1:], recorded.loss[1:], rtol=1e-5)
    assert [[w for w, _ in row] for row in a["top"]] == [[w for w, _ in row] for row in recorded.top]
    assert a["warnings"] == []


def test_every_signal_at_once_within_the_cap(server, recorded):
    a = httpx.post(f"{server}/api/record", json={"text": TEXT, "signal": "all"}, timeout=60).json()
    assert "values" not in a and list(a["all"][0]) == list(recorded.layers[0])
    for name, values in recorded.layers[0].items():
        np.testing.assert_allclose(a["all"][0][name], values, atol=6e-5)


def test_units_on_a_span_and_their_matches_are_units_on_and_matches(server, recorded, tiny_lm_run):
    body = {"text": TEXT, "layer": 0, "signal": "h", "start": 5, "end": 9, "threshold": 0.1}
    a = httpx.post(f"{server}/api/units", json=body, timeout=120).json()
    expected = units_on(recorded, 0, "h", 5, 9, 0.1)
    assert a["units"] == expected and expected  # some unit stays above 0.1 over "king"
    assert a["here"] == [list(s) for s in matches(recorded, 0, "h", expected, 0.1, min_len=1)]
    assert any(s <= 5 and 9 <= e for s, e in a["here"])  # the selection itself is one of them
    valid = a["valid"]
    assert valid["source"] == "the first 5,000 characters of the validation split" and valid["tokens"] == 5000
    assert valid["total"] >= len(valid["matches"]) > 0
    for m in valid["matches"]:
        assert m["end"] - m["start"] >= 2
        assert len(m["span"]) == m["end"] - m["start"] if m["end"] - m["start"] <= 80 else len(m["span"]) == 83


@pytest.mark.parametrize("body, message", [
    ({}, "text must be a string"),
    ({"text": 3}, "text must be a string"),
    ({"text": "x"}, "text has 1 characters; give at least 2"),
    ({"text": "x" * (MAX_TEXT + 1)}, "text is too long"),
    ({"text": "snow ☃ white"}, "characters the model has never seen"),
    ({"text": "the king", "layer": 1}, "layer must be between 0 and 0"),
    ({"text": "the king", "layer": "0"}, "layer must be an integer"),
    ({"text": "the king", "signal": "z"}, "signal must be one of h, c, i, f, g, o or all, got \"z\""),
    ({"text": "the king", "signal": ["h"]}, "signal must be one of"),
    ({"text": "the king", "colour": "red"}, "unknown parameter 'colour'"),
])
def test_bad_record_requests_are_400_with_one_message(server, body, message):
    r = httpx.post(f"{server}/api/record", json=body)
    assert r.status_code == 400 and message in r.json()["error"] and "\n" not in r.json()["error"]


@pytest.mark.parametrize("body, message", [
    ({"text": "the king", "end": 2}, "start is required"),
    ({"text": "the king", "start": 3, "end": 3}, "end must be after start"),
    ({"text": "the king", "start": 0, "end": 9}, "end must be at most 8"),
    ({"text": "the king", "start": -1, "end": 2}, "start must be between 0"),
    ({"text": "the king", "start": 0, "end": 2, "threshold": "high"}, "threshold must be a number"),
    ({"text": "the king", "start": 0, "end": 2, "signal": "all"}, "signal must be one of h, c, i, f, g, o, got"),
])
def test_bad_unit_requests_are_400_with_one_message(server, body, message):
    r = httpx.post(f"{server}/api/units", json=body)
    assert r.status_code == 400 and message in r.json()["error"]


def test_oversized_hostile_and_non_json_bodies_are_refused(server):
    big = json.dumps({"text": "x" * 1_000_000}).encode()
    r = httpx.post(f"{server}/api/record", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["error"]
    r = httpx.post(f"{server}/api/record", content=b"[" * 60_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "nested more than" in r.json()["error"]
    r = httpx.post(f"{server}/api/units", content=b'{"text": "ab"}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and "Content-Type: application/json" in r.json()["error"]
    assert httpx.get(f"{server}/api/record").status_code == 405


def test_the_explorer_page_is_linked_and_has_no_inline_script(server):
    assert 'href="/explore"' in httpx.get(f"{server}/").text
    page = httpx.get(f"{server}/explore")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert page.text.count("<script") == 1 and '<script src="/explore.js"></script>' in page.text
    script = httpx.get(f"{server}/explore.js")
    assert script.headers["content-type"].startswith("text/javascript") and "innerHTML" not in script.text
    assert script.headers["x-content-type-options"] == "nosniff"


def test_foreign_host_names_cannot_reach_the_explorer(tiny_lm_run):
    with running(create_app(tiny_lm_run, allowed_hosts=["127.0.0.1"])) as url:
        r = httpx.post(f"{url}/api/record", json={"text": "the king"}, headers={"Host": "attacker.example"})
        assert r.status_code == 400 and "tokens" not in r.text


def test_a_word_model_reads_unknown_words_as_unk_and_searches_its_validation_words(tmp_path, tiny_text):
    from conftest import TINY

    from rnnlab.config import load_config
    from rnnlab.trainer import train_config

    cfg = load_config("grimm-char", None, TINY + [f"data.path={tiny_text}", "data.level=word", "train.max_steps=10",
                                                  "train.threads=1"])
    train_config(cfg, tmp_path / "word", progress=False)
    with running(create_app(tmp_path / "word")) as url:
        a = httpx.post(f"{url}/api/record", json={"text": "the zebra sat on the mat.", "layer": 0}).json()
        u = httpx.post(f"{url}/api/units", json={"text": "the cat sat", "start": 0, "end": 2, "threshold": -1}).json()
    assert a["tokens"] == ["the", "<unk>", "sat", "on", "the", "mat.", "<eos>"] and a["level"] == "word"
    assert a["warnings"] == ["words not in the vocabulary, read as <unk>: zebra"]
    assert u["valid"]["source"] == "the validation split" and u["units"] == list(range(16))  # every h is above -1
    assert u["valid"]["total"] == 1 and u["valid"]["matches"][0]["start"] == 0  # all on throughout: one long span


def test_a_model_with_broken_weights_is_a_400_not_a_500(tiny_lm_run):
    import torch

    app = create_app(tiny_lm_run)
    with torch.no_grad():
        next(app.state.playground.model.rnn.parameters()).fill_(float("nan"))
    with running(app) as url:
        r = httpx.post(f"{url}/api/record", json={"text": "the king"})
    assert r.status_code == 400 and "not finite" in r.json()["error"]
