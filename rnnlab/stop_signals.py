"""Stopping a training run cleanly on Ctrl-C or SIGTERM.

The first signal only asks the run to stop (`requested`): the loop finishes the
step it is in, writes the 'last' checkpoint and ends with a resume hint, so
that resuming is exact. A second one quits at once (KeyboardInterrupt; the last
checkpoint written stays valid). Any later one, while the process is on its way
out, is ignored, so that it always ends with its message and status 130.
"""

from __future__ import annotations

import signal
import threading

STOPPING = threading.Event()  # a stop signal reached a training run of this process: it is on its way out


class StopSignals:
    def __init__(self):
        self.requested = False  # the loop stops at the next step boundary
        self.signalled = False  # a stop signal came (not just a request from the code)
        self.quitting = False  # a second one came: leaving now
        self._previous: dict = {}

    def request(self) -> None:
        """From here on a signal ends the run at once (used once 'last' is saved: resuming redoes the rest)."""
        self.requested = True

    def _on_signal(self, signum, frame) -> None:
        self.signalled = True
        STOPPING.set()
        if self.quitting:
            return
        if self.requested:
            self.quitting = True
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # signals can only be caught in the main thread
            self._previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        """Give the signals back to their previous handlers. The `rnnlab` program's own
        (cli._stop_on_signals) ignore any signal once STOPPING is set, so a late one cannot
        kill the process on its way out."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
