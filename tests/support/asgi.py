"""Driving an ASGI app's lifespan by hand, as a server does, for in-process tests."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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


@dataclass
class Answer:
    """What an ASGI app sent for one request."""

    status: int | None = None
    headers: dict[bytes, bytes] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    complete: bool = False  # the last body message (more_body false) was sent
    sent_at: float | None = None  # time.monotonic() when it was

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    app: ASGIApp,
    path: str = "/",
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Answer:
    """Send one HTTP request straight to *app*, raw headers and all (no client in between to
    normalise or refuse them), in a task of its own as a server would; what it answered."""
    answer = Answer()
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"app"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    disconnect = anyio.Event()
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = dict(message.get("headers", []))
        elif message["type"] == "http.response.body":
            answer.chunks.append(message.get("body", b""))
            answer.complete = not message.get("more_body", False)
            if answer.complete:
                answer.sent_at = time.monotonic()

    task = asyncio.ensure_future(app(scope, receive, send))
    try:
        await task
    finally:
        disconnect.set()
    return answer
