"""The drain middleware: counts what is in flight, enforces request deadlines, and ends
requests cleanly when their deadline passes or the pod leaves."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import _validate
from .._asgi import problem
from ..deadlines.budget import EXPIRED, RequestDeadline, activate, deactivate
from ..deadlines.headers import inbound_budget
from ..deadlines.routes import RouteTable, find_routes
from .cancellation import absorb_cancellation, cancelled_by_others, still_cancelled
from .inflight import current_task

if TYPE_CHECKING:
    from ..lifecycle import Lifecycle

__all__ = ["DrainMiddleware", "RequestObserver"]

logger = logging.getLogger("gracekit")

_CONNECTION_CLOSE = (b"connection", b"close")
_GOING_AWAY = {"type": "websocket.close", "code": 1001, "reason": "server shutting down"}


class RequestObserver(Protocol):
    """Told about each HTTP request the drain middleware served (the metrics are one)."""

    def request_done(
        self,
        method: str,
        route: str | None,
        status: int,
        seconds: float,
        *,
        after_shutdown: bool,
        cut: str | None,
    ) -> None:
        """*route* is the matched route's template (None: no route matched); *status* what
        the client got (500 when the app raised); *after_shutdown* True for a request that
        arrived once the shutdown had started; *cut* why it was cut short, if it was."""


def _route_deadlines(value: Mapping[str, float | None] | None) -> dict[str, float | None]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"route_deadlines must be a mapping, not {type(value).__name__}")
    checked: dict[str, float | None] = {}
    for template, seconds in value.items():
        if not isinstance(template, str) or not template.startswith("/"):
            raise ValueError(
                f"route_deadlines keys are route templates ('/path'), got {template!r}"
            )
        checked[template] = _validate.optional_seconds(
            seconds, what=f"route_deadlines[{template!r}]"
        )
    return checked


class DrainMiddleware:
    """Wrap an ASGI app so its lifecycle can drain it, and its requests keep their deadlines.

    It keeps count of the HTTP requests in flight (from the first byte in to the last byte of
    the response, streaming included) and of open websockets; once the shutdown has started it
    adds ``Connection: close`` to HTTP/1.x responses, so pooled connections move to other pods.
    A request whose deadline passes is cancelled and answered 504; at the drain deadline, a
    request that has not started its response gets a 503 with ``Retry-After`` instead of a
    reset, and websockets are closed with code 1001.

    Parameters:
        app: the ASGI application.
        lifecycle: the :class:`~gracekit.Lifecycle` whose shutdown drains this app.
        retry_after: seconds a client is told to wait before retrying a request that the
            shutdown cut short (another pod can usually take it at once).
        deadline: the deadline of every HTTP request, in seconds from its arrival, unless its
            route sets its own; None (the default) for none.
        route_deadlines: deadlines by route template (``{"/export": 300, "/events": None}``);
            ``@gracekit.deadline(...)`` on an endpoint does the same. Checked against the
            app's routes at startup.
        budget_headers: honour the budget a caller sends (``x-envoy-expected-rq-timeout-ms``,
            ``grpc-timeout``, ``x-gracekit-budget-ms``): it can shorten a request's deadline,
            never lengthen it.

    Raises:
        TypeError, ValueError: bad settings, at construction; a route deadline naming a route
            the app does not have, at startup (the lifespan startup fails with the reason).

    Use it as ``app.add_middleware(DrainMiddleware, lifecycle=lifecycle)`` or wrap the app:
    ``app = DrainMiddleware(app, lifecycle=lifecycle)``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifecycle: Lifecycle,
        retry_after: int = 1,
        deadline: float | None = None,
        route_deadlines: Mapping[str, float | None] | None = None,
        budget_headers: bool = True,
    ) -> None:
        if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
            raise ValueError(f"retry_after must be an int >= 0, got {retry_after!r}")
        self.app = app
        self.lifecycle = lifecycle
        self._inflight = lifecycle.inflight
        self._default = _validate.optional_seconds(deadline, what="deadline")
        self._overrides = _route_deadlines(route_deadlines)
        self._budget_headers = bool(budget_headers)
        self._table: RouteTable | None = None
        self._shortest = math.inf
        self._unavailable = problem(
            503,
            "Service Unavailable",
            "The server is shutting down; retry the request.",
            (b"retry-after", str(retry_after).encode()),
            _CONNECTION_CLOSE,
        )

    @property
    def route_table(self) -> RouteTable:
        """The app's routes with their deadlines (found at startup, or at the first request)."""
        table = self._table
        if table is None:
            table = RouteTable(
                find_routes(self.app), default=self._default, overrides=self._overrides
            )
            self._table, self._shortest = table, table.shortest
        return table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan" and self._table is None:
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self.route_table  # noqa: B018 - builds the route table, raising on bad settings
        except (TypeError, ValueError) as exc:
            # Fail the startup the ASGI way: under uvicorn's default lifespan="auto", an
            # exception would read as "lifespan not supported" and the app would serve anyway.
            await receive()
            await send({"type": "lifespan.startup.failed", "message": f"gracekit: {exc}"})
            raise  # as Starlette does after it: servers and test clients stop on it
        await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        inflight = self._inflight
        requests = inflight.requests
        task = current_task()
        if task in requests:
            # A second DrainMiddleware on this lifecycle (a mounted sub-app): the outer one
            # has this request already.
            await self.app(scope, receive, send)
            return
        table = self._table or self.route_table
        loop = task.get_loop()
        now = loop.time()
        inbound = inbound_budget(scope["headers"]) if self._budget_headers else None
        timers = inflight.timers
        deadline = RequestDeadline(task, scope, now, inbound, timers.drain_at, table)
        requests[task] = deadline
        # The earliest this request's deadline can be; a route may only lengthen it.
        bound = now + (self._shortest if inbound is None else min(self._shortest, inbound))
        if timers.drain_at is not None:
            bound = min(bound, timers.drain_at)
        if bound != math.inf:
            timers.watch(deadline, bound, loop)
        token = activate(deadline)
        after_shutdown = inflight.closing
        started = False
        status = 500  # what the client gets when nothing is sent: the server's error
        finished: float | None = None

        async def send_closing(message: Message) -> None:
            nonlocal started, status, finished
            kind = message["type"]
            if kind == "http.response.start":
                started = True
                status = message["status"]
                if inflight.closing and scope.get("http_version") in ("1.1", "1.0"):
                    message = {**message, "headers": [*message["headers"], _CONNECTION_CLOSE]}
            elif kind == "http.response.body" and not message.get("more_body", False):
                await send(message)
                # Sent whole: what runs after it (background tasks) is bound by the drain,
                # not by the request's deadline, and is not the request's latency.
                finished = loop.time()
                deadline.completed = True
                deadline.disarm()
                return
            await send(message)

        try:
            await self.app(scope, receive, send_closing)
        except asyncio.CancelledError as exc:
            if deadline.cut is None or cancelled_by_others(deadline, exc):
                status = 0  # cancelled from elsewhere (the server's forced exit): not counted
                raise
            if not deadline.completed:
                status = await self._cut_short(scope, send, deadline, started) or status
        except Exception:
            if deadline.cut is not None:
                # In place of gracekit's cancellation: a library turned it into its own error.
                if not await absorb_cancellation(deadline):
                    status = 0
                    raise  # cancelled by someone else as well: not ours to answer
            elif started:
                raise
            else:
                # A downstream timeout set from the budget, or DeadlineExceeded from a helper:
                # an error because the budget ran out is the deadline's, and gets its 504.
                at = deadline.at
                if at is None or loop.time() < at:
                    raise
                deadline.cut = deadline.expiry_reason()
            if not deadline.completed:
                status = await self._cut_short(scope, send, deadline, started) or status
        else:
            if deadline.cancels:
                deadline.take_back()  # the handler swallowed gracekit's cancellation
        finally:
            deactivate(token)
            deadline.disarm()
            del requests[task]
            inflight.left()
            observer = self.lifecycle.request_observer
            if observer is not None and status:
                route = deadline.route  # before end(), which lets go of the scope
                if not route.exempt:
                    end = finished if finished is not None else loop.time()
                    observer.request_done(
                        scope["method"],
                        route.template,
                        status,
                        end - now,
                        after_shutdown=after_shutdown,
                        cut=None if finished is not None else deadline.cut,
                    )
            deadline.end()

    async def _cut_short(
        self, scope: Scope, send: Send, deadline: RequestDeadline, started: bool
    ) -> int | None:
        """End a request cut short by its deadline (504) or by the drain (503), cleanly
        where that is still possible: a response that has started can only be broken off.
        Returns the status sent, or None when the response could only be broken off."""
        inflight = self._inflight
        if deadline.cut == EXPIRED:
            if started:
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
            start, body = self._gateway_timeout(scope, deadline)
        elif started:
            inflight.broken_responses += 1
            return None
        else:
            inflight.cut_requests += 1
            start, body = self._unavailable
        await send(start)
        await send(body)
        status: int = start["status"]
        return status

    def _gateway_timeout(self, scope: Scope, deadline: RequestDeadline) -> tuple[Message, Message]:
        route = deadline.route.template or scope.get("path", "")
        budget = deadline.budget or 0.0
        whose = (
            f"the {budget:.3g} s budget its caller sent"
            if deadline.source == "inbound"
            else f"its {budget:.3g} s deadline"
        )
        extra = [_CONNECTION_CLOSE] if self._inflight.closing else []
        method = scope.get("method", "GET")
        return problem(
            504,
            "Gateway Timeout",
            f"{method} {route} did not finish within {whose}.",
            *extra,
            route=route,
            budget_s=round(budget, 6),
        )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        inflight = self._inflight
        task = current_task()
        closed = False

        async def send_unless_closed(message: Message) -> None:
            nonlocal closed
            if closed:
                return  # the drain closed this websocket; later sends have nowhere to go
            if message["type"] == "websocket.close":
                closed = True
            await send(message)

        async def going_away() -> None:
            nonlocal closed
            if not closed:
                closed = True
                await send(_GOING_AWAY)

        inflight.websockets[task] = going_away
        try:
            await self.app(scope, receive, send_unless_closed)
        except asyncio.CancelledError as exc:
            if task not in inflight.cut_websockets or still_cancelled(task, exc):
                raise
            await going_away()
        finally:
            del inflight.websockets[task]
            inflight.cut_websockets.discard(task)
            inflight.left()
