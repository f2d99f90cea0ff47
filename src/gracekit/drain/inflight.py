"""The requests and websockets in flight, and cutting them short.

The request path is hot, so this is built on what asyncio already has: each request is the task
the server runs it in, registered in a dict for its duration, and cut short by cancelling that
task. An anyio cancel scope per request would do the same at about ten times the cost (measured:
a hello route lost ~10% of its throughput under one; see benchmarks/). The middleware catches
the cancellation it asked for and turns it into a clean response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from ..errors import GracekitError

__all__ = ["InFlight", "current_task"]

CloseWebsocket = Callable[[], Coroutine[Any, Any, None]]


def current_task() -> asyncio.Task[object]:
    """The asyncio task running the current request; a clear error on other event loops."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    if task is None:
        raise GracekitError(
            "gracekit's drain middleware runs on asyncio (uvicorn, gunicorn with uvicorn "
            "workers, hypercorn's asyncio worker); no asyncio task is running"
        )
    return task


class InFlight:
    """What the server is doing right now: HTTP requests and open websockets, by task.

    A task maps to None while it runs normally, or to the reason it is being cut short.
    """

    def __init__(self) -> None:
        self.requests: dict[asyncio.Task[object], str | None] = {}
        self.websockets: dict[asyncio.Task[object], CloseWebsocket] = {}
        self.cut_websockets: set[asyncio.Task[object]] = set()
        #: Set once the shutdown starts: responses from then on carry ``Connection: close``.
        self.closing = False
        self.cut_requests = 0  # requests cut short after their response had not started
        self.broken_responses = 0  # requests cut short in the middle of their response
        self._idle: anyio.Event | None = None

    def __len__(self) -> int:
        return len(self.requests) + len(self.websockets)

    def left(self) -> None:
        """Called when a request or websocket ends: wakes :meth:`wait_idle` at zero."""
        if self._idle is not None and not self.requests and not self.websockets:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once nothing is in flight."""
        while self.requests or self.websockets:
            self._idle = anyio.Event()
            await self._idle.wait()
        self._idle = None

    def cut(self, reason: str) -> int:
        """Cancel every request and websocket in flight, saying why; returns how many."""
        count = 0
        for task, current in list(self.requests.items()):
            if current is None:
                self.requests[task] = reason
                task.cancel(f"gracekit: {reason}")
                count += 1
        for task in list(self.websockets):
            if task not in self.cut_websockets:
                self.cut_websockets.add(task)
                task.cancel(f"gracekit: {reason}")
                count += 1
        return count

    async def close_websockets(self) -> None:
        """Send every open websocket a close frame (1001, going away), concurrently."""
        async with anyio.create_task_group() as tg:
            for close in list(self.websockets.values()):
                tg.start_soon(close)
