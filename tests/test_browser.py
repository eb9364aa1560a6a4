"""End to end in headless Chromium: the playground page generates text, and
the HTML report renders.

Chromium is Debian's `chromium` package. When it is missing and we are root
with apt-get, it is installed (time-boxed; set RNNLAB_NO_BROWSER_INSTALL=1 to
forbid that); when it cannot be installed or cannot start, the tests are
skipped with the reason. The page is driven through the DevTools protocol
over a pipe (--remote-debugging-pipe: null-terminated JSON on fds 3 and 4),
which needs no extra Python package (tests/devtools.py).
"""

import io
import json
import os
import shutil
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from devtools import FLAGS, DevTools  # noqa: E402  (tests/devtools.py: the DevTools-pipe client)

from rnnlab.generate import generate  # noqa: E402
from rnnlab.report.build import build_report  # noqa: E402
from rnnlab.runs import load_run  # noqa: E402
from rnnlab.serve import create_app, running  # noqa: E402

INSTALL_TIMEOUT = 900


def _find() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _install() -> str:
    """Install Debian's chromium; returns why not when it cannot."""
    if os.environ.get("RNNLAB_NO_BROWSER_INSTALL"):
        return "chromium is not installed and RNNLAB_NO_BROWSER_INSTALL is set"
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return "chromium is not installed and cannot be (needs root and apt-get)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    deadline = time.monotonic() + INSTALL_TIMEOUT
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return f"installing chromium took longer than {INSTALL_TIMEOUT} s"
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            return f"'{' '.join(command)}' failed: {last[0]}"
    return ""


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> str:
    binary = _find()
    if binary is None:
        reason = _install()
        binary = _find()
        if binary is None:
            pytest.skip(reason or "chromium could not be installed")
    profile = tmp_path_factory.mktemp("chromium-probe")
    try:
        probe = subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", "about:blank"],
                               capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not start within 120 s")
    if probe.returncode != 0 or "<html" not in probe.stdout:
        errors = [ln for ln in probe.stderr.splitlines() if "dbus" not in ln] or ["(no message)"]
        pytest.skip(f"chromium cannot start here (exit {probe.returncode}): {errors[-1][:200]}")
    return binary


pytestmark = pytest.mark.usefixtures("one_thread")


def test_playground_generates_text_in_the_browser(chromium, tiny_lm_run, tmp_path):
    with running(create_app(tiny_lm_run)) as url:
        browser = DevTools(chromium, tmp_path / "profile")
        try:
            browser.open(url + "/")
            browser.wait_for("document.body?.dataset.state === 'ready'")
            assert "lstm 1×16" in browser.js("document.getElementById('model').textContent")
            browser.js("""
                document.getElementById('prompt').value = 'The king';
                document.getElementById('temperature').value = '0.9';
                document.getElementById('length').value = '150';
                document.getElementById('seed').value = '5';
                document.getElementById('go').click();""")
            browser.wait_for("document.body.dataset.state === 'done'")
            text = browser.js("document.getElementById('generated').textContent")
            status = browser.js("document.getElementById('status').textContent")
        finally:
            browser.close()
    model, vocab, _, _ = load_run(tiny_lm_run)
    assert text == generate(model, vocab, "The king", 150, 0.9, seed=5)[0]
    assert status.startswith("150 tokens in")


def test_playground_compares_temperatures_side_by_side_and_stops_at_the_stop_text(chromium, tiny_lm_run, tmp_path):
    model, vocab, _, _ = load_run(tiny_lm_run)
    # A stop text the tiny model writes early: the first two characters of its own sample at T = 1.
    free = generate(model, vocab, "The", 200, 1.0, seed=11)[0]
    stop = free[20:22]
    with running(create_app(tiny_lm_run)) as url:
        browser = DevTools(chromium, tmp_path / "profile")
        try:
            browser.open(url + "/")
            browser.wait_for("document.body?.dataset.state === 'ready'")
            # The stop field, typed as the command line takes it (a backslash escape included).
            typed = stop.replace(chr(92), chr(92) * 2).replace(chr(10), chr(92) + "n")
            browser.js(f"""
                document.getElementById('prompt').value = 'The';
                document.getElementById('temperature').value = '1';
                document.getElementById('length').value = '200';
                document.getElementById('seed').value = '11';
                document.getElementById('stop').value = {json.dumps(typed)};
                document.getElementById('go').click();""")
            browser.wait_for("document.body.dataset.state === 'done'")
            stopped = browser.js("document.getElementById('generated').textContent")
            escapes = browser.js(r"unescapeStop(String.raw`a\n\nb\tc\\n`)")
            # Side by side: the same prompt and seed at three temperatures.
            browser.js("""
                document.getElementById('stop').value = '';
                document.getElementById('length').value = '80';
                document.getElementById('compare').value = '0 0.5 1.5';
                document.getElementById('compare-go').click();""")
            browser.wait_for("document.body.dataset.state === 'done'")
            titles = browser.js("[...document.querySelectorAll('#columns h3')].map(h => h.textContent)")
            columns = browser.js("[...document.querySelectorAll('#columns .generated')].map(s => s.textContent)")
            tops = browser.js("[...document.querySelectorAll('#columns > div')].map(d => "
                              "d.getBoundingClientRect().top)")
            # A bad list of temperatures is one line on the status, no request.
            browser.js("document.getElementById('compare').value = '0.5'; "
                       "document.getElementById('compare-go').click();")
            complaint = browser.js("document.getElementById('status').textContent")
        finally:
            browser.close()
    assert escapes == "a\n\nb\tc\\n"  # the command line's --stop escapes
    assert stopped == free[: free.index(stop)] == generate(model, vocab, "The", 200, 1.0, seed=11, stop=stop)[0]
    assert len(stopped) <= 20
    assert titles == ["temperature 0", "temperature 0.5", "temperature 1.5"]
    assert columns == [generate(model, vocab, "The", 80, t, seed=11)[0] for t in (0, 0.5, 1.5)]
    assert len(set(columns)) == 3 and len(set(tops)) == 1  # three different texts, in one row
    assert "give 2 to 4 temperatures" in complaint


