"""What runs while a lifecycle runs, in order: the signals taken over, the management port,
the application's own startup, the background work (checks, loop monitor, startup tasks,
readiness events), and at the end the termination sequence's last steps and the ``stopped``
event.

:class:`Runner` drives :meth:`Lifecycle.run` and :meth:`Lifecycle.lifespan`. It is given what it
drives explicitly, and the lifecycle itself only as the small :class:`Host` protocol that the
signal takeover, the management port and the tracing read.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager
from typing import Any, Protocol

import anyio

from ._settings import Settings
from .drain._answers import quiet_broken_off
from .drain._inflight import InFlight
from .drain._sequence import Termination
from .drain.timing import ShutdownTiming
from .events import otel
from .events._bus import EventBus
from .events.otel import Traced
from .phases import Phase, PhaseState
from .probes._looplag import LoopMonitor
from .probes._registry import Registry
from .probes._runner import CheckState
from .probes._transitions import ReadinessWatcher, check_flipped
from .server._lifespan import AppStartup, ManagedPort
from .server._signals import SignalTakeover, SignalTarget

__all__ = ["LISTENER_FLUSH", "Host", "Runner"]

logger = logging.getLogger("gracekit")

#: How long the last events' async listeners may run once the lifecycle has stopped.
LISTENER_FLUSH = 1.0


class Host(ManagedPort, SignalTarget, Traced, Protocol):
    """What the runner serves and hands the signals to (a :class:`~gracekit.Lifecycle`)."""


class Runner:
    """Composes one lifecycle's parts, and runs its background work while it runs.

    It creates the phase state, the registry, the event bus, the termination sequence and the
    readiness watcher, each given what it reads explicitly; *host* (the lifecycle) is what the
    signals, the management port and the tracing are handed.
    """

    def __init__(
        self,
        host: Host,
        *,
        timing: ShutdownTiming,
        inflight: InFlight,
        loop_monitor: LoopMonitor,
        rng: random.Random,
        ready_jitter: float,
    ) -> None:
        self._host = host
        self.state = state = PhaseState()
        self.registry = Registry(state, on_change=self.nudge)
        self.events = EventBus(phase=lambda: state.phase.value, in_flight=inflight.__len__)
        self.termination = Termination(
            timing,
            inflight,
            self.events,
            on_draining=self.begin_draining,
            ever_ready=lambda: state.ever_ready,
        )
        self._readiness = ReadinessWatcher(
            readiness=host.readiness,
            events=self.events,
            draining=lambda: state.draining,
            ready_at=lambda: state.ready_at,
        )
        self._loop_monitor = loop_monitor
        self._rng = rng
        self._ready_jitter = ready_jitter
        #: Run in the background for the whole of every run, cancelled when it stops.
        self.daemons: list[Callable[[], Awaitable[object]]] = []
        self._started_at: float | None = None
        #: SIGTERM and SIGINT are the lifecycle's in its blocks (the lifespan's, or the run's).
        self.signals = SignalTakeover(host)
        #: The application's own lifespan startup, which a shutdown cancels.
        self.app_startup = AppStartup()

    def mark_broken(self, reason: str) -> None:
        """Declare the process unable to recover (liveness fails), once, with an event."""
        if not isinstance(reason, str) or not reason:
            raise ValueError("mark_broken() needs a non-empty reason")
        if self.state.mark_broken(reason):
            self.events.emit("broken", logging.ERROR, "marked broken: %s", reason, reason=reason)
            self.nudge()

    def begin_draining(self) -> None:
        """Enter DRAINING (readiness fails); the termination sequence calls it first."""
        if self.state.begin_draining():
            self.app_startup.cancel()  # nothing to serve, nothing to wait for
            self.nudge()

    def nudge(self) -> None:
        """Readiness may have changed (a gate, a phase, a broken process): look again."""
        self._readiness.nudge()

    def add_daemon(self, func: Callable[[], Awaitable[object]]) -> None:
        if not callable(func):
            raise TypeError(f"add_daemon() takes an async function, not {type(func).__name__}")
        self.state.ensure_not_running("add a daemon")
        self.daemons.append(func)

    def prepare(self) -> None:
        """Ready a run: refused while one runs; after a finished one, start from scratch."""
        self.state.ensure_not_running("start the lifecycle")
        if self.state.phase is Phase.STOPPED:
            # Run again, as test suites do with one app: start from scratch.
            self.registry.reset()
            self.state.reset()
            self.termination.reset()
        self._trace_events()

    @asynccontextmanager
    async def run(self, *, handle_signals: bool) -> AsyncIterator[None]:
        """Run the background work for the body's duration."""
        self.prepare()
        self.state.running = True
        # The task group is entered and left by hand, not around the yield: an exception from
        # the body must reach the caller as itself, not wrapped in an ExceptionGroup.
        tg = anyio.create_task_group()
        await tg.__aenter__()
        while_running = ExitStack()  # what is the lifecycle's only while it runs
        try:
            self._started_at = time.monotonic()
            self._trace_events()
            self.events.bind(tg)
            tg.start_soon(self._loop_monitor.run)
            self.registry.start_checks(tg, self._rng, self._check_flipped)
            tg.start_soon(self._start)
            tg.start_soon(self._readiness.run)
            for daemon in self.daemons:
                tg.start_soon(self._run_daemon, daemon)
            self.state.draining_event = anyio.Event()
            self.termination.start(tg)
            while_running.enter_context(self.signals(handle_signals))  # unless the lifespan has
            while_running.enter_context(quiet_broken_off())
            self._warn_if_grace_period_short()
            yield
        finally:
            try:
                await self.termination.finish()
            finally:
                # The signals stay ours until the hooks are done: a repeated SIGTERM during
                # them must not reach the server (uvicorn would re-raise it at exit: 143).
                while_running.close()
                self.state.phase = Phase.STOPPED
                self.state.running = False
                try:
                    self._emit_stopped()
                    with anyio.move_on_after(LISTENER_FLUSH):
                        await self.events.flush()
                finally:
                    tg.cancel_scope.cancel()
                    await tg.__aexit__(None, None, None)
                    self.events.bind(None)

    async def _start(self) -> None:
        failed = await self.registry.run_startup()
        if failed is not None:
            # Nothing retries a startup task: the process can no longer become ready, so it
            # says so on every probe and lets the orchestrator restart it.
            self.mark_broken(f"startup task {failed.name} failed")
            return
        ready_at = time.monotonic() + self._rng.uniform(0, self._ready_jitter)
        if self.state.started(ready_at):
            startup = time.monotonic() - (self._started_at or time.monotonic())
            self.events.emit(
                "started", logging.INFO, "started in %.3f s", startup, startup_s=round(startup, 3)
            )
            self._readiness.nudge()

    async def _run_daemon(self, func: Callable[[], Awaitable[object]]) -> None:
        try:
            await func()
        except Exception:
            logger.exception("daemon %r failed", func)

    def _check_flipped(self, state: CheckState) -> None:
        check_flipped(self.events, state)
        self._readiness.nudge()

    def _trace_events(self) -> None:
        # With opentelemetry-api installed, every event is also a span; no hard dependency.
        if not self._host.traced and otel.available():
            otel.trace_events(self._host)

    def _emit_stopped(self) -> None:
        report = self.termination.report
        fields: dict[str, Any] = {"exit_status": report.exit_status}
        if self._started_at is not None:
            fields["uptime_s"] = round(time.monotonic() - self._started_at, 3)
        if report.started_at is not None:
            fields["shutdown_s"] = round(time.monotonic() - report.started_at, 3)
        self.events.emit(
            "stopped", logging.INFO, "stopped (exit status %d)", report.exit_status, **fields
        )

    def _warn_if_grace_period_short(self) -> None:
        grace_period = Settings().grace_period()
        if grace_period is None:
            return
        timing = self.termination.timing
        hooks = sum(
            timing.hook_timeout if hook.timeout is None else hook.timeout
            for hook in self.termination.hooks
        )
        problem = timing.shortfall(grace_period, hooks=hooks)
        if problem is not None:
            logger.warning("%s", problem)

    def stop_unstarted(self) -> None:
        """A shutdown during the application's own startup: nothing was served and nothing
        started, so there is nothing to drain and no hook to run; the server stops now."""
        logger.info("shutdown during the application's startup: stopping without serving")
        if self.termination.server is not None:
            self.termination.server.stop_accepting()
        self.state.phase = Phase.STOPPED
        self._emit_stopped()
