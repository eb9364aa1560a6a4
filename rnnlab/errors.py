"""The one exception type a user is meant to see.

Anything raised as `UserError` is printed by the CLI as a single line
(`rnnlab: error: ...`) with exit status 2; everything else is a bug and keeps
its traceback.
"""


class UserError(Exception):
    """A problem with the user's input (config, data, paths, checkpoints)."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during training: the last checkpoint was saved and the run can be resumed."""
