"""The clean answers of requests cut short: 504 at their deadline, 503 at the drain's, a
started response broken off; and requests cut while a worker thread works for them."""

from __future__ import annotations

import logging

from starlette.types import Message

from .._asgi import problem
from ..deadlines.budget import EXPIRED, RequestDeadline
from .cancellation import waits_on_thread
from .inflight import InFlight

__all__ = ["CONNECTION_CLOSE", "CutAnswers"]

logger = logging.getLogger("gracekit")

CONNECTION_CLOSE = (b"connection", b"close")


class CutAnswers:
    """Answers the requests of one drain middleware that were cut short.

    Parameters:
        inflight: where the cuts are counted.
        retry_after: the ``Retry-After`` of the drain's 503.
    """

    def __init__(self, inflight: InFlight, *, retry_after: int) -> None:
        self._inflight = inflight
        self._unavailable = problem(
            503,
            "Service Unavailable",
            "The server is shutting down; retry the request.",
            (b"retry-after", str(retry_after).encode()),
            CONNECTION_CLOSE,
        )

    def hold(self, deadline: RequestDeadline) -> bool:
        """At the cut of a request that waits for a worker thread: answer it now, from a task
        of its own, and let the request keep its task, and with it its slot in the thread
        limiter, until the thread returns; True if it was held. Cancelled instead, the request
        would give its slot back while the thread runs on, and a caller sending tiny budgets
        would have a thread started for each of its requests."""
        if not waits_on_thread(deadline.task):
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
        scope, send = deadline.scope, deadline.send
        if send is None:  # pragma: no cover - the middleware always gives its send
            return None
        if deadline.cut == EXPIRED:
            if deadline.response_started:
                inflight.expired_responses += 1
                logger.warning(
                    "%s %s: its %.3g s deadline passed after the response started; the "
                    "response was cut off",
                    scope.get("method"),
                    deadline.route.template or scope.get("path"),
                    deadline.budget or 0.0,
                )
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

    def _gateway_timeout(self, deadline: RequestDeadline) -> tuple[Message, Message]:
        scope = deadline.scope
        route = deadline.route.template or scope.get("path", "")
        budget = deadline.budget or 0.0
        whose = (
            f"the {budget:.3g} s budget its caller sent"
            if deadline.source == "inbound"
            else f"its {budget:.3g} s deadline"
        )
        extra = [CONNECTION_CLOSE] if self._inflight.closing else []
        method = scope.get("method", "GET")
        return problem(
            504,
            "Gateway Timeout",
            f"{method} {route} did not finish within {whose}.",
            *extra,
            route=route,
            budget_s=round(budget, 6),
        )
