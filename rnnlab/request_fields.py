"""The fields of a JSON request body to the local web pages (rnnlab/serve.py, rnnlab/explore.py).

Each field is checked for its type and range before any work is done; a bad
one raises BadRequest, which the server answers with 400 and the message. A
value echoed in a message is cut to SHOWN characters.
"""

from __future__ import annotations

import json
import math

SHOWN = 60  # characters of a rejected value quoted back


class BadRequest(Exception):
    """A request parameter is missing, of the wrong type or out of range; answered with 400."""


def shown(value) -> str:
    return json.dumps(value)[:SHOWN]


def known_fields(body, fields: tuple[str, ...]) -> dict:
    """The body, which must be a JSON object with no keys besides `fields`."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r}; expected some of {', '.join(fields)}")
    return body


def number(body: dict, key: str, default: float, low: float, high: float, low_open: bool = False) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{key} must be a number, got {shown(value)}")
    if value > high or value < low or (low_open and value == low):
        raise BadRequest(f"{key} must be in {'(' if low_open else '['}{low:g}, {high:g}], got {value:g}")
    return float(value)


def integer(body: dict, key: str, default: int | None, low: int, high: int, required: bool = False) -> int | None:
    """body[key] as an int in [low, high] (a whole float is accepted); absent: `default`, which may
    be None (no value) unless the field is `required`."""
    value = body.get(key, default)
    if value is None:
        if required:
            raise BadRequest(f"{key} is required")
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key} must be an integer, got {shown(value)}")
    if not low <= value <= high:
        raise BadRequest(f"{key} must be between {low} and {high}, got {value}")
    return value
