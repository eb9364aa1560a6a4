"""The explorer page (rnnlab/static/explore.{html,js}) end to end in headless Chromium: it colours a
text by a unit as the recorded values say, shows a token's values on hover and keyboard focus, finds
the units on throughout a span and their matches, and runs no script a planted run carries.
Chromium is found (or installed, or the tests skipped) as in tests/test_browser.py."""

import json
import re
import shutil
import time
from urllib.parse import quote

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import test_browser  # noqa: E402
from devtools import DevTools  # noqa: E402

from rnnlab.data.corpus import read_split_texts  # noqa: E402
from rnnlab.explore import VALID_TOKENS  # noqa: E402
from rnnlab.runs import load_run  # noqa: E402
from rnnlab.serve import create_app, running  # noqa: E402
from rnnlab.states.command import excerpt  # noqa: E402
from rnnlab.states.record import record_model  # noqa: E402
from rnnlab.states.units import matches, units_on  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
chromium = test_browser.chromium  # the fixture that finds (or installs) Chromium, or skips
MARKUP = test_browser.MARKUP
TEXT = "The king’s daughter said to the frog: ‘Go away.’\nAnd the frog went back to the well."
RGBA = re.compile(r"rgba?\((\d+), (\d+), (\d+)(?:, ([\d.]+))?\)")


def colours(browser) -> list[tuple[str, float]]:
    """Each token's computed background as (red|blue|none, alpha)."""
    styles = browser.js("[...document.querySelectorAll('#tokens span')].map(s => getComputedStyle(s).backgroundColor)")
    out = []
    for style in styles:
        r, g, b, a = RGBA.fullmatch(style).groups()
        alpha = 1.0 if a is None else float(a)
        hue = "none" if alpha == 0 else {(214, 39, 40): "red", (31, 119, 180): "blue"}[(int(r), int(g), int(b))]
        out.append((hue, alpha))
    return out


def test_the_explorer_colours_a_text_by_a_unit_shows_values_and_finds_units(chromium, tiny_lm_run, tmp_path):
    model, vocab, cfg, _ = load_run(tiny_lm_run)
    rec = record_model(model, vocab, TEXT, top_k=5)
    h = rec.layers[0]["h"]
    unit = int(np.argmax(np.ptp(h, axis=0)))  # the unit that varies most over the text
    high, low = int(np.argmax(np.abs(h[:, unit]))), int(np.argmin(np.abs(h[:, unit])))
    with running(create_app(tiny_lm_run)) as url:
        browser = DevTools(chromium, tmp_path / "profile")
        try:
            browser.open(f"{url}/explore?unit={unit}&autorun=1&text={quote(TEXT)}")
            browser.wait_for("['done', 'error'].includes(document.body?.dataset.state)")
            status = browser.js("document.getElementById('status').textContent")
            painted = colours(browser)
            browser.js(f"document.querySelectorAll('#tokens span')[{high}]"
                       ".dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))")
            hovered = browser.js("document.getElementById('details').textContent")
            # Keyboard: focus the first token (the tab stop), then the arrow key moves on.
            browser.js("document.querySelector('#tokens span[tabindex=\"0\"]').focus()")
            browser.js("document.getElementById('tokens').dispatchEvent("
                       "new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true}))")
            focused = browser.js("[document.activeElement.dataset.index, "
                                 "document.getElementById('details').dataset.token]")
            live = browser.js("document.getElementById('details').getAttribute('aria-live')")
            # The range [5, 9) ("king") at threshold 0.1: units on throughout it and their matches.
            browser.js("""document.getElementById('start').value = '5';
                          document.getElementById('end').value = '9';
                          document.getElementById('threshold').value = '0.1';
                          document.getElementById('find').click();""")
            browser.wait_for("document.body.dataset.state === 'done' && "
                             "document.getElementById('found').textContent !== ''")
            found = browser.js("document.getElementById('found').textContent")
            listed = browser.js("[...document.querySelectorAll('#matches li')].map(li => [+li.dataset.start, "
                                "+li.dataset.end, li.querySelector('mark').textContent])")
            underlined = browser.js("[...document.querySelectorAll('#tokens span.picked')].map(s => +s.dataset.index)")
        finally:
            browser.close()
    assert status == f"{len(TEXT)} tokens recorded"
    assert len(painted) == len(TEXT)
    for t, (hue, alpha) in enumerate(painted):  # red for positive, blue for negative, opacity |h| (h is in [-1, 1])
        v = float(h[t, unit])
        assert alpha == pytest.approx(min(abs(v), 1), abs=6e-3), (t, v, alpha)
        assert hue == ("none" if alpha == 0 else "red" if v >= 0 else "blue"), (t, v, hue)
    assert painted[high][1] > painted[low][1] + 0.1
    bits = rec.loss[high] / np.log(2)
    assert f"token {high}" in hovered and f"loss {bits:.2f} bits" in hovered
    top_unit = int(np.argmax(np.abs(h[high])))
    listed_units = re.search(r"largest \|h\| in layer 0: #(\d+) (-?[\d.]+)", hovered).groups()
    assert int(listed_units[0]) == top_unit and float(listed_units[1]) == pytest.approx(h[high, top_unit], abs=1e-3)
    assert json.dumps(rec.top[high][0][0]) in hovered  # the model's first prediction after this token
    assert focused == ["1", "1"] and live == "polite"
    on = units_on(rec, 0, "h", 5, 9, 0.1)
    assert on and f"{len(on)} units of layer 0's h are above 0.1 throughout tokens [5, 9)" in found
    assert set(range(5, 9)) <= set(underlined)
    text, _ = excerpt(read_split_texts(cfg.data)[0]["valid"], "char", VALID_TOKENS["char"])
    valid = record_model(model, vocab, text, top_k=0)
    expected = matches(valid, 0, "h", on, 0.1, min_len=2)
    assert [tuple(m[:2]) for m in listed] == expected[:50] and expected
    for start, end, span in listed:  # a long match is shown as its first 60 characters … its last 20
        assert span == (text[start:end] if end - start <= 80 else f"{text[start:start + 60]} … {text[end - 20:end]}")


