"""Driving an ASGI app's lifespan by hand, as a server does, for in-process tests."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[dict[str, Any]]:
    """Run the app's lifespan startup, yield its state, then run its shutdown."""
    to_app, from_test = anyio.create_memory_object_stream[dict[str, Any]](math.inf)
    to_test, from_app = anyio.create_memory_object_stream[dict[str, Any]](math.inf)
    state: dict[str, Any] = {}
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}

    async def run() -> None:
        await app(scope, from_test.receive, to_test.send)

    async with anyio.create_task_group() as tg, to_app, from_test, to_test, from_app:
        tg.start_soon(run)
        await to_app.send({"type": "lifespan.startup"})
        message = await from_app.receive()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup failed: {message}")
        yield state
        await to_app.send({"type": "lifespan.shutdown"})
        message = await from_app.receive()
        if message["type"] != "lifespan.shutdown.complete":
            raise RuntimeError(f"lifespan shutdown failed: {message}")


@asynccontextmanager
async def client(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to *app* in process, with its lifespan running."""
    async with lifespan(app) as state:
        transport = _StatefulTransport(app=app, state=state)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            yield http


class _StatefulTransport(httpx.ASGITransport):
    # httpx's ASGITransport does not pass the lifespan state into request scopes, as a server
    # does; Starlette's request.state reads it from there.
    def __init__(self, *, app: ASGIApp, state: dict[str, Any]) -> None:
        self._lifespan_state = state

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] in ("http", "websocket"):
                scope = {**scope, "state": dict(self._lifespan_state)}
            await app(scope, receive, send)

        super().__init__(app=with_state)


async def eventually(
    condition: Callable[[], object], *, timeout: float = 5.0, interval: float = 0.01
) -> None:
    """Wait until *condition()* is truthy, failing the test after *timeout* seconds."""
    with anyio.move_on_after(timeout):
        while not condition():
            await anyio.sleep(interval)
        return
    raise AssertionError(f"condition not met within {timeout} s")
