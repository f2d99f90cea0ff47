"""The time budget of one request: where its deadline comes from, and what is left of it.

A request's deadline is the earliest of three bounds, all absolute times on the event loop's
clock (``anyio.current_time()``): its route's deadline counted from its arrival, the budget its
caller sent in a header, and the drain deadline once the shutdown reaches the drain. One
:class:`RequestDeadline` per request holds them; the drain middleware creates it, the timers
cancel the request when its deadline passes, and code anywhere inside the request reads it
through :func:`current`, :func:`remaining` and :func:`timeout`.
"""

from __future__ import annotations

import asyncio
import enum
import math
import sys
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from starlette.types import Send

    from ._routes import RouteInfo, RouteTable

__all__ = ["DRAIN", "EXPIRED", "CutReason", "RequestDeadline"]


class CutReason(str, enum.Enum):
    """Why a request (or a websocket, or tracked work) was cut short."""

    #: Its own deadline passed: answered 504.
    EXPIRED = "deadline"
    #: The drain deadline passed: answered 503 with ``Retry-After``.
    DRAIN = "drain"
    #: The shutdown was forced (a second SIGINT).
    FORCED = "forced shutdown"
    #: What was still running at the drain deadline: websockets, tracked work.
    DRAIN_DEADLINE = "drain deadline"

    def __str__(self) -> str:
        return self.value  # in messages and cancellation texts, as the plain strings were


EXPIRED = CutReason.EXPIRED
DRAIN = CutReason.DRAIN

_INF = math.inf
_ENDED: dict[str, Any] = {}  # the scope of every request that is over (never written to)


class Owner(Protocol):
    """What serves a request (the drain middleware), as its deadline needs it."""

    def hold(self, deadline: RequestDeadline) -> bool:
        """At the cut: True if the request was answered in its place instead of cancelled
        (a worker thread works for it, and cannot be interrupted)."""


