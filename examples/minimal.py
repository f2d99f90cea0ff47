"""The smallest gracekit service: probes under /health, no external services.

Run it with:  uvicorn minimal:app --app-dir examples --lifespan on
         or:  gracekit run minimal:app --app-dir examples   (exits 0 after a clean shutdown)

On SIGTERM it fails readiness at once, keeps serving for 5 s (GRACEKIT_SHUTDOWN_DELAY), then
stops accepting and drains in-flight requests for up to 20 s (GRACEKIT_DRAIN_TIMEOUT).
Ctrl-C (SIGINT) skips the delay.

Routes (a stable contract: later tests and demos rely on it):
  GET /                 -> "hello"
  GET /slow?ms=N        -> sleeps N milliseconds (0..600000), then "slept N ms"
  GET /health/startup   -> 200 once startup succeeded
  GET /health/live      -> 200 while the event loop is responsive
  GET /health/ready     -> 200 while the service should take traffic (?verbose for JSON)
"""

from __future__ import annotations

import os

import anyio
import anyio.lowlevel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from gracekit import DrainMiddleware, Lifecycle, ProbeApp

lifecycle = Lifecycle()
warm = lifecycle.gate("warm")


@lifecycle.startup_task
async def warm_up() -> None:
    # Stands in for real warm-up work (loading a model, priming a cache).
    await anyio.sleep(float(os.environ.get("WARMUP_SECONDS", "0.1")))
    warm.open()


@lifecycle.check(interval=5.0, timeout=1.0)
async def event_loop() -> dict[str, object]:
    # A dependency-free check, so the example runs anywhere.
    await anyio.lowlevel.checkpoint()
    return {"version": os.environ.get("VERSION", "dev")}


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def slow(request: Request) -> PlainTextResponse:
    try:
        ms = int(request.query_params.get("ms", "100"))
    except ValueError:
        return PlainTextResponse("ms must be an integer\n", status_code=400)
    if not 0 <= ms <= 600_000:
        return PlainTextResponse("ms must be in 0..600000\n", status_code=400)
    await anyio.sleep(ms / 1000)
    return PlainTextResponse(f"slept {ms} ms")


app = Starlette(
    routes=[
        Route("/", hello),
        Route("/slow", slow),
        Mount("/health", app=ProbeApp(lifecycle)),
    ],
    lifespan=lifecycle.lifespan(),
)
app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
