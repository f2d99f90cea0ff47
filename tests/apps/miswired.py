"""A Starlette service wired by hand with one piece left out, for tests/test_wiring.py: MISSING
names it ("lifespan", "middleware", "probes", "metrics"; "nothing" for a complete wiring,
"install" for gracekit.install()). The startup must log a warning that names the piece."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import gracekit
from gracekit import DrainMiddleware, Lifecycle, ProbeApp
from gracekit.metrics import Metrics, MetricsApp

MISSING = os.environ.get("MISSING", "nothing")

lifecycle = Lifecycle()


async def index(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


routes = [Route("/", index)]
if MISSING == "install":
    app = Starlette(routes=routes)
    gracekit.install(app, lifecycle)
else:
    metrics = Metrics(lifecycle)
    if MISSING != "probes":
        routes.append(Mount("/health", app=ProbeApp(lifecycle)))
    if MISSING != "metrics":
        routes.append(Route("/metrics", MetricsApp(metrics)))
    app = Starlette(routes=routes, lifespan=None if MISSING == "lifespan" else lifecycle.lifespan())
    if MISSING != "middleware":
        app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
