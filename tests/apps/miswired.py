"""A Starlette service wired by hand with one piece left out, for tests/test_wiring.py: MISSING
names it ("lifespan", "middleware", "probes", "metrics"; "nothing" for a complete wiring,
"install" for gracekit.install()). The startup must log a warning that names the piece."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount, Route

import gracekit
from gracekit import DrainMiddleware, Lifecycle, ProbeApp
from gracekit.metrics import Metrics, MetricsApp

MISSING = os.environ.get("MISSING", "nothing")


async def index(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def hand_wired(lifecycle: Lifecycle, missing: str, registry: CollectorRegistry) -> Starlette:
    """A Starlette app wired by hand, as the docs do, without *missing*."""
    metrics = Metrics(lifecycle, registry=registry)
    routes: list[BaseRoute] = [Route("/", index)]
    if missing != "probes":
        routes.append(Mount("/health", app=ProbeApp(lifecycle)))
    if missing != "metrics":
        routes.append(Route("/metrics", MetricsApp(metrics)))
    app = Starlette(routes=routes, lifespan=None if missing == "lifespan" else lifecycle.lifespan())
    if missing != "middleware":
        app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
    return app


lifecycle = Lifecycle()
if MISSING == "install":
    app = Starlette(routes=[Route("/", index)])
    gracekit.install(app, lifecycle)
else:
    # A registry of its own: tests/test_wiring.py imports hand_wired from here.
    app = hand_wired(lifecycle, MISSING, CollectorRegistry())
