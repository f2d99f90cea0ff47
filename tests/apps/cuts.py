"""A service whose requests get cut short: a slow sync endpoint (its thread limiter is small,
and it reports how many of its threads run at once) and a slow stream."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse

from gracekit import DrainMiddleware, Lifecycle

#: The thread limiter's total: the most worker threads the endpoint may have.
LIMIT = 4


class Threads:
    """How many endpoint threads run now, and the most that ever ran at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = self.most = self.started = 0
        self.background_runs = 0

    def enter(self) -> None:
        with self._lock:
            self.running += 1
            self.started += 1
            self.most = max(self.most, self.running)

    def leave(self) -> None:
        with self._lock:
            self.running -= 1


def build(limit: int = LIMIT) -> tuple[FastAPI, Lifecycle, Threads]:
    """The app, its lifecycle and its thread counts."""
    lifecycle = Lifecycle()
    threads = Threads()

    @asynccontextmanager
    async def small_pool(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = limit
        yield

    app = FastAPI(lifespan=lifecycle.lifespan(small_pool))

    def ran_in_background() -> None:
        threads.background_runs += 1

    @app.get("/work")
    def work(s: float = 0.5) -> PlainTextResponse:  # a sync endpoint: a worker thread
        threads.enter()
        try:
            time.sleep(s)
        finally:
            threads.leave()
        return PlainTextResponse("done", background=BackgroundTask(ran_in_background))

    @app.get("/stream")
    async def stream(sync: bool = False) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(30):
                yield f"chunk {n}\n".encode()
                await anyio.sleep(0.05)

        def sync_chunks() -> Iterator[bytes]:  # each chunk from a worker thread
            for n in range(30):
                yield f"chunk {n}\n".encode()
                time.sleep(0.05)

        return StreamingResponse(sync_chunks() if sync else chunks(), media_type="text/plain")

    @app.get("/nap")
    async def nap(s: float = 0.5) -> PlainTextResponse:
        await anyio.sleep(s)
        return PlainTextResponse("rested")

    @app.get("/threads")
    async def counts() -> dict[str, Any]:
        statistics = anyio.to_thread.current_default_thread_limiter().statistics()
        return {
            "limit": statistics.total_tokens,
            "borrowed": statistics.borrowed_tokens,
            "running": threads.running,
            "most": threads.most,
            "sniffio": "sniffio" in sys.modules,
        }

    @app.get("/ping")
    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"pid": os.getpid()})

    app.add_middleware(DrainMiddleware, lifecycle=lifecycle, deadline=30.0)
    return app, lifecycle, threads


app, lifecycle, threads = build()
