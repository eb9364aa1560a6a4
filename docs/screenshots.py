"""Screenshots of the report, the playground and the explorer, for the README (docs/screenshots/*.png).

    python docs/screenshots.py            # ~2-4 min on 2 cores: three small runs, a report, the playground

Trains three small character models on the bundled Grimm text (LSTM, GRU, RNN; runs/screenshots/),
builds `rnnlab report` of the three, starts `rnnlab serve` on the LSTM, and takes headless
Chromium screenshots: the report's top, and the playground after a side-by-side comparison
of three temperatures, and the explorer (`/explore`) colouring a text by one unit with a token's
values shown and the units on throughout a span found. Chromium is found as tests/test_browser.py finds it (`chromium`,
`chromium-browser` or `google-chrome` on the PATH) and driven through the DevTools protocol
over a pipe, so no Python package beyond rnnlab's own is needed.
"""

from __future__ import annotations

import base64
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"
RUNS = REPO / "runs" / "screenshots"
RNNLAB = [sys.executable, "-m", "rnnlab"]
sys.path.insert(0, str(REPO / "tests"))
from devtools import DevTools  # noqa: E402  (the DevTools-pipe client the browser tests use)

SMALL = ["model.layers=1", "model.hidden=96", "train.max_steps=300", "train.eval_every=30", "train.batch_size=32",
         "train.threads=1", "train.bf16=off", "train.samples=1"]


def rnnlab(*args: str) -> None:
    print("$ rnnlab " + shlex.join(args), flush=True)
    subprocess.run([*RNNLAB, *args], cwd=REPO, check=True)


def train_runs() -> list[Path]:
    runs = []
    for cell in ("lstm", "gru", "rnn"):
        run = RUNS / f"{cell}-96"
        if not (run / "summary.json").is_file():
            sets = [a for s in [*SMALL, f"model.cell={cell}"] for a in ("--set", s)]
            rnnlab("train", "--preset", "grimm-char", "--run-dir", str(run.relative_to(REPO)), "--overwrite", *sets)
        runs.append(run)
    return runs


class Browser(DevTools):
    """Headless Chromium (tests/devtools.py's client) that opens a page at a given size and takes screenshots."""

    def open(self, url: str, width: int, height: int) -> None:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.send("Page.navigate", url=url)

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        print(f"wrote {path.relative_to(REPO)}")
        return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    binary = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if binary is None:
        sys.exit("needs chromium on the PATH (Debian: apt-get install chromium)")
    OUT.mkdir(parents=True, exist_ok=True)
    runs = train_runs()
    report = RUNS / "report.html"
    rnnlab("report", *(str(r.relative_to(REPO)) for r in runs), "--out", str(report.relative_to(REPO)),
           "--sample-length", "150")
    port = free_port()
    print(f"$ rnnlab serve {runs[0].relative_to(REPO)} --port {port}", flush=True)
    server = subprocess.Popen([*RNNLAB, "serve", str(runs[0]), "--port", str(port)], cwd=REPO)
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory() as profile:
        browser = Browser(binary, profile, timeout=60)
        try:
            deadline = time.monotonic() + 120
            while True:  # the server loads the model before it answers
                try:
                    urllib.request.urlopen(url + "api/info", timeout=2).read()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("rnnlab serve did not start") from None
                    time.sleep(0.3)
            browser.open(report.as_uri(), 1280, 1400)
            browser.wait_for("document.readyState === 'complete'", timeout=120)
            browser.screenshot(OUT / "report.png")
            browser.open(url, 1280, 1000)
            browser.wait_for("document.body?.dataset.state === 'ready'", timeout=120)
            browser.js("""
                document.getElementById('prompt').value = 'The king said';
                document.getElementById('length').value = '160';
                document.getElementById('seed').value = '3';
                document.getElementById('stop').value = '\\\\n\\\\n';
                document.getElementById('temperature').value = '0.7';
                document.getElementById('go').click();""")
            browser.wait_for("document.body.dataset.state === 'done'", timeout=120)
            browser.js("""
                document.getElementById('compare').value = '0.3 0.8 1.5';
                document.getElementById('compare-go').click();""")
            browser.wait_for("document.body.dataset.state === 'done'", timeout=120)
            browser.screenshot(OUT / "playground.png")
            text = "‘Who is there?’ asked the king.\nThe frog answered: ‘Open the door, the king’s youngest daughter.’"
            browser.open(url + "explore?unit=21&autorun=1&text=" + urllib.parse.quote(text), 1280, 1000)
            browser.wait_for("document.body?.dataset.state === 'done'", timeout=120)
            browser.js("""
                document.querySelectorAll('#tokens span')[28].focus();
                document.getElementById('start').value = '27';
                document.getElementById('end').value = '31';
                document.getElementById('threshold').value = '0.3';
                document.getElementById('find').click();""")
            browser.wait_for("document.body.dataset.state === 'done' && document.getElementById('found').textContent",
                             timeout=120)
            browser.screenshot(OUT / "explorer.png")
        finally:
            browser.close()
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
