"""Helpers shared by the built-in checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

#: How long closing a client may take once its check is over (timed out or not).
CLOSE_BOUND = 0.5


async def close_bounded(close: Callable[[], Awaitable[object]]) -> None:
    """Close a client even while the check is being cancelled, but never wait long for it.

    Sockets are closed at the start of every client's close; only the polite goodbye is cut
    short, so nothing leaks either way.
    """
    with anyio.move_on_after(CLOSE_BOUND, shield=True):
        await close()


def port_number(value: object, *, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 1 <= value <= 65535:
        raise ValueError(f"{what} must be in 1..65535, got {value!r}")
    return value
