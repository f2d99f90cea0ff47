"""The matrix's Starlette service (tests/test_matrix.py): the FastAPI one's routes, wired as the
docs wire a Starlette app (a route list, ``Mount("/health", app=ProbeApp(...))``,
``Route("/metrics", MetricsApp(...))``, ``lifespan=lifecycle.lifespan(...)``, then
``app.add_middleware(DrainMiddleware, ...)``), or with WIRING=install by ``gracekit.install()``
once the app with its routes and its own lifespan is built. The lifecycle is in
matrix_lifecycle.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from matrix_lifecycle import DEADLINE, PRESTOP_TOKEN, WIRING, lifecycle, metrics
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import gracekit
from gracekit import DrainMiddleware, ProbeApp, deadline
from gracekit.metrics import MetricsApp


@asynccontextmanager
async def app_lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.greeting = "hello"
    yield


async def index(request: Request) -> JSONResponse:
    return JSONResponse({"greeting": request.app.state.greeting})


async def item(request: Request) -> JSONResponse:
    return JSONResponse({"item_id": request.path_params["item_id"]})


@deadline(30)
async def slow(request: Request) -> JSONResponse:
    ms = int(request.query_params.get("ms", "100"))
    await anyio.sleep(ms / 1000)
    return JSONResponse({"slept_ms": ms})


@deadline(0.5)
async def hang(request: Request) -> JSONResponse:
    await anyio.sleep(30)
    return JSONResponse({"never": "reached"})


async def stream(request: Request) -> StreamingResponse:
    count = int(request.query_params.get("n", "10"))

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(count):
            yield f"chunk {i}\n".encode()
            await anyio.sleep(0.1)

    return StreamingResponse(chunks(), media_type="text/plain")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        async for text in websocket.iter_text():
            await websocket.send_text(text)
    except WebSocketDisconnect:
        pass


routes = [
    Route("/", index),
    Route("/items/{item_id:int}", item),
    Route("/slow", slow),
    Route("/hang", hang),
    Route("/stream", stream),
    WebSocketRoute("/ws", echo),
]
probes = ProbeApp(lifecycle, prestop=True, prestop_token=PRESTOP_TOKEN)
if WIRING == "install":
    app = Starlette(routes=routes, lifespan=app_lifespan)
    gracekit.install(
        app, lifecycle, probe_app=probes, deadline=DEADLINE, route_deadlines={"/stream": None}
    )
else:
    app = Starlette(
        routes=[*routes, Route("/metrics", MetricsApp(metrics)), Mount("/health", app=probes)],
        lifespan=lifecycle.lifespan(app_lifespan),
    )
    app.add_middleware(
        DrainMiddleware, lifecycle=lifecycle, deadline=DEADLINE, route_deadlines={"/stream": None}
    )
