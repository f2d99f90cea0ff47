"""The drain middleware: counts what is in flight, and ends it cleanly when the pod leaves."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .inflight import current_task

if TYPE_CHECKING:
    from ..lifecycle import Lifecycle

__all__ = ["DrainMiddleware"]

_CONNECTION_CLOSE = (b"connection", b"close")
_GOING_AWAY = {"type": "websocket.close", "code": 1001, "reason": "server shutting down"}


def _still_cancelled(task: asyncio.Task[object]) -> bool:
    """Take back the one cancellation gracekit asked for; True if another one is pending."""
    if sys.version_info >= (3, 11):
        return task.uncancel() > 0
    return False  # pragma: no cover - Python 3.10 counts no cancellation requests


class DrainMiddleware:
    """Wrap an ASGI app so its lifecycle can drain it.

    It keeps count of the HTTP requests in flight (from the first byte in to the last byte of
    the response, streaming included) and of open websockets; once the shutdown has started it
    adds ``Connection: close`` to HTTP/1.x responses, so pooled connections move to other pods.
    At the drain deadline, a request that has not started its response gets a 503 with
    ``Retry-After`` instead of a reset, and websockets are closed with code 1001.

    Parameters:
        app: the ASGI application.
        lifecycle: the :class:`~gracekit.Lifecycle` whose shutdown drains this app.
        retry_after: seconds a client is told to wait before retrying a request that the
            shutdown cut short (another pod can usually take it at once).

    Use it as ``app.add_middleware(DrainMiddleware, lifecycle=lifecycle)`` or wrap the app:
    ``app = DrainMiddleware(app, lifecycle=lifecycle)``.
    """

    def __init__(self, app: ASGIApp, *, lifecycle: Lifecycle, retry_after: int = 1) -> None:
        if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
            raise ValueError(f"retry_after must be an int >= 0, got {retry_after!r}")
        self.app = app
        self.lifecycle = lifecycle
        self._inflight = lifecycle.inflight
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Service Unavailable",
                "status": 503,
                "detail": "The server is shutting down; retry the request.",
            }
        ).encode()
        self._unavailable_start: Message = {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
                _CONNECTION_CLOSE,
            ],
        }
        self._unavailable_body: Message = {"type": "http.response.body", "body": body}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        inflight = self._inflight
        requests = inflight.requests
        task = current_task()
        started = False

        async def send_closing(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if inflight.closing and scope.get("http_version") in ("1.1", "1.0"):
                    message = {**message, "headers": [*message["headers"], _CONNECTION_CLOSE]}
            await send(message)

        requests[task] = None
        try:
            await self.app(scope, receive, send_closing)
        except asyncio.CancelledError:
            if requests[task] is None or _still_cancelled(task):
                raise
            # Cut short by the drain deadline: end it cleanly where that is still possible.
            if started:
                inflight.broken_responses += 1
            else:
                inflight.cut_requests += 1
                await send(self._unavailable_start)
                await send(self._unavailable_body)
        finally:
            del requests[task]
            inflight.left()

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
        except asyncio.CancelledError:
            if task not in inflight.cut_websockets or _still_cancelled(task):
                raise
            await going_away()
        finally:
            del inflight.websockets[task]
            inflight.cut_websockets.discard(task)
            inflight.left()
