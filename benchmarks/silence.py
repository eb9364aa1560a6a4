"""How long a command stays silent: run it on a pseudo-terminal (as in a shell, so progress bars
draw as they would for a user), timestamp every output chunk (split at \\r and \\n) and print the
longest silences. The acceptance bound of "never silent" is 2 s.

    .venv/bin/python benchmarks/silence.py [--log FILE] -- COMMAND ARGS...

Example (issue 22's):
    .venv/bin/python benchmarks/silence.py -- .venv/bin/rnnlab train --preset nplm \\
        --set data.path=../shared/data/brown --set train.max_steps=600 --run-dir runs/nplm600 --overwrite
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time


def run(command: list[str]) -> tuple[int, float, list[tuple[float, str]]]:
    """(exit status, seconds, [(seconds since start, text)] for every non-blank output chunk)."""
    start = time.monotonic()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # tqdm fits its bar to the width
    proc = subprocess.Popen(command, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, close_fds=True)
    os.close(slave)
    events, pending = [], b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        now = time.monotonic() - start
        parts = re.split(rb"[\r\n]", pending + chunk)
        pending = parts[-1]
        events += [(now, part.decode(errors="replace")[:110]) for part in parts[:-1] if part.strip()]
    proc.wait()
    return proc.returncode, time.monotonic() - start, events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", help="write every timestamped chunk here")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    code, seconds, events = run(command)
    times = [0.0] + [t for t, _ in events] + [seconds]
    gaps = sorted(((b - a, a) for a, b in zip(times, times[1:])), reverse=True)
    print(f"exit {code}; {len(events)} output chunks in {seconds:.1f} s; longest silences:")
    for gap, at in gaps[:6]:
        before = [text for t, text in events if t <= at]
        print(f"  {gap:.1f} s after t={at:.1f} s (last output: {before[-1] if before else 'none'!r})")
    if args.log:
        with open(args.log, "w", encoding="utf-8") as f:
            f.writelines(f"{t:7.2f} {text}\n" for t, text in events)
    return 0


if __name__ == "__main__":
    sys.exit(main())
