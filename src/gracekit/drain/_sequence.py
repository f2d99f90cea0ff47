"""The termination sequence: stop being ready, keep serving for the delay, stop accepting,
drain, run the shutdown hooks, and report how it went.

``LIFECYCLE.md`` is the contract: readiness fails at once, new requests are still served for
``delay`` seconds (with ``Connection: close``), then the server stops accepting and in-flight
work gets ``drain_timeout`` seconds before it is cut short cleanly; hooks run last, each bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import anyio
import anyio.abc

from ..deadlines._budget import CutReason
from ..errors import LifecycleError
from ..events._bus import EventBus
from ._hooks import FORCED_HOOK_TIMEOUT, run_hooks
from ._inflight import InFlight
from ._report import EXIT_DRAIN_TIMEOUT, EXIT_HOOK_FAILED, EXIT_OK, ShutdownHook, ShutdownReport
from ._tracked import TrackedWork
from .timing import ShutdownTiming

__all__ = [
    "EXIT_DRAIN_TIMEOUT",
    "EXIT_HOOK_FAILED",
    "EXIT_OK",
    "FORCED_HOOK_TIMEOUT",
    "ServerControl",
    "ShutdownHook",
    "ShutdownReport",
    "Termination",
]

logger = logging.getLogger("gracekit")

#: How long cut-short work gets to send its clean answers (503s, close frames).
_CUT_GRACE = 1.0


class ServerControl(Protocol):
    """What the termination sequence needs from the server it runs in."""

    def stop_accepting(self) -> None:
        """Close the listening sockets and let open connections finish."""

    def force_exit(self) -> None:
        """Stop waiting for anything and exit as soon as possible."""


class _Events:
    """The sequence's milestones; anyio events belong to an event loop, so they are made there."""

    def __init__(self) -> None:
        self.requested = anyio.Event()
        self.forced = anyio.Event()
        self.drain_started = anyio.Event()
        self.drained = anyio.Event()


