"""The applications ``benchmarks/metrics_bench.py`` loads: the same stack (DrainMiddleware with a
30 s default deadline, probes, one hello route and one templated route), with and without
gracekit's Prometheus metrics.

    uvicorn metrics_app:plain --factory --app-dir benchmarks/apps
    uvicorn metrics_app:metered --factory --app-dir benchmarks/apps
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from gracekit import DrainMiddleware, Lifecycle, ProbeApp, ShutdownTiming


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.path_params["item_id"])


def _app(*, metrics: bool) -> Starlette:
    lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=1.0, drain_timeout=5.0))
    routes = [
        Route("/", hello),
        Route("/items/{item_id}", item),
        Mount("/health", app=ProbeApp(lifecycle)),
    ]
    if metrics:
        from gracekit.metrics import Metrics, MetricsApp

        routes.append(Route("/metrics", MetricsApp(Metrics(lifecycle))))
    app = Starlette(routes=routes, lifespan=lifecycle.lifespan())
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle, deadline=30.0)
    return app


def plain() -> Starlette:
    return _app(metrics=False)


def metered() -> Starlette:
    return _app(metrics=True)