SCRIPT = "<script>window.__xss = (window.__xss || 0) + 1</script>"
TOKEN_MARKUP = "<img src=x onerror=window.__xss=(window.__xss||0)+1>"  # no quotes: JSON.stringify leaves it whole


def test_a_planted_run_cannot_run_script_in_the_explorer(chromium, tiny_lm_run, tmp_path):
    """Markup in the run's name and description and in a vocabulary token (which reaches the page
    as a prediction; the vocabulary is read from the checkpoint, so it is planted in the loaded
    one) is shown as text."""
    run = tmp_path / "planted"
    shutil.copytree(tiny_lm_run, run)
    config = run / "config.toml"
    lines = [f"name = '{MARKUP}'" if line.startswith("name = ") else
             f"description = '{SCRIPT}'" if line.startswith("description = ") else line
             for line in config.read_text().splitlines()]
    config.write_text("\n".join(lines) + "\n")
    app = create_app(run)
    vocab = app.state.playground.vocab  # the explorer's too
    vocab.itos[vocab.stoi["e"]] = TOKEN_MARKUP  # the commonest letter: among the predictions after most tokens
    text = "A king said: go, my son, go to a far land"  # no e: every character is read as it was
    with running(app) as url:
        browser = DevTools(chromium, tmp_path / "profile")
        try:
            browser.open(f"{url}/explore?autorun=1&text={quote(text)}")
            state = browser.wait_for("['done', 'error'].includes(document.body?.dataset.state) && "
                                     "document.body.dataset.state")
            # Hover every token: the planted token is among the predictions shown for most of them.
            images, shown = browser.js("""(() => {
                let images = 0, shown = 0;
                for (const span of document.querySelectorAll('#tokens span')) {
                    span.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
                    images = Math.max(images, document.querySelectorAll('img, script:not([src])').length);
                    shown += document.getElementById('details').textContent.includes(PLANTED);
                }
                return [images, shown];
            })()""".replace("PLANTED", json.dumps(json.dumps(TOKEN_MARKUP))))
            time.sleep(0.3)  # an injected <img> would have fired its onerror by now
            ran = browser.js("window.__xss === undefined ? 0 : window.__xss")
            model = browser.js("document.getElementById('model').textContent")
            spans = browser.js("document.querySelectorAll('#tokens span').length")
        finally:
            browser.close()
    assert state == "done" and spans == len(text)
    assert ran == 0 and images == 0
    assert MARKUP in model and shown > len(text) // 2
