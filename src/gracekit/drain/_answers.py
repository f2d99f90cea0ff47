"""The clean answers of requests cut short: 504 at their deadline, 503 at the drain's, a
started response broken off; and requests cut while a worker thread works for them."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.types import Message

from .._asgi import problem
from ..deadlines._budget import EXPIRED, RequestDeadline
from ._cancellation import waits_on_thread
from ._inflight import InFlight

__all__ = ["CONNECTION_CLOSE", "CutAnswers", "broken_off", "quiet_broken_off"]

logger = logging.getLogger("gracekit")

CONNECTION_CLOSE = (b"connection", b"close")
#: Seconds between two log lines about broken-off responses of one route.
LOG_INTERVAL = 60.0
_MAX_ROUTES_LOGGED = 256

# uvicorn logs this at ERROR for every response an app leaves incomplete, which is how a
# response cut off on purpose must end (the client must not mistake it for a whole one).
# gracekit logs those itself, once per route and interval, and drops uvicorn's line for them
# while a lifecycle runs: the flag is set in the request's task, where uvicorn logs it.
# tests/test_cut_short.py fails if uvicorn's message changes.
_UVICORN_INCOMPLETE = "ASGI callable returned without completing response."
_BROKEN_OFF: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "gracekit_broken_off", default=False
)


class _DropBrokenOff(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == _UVICORN_INCOMPLETE and _BROKEN_OFF.get())


_DROP_BROKEN_OFF = _DropBrokenOff()


_FILTERING = [0]  # lifecycles running, each with the filter in place


def broken_off() -> None:
    """Say, in the request's own task, that gracekit broke its response off on purpose."""
    _BROKEN_OFF.set(True)


@contextlib.contextmanager
def quiet_broken_off() -> Iterator[None]:
    """While a lifecycle runs: uvicorn does not log the responses gracekit broke off."""
    uvicorn_errors = logging.getLogger("uvicorn.error")
    _FILTERING[0] += 1
    uvicorn_errors.addFilter(_DROP_BROKEN_OFF)  # once: a logger keeps one of each filter
    try:
        yield
    finally:
        _FILTERING[0] -= 1
        if not _FILTERING[0]:
            uvicorn_errors.removeFilter(_DROP_BROKEN_OFF)


class CutAnswers:
    """Answers the requests of one drain middleware that were cut short.

    Parameters:
        inflight: where the cuts are counted.
        retry_after: the ``Retry-After`` of the drain's 503.
    """

    def __init__(self, inflight: InFlight, *, retry_after: int) -> None:
        self._inflight = inflight
        #: By route: when the next line may be logged, and the lines held back since the last.
        self._logged: dict[str, tuple[float, int]] = {}
        self._unavailable = problem(
            503,
            "Service Unavailable",
            "The server is shutting down; retry the request.",
            (b"retry-after", str(retry_after).encode()),
            CONNECTION_CLOSE,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limiter: CapacityLimiter | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called from each request's task: find the thread limiter of *loop* here, in a task,
        for :meth:`hold`, which runs in a timer's callback (where anyio cannot tell its
        backend when sniffio is installed)."""
        if loop is not self._loop:
            self._limiter = anyio.to_thread.current_default_thread_limiter()
            self._loop = loop

    def hold(self, deadline: RequestDeadline) -> bool:
        """At the cut of a request that waits for a worker thread: answer it now, from a task
        of its own, and let the request keep its task, and with it its slot in the thread
        limiter, until the thread returns; True if it was held. Cancelled instead, the request
        would give its slot back while the thread runs on, and a caller sending tiny budgets
        would have a thread started for each of its requests."""
        limiter = self._limiter
        if limiter is None or not waits_on_thread(deadline.task, limiter):
            return False
        deadline.held = deadline.task.get_loop().create_task(self._answer_held(deadline))
        return True

    async def _answer_held(self, deadline: RequestDeadline) -> None:
        deadline.answered = await self._cut_short(deadline)
        deadline.answered_at = deadline.task.get_loop().time()  # the client's latency

    async def finish(self, deadline: RequestDeadline) -> int | None:
        """End a request cut short, in its own task: the status it was answered with."""
        if deadline.held is not None:
            await deadline.held  # answered at its deadline, while its thread ran
            return deadline.answered
        if deadline.completed:
            return None
        return await self._cut_short(deadline)

    async def _cut_short(self, deadline: RequestDeadline) -> int | None:
        """Answer a request cut short by its deadline (504) or by the drain (503), cleanly
        where that is still possible: a response that has started can only be broken off.
        Returns the status sent, or None when the response could only be broken off."""
        inflight = self._inflight
        send = deadline.send
        if send is None:  # pragma: no cover - the middleware always gives its send
            return None
        if deadline.cut == EXPIRED:
            if deadline.response_started:
                inflight.expired_responses += 1
                self._log_cut_off(deadline)
                return None
            inflight.expired += 1
            start, body = self._gateway_timeout(deadline)
        elif deadline.response_started:
            inflight.broken_responses += 1
            return None
        else:
            inflight.cut_requests += 1
            start, body = self._unavailable
        await send(start)
        await send(body)
        status: int = start["status"]
        return status

    def _log_cut_off(self, deadline: RequestDeadline) -> None:
        """Log a response broken off at its deadline: once per route and LOG_INTERVAL, since
        a caller decides how often it happens (with the budget it sends)."""
        template = deadline.route.template
        key = template or "<unmatched>"
        now = time.monotonic()
        next_at, held_back = self._logged.get(key, (0.0, 0))
        if now < next_at:
            self._logged[key] = (next_at, held_back + 1)
            return
        if len(self._logged) >= _MAX_ROUTES_LOGGED and key not in self._logged:
            self._logged.clear()  # unmatched paths are few; never let them grow this without end
        self._logged[key] = (now + LOG_INTERVAL, 0)
        scope = deadline.scope
        logger.warning(
            "%s %s: %s ran out after the response started; the response was cut off%s",
            scope.get("method"),
            template or scope.get("path"),
            _whose(deadline),
            f" ({held_back} more since the last such line)" if held_back else "",
        )

    def _gateway_timeout(self, deadline: RequestDeadline) -> tuple[Message, Message]:
        scope = deadline.scope
        route = deadline.route.template or scope.get("path", "")
        budget = deadline.budget or 0.0
        extra = [CONNECTION_CLOSE] if self._inflight.closing else []
        method = scope.get("method", "GET")
        return problem(
            504,
            "Gateway Timeout",
            f"{method} {route} did not finish within {_whose(deadline)}.",
            *extra,
            route=route,
            budget_s=round(budget, 6),
        )


def _whose(deadline: RequestDeadline) -> str:
    """Whose deadline it was: the route's own, or the budget the caller sent."""
    budget = deadline.budget or 0.0
    if deadline.source == "inbound":
        return f"the {budget:.3g} s budget its caller sent"
    return f"its {budget:.3g} s deadline"
