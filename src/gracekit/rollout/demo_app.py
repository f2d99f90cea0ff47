"""The example app that ``gracekit demo`` rolls out: Starlette, probes, the drain.

Serve it with a factory, so that it reads its environment when the server builds it::

    gracekit run gracekit.rollout.demo_app:create_app --factory
    uvicorn gracekit.rollout.demo_app:create_app --factory

Routes:
  GET /               -> "hello from VERSION"
  GET /slow?ms=N      -> sleeps N ms (0..60000), then "slept N ms"
  GET /health/...     -> gracekit's probes (startup, live, ready), and /health/prestop when
                         DEMO_PRESTOP_TOKEN is set (the hook must send it as a bearer token)

Every answer carries ``x-version: VERSION``, so the simulator can tell which version served it.

Environment: ``VERSION`` (default ``dev``); ``WARMUP_SECONDS`` (0.2), a startup task that
holds readiness back; ``DEMO_TERMINATION``: ``gracekit`` (default) lets gracekit take over
SIGTERM (the shutdown delay, then the drain); ``uvicorn`` leaves SIGTERM to the server, which
then stops accepting at once, as an app without gracekit does; ``DEMO_PRESTOP_TOKEN``, the
token of the preStop endpoint (unset: no endpoint). The timings come from gracekit's own
variables (``GRACEKIT_SHUTDOWN_DELAY`` and the others).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from .. import DrainMiddleware, Lifecycle, ProbeApp

__all__ = ["create_app"]

_MAX_SLOW_MS = 60_000


def create_app(environ: Mapping[str, str] | None = None) -> Starlette:
    """Build the demo app from *environ* (default: the process environment).

    Raises:
        ValueError: ``DEMO_TERMINATION`` is neither ``gracekit`` nor ``uvicorn``, or
            ``WARMUP_SECONDS`` is not a number.
    """
    env = os.environ if environ is None else environ
    token = env.get("DEMO_PRESTOP_TOKEN") or None
    termination = env.get("DEMO_TERMINATION", "gracekit")
    if termination not in ("gracekit", "uvicorn"):
        raise ValueError(f"DEMO_TERMINATION must be gracekit or uvicorn, got {termination!r}")
    try:
        warmup = float(env.get("WARMUP_SECONDS", "0.2"))
    except ValueError:
        raise ValueError(f"WARMUP_SECONDS must be a number: {env['WARMUP_SECONDS']!r}") from None
    version = env.get("VERSION", "dev")
    headers = {"x-version": version}
    lifecycle = Lifecycle(handle_signals=termination == "gracekit")
    warm = lifecycle.gate("warm")

    @lifecycle.startup_task
    async def warm_up() -> None:
        await anyio.sleep(warmup)  # stands in for loading a model or priming a cache
        warm.open()

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"hello from {version}", headers=headers)

    async def slow(request: Request) -> PlainTextResponse:
        try:
            ms = int(request.query_params.get("ms", "100"))
        except ValueError:
            return PlainTextResponse("ms must be an integer\n", status_code=400, headers=headers)
        if not 0 <= ms <= _MAX_SLOW_MS:
            return PlainTextResponse(
                f"ms must be in 0..{_MAX_SLOW_MS}\n", status_code=400, headers=headers
            )
        await anyio.sleep(ms / 1000)
        return PlainTextResponse(f"slept {ms} ms", headers=headers)

    app = Starlette(
        routes=[
            Route("/", hello),
            Route("/slow", slow),
            Mount(
                "/health",
                app=ProbeApp(lifecycle, prestop=token is not None, prestop_token=token),
            ),
        ],
        lifespan=lifecycle.lifespan(),
    )
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
    return app
