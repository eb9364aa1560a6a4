"""argparse types for command-line numbers: parsed like `--set` values
(rnnlab.config.coerce: 1e6 is an integer, nan and inf are refused) and checked
against a range, so that `--steps 0`, `--tau nan` or `--threads -1` end as one
line and exit status 2 (argparse's error, made one line by cli.Parser) instead
of a traceback deep inside a command. Every command's numeric options use
these; an experiment module's `add_arguments(parser)` should too.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from rnnlab.bounds import MAX_LENGTH, MAX_SEED, PARALLEL_PER_CPU, max_parallel
from rnnlab.config import coerce
from rnnlab.errors import UserError


def _parse(text: str, typ: type):
    try:
        value = coerce("value", text, typ)
    except UserError:
        raise argparse.ArgumentTypeError(
            f"expects {'an integer' if typ is int else 'a number'}, got '{text}'"
        ) from None
    if typ is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got '{text}'")
    return value


def _ranged(typ: type, low=None, high=None, low_open: bool = False, hint: str = "") -> Callable[[str], object]:
    def parse(text: str):
        value = _parse(text, typ)
        too_low = low is not None and (value < low or (low_open and value == low))
        if too_low or (high is not None and value > high):
            if low is not None and high is not None:
                wanted = (
                    f"in {'(' if low_open else '['}{low:g}, {high:g}]" if typ is float else f"between {low} and {high}"
                )
            elif low is not None:
                wanted = f"{'>' if low_open else '>='} {low:g}" if typ is float else f">= {low}"
            else:
                wanted = f"<= {high:g}" if typ is float else f"<= {high}"
            raise argparse.ArgumentTypeError(f"must be {wanted}{hint}, got {text}")
        return value

    parse.__name__ = typ.__name__  # argparse names the type in its "invalid ... value" fallback
    return parse


def integer(low: int | None = None, high: int | None = None, hint: str = "") -> Callable[[str], int]:
    return _ranged(int, low, high, hint=hint)


def number(low: float | None = None, high: float | None = None, low_open: bool = False,
           hint: str = "") -> Callable[[str], float]:
    return _ranged(float, low, high, low_open, hint)


def parallel(low: int, hint: str = "") -> Callable[[str], int]:
    """A count of threads or processes: at least `low`, at most bounds.max_parallel()."""
    at_least = integer(low, hint=hint)

    def parse(text: str) -> int:
        value = at_least(text)
        if value > max_parallel():
            raise argparse.ArgumentTypeError(f"must be at most {max_parallel()} ({PARALLEL_PER_CPU} per usable CPU), "
                                             f"got {text}")
        return value

    parse.__name__ = "int"
    return parse


positive = integer(1)
count = integer(0)  # >= 0
threads = parallel(0, hint=" (0 = automatic)")  # --threads, --jobs
processes = parallel(1)  # --nproc
seed = integer(0, MAX_SEED)
length = integer(1, MAX_LENGTH)  # tokens to generate
port = integer(0, 65535)
finite = number()
positive_number = number(0.0, low_open=True)
nonnegative_number = number(0.0)


def cell(text: str) -> str:
    """A cell name as the cell table (rnnlab/cell_registry.py) accepts it, any case, `-` or `_`
    (rnn, rnn_tanh, rnn-relu, lstm, gru, phased_lstm), normalized to lower case and `_`."""
    from rnnlab import cell_registry

    name = text.strip().lower().replace("-", "_")
    try:
        cell_registry.resolve(name)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name


def cells(text: str) -> list[str]:
    """A comma list of cell names (see `cell`)."""
    names = [cell(name.strip()) for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expects a comma list of cell names, got '{text}'")
    return list(dict.fromkeys(names))
