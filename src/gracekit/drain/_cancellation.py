"""Taking back the cancellations gracekit asked for, and telling them from anyone else's.

gracekit cuts a request or a websocket short by cancelling the asyncio task that runs it. When
the cancellation comes back up to the middleware (or an error in its place: a library that wraps
it, a handler that swallows it), the middleware takes it back (``Task.uncancel``) so the task can
go on to send its clean answer, unless somebody else cancelled the task too (the server's forced
exit): then the cancellation is theirs and goes on up.
"""

from __future__ import annotations

import asyncio
import sys

from anyio import CapacityLimiter

from ..deadlines._budget import RequestDeadline

__all__ = [
    "absorb_cancellation",
    "cancelled_by_others",
    "gracekits",
    "still_cancelled",
    "waits_on_thread",
]


def waits_on_thread(task: asyncio.Task[object], limiter: CapacityLimiter) -> bool:
    """True while *task* holds a token of *limiter*, anyio's default thread limiter of its
    loop: it waits for a worker thread (a sync endpoint, through Starlette's
    ``run_in_threadpool``), which cannot be interrupted. Cancelling it would give the token back
    while the thread runs on, and the next request would start another thread.
    ``tests/test_cut_short.py`` pins the behaviour this relies on: the waiting task is a
    borrower, in ``CapacityLimiter.statistics().borrowers``.

    The caller finds *limiter* in a task: this runs in a timer's callback, outside any task,
    where anyio cannot tell its backend once sniffio is installed."""
    return task in limiter.statistics().borrowers


def gracekits(exc: BaseException) -> bool:
    """True for a cancellation gracekit asked for (its message says so)."""
    return bool(exc.args) and str(exc.args[0]).startswith("gracekit: ")


def still_cancelled(task: asyncio.Task[object], exc: BaseException | None = None) -> bool:
    """Take back the one cancellation gracekit asked for a websocket's task; True if another
    one is pending (on Python 3.10, which counts no cancellations: if *exc* is not gracekit's)."""
    if sys.version_info >= (3, 11):
        return task.uncancel() > 0
    return exc is not None and not gracekits(exc)  # pragma: no cover - Python 3.10


def cancelled_by_others(deadline: RequestDeadline, exc: BaseException | None = None) -> bool:
    """Take back the request's cancellations by gracekit; True if others are pending."""
    if deadline.take_back():
        return True
    return sys.version_info < (3, 11) and exc is not None and not gracekits(exc)


async def absorb_cancellation(deadline: RequestDeadline) -> bool:
    """After an error in place of the cancellation gracekit asked for (a library that turned it
    into an exception of its own, or one raised before it landed): take the cancellation back,
    and absorb it if it is still to be delivered. False if another cancellation is pending."""
    if cancelled_by_others(deadline):
        return False
    try:
        await asyncio.sleep(0)  # a cancellation not delivered yet lands here
    except asyncio.CancelledError as exc:
        if sys.version_info >= (3, 11) and deadline.task.cancelling():
            raise  # a new one, not ours
        if sys.version_info < (3, 11) and not gracekits(exc):  # pragma: no cover
            raise
    return True
