"""The deadline of the request being served, wherever the code runs in it: the drain middleware
makes a request's :class:`~gracekit.deadlines.RequestDeadline` current, and code inside the
request (worker threads included: the context travels with them) reads what is left of it."""

from __future__ import annotations

import math
from contextvars import ContextVar

from ..errors import DeadlineExceeded
from ._budget import RequestDeadline

__all__ = ["activate", "current", "deactivate", "deadline_at", "forget", "remaining", "timeout"]

_CURRENT: ContextVar[RequestDeadline | None] = ContextVar("gracekit_deadline", default=None)


def activate(deadline: RequestDeadline) -> object:
    """Make *deadline* the current one; returns the token for :func:`deactivate`."""
    return _CURRENT.set(deadline)


def deactivate(token: object) -> None:
    _CURRENT.reset(token)  # type: ignore[arg-type]


def forget() -> None:
    """Work that outlives the request (spawned in the background) has no request deadline:
    call it first thing in that work's own context."""
    _CURRENT.set(None)


def current() -> RequestDeadline | None:
    """The deadline of the request being served, or None outside a request, or once its
    response has been sent (its background tasks and the work it spawned have no deadline).

    It works in worker threads too (sync endpoints), since the context travels with them.
    """
    deadline = _CURRENT.get()
    if deadline is None or deadline.ended or deadline.completed:
        return None  # over, or only its background tasks are left: they have no deadline
    return deadline


def deadline_at() -> float:
    """The current request's absolute deadline on ``anyio.current_time()``, or ``math.inf``
    when it has none (or outside a request): ``anyio.CancelScope(deadline=deadline_at())``."""
    deadline = current()
    at = None if deadline is None else deadline.at
    return math.inf if at is None else at


def remaining() -> float | None:
    """Seconds left in the current request's budget (0 once spent), or None when the request
    has no deadline or there is no request."""
    deadline = current()
    return None if deadline is None else deadline.remaining()


def timeout(default: float | None = None) -> float | None:
    """The timeout to give a downstream call: the remaining budget, capped by *default*.

    Pass it as a client's per-call timeout (``await conn.fetch(query, timeout=timeout())``).
    Outside a request, or in one without a deadline, it returns *default*.

    Raises:
        DeadlineExceeded: the budget is spent; the call would fail anyway, so it is not made.
    """
    deadline = current()
    left = None if deadline is None else deadline.remaining()
    if deadline is None or left is None:
        return default
    if left <= 0:
        raise DeadlineExceeded(
            f"the deadline of {deadline.route.template or 'this request'} has passed"
        )
    return left if default is None else min(left, default)
