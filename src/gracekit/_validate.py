"""Validation of configuration values, shared by every constructor in gracekit."""

from __future__ import annotations

import math
from typing import Any, TypeVar

_T = TypeVar("_T")


def seconds(value: object, *, what: str, allow_zero: bool = False) -> float:
    """Return *value* as a finite float of seconds, or raise a precise TypeError/ValueError.

    ``what`` names the setting in the message ("timeout of check 'db'").
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{what} must be {bound} seconds, got {value!r}")
    return number


def optional_seconds(value: object, *, what: str, allow_zero: bool = False) -> float | None:
    """Like :func:`seconds`, where None means "disabled"."""
    return None if value is None else seconds(value, what=what, allow_zero=allow_zero)


def fraction(value: object, *, what: str) -> float:
    """Return *value* as a float in [0, 1), or raise a precise TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a fraction in [0, 1), not {type(value).__name__}")
    if not 0 <= value < 1:  # also rejects NaN
        raise ValueError(f"{what} must be in [0, 1), got {value!r}")
    return float(value)


def positive_int(value: object, *, what: str) -> int:
    """Return *value* if it is an int >= 1, else raise TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{what} must be >= 1, got {value!r}")
    return value


def port(value: object, *, what: str, allow_zero: bool = False) -> int:
    """Return *value* if it is a port number: an int from 1 (0 with *allow_zero*: any free
    port) to 65535, else raise TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise ValueError(
            f"{what} must be in {low}..65535 (a port number, {low} to 65535), got {value!r}"
        )
    return value


def instance(value: Any, cls: type[_T], *, what: str) -> _T | None:
    """Return *value* if it is None or a *cls*, else raise TypeError."""
    if value is not None and not isinstance(value, cls):
        raise TypeError(f"{what} must be a {cls.__name__}, not {type(value).__name__}")
    return value


def name(value: object, *, what: str) -> str:
    """Return *value* if it is a usable name: a non-empty string without '/' or whitespace."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value or value != value.strip() or "/" in value or any(c.isspace() for c in value):
        raise ValueError(
            f"{what} must be a non-empty string without '/' or whitespace, got {value!r}"
        )
    return value
