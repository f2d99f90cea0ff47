"""Helpers shared by the built-in checks."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio

from ..probes.check import DEFAULT_TIMEOUT, Check

#: How long closing a client may take once its check is over (timed out or not).
CLOSE_BOUND = 0.5
#: The built-in checks' default ``housekeeping_timeout``, as a multiple of their ``timeout``:
#: a new connection takes a few round trips (TCP, startup, authentication, TLS).
HOUSEKEEPING_FACTOR = 3


def with_housekeeping(options: dict[str, Any]) -> dict[str, Any]:
    """*options* for a built-in check that measures only its query's round trip: unless
    given, ``housekeeping_timeout`` is ``HOUSEKEEPING_FACTOR * timeout``."""
    timeout = options.get("timeout", DEFAULT_TIMEOUT)
    if "housekeeping_timeout" in options or not isinstance(timeout, (int, float)):
        return options  # Check itself says what is wrong with a bad timeout
    return {**options, "housekeeping_timeout": HOUSEKEEPING_FACTOR * timeout}


@contextmanager
def measured(check: Check) -> Iterator[None]:
    """The round trip the check measures: bounded by its ``timeout`` (TimeoutError)."""
    with anyio.fail_after(check.timeout):
        yield


@contextmanager
def housekeeping(check: Check, what: str) -> Iterator[None]:
    """Work around the measured round trip (opening a connection, taking one from a pool),
    bounded by the check's ``housekeeping_timeout``; past it, a TimeoutError says what was
    slow. Work after the round trip (giving the connection back) is bounded by the runner."""
    bound = check.housekeeping_timeout
    with anyio.move_on_after(math.inf if bound is None else bound) as scope:
        yield
    if scope.cancelled_caught:
        raise TimeoutError(f"{what} took longer than {bound:g} s")


async def close_bounded(close: Callable[[], Awaitable[object]]) -> None:
    """Close a client even while the check is being cancelled, but never wait long for it.

    Sockets are closed at the start of every client's close; only the polite goodbye is cut
    short, so nothing leaks either way.
    """
    with anyio.move_on_after(CLOSE_BOUND, shield=True):
        await close()