class RequestDeadline:
    """The deadline of one request in flight.

    Attributes:
        started: when the request arrived, on the event loop's clock.
        inbound: the budget (seconds) the caller sent in a header, or None.
        drain_at: the drain deadline, once the drain has started.
        cut: None while the request runs; why it was cut short once it was
            (:data:`EXPIRED` or :data:`DRAIN`, or another reason of the drain).
        held: the task answering in the request's place, when it was cut while a worker
            thread worked for it: the request keeps its own task, and with it its slot in the
            thread limiter, until the thread returns.
    """

    __slots__ = (
        "_route",
        "_table",
        "answered",
        "answered_at",
        "cancels",
        "completed",
        "cut",
        "drain_at",
        "ended",
        "held",
        "inbound",
        "owner",
        "response_started",
        "scope",
        "send",
        "started",
        "task",
        "timer",
    )

    def __init__(
        self,
        task: asyncio.Task[object],
        scope: MutableMapping[str, Any],
        started: float,
        inbound: float | None,
        drain_at: float | None,
        table: RouteTable,
        *,
        owner: Owner | None = None,
        send: Send | None = None,
    ) -> None:
        self.task = task
        self.scope = scope
        self.started = started
        self.inbound = inbound
        self.drain_at = drain_at
        self.cut: CutReason | None = None
        #: The event-loop timer that cuts the request at its deadline (see timers.py).
        self.timer: asyncio.TimerHandle | None = None
        #: The response has been sent whole: work after it (background tasks) is not bound by
        #: the request's deadline any more, only by the drain.
        self.completed = False
        #: The request is over: :func:`current` no longer returns this deadline.
        self.ended = False
        #: How many cancellations gracekit asked of the task (each must be taken back).
        self.cancels = 0
        #: What serves the request, and the server's send: to answer in the request's place.
        self.owner = owner
        self.send = send
        self.response_started = False
        self.held: asyncio.Task[None] | None = None
        #: The status answered in the request's place (None: nothing could be sent).
        self.answered: int | None = None
        self.answered_at: float | None = None
        self._table = table
        self._route: RouteInfo | None = None

    # -- where the deadline comes from -----------------------------------------------------

    @property
    def route(self) -> RouteInfo:
        """The route the request was matched to, with its deadline (the default while the
        router has not matched it yet, or when nothing matched)."""
        info = self._route
        if info is None:
            info = self._table.resolve(self.scope)
            if info.routed:
                self._route = info  # matched once, matched for good
        return info

    @property
    def routed(self) -> bool:
        """True once the router has matched the request to a route."""
        return self.route.routed

    def may_tighten(self) -> bool:
        """True while routing may still give the request an earlier deadline: it has not
        been matched yet, and some route's deadline is shorter than the one it has now."""
        if self.routed:
            return False
        at = self.at
        return self._table.shortest < (math.inf if at is None else at - self.started)

    def _own(self) -> float:
        """The request's own deadline (route and caller), without the drain's."""
        info = self.route
        if info.exempt:
            return _INF
        own = _INF if info.budget is None else self.started + info.budget
        if self.inbound is not None:
            own = min(own, self.started + self.inbound)
        return own

    @property
    def at(self) -> float | None:
        """The absolute deadline on ``anyio.current_time()``, or None if there is none."""
        at = self._own()
        if self.drain_at is not None and not self.route.exempt:
            at = min(at, self.drain_at)
        return None if at == _INF else at

    @property
    def source(self) -> str | None:
        """Which bound sets the deadline: ``"route"``, ``"inbound"`` (the caller's header),
        ``"drain"``, or None when there is no deadline."""
        if self.at is None:
            return None
        if self.expiry_reason() == DRAIN:
            return DRAIN
        budget = self.route.budget
        if self.inbound is not None and (budget is None or self.inbound < budget):
            return "inbound"
        return "route"

    @property
    def budget(self) -> float | None:
        """The whole budget in seconds, from arrival to the deadline, or None."""
        at = self.at
        return None if at is None else at - self.started

    def expiry_reason(self) -> CutReason:
        """Why the request is cut when its deadline passes: the drain's, or its own."""
        if self.drain_at is not None and self.drain_at <= self._own():
            return DRAIN
        return EXPIRED

    # -- what is left ----------------------------------------------------------------------

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds left until the deadline (0 once it has passed), or None if there is none."""
        at = self.at
        if at is None:
            return None
        # The loop's clock is time.monotonic() (uvloop's is libuv's, in milliseconds, cached
        # per loop iteration: the same clock, a little behind); readable from threads too.
        return max(0.0, at - (time.monotonic() if now is None else now))

    def disarm(self) -> None:
        """Drop the request's own timer, if it has one."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def cancel(self, reason: CutReason) -> None:
        """Cut the request short: cancel its task, saying why; or, while a worker thread works
        for it, have it answered in its place (see :attr:`held`)."""
        if self.held is not None:
            return  # answered already; it ends when its thread returns
        self.cut = reason
        if self.owner is not None and self.owner.hold(self):
            return
        self.cancels += 1
        self.task.cancel(f"gracekit: {reason}")

    def stop(self) -> None:
        """End a request that was answered in its place once its thread has returned (it
        tries to answer again): cancel its task now."""
        if not self.cancels:
            self.cancels += 1
            self.task.cancel(f"gracekit: {self.cut}")

    def take_back(self) -> bool:
        """Take back the cancellations gracekit asked for; True if others are pending."""
        cancels, self.cancels = self.cancels, 0
        if sys.version_info < (3, 11):  # pragma: no cover - 3.10 counts no cancellations
            return False
        for _ in range(cancels):
            self.task.uncancel()
        return self.task.cancelling() > 0

    def end(self) -> None:
        """The request is over: let go of its scope (the context of work it spawned may
        outlive it, and would keep the scope alive); :func:`current` no longer returns it."""
        self.ended = True
        self.scope = _ENDED

    def __repr__(self) -> str:
        at = self.at
        left = "none" if at is None else f"{max(0.0, at - time.monotonic()):.3f} s left"
        return f"<RequestDeadline route={self.route.template!r} {left} source={self.source}>"
