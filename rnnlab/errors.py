"""The one exception type a user is meant to see, and how a command ends on it.

Anything raised as `UserError` is printed by the CLI as a single line
(`rnnlab: error: ...`) with exit status 2; everything else is a bug and keeps
its traceback. `run_command` is that ending, for the CLI and for the training
scripts under benchmarks/ alike.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem with the user's input (config, data, paths, checkpoints)."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during training: the last checkpoint was saved and the run can be resumed."""


def run_command(body: Callable[[], int], program: str) -> int:
    """Run a command's body; what a user is meant to see becomes one line on stderr and an exit
    status: a user error or a failed write 2, a stopped run (with how to resume it) 130."""
    try:
        return body()
    except UserError as e:
        print(f"{program}: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"{program}: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # disk full, permissions, ... while writing a run
        where = f": {e.filename}" if e.filename else ""
        print(f"{program}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
