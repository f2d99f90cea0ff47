"""The drain middleware: counts what is in flight, enforces request deadlines, and ends
requests cleanly when their deadline passes or the pod leaves."""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Mapping
from typing import NamedTuple, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import _validate
from ..deadlines._budget import CutReason, RequestDeadline
from ..deadlines._context import activate, deactivate
from ..deadlines._headers import inbound_budget
from ..deadlines._routes import RouteTable, checked_route_deadlines, find_routes
from ._answers import CONNECTION_CLOSE, CutAnswers, broken_off
from ._cancellation import absorb_cancellation, cancelled_by_others, still_cancelled
from ._inflight import InFlight, current_task

__all__ = ["DrainMiddleware", "Drained", "RequestDone", "RequestObserver"]

_GOING_AWAY = {"type": "websocket.close", "code": 1001, "reason": "server shutting down"}


class RequestDone(NamedTuple):
    """One HTTP request the drain middleware served, as its observer is told of it."""

    method: str
    #: The matched route's template; None when no route matched.
    route: str | None
    #: What the client got (500 when the app raised).
    status: int
    seconds: float
    #: True for a request that arrived once the shutdown had started.
    after_shutdown: bool
    #: Why it was cut short, if it was.
    cut: CutReason | None


#: ``RequestDone`` from a plain tuple, without the Python-level ``__new__`` of a NamedTuple
#: (it runs once per request).
_request_done = functools.partial(tuple.__new__, RequestDone)


class RequestObserver(Protocol):
    """Told about each HTTP request the drain middleware served (the metrics are one)."""

    def request_done(self, done: RequestDone) -> None:
        """Called once the request has ended, in its task."""


class WiringWatch(Protocol):
    """Told by a middleware that sees the lifespan scope that it wraps the app."""

    def watch(self, app: ASGIApp, send: Send) -> Send:
        """The *send* of the lifespan, through which startup's end is reported."""


class Drained(Protocol):
    """What the middleware is given (a :class:`~gracekit.Lifecycle` is one): the in-flight
    accounting the drain waits on, who is told about each request, read per request so
    metrics attached later are told too, and what watches the app's wiring."""

    @property
    def inflight(self) -> InFlight: ...

    @property
    def request_observer(self) -> RequestObserver | None: ...

    @property
    def wiring(self) -> WiringWatch: ...


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
        lifecycle: Drained,
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
        self._overrides = checked_route_deadlines(route_deadlines)
        self._budget_headers = bool(budget_headers)
        self._table: RouteTable | None = None
        self._shortest = math.inf
        self._answers = CutAnswers(self._inflight, retry_after=retry_after)

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
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        send = self.lifecycle.wiring.watch(self.app, send)  # it wraps the app: tell the lifecycle
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
        self._answers.bind(loop)
        now = loop.time()
        inbound = inbound_budget(scope["headers"]) if self._budget_headers else None
        timers = inflight.timers
        deadline = RequestDeadline(
            task, scope, now, inbound, timers.drain_at, table, owner=self._answers, send=send
        )
        requests[task] = deadline
        # The earliest this request's deadline can be; a route may only lengthen it.
        bound = now + (self._shortest if inbound is None else min(self._shortest, inbound))
        if timers.drain_at is not None:
            bound = min(bound, timers.drain_at)
        if bound != math.inf:
            timers.watch(deadline, bound, loop)
        token = activate(deadline)
        after_shutdown = inflight.closing
        status = 500  # what the client gets when nothing is sent: the server's error
        finished: float | None = None

        async def send_closing(message: Message) -> None:
            nonlocal status, finished
            if deadline.held is not None:
                deadline.stop()  # its thread returned: it was answered at its deadline
                return
            kind = message["type"]
            if kind == "http.response.start":
                deadline.response_started = True
                status = message["status"]
                if inflight.closing and scope.get("http_version") in ("1.1", "1.0"):
                    message = {**message, "headers": [*message["headers"], CONNECTION_CLOSE]}
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
            status = await self._answers.finish(deadline) or status
        except Exception:
            if deadline.cut is not None:
                # In place of gracekit's cancellation: a library turned it into its own error.
                if not await absorb_cancellation(deadline):
                    status = 0
                    raise  # cancelled by someone else as well: not ours to answer
            elif deadline.response_started:
                raise
            else:
                # A downstream timeout set from the budget, or DeadlineExceeded from a helper:
                # an error because the budget ran out is the deadline's, and gets its 504.
                at = deadline.at
                if at is None or loop.time() < at:
                    raise
                deadline.cut = deadline.expiry_reason()
            status = await self._answers.finish(deadline) or status
        else:
            if deadline.cancels:
                # The handler swallowed gracekit's cancellation, or returned before it landed.
                await absorb_cancellation(deadline)
            if deadline.held is not None:
                status = await self._answers.finish(deadline) or status
        finally:
            if deadline.cut is not None and deadline.response_started and finished is None:
                broken_off()  # on purpose: uvicorn need not log it as an error
            deactivate(token)
            deadline.disarm()
            del requests[task]
            inflight.left()
            observer = self.lifecycle.request_observer
            if observer is not None and status:
                route = deadline.route  # before end(), which lets go of the scope
                if not route.exempt:
                    end = finished if finished is not None else deadline.answered_at
                    end = loop.time() if end is None else end
                    cut = None if finished is not None else deadline.cut
                    done = (scope["method"], route.template, status, end - now, after_shutdown, cut)
                    observer.request_done(_request_done(done))
            deadline.end()

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
