"""The applications ``benchmarks/drain_bench.py`` loads: one hello route, with and without
gracekit's drain middleware, otherwise identical (same lifecycle, same lifespan, same probes).

    uvicorn drain_app:bare --factory --app-dir benchmarks/apps
    uvicorn drain_app:drained --factory --app-dir benchmarks/apps
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from gracekit import DrainMiddleware, Lifecycle, ProbeApp, ShutdownTiming


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def _app(*, drain: bool) -> Starlette:
    lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=1.0, drain_timeout=5.0))
    app = Starlette(
        routes=[Route("/", hello), Mount("/health", app=ProbeApp(lifecycle))],
        lifespan=lifecycle.lifespan(),
    )
    if drain:
        app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
    return app


def bare() -> Starlette:
    return _app(drain=False)


def drained() -> Starlette:
    return _app(drain=True)
