"""The application ``benchmarks/management_bench.py`` loads: a hello route behind
DrainMiddleware, with its probes and metrics on a management port (GRACEKIT_MANAGEMENT_PORT).

    GRACEKIT_MANAGEMENT_PORT=9001 uvicorn management_app:app --app-dir benchmarks/apps
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gracekit import DrainMiddleware, Lifecycle, Management, ShutdownTiming
from gracekit.metrics import Metrics


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


lifecycle = Lifecycle(
    shutdown=ShutdownTiming(delay=1.0, drain_timeout=5.0),
    management=Management(port=0, host="127.0.0.1"),  # the port comes from the environment
)
Metrics(lifecycle)


@lifecycle.check(interval=1.0, timeout=0.5)
async def upstream() -> None:
    return None


app = Starlette(routes=[Route("/", hello)], lifespan=lifecycle.lifespan())
app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
