"""Tracked background work: what the drain waits for besides the requests, and cancels at the
drain deadline (``lifecycle.track()``, ``lifecycle.spawn()``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio

from ..deadlines._context import forget

__all__ = ["TrackedWork"]

logger = logging.getLogger("gracekit")


class TrackedWork:
    """The background work in flight, each piece in a cancel scope of its own."""

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._idle: anyio.Event | None = None

    def __len__(self) -> int:
        return len(self._scopes)

    @asynccontextmanager
    async def track(self) -> AsyncIterator[anyio.CancelScope]:
        """Count the body as tracked work until it ends."""
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)
                if not self._scopes and self._idle is not None:
                    self._idle.set()

    async def run(
        self, func: Callable[..., Awaitable[Any]], args: Sequence[Any], name: str | None
    ) -> None:
        """Run ``func(*args)`` as tracked work; its errors are logged."""
        forget()  # background work does not inherit the deadline of the request it came from
        async with self.track():
            try:
                await func(*args)
            except Exception:
                logger.exception("background task %s failed", name or func)

    def cancel(self) -> int:
        """Cancel the work not cancelled yet; how many pieces that was."""
        fresh = [scope for scope in self._scopes if not scope.cancel_called]
        for scope in fresh:
            scope.cancel()
        return len(fresh)

    async def wait_idle(self) -> None:
        """Return once no tracked work is left."""
        while self._scopes:
            self._idle = anyio.Event()
            await self._idle.wait()
        self._idle = None
