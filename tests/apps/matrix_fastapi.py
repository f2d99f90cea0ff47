"""The README's FastAPI service, as the conformance matrix (tests/test_matrix.py) runs it: the
lifecycle's lifespan around the app's own, the probes (and the preStop hook) mounted at /health,
the metrics at /metrics, DrainMiddleware with a default deadline, ``@deadline`` and
``route_deadlines`` on routes. WIRING=install wires it with ``gracekit.install()``, before its
routes are added (as the README does); otherwise each piece is wired by hand. The lifecycle is
in matrix_lifecycle.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from matrix_lifecycle import DEADLINE, PRESTOP_TOKEN, WIRING, lifecycle, metrics

import gracekit
from gracekit import DrainMiddleware, ProbeApp, deadline
from gracekit.metrics import MetricsApp


@asynccontextmanager
async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The application's own startup and shutdown; gracekit runs inside it.
    app.state.greeting = "hello"
    yield


probes = ProbeApp(lifecycle, prestop=True, prestop_token=PRESTOP_TOKEN)
if WIRING == "install":
    app = FastAPI(lifespan=app_lifespan)
    gracekit.install(
        app, lifecycle, probe_app=probes, deadline=DEADLINE, route_deadlines={"/stream": None}
    )
else:
    app = FastAPI(lifespan=lifecycle.lifespan(app_lifespan))
    app.mount("/health", probes)
    app.add_route("/metrics", MetricsApp(metrics))
    app.add_middleware(
        DrainMiddleware, lifecycle=lifecycle, deadline=DEADLINE, route_deadlines={"/stream": None}
    )


@app.get("/")
async def index() -> dict[str, str]:
    return {"greeting": app.state.greeting}


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}


@app.get("/slow")
@deadline(30)
async def slow(ms: int = 100) -> dict[str, int]:
    await anyio.sleep(ms / 1000)
    return {"slept_ms": ms}


@app.get("/hang")
@deadline(0.5)
async def hang() -> dict[str, str]:
    await anyio.sleep(30)
    return {"never": "reached"}


@app.get("/stream")
async def stream(n: int = 10) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"chunk {i}\n".encode()
            await anyio.sleep(0.1)

    return StreamingResponse(chunks(), media_type="text/plain")


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass
