"""The load: an open-loop generator at a fixed rate, and what became of each request.

Open loop: request *n* is due at ``start + n / rate`` and is sent then, however many earlier
ones are still waiting, as independent clients would; latency is counted from the moment it
was due, so a stalled generator shows up as latency instead of hiding it. Each request goes to
the short or the slow path, over a pooled keep-alive connection or a fresh one, by a seeded
random draw. A pooled connection is reused oldest-idle first and only while the server has
not closed it, its last answer left it open (HTTP/1.1 without ``Connection: close``) and it has
been idle less than the keep-alive expiry, as a careful client does.

Outcomes: ``ok`` (any answer below 500), ``refused`` (the connection was refused), ``reset``
(the connection was reset or closed before a full answer), ``timeout`` (no full answer within
the request timeout), ``http_5xx`` by code, and ``error`` (anything else, such as a reply that
is not HTTP).
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass

import anyio

from . import http1
from .config import LoadSettings
from .errors import BadResponse
from .timeline import Timeline

__all__ = ["Load", "Outcome"]

_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Outcome:
    """One request: when it was due (run time, s), its latency (s), its outcome, its status
    (0 without an answer), the ``x-version`` header of the answer, and how it was sent."""

    at: float
    latency: float
    kind: str
    status: int
    version: str
    slow: bool
    keepalive: bool

    @property
    def failed(self) -> bool:
        return self.kind != "ok"


@dataclass
class _Pooled:
    connection: http1.Connection
    idle_since: float

    def usable(self, now: float, expiry: float) -> bool:
        return self.connection.reusable and now - self.idle_since < expiry


class Load:
    """Requests to 127.0.0.1:*port* under *settings*, recorded on *timeline*'s clock.

    Parameters:
        max_requests: the load never sends more than this.
    """

    def __init__(
        self, settings: LoadSettings, *, port: int, timeline: Timeline, max_requests: int
    ) -> None:
        self.settings = settings
        self.port = port
        self._timeline = timeline
        self.max_requests = max_requests
        self.outcomes: list[Outcome] = []
        self.sent = 0
        self.started: float | None = None
        self.stopped: float | None = None
        self._pool: deque[_Pooled] = deque()
        self._stop = anyio.Event()
        self._rng = random.Random(settings.seed)

    def stop(self) -> None:
        """Send no more requests; :meth:`run` returns once those in flight are done."""
        self._stop.set()

    async def run(self) -> None:
        """Send requests at the rate until :meth:`stop` or the bound, then wait for the
        answers (each bounded by the request timeout)."""
        settings = self.settings
        start = time.monotonic()
        self.started = self._timeline.now()
        try:
            async with anyio.create_task_group() as tg:
                while not self._stop.is_set() and self.sent < self.max_requests:
                    due = start + self.sent / settings.rate
                    wait = due - time.monotonic()
                    if wait > 0:
                        with anyio.move_on_after(wait):
                            await self._stop.wait()
                        if self._stop.is_set():
                            break
                    slow = self._rng.random() < settings.slow_share
                    keepalive = self._rng.random() < settings.keepalive_share
                    tg.start_soon(self._request, due, slow, keepalive)
                    self.sent += 1
                self.stopped = self._timeline.now()
        finally:
            while self._pool:
                self._pool.popleft().connection.close()

    async def _request(self, due: float, slow: bool, keepalive: bool) -> None:
        settings = self.settings
        path = settings.slow_path if slow else settings.path
        kind, status, version = "timeout", 0, ""
        connection: http1.Connection | None = None
        with anyio.move_on_after(due + settings.request_timeout - time.monotonic()):
            try:
                connection = self._pooled() if keepalive else None
                if connection is None:
                    connection = await http1.Connection.open(_HOST, self.port)
                response = await connection.request(
                    path, host=f"{_HOST}:{self.port}", close=not keepalive
                )
            except ConnectionRefusedError:
                kind = "refused"
            except (ConnectionError, EOFError):
                kind = "reset"  # ConnectionResetError, BrokenPipeError, IncompleteReadError
            except (OSError, BadResponse):
                kind = "error"
            else:
                status, version = response.status, response.header("x-version")
                kind = "ok" if status < 500 else f"http_{status}"
                if keepalive and connection.reusable:
                    self._pool.append(_Pooled(connection, idle_since=time.monotonic()))
                    connection = None
        if connection is not None:
            connection.close()
        self.outcomes.append(
            Outcome(
                at=round(due - self._timeline.origin, 4),
                latency=time.monotonic() - due,
                kind=kind,
                status=status,
                version=version,
                slow=slow,
                keepalive=keepalive,
            )
        )

    def _pooled(self) -> http1.Connection | None:
        now = time.monotonic()
        while self._pool:
            pooled = self._pool.popleft()
            if pooled.usable(now, self.settings.keepalive_expiry):
                return pooled.connection
            pooled.connection.close()
        return None
