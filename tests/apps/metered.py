"""A test app with gracekit's metrics: ``/pid`` answers the worker's pid, ``/hold`` streams it
and then holds its response open (in flight) for ``?seconds=`` (default 10), ``/metrics`` the
metrics; every response says which worker sent it in ``x-pid``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gracekit import DrainMiddleware, Lifecycle, ProbeApp, ShutdownTiming
from gracekit.metrics import Metrics, MetricsApp

PID = str(os.getpid()).encode()


class SayPid:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_pid(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-pid", PID)]}
            await send(message)

        await self.app(scope, receive, send_pid if scope["type"] == "http" else send)


lifecycle = Lifecycle(shutdown=ShutdownTiming(delay=0.5, drain_timeout=2))
metrics = Metrics(lifecycle)


async def pid(request: Request) -> PlainTextResponse:
    return PlainTextResponse(PID.decode())


async def hold(request: Request) -> StreamingResponse:
    seconds = float(request.query_params.get("seconds", "10"))

    async def body() -> AsyncIterator[bytes]:
        yield PID + b"\n"
        await anyio.sleep(seconds)
        yield b"done\n"

    return StreamingResponse(body(), media_type="text/plain")


app = Starlette(
    routes=[
        Route("/pid", pid),
        Route("/hold", hold),
        Route("/metrics", MetricsApp(metrics)),
        Mount("/health", app=ProbeApp(lifecycle)),
    ],
    lifespan=lifecycle.lifespan(),
)
app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
app.add_middleware(SayPid)
