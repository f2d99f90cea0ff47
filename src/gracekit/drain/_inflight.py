"""The requests and websockets in flight, and cutting them short.

The request path is hot, so this is built on what asyncio already has: each request is the task
the server runs it in, registered in a dict for its duration with its deadline, and cut short by
cancelling that task. An anyio cancel scope per request would do the same at about ten times the
cost (measured: a hello route lost ~10% of its throughput under one; see benchmarks/). The
middleware catches the cancellation it asked for and turns it into a clean response. The same
mechanism serves a request's own deadline and the drain deadline (see gracekit.deadlines).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from ..deadlines._budget import EXPIRED, CutReason, RequestDeadline
from ..deadlines._timers import DeadlineTimers
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
    """What the server is doing right now: HTTP requests (with their deadlines) and open
    websockets, by task."""

    def __init__(self) -> None:
        self.requests: dict[asyncio.Task[object], RequestDeadline] = {}
        self.timers = DeadlineTimers(self.requests)
        self.websockets: dict[asyncio.Task[object], CloseWebsocket] = {}
        self.cut_websockets: set[asyncio.Task[object]] = set()
        #: Set once the shutdown starts: responses from then on carry ``Connection: close``.
        self.closing = False
        self.cut_requests = 0  # cut by the drain before their response started (503)
        self.broken_responses = 0  # cut by the drain in the middle of their response
        self.expired = 0  # past their own deadline before their response started (504)
        self.expired_responses = 0  # past their own deadline in the middle of their response
        self._idle: anyio.Event | None = None

    def reset(self) -> None:
        """Forget the previous run's shutdown and its counts."""
        self.closing = False
        self.cut_requests = self.broken_responses = self.expired = self.expired_responses = 0
        self.timers.reset()

    def __len__(self) -> int:
        """The application's requests and websockets in flight: gracekit's own endpoints
        (probes, metrics, the preStop hook waiting out the delay) are not counted."""
        # tuple(): one copy the GIL keeps whole, so another thread (prometheus_client's own
        # server, collecting) counts while requests start and end on the loop.
        requests = tuple(self.requests.values())
        return sum(not d.route.exempt for d in requests) + len(self.websockets)

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

    def cut(self, reason: CutReason) -> int:
        """Cancel every request and websocket in flight, saying why; returns how many."""
        count = 0
        for deadline in list(self.requests.values()):
            # A request past its own deadline that is still here swallowed that cancellation:
            # this one it gets. gracekit's own endpoints are never cut (the probes answer at
            # once; the preStop hook has answered by now).
            if (deadline.cut is None or deadline.cut == EXPIRED) and not deadline.route.exempt:
                deadline.cancel(reason)
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