def test_playground_explains_its_controls_and_keeps_them_in_rows(chromium, tiny_lm_run, tmp_path):
    """Each control carries a short explanation, and at common window widths the six controls sit
    three to a row (the seed box never alone on its own row) with nothing wider than the window."""
    with running(create_app(tiny_lm_run)) as url:
        browser = DevTools(chromium, tmp_path / "profile")
        try:
            layouts = {}
            for width in (1280, 1024, 800):
                browser.open(url + "/")
                browser.send("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1,
                             mobile=False)
                browser.wait_for("document.body?.dataset.state === 'ready'")
                layouts[width] = browser.js("""(() => {
                    const rect = (el) => el.getBoundingClientRect();
                    const controls = [...document.querySelectorAll('.control')].map((c) => ({
                        id: c.querySelector('input').id, top: Math.round(rect(c).top),
                        help: c.querySelector('.help').textContent.replace(/\\s+/g, ' ').trim(),
                        labelLines: Math.round(rect(c.querySelector('label')).height /
                                               parseFloat(getComputedStyle(c.querySelector('label')).lineHeight))}));
                    const actions = [...document.querySelectorAll('.actions > *')].map(
                        (e) => Math.round(rect(e).top + rect(e).height / 2));
                    return {controls, actions, scroll: document.documentElement.scrollWidth, inner: innerWidth};
                })()""")
        finally:
            browser.close()
    for width, page in layouts.items():
        controls = {c["id"]: c for c in page["controls"]}
        assert list(controls) == ["temperature", "top_k", "top_p", "length", "seed", "stop"]
        rows = sorted({c["top"] for c in controls.values()})
        assert len(rows) == 2, (width, rows)  # three to a row
        assert sum(c["top"] == controls["seed"]["top"] for c in controls.values()) == 3, width
        assert all(c["labelLines"] == 1 for c in controls.values()), width
        assert max(page["actions"]) - min(page["actions"]) <= 4, (width, page["actions"])  # buttons on one line
        assert page["scroll"] <= page["inner"], width  # no horizontal scrolling
    helps = {c["id"]: c["help"] for c in layouts[800]["controls"]}
    assert "greedy" in helps["temperature"] and "k likeliest" in helps["top_k"]
    assert "add up to p" in helps["top_p"] and "paragraph" in helps["stop"] and "same text" in helps["seed"]


def test_report_screenshot_is_not_blank(chromium, tiny_lm_run, tmp_path):
    report = build_report([tiny_lm_run], tmp_path / "report.html", sample_length=60, progress=False)
    shot = tmp_path / "report.png"
    done = subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                           "--window-size=1200,900", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-500:]
    image = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")).astype(int)
    assert image.shape[:2] == (900, 1200)
    dark = (image.min(axis=2) < 200).mean()  # text, table rules, plot lines
    colour = ((image.max(axis=2) - image.min(axis=2)) > 60).mean()  # the plot's coloured lines
    assert dark > 0.01 and colour > 0.0005, (dark, colour)


MARKUP = '<img src=x onerror="window.__xss = (window.__xss || 0) + 1">'


@pytest.mark.parametrize("forged", ["name", "step"])
def test_a_planted_run_cannot_run_script_in_the_playground(chromium, tiny_lm_run, tmp_path, forged):
    """Run metadata is whatever files a run directory holds. Markup in the run's
    name is shown as text; markup where the page expects a number (the step, had
    it slipped past the server's schema) is refused by the page's own type checks."""
    run = tmp_path / "planted"
    shutil.copytree(tiny_lm_run, run)
    config = run / "config.toml"
    lines = [f"name = '{MARKUP}'" if line.startswith("name = ") else line for line in config.read_text().splitlines()]
    config.write_text("\n".join(lines) + "\n")
    app = create_app(run)
    if forged == "step":
        app.state.playground.info["step"] = MARKUP
    with running(app) as url:
        browser = DevTools(chromium, tmp_path / "profile")
        try:
            browser.open(url + "/")
            state = browser.wait_for("['ready', 'error'].includes(document.body?.dataset.state) && "
                                     "document.body.dataset.state")
            time.sleep(0.3)  # an injected <img> would have fired its onerror by now
            ran = browser.js("window.__xss === undefined ? 0 : window.__xss")
            images = browser.js("document.querySelectorAll('img').length")
            shown = browser.js("document.getElementById('model').textContent")
            status = browser.js("document.getElementById('status').textContent")
        finally:
            browser.close()
    assert ran == 0 and images == 0
    if forged == "name":
        assert state == "ready" and MARKUP in shown
    else:
        assert state == "error" and "malformed model information" in status
