"""A test app with a management port (GRACEKIT_MANAGEMENT_PORT, from gracekit run
--management-port): probes, metrics and preStop there; ``/`` and ``/slow?ms=N`` on the app's
port. Its ``db`` check fails with a secret in its error while FAIL_CHECK=1; SHUTDOWN_DELAY sets
the delay (seconds, default 1); CODE_PORT stands for a port written in the code (default 0)."""

from __future__ import annotations

import os

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gracekit import DrainMiddleware, Lifecycle, Management, ShutdownTiming
from gracekit.metrics import Metrics

lifecycle = Lifecycle(
    shutdown=ShutdownTiming(delay=float(os.environ.get("SHUTDOWN_DELAY", "1")), drain_timeout=2.0),
    # The port comes from GRACEKIT_MANAGEMENT_PORT (or CODE_PORT); the code sets the rest.
    management=Management(
        port=int(os.environ.get("CODE_PORT", "0")), host="127.0.0.1", details="always"
    ),
)
Metrics(lifecycle)


@lifecycle.check(interval=0.5, timeout=0.5, probes="informational")
async def db() -> None:
    if os.environ.get("FAIL_CHECK") == "1":
        raise RuntimeError("connecting to postgresql://app:password=hunter2-fake@db/app failed")


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def slow(request: Request) -> PlainTextResponse:
    await anyio.sleep(int(request.query_params.get("ms", "100")) / 1000)
    return PlainTextResponse("slept")


app = Starlette(routes=[Route("/", hello), Route("/slow", slow)], lifespan=lifecycle.lifespan())
app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
