"""The app the doctor's known-bad Deployments (tests/deployments/) are checked against.

Its numbers, which the Deployments there are written for: delay 5 s, drain 20 s, one shutdown
hook bounded at 4 s, so a grace period of 31 s; a startup task of up to 40 s (more than the 30 s
a default liveness probe tolerates); a readiness check named ``db`` and a gate named ``warm``;
probes under ``/health`` with a preStop endpoint that needs the token ``t0ken``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from gracekit import DrainMiddleware, Lifecycle, ProbeApp, ShutdownTiming

PRESTOP_TOKEN = "t0ken"

lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=5, drain_timeout=20, hook_timeout=5))
lifecycle.gate("warm", open=True)


@lifecycle.check(timeout=1.0, interval=5.0)
async def db() -> None:
    pass


@lifecycle.startup_task(timeout=40)
async def load_model() -> None:
    pass


@lifecycle.on_shutdown(timeout=4)
async def flush() -> None:
    pass


async def index(request: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/", index),
        Mount("/health", ProbeApp(lifecycle, prestop=True, prestop_token=PRESTOP_TOKEN)),
    ],
    lifespan=lifecycle.lifespan(),
)
app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
