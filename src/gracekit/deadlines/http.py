"""Passing the budget on to HTTP calls made with httpx.

An httpx event hook that, inside a request with a deadline, caps the call's timeouts by the
remaining budget and tells the service called how much is left in ``x-gracekit-budget-ms``
(which a gracekit service reads as its caller's budget)::

    from gracekit.deadlines.http import budget_hook

    client = httpx.AsyncClient(event_hooks={"request": [budget_hook]})

Use :func:`sync_budget_hook` with ``httpx.Client`` (sync endpoints, worker threads). Outside a
request, or in one without a deadline, the hooks change nothing. httpx is not imported here:
the hooks only touch the request they are given.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..errors import DeadlineExceeded
from ._context import current
from ._headers import GRACEKIT

if TYPE_CHECKING:
    import httpx

__all__ = ["apply_budget", "budget_hook", "sync_budget_hook"]

_TIMEOUTS = ("connect", "read", "write", "pool")


def apply_budget(request: httpx.Request, *, header: str = GRACEKIT.decode()) -> float | None:
    """Cap *request*'s timeouts by the current request's remaining budget and send that budget
    in *header* (whole milliseconds, rounded down). Returns the budget, or None if there is
    none.

    Raises:
        DeadlineExceeded: the budget is spent; the call is not sent.
    """
    deadline = current()
    left = None if deadline is None else deadline.remaining()
    if left is None:
        return None
    if left <= 0:
        raise DeadlineExceeded(f"no budget left to call {request.url.copy_with(query=None)}")
    timeouts = dict(request.extensions.get("timeout") or {})
    for name in _TIMEOUTS:
        configured = timeouts.get(name)
        timeouts[name] = left if configured is None else min(configured, left)
    request.extensions["timeout"] = timeouts
    request.headers[header] = str(max(1, math.floor(left * 1000)))
    return left


async def budget_hook(request: httpx.Request) -> None:
    """``httpx.AsyncClient(event_hooks={"request": [budget_hook]})``: see :func:`apply_budget`."""
    apply_budget(request)


def sync_budget_hook(request: httpx.Request) -> None:
    """``httpx.Client(event_hooks={"request": [sync_budget_hook]})``: see :func:`apply_budget`."""
    apply_budget(request)
