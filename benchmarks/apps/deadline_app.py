"""The applications ``benchmarks/deadline_bench.py`` loads: one hello route and one route whose
100 ms deadline always expires, behind different request middleware, otherwise identical.

    uvicorn deadline_app:FACTORY --factory --app-dir benchmarks/apps

with FACTORY one of ``bare`` (no middleware), ``drained`` (DrainMiddleware, no deadlines),
``deadlines`` (DrainMiddleware with a 30 s default deadline) and ``scoped`` (an anyio cancel scope
per request: the mechanism gracekit does not use, kept to measure what it would cost).
"""

from __future__ import annotations

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gracekit import DrainMiddleware, Lifecycle, ProbeApp, ShutdownTiming, deadline

DEFAULT_DEADLINE = 30.0


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@deadline(0.1)
async def expire(request: Request) -> PlainTextResponse:
    await anyio.sleep(1.0)
    return PlainTextResponse("too late")


class ScopedDeadline:
    """The alternative to gracekit's timers: each request inside an anyio cancel scope with
    its deadline, as ``anyio.fail_after`` would do. Kept only to measure what it costs."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with anyio.CancelScope(deadline=anyio.current_time() + self.seconds):
            await self.app(scope, receive, send)


def _app(kind: str) -> Starlette:
    lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=1.0, drain_timeout=5.0))
    app = Starlette(
        routes=[
            Route("/", hello),
            Route("/expire", expire),
            Mount("/health", app=ProbeApp(lifecycle)),
        ],
        lifespan=lifecycle.lifespan(),
    )
    if kind == "drained":
        app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
    elif kind == "deadlines":
        app.add_middleware(DrainMiddleware, lifecycle=lifecycle, deadline=DEFAULT_DEADLINE)
    elif kind == "scoped":
        app.add_middleware(ScopedDeadline, seconds=DEFAULT_DEADLINE)
    return app


def bare() -> Starlette:
    return _app("bare")


def drained() -> Starlette:
    return _app("drained")


def deadlines() -> Starlette:
    return _app("deadlines")


def scoped() -> Starlette:
    return _app("scoped")