class Termination:
    """Runs the termination sequence of one lifecycle."""

    def __init__(
        self,
        timing: ShutdownTiming,
        inflight: InFlight,
        events: EventBus,
        *,
        on_draining: Callable[[], None],
        ever_ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.timing = self._configured = timing
        self.inflight = inflight
        self.events = events
        self.report = ShutdownReport()
        self.hooks: list[ShutdownHook] = []
        self.server: ServerControl | None = None
        self._on_draining = on_draining
        self._ever_ready = ever_ready
        self._delay = timing.delay
        #: Background work the drain waits for (:meth:`track`, :meth:`spawn`).
        self.tracked = TrackedWork()
        self._group: anyio.abc.TaskGroup | None = None
        self._events: _Events | None = None  # created on the event loop, by start()

    def reset(self) -> None:
        """Forget the previous run's shutdown (a lifecycle can run again, as in test suites)."""
        self.report = ShutdownReport()
        self.timing = self._configured
        self._delay = self.timing.delay
        self.server = None
        self._events = None
        self._group = None
        self.inflight.reset()
        for hook in self.hooks:
            hook.ran = False

    def use_timing(self, timing: ShutdownTiming) -> None:
        """Run this time with *timing* (before the shutdown starts)."""
        self.timing = timing
        if not self.requested:
            self._delay = timing.delay

    def skip_delay(self) -> None:
        """No shutdown delay for this run (reload mode, where no proxy needs one)."""
        self._delay = 0.0

    def attach(
        self, control: ServerControl, *, reload: bool = False, timing: ShutdownTiming | None
    ) -> None:
        """Stop *control*'s server when the delay is over; *timing*, when given, replaces the
        configured timings for this run; *reload* drops the delay."""
        self.server = control
        if timing is not None and timing != self._configured:
            logger.info("shutdown timing from the environment: %r", timing)
            self.use_timing(timing)
        if reload and self.timing.delay:
            logger.info("reload mode: no shutdown delay")
            self.skip_delay()

    def add_hook(self, hook: ShutdownHook) -> None:
        """Run *hook* at shutdown, after the drain (the hooks run in reverse order)."""
        if any(other.name == hook.name for other in self.hooks):
            raise ValueError(f"a shutdown hook named {hook.name!r} is already registered")
        self.hooks.append(hook)

    # -- control (called on the event loop) ------------------------------------------------

    @property
    def requested(self) -> bool:
        return self.report.source is not None

    def request(self, source: str, *, delay: float | None = None) -> bool:
        """Start the sequence; False if it had started already (the request is ignored)."""
        if self.requested:
            logger.debug("shutdown already under way; %s ignored", source)
            return False
        self.report.source = source
        self.report.started_at = time.monotonic()
        ever_ready = self._ever_ready()
        if delay is not None:
            self._delay = delay
        elif not ever_ready:
            # The delay lets proxies stop routing to the pod; none routes to a pod that has
            # never been ready (a shutdown during startup).
            self._delay = 0.0
        self.inflight.closing = True
        self._on_draining()
        self.events.emit(
            "draining",
            logging.INFO,
            "shutdown started by %s%s: not ready; serving for %.3g s more, then draining",
            source,
            "" if ever_ready else " before the pod was ever ready",
            self._delay,
            source=source,
            delay_s=self._delay,
            ever_ready=ever_ready,
        )
        if self._events is not None:
            self._events.requested.set()
        return True

    def on_signal(self, name: str, *, interrupt: bool) -> None:
        """A termination signal: SIGTERM starts the sequence (a repeated one is ignored); an
        interrupt (SIGINT) starts it without the delay, and a second one forces it."""
        if not interrupt:
            self.request(name)
        elif self.requested:
            self.force(name)
        else:
            self.request(name, delay=0)

    def force(self, source: str) -> None:
        """Hurry: skip the rest of the delay, cut what is in flight, bound the hooks tightly."""
        self.request(source, delay=0)
        if self.report.forced:
            if self.server is not None:
                self.server.force_exit()
            return
        self.report.forced = True
        self.events.emit("forced", logging.WARNING, "shutdown forced by %s", source, source=source)
        if self._events is not None:
            self._events.forced.set()

    async def wait_drain_started(self) -> None:
        """Return once the delay is over and the server stops accepting (at once for a
        shutdown that came before the lifecycle ran: during the application's startup)."""
        if self._events is None:
            if self.requested:
                return
            raise LifecycleError("the lifecycle is not running")
        await self._events.drain_started.wait()

    # -- tracked background work -----------------------------------------------------------

    def track(self) -> AbstractAsyncContextManager[anyio.CancelScope]:
        """Make the body count as background work the drain waits for (and cancels at the
        drain deadline)."""
        return self.tracked.track()

    def spawn(self, func: Callable[..., Awaitable[Any]], *args: Any, name: str | None) -> None:
        if self._group is None or self._events is None or self._events.drained.is_set():
            raise LifecycleError("background work can only start while the lifecycle runs")
        self._group.start_soon(self.tracked.run, func, args, name, name=name)

    # -- the sequence ----------------------------------------------------------------------

    def start(self, group: anyio.abc.TaskGroup) -> None:
        """Prepare the loop-bound state and start waiting for a shutdown request."""
        self._group = group
        self._events = events = _Events()
        if self.requested:
            events.requested.set()
        group.start_soon(self._run, events, name="gracekit shutdown sequence")

    async def _run(self, events: _Events) -> None:
        await events.requested.wait()
        started = self.report.started_at or time.monotonic()
        with anyio.move_on_after(max(0.0, started + self._delay - time.monotonic())):
            await events.forced.wait()
        with anyio.move_on_after(_CUT_GRACE):
            await self.inflight.close_websockets()
        if self.server is not None:
            self.server.stop_accepting()
        events.drain_started.set()
        self.events.emit(
            "drain",
            logging.INFO,
            "draining %d in flight, %d background",
            len(self.inflight),
            len(self.tracked),
            background=len(self.tracked),
            elapsed_s=round(time.monotonic() - started, 3),
        )
        timeout = 0.0 if self.report.forced else self.timing.drain_timeout
        if self.report.forced:
            self._cut(CutReason.FORCED)  # before the clamp, which would say "drain"
        drain_at = anyio.current_time() + timeout
        # One deadline mechanism: the drain deadline caps every request's own, so a request
        # still running then is cut by its own timer and answered 503 in time, and handlers see
        # the shorter budget in gracekit.deadlines.remaining() from now on.
        self.inflight.timers.clamp(drain_at)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._cut_when_forced, events)
            with anyio.CancelScope(deadline=drain_at) as deadline:
                await self._wait_idle()
            tg.cancel_scope.cancel()
        if deadline.cancelled_caught:
            self._cut(CutReason.DRAIN_DEADLINE)  # websockets and background work; requests are cut
            with anyio.move_on_after(_CUT_GRACE):
                await self._wait_idle()
        report = self.report
        report.cut_requests = self.inflight.cut_requests
        report.broken_responses = self.inflight.broken_responses
        if report.cut_requests or report.broken_responses:
            report.drain_timed_out = True
        drain_s = anyio.current_time() - (drain_at - timeout)
        report._emit_drained(self.events, elapsed=time.monotonic() - started, drain_s=drain_s)
        events.drained.set()

    async def _cut_when_forced(self, events: _Events) -> None:
        await events.forced.wait()
        self._cut(CutReason.FORCED)

    def _cut(self, reason: CutReason) -> None:
        cut = self.inflight.cut(reason)
        if cut or self.tracked:
            self.report.drain_timed_out = True
        self.report.cancelled_tasks += self.tracked.cancel()

    async def _wait_idle(self) -> None:
        await self.inflight.wait_idle()
        await self.tracked.wait_idle()

    async def finish(self) -> None:
        """At lifespan shutdown: make sure the drain ran, then run the hooks (once each)."""
        self.request("lifespan", delay=0)  # the server stopped on its own: no delay left
        if self._events is not None:
            await self._events.drained.wait()
        forced = self.report.forced
        hurry = self._events.forced if self._events is not None else anyio.Event()
        failed = await run_hooks(self.hooks, self.timing, self.events, forced=forced, hurry=hurry)
        self.report.failed_hooks.extend(failed)
