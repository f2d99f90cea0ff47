"""Cutting requests short when their deadline passes, with as few event-loop timers as can be.

Most requests finish long before their deadline. Giving each its own ``loop.call_at`` timer would
cost about 1.3 us per request (measured), a few percent of a small route's throughput; an anyio
cancel scope with a deadline, about 5.7 us. So a request gets no timer of its own when it arrives:
one shared *sweep* timer is armed at the earliest deadline any request in flight can have. When
it fires, the requests whose deadline has passed are cut, and each request still running gets a
timer of its own. Under steady load a sweep runs about once per deadline period and finds only
the few requests in flight at that instant, so the per-request cost is a comparison.

Cutting a request means cancelling the asyncio task that runs it, as the drain does; the drain
middleware catches the cancellation it asked for and answers 504 (or 503 for the drain).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping

from ._budget import RequestDeadline

__all__ = ["DeadlineTimers"]

#: How often a request that has not reached the router yet is looked at again, in seconds,
#: when some route's deadline is shorter than the default (it may turn out to be that route).
UNROUTED_RECHECK = 0.05


class DeadlineTimers:
    """The timers of the requests in flight.

    Parameters:
        requests: the requests in flight, by task (owned by :class:`~gracekit.drain.InFlight`).
    """

    def __init__(self, requests: Mapping[asyncio.Task[object], RequestDeadline]) -> None:
        self._requests = requests
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = math.inf
        #: The drain deadline, once the drain has started: every request's deadline is capped
        #: by it, those in flight and those still to come.
        self.drain_at: float | None = None

    def reset(self) -> None:
        """Forget the drain deadline and the sweep (a lifecycle that runs again, maybe on
        another event loop)."""
        self.drain_at = None
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep, self._sweep_at, self._loop = None, math.inf, None

    def watch(
        self, deadline: RequestDeadline, bound: float, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Make sure *deadline* is looked at by *bound*, the earliest its deadline can be."""
        # A sweep armed on another loop (a test suite's earlier one) will never fire here.
        if bound < self._sweep_at or loop is not self._loop:
            if self._sweep is not None:
                self._sweep.cancel()
            self._loop = loop
            self._sweep_at = bound
            self._sweep = loop.call_at(bound, self._on_sweep)

    def clamp(self, drain_at: float) -> None:
        """The drain has started: cut every request at *drain_at* at the latest."""
        self.drain_at = drain_at
        for deadline in list(self._requests.values()):
            if deadline.cut is not None or deadline.completed:
                continue
            deadline.drain_at = drain_at
            deadline.disarm()
            self._arm(deadline, deadline.task.get_loop())

    # -- timers ------------------------------------------------------------------------------

    def _on_sweep(self) -> None:
        loop, self._sweep, self._sweep_at = self._loop, None, math.inf
        if loop is None:  # pragma: no cover - a sweep is only armed with its loop
            return
        for deadline in list(self._requests.values()):
            if deadline.timer is None and deadline.cut is None and not deadline.completed:
                self._arm(deadline, loop)

    def _on_timer(self, deadline: RequestDeadline) -> None:
        deadline.timer = None
        if deadline.cut is None and not deadline.completed and deadline.task in self._requests:
            self._arm(deadline, deadline.task.get_loop())

    def _arm(self, deadline: RequestDeadline, loop: asyncio.AbstractEventLoop) -> None:
        """Cut *deadline*'s request if its deadline has passed, else give it a timer."""
        at = deadline.at
        now = loop.time()
        if at is not None and at <= now:
            deadline.cancel(deadline.expiry_reason())
            return
        if deadline.may_tighten():
            # Not matched to a route yet: a route with a shorter deadline may still claim it.
            at = now + UNROUTED_RECHECK if at is None else min(at, now + UNROUTED_RECHECK)
        if at is not None:
            deadline.timer = loop.call_at(at, self._on_timer, deadline)
