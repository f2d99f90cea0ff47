"""A test app for the shutdown's edge cases, with a management port (GRACEKIT_MANAGEMENT_PORT).

STARTUP_SECONDS makes the application's own lifespan startup take that long; STUBBORN_HOOK=1
adds a shutdown hook that swallows every cancellation, BLOCKING_HOOK=1 one that blocks the event
loop for 30 s; HOOK_TIMEOUT bounds the hooks (seconds, default 30). It prints what it goes
through, for the tests to read in its log.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gracekit import DrainMiddleware, Lifecycle, Management, ShutdownTiming

lifecycle = Lifecycle(
    shutdown=ShutdownTiming(
        delay=5.0, drain_timeout=5.0, hook_timeout=float(os.environ.get("HOOK_TIMEOUT", "30"))
    ),
    management=Management(port=0, host="127.0.0.1"),
)


@asynccontextmanager
async def app_lifespan(app: Starlette) -> AsyncIterator[None]:
    print("app startup began", flush=True)
    try:
        await asyncio.sleep(float(os.environ.get("STARTUP_SECONDS", "0")))
    except asyncio.CancelledError:
        print("app startup cancelled", flush=True)
        raise
    yield
    print("app shutdown", flush=True)


if os.environ.get("STUBBORN_HOOK") == "1":

    @lifecycle.on_shutdown
    async def stubborn() -> None:
        print("stubborn hook began", flush=True)
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                print("stubborn hook swallowed a cancellation", flush=True)


if os.environ.get("BLOCKING_HOOK") == "1":

    @lifecycle.on_shutdown
    async def blocking() -> None:
        print("blocking hook began", flush=True)
        time.sleep(30)  # the mistake this app is here to make


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


app = Starlette(routes=[Route("/", hello)], lifespan=lifecycle.lifespan(app_lifespan))
app.add_middleware(DrainMiddleware, lifecycle=lifecycle)
