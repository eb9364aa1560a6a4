"""A small client of the Chrome DevTools protocol over Chromium's debugging pipe (fds 3 and 4):
open a page, evaluate JavaScript, wait for a condition. tests/test_browser.py drives the playground
and the report with it; docs/screenshots.py takes the committed screenshots with it."""

from __future__ import annotations

import json
import os
import select
import shlex
import subprocess
import time

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


class DevTools:
    """Just enough of the Chrome DevTools protocol: open a page, evaluate JavaScript."""

    def __init__(self, binary: str, profile, timeout: float = 30):
        cmd_read, self._cmd = os.pipe()  # we write commands, Chromium reads them on fd 3
        self._res, res_write = os.pipe()  # Chromium answers on fd 4
        args = shlex.join([binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"])
        self.proc = subprocess.Popen(["bash", "-c", f"exec {args} 3<&{cmd_read} 4>&{res_write}"],
                                     pass_fds=(cmd_read, res_write), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(cmd_read)
        os.close(res_write)
        self._buffer, self._id, self.session, self.timeout = b"", 0, None, timeout

    def send(self, method: str, timeout: float | None = None, **params):
        timeout = self.timeout if timeout is None else timeout
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._cmd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer["result"]
            if not select.select([self._res], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError(f"no answer to {method} within {timeout} s")
            chunk = os.read(self._res, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", url=url)["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while not (value := self.js(expression)):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.05)
        return value

    def close(self) -> None:
        try:
            self.session = None
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._cmd)
        os.close(self._res)
