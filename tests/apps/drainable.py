"""A test app exercising the whole termination sequence.

Environment: SHUTDOWN_DELAY, DRAIN_TIMEOUT, HOOK_TIMEOUT (seconds), EVENTS_FILE (each event is
appended as a line), HANG_HOOK=1 (a hook that never returns), PRESTOP_TOKEN (protects
/health/prestop), DEADLINE (the default request deadline, seconds).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from gracekit import DrainMiddleware, Lifecycle, ProbeApp, ShutdownTiming
from gracekit.deadlines import remaining


def create_app(environ: dict[str, str]) -> Starlette:
    timing = ShutdownTiming(
        delay=float(environ.get("SHUTDOWN_DELAY", "1")),
        drain_timeout=float(environ.get("DRAIN_TIMEOUT", "3")),
        hook_timeout=float(environ.get("HOOK_TIMEOUT", "1")),
    )
    lifecycle = Lifecycle(shutdown=timing)
    events_file = Path(environ["EVENTS_FILE"]) if "EVENTS_FILE" in environ else None

    def event(text: str) -> None:
        if events_file is not None:
            with events_file.open("a") as out:
                out.write(text + "\n")

    @lifecycle.on_shutdown
    async def first_registered() -> None:
        event("hook first_registered")

    @lifecycle.on_shutdown
    async def second_registered() -> None:
        event("hook second_registered")
        if environ.get("HANG_HOOK") == "1":
            await anyio.sleep_forever()

    async def consumer() -> None:
        taken = 0
        while not lifecycle.draining:
            taken += 1
            with anyio.move_on_after(0.05):
                await lifecycle.wait_draining()
        event(f"consumer stopped after {taken}")

    @lifecycle.startup_task
    async def start_consumer() -> None:
        lifecycle.spawn(consumer, name="consumer")

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    async def slow(request: Request) -> PlainTextResponse:
        ms = int(request.query_params.get("ms", "100"))
        await anyio.sleep(ms / 1000)
        return PlainTextResponse(f"slept {ms} ms")

    async def background(request: Request) -> PlainTextResponse:
        ms = int(request.query_params.get("ms", "100"))

        async def work() -> None:
            await anyio.sleep(ms / 1000)
            event(f"background {ms} done")

        lifecycle.spawn(work)
        return PlainTextResponse("queued")

    async def budget(request: Request) -> PlainTextResponse:
        # The budget left after sleeping ms milliseconds: the drain deadline caps it.
        await anyio.sleep(int(request.query_params.get("ms", "0")) / 1000)
        return PlainTextResponse(repr(remaining()))

    async def inflight(request: Request) -> PlainTextResponse:
        # What the drain middleware counts, less this request itself.
        return PlainTextResponse(str(len(lifecycle.inflight) - 1))

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(int(request.query_params.get("n", "100"))):
                yield f"chunk {i}\n".encode()
                await anyio.sleep(0.1)

        return StreamingResponse(chunks(), media_type="text/plain")

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect as exc:
            event(f"websocket closed {exc.code}")

    app = Starlette(
        routes=[
            Route("/", hello),
            Route("/slow", slow),
            Route("/background", background),
            Route("/stream", stream),
            Route("/inflight", inflight),
            Route("/budget", budget),
            WebSocketRoute("/ws", echo),
            Mount(
                "/health",
                app=ProbeApp(
                    lifecycle,
                    prestop=True,
                    prestop_token=environ.get("PRESTOP_TOKEN") or "drainable",
                ),
            ),
        ],
        lifespan=lifecycle.lifespan(),
    )
    deadline = float(environ["DEADLINE"]) if environ.get("DEADLINE") else None
    app.add_middleware(DrainMiddleware, lifecycle=lifecycle, deadline=deadline)
    return app


app = create_app(dict(os.environ))
