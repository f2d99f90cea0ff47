"""The application's lifecycle: phases, checks, gates, startup work, what each probe says, and
the termination sequence.

One :class:`Lifecycle` per application owns the state that the probe endpoints and the drain
middleware read. It runs its background work inside the app's lifespan.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    ExitStack,
    asynccontextmanager,
    contextmanager,
)
from typing import Any, TypeVar, overload

import anyio
from starlette.types import ASGIApp

from . import _validate
from .drain.answers import quiet_broken_off
from .drain.inflight import InFlight
from .drain.middleware import RequestObserver
from .drain.sequence import ServerControl, ShutdownHook, ShutdownReport, Termination
from .drain.timing import ShutdownTiming, grace_period_from_env
from .errors import LifecycleError
from .events import otel
from .events.bus import EventBus, Listener
from .phases import Phase
from .probes.check import Check
from .probes.conditions import Gate, ProbeResult, StartupTask
from .probes.looplag import LoopMonitor
from .probes.runner import CheckState, CheckStatus, run_check
from .probes.transitions import ReadinessWatcher, check_flipped
from .probes.verdicts import liveness_verdict, readiness_verdict, startup_verdict
from .server.logs import follow_server_logging
from .server.management import Management, serve_management
from .server.signals import attach as attach_signals

__all__ = ["Lifecycle", "Phase"]

logger = logging.getLogger("gracekit")

DEFAULT_LOOP_LAG_THRESHOLD = 5.0
DEFAULT_LOOP_LAG_INTERVAL = 0.5
#: How long the last events' async listeners may run once the lifecycle has stopped.
LISTENER_FLUSH = 1.0

_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])
Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def _decorate(func: _F | None, register: Callable[[_F], _F], what: str) -> _F | Callable[[_F], _F]:
    """Serve ``@what`` and ``@what(...)`` alike: register *func* now, or return *register*."""
    if func is None:
        return register
    if not callable(func):
        raise TypeError(
            f"{what}() takes the function itself, not {type(func).__name__}; "
            f"give the name as {what}(name=...)"
        )
    return register(func)


class Lifecycle:
    """The state of one application, from startup to exit.

    Parameters:
        ready_jitter: the first "ready" is held back by a random delay in ``[0, ready_jitter]``
            seconds after startup succeeds, so pods started together do not all take traffic
            (and open connections) at the same instant.
        loop_lag_threshold: liveness fails while the event loop lags more than this (seconds).
        loop_lag_interval: how often the loop lag is measured (seconds).
        rng: the random source for jitter (pass a seeded one for reproducible tests).
        shutdown: the timings of the termination sequence (default
            :class:`~gracekit.ShutdownTiming`: 5 s delay, 20 s drain, 5 s per hook).
        management: serve the probes, the metrics and the preStop hook on a port of their
            own (:class:`~gracekit.server.management.Management`); ``GRACEKIT_MANAGEMENT_PORT``
            (``gracekit run --management-port``) sets or overrides its port.
        handle_signals: take over SIGTERM and SIGINT from the server while running (uvicorn,
            also under gunicorn's uvicorn worker), so they start the termination sequence.
    """

    def __init__(
        self,
        *,
        ready_jitter: float = 0.0,
        loop_lag_threshold: float = DEFAULT_LOOP_LAG_THRESHOLD,
        loop_lag_interval: float = DEFAULT_LOOP_LAG_INTERVAL,
        rng: random.Random | None = None,
        shutdown: ShutdownTiming | None = None,
        management: Management | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.ready_jitter = _validate.seconds(ready_jitter, what="ready_jitter", allow_zero=True)
        self.loop_lag_threshold = _validate.seconds(loop_lag_threshold, what="loop_lag_threshold")
        interval = _validate.seconds(loop_lag_interval, what="loop_lag_interval")
        if interval >= self.loop_lag_threshold:
            raise ValueError(
                f"loop_lag_interval ({loop_lag_interval!r} s) must be shorter than "
                f"loop_lag_threshold ({loop_lag_threshold!r} s)"
            )
        self.loop_monitor = LoopMonitor(interval=interval)
        self._rng = rng if rng is not None else random.Random()
        self._checks: dict[str, CheckState] = {}
        self._gates: dict[str, Gate] = {}
        self._startup_tasks: dict[str, StartupTask] = {}
        self._phase = Phase.STARTING
        self._broken: str | None = None
        self._ready_at: float | None = None  # monotonic time from which readiness may pass
        self._running = False
        if shutdown is not None and not isinstance(shutdown, ShutdownTiming):
            raise TypeError(f"shutdown must be a ShutdownTiming, not {type(shutdown).__name__}")
        self.timing = shutdown if shutdown is not None else ShutdownTiming()
        self.handle_signals = bool(handle_signals)
        if management is not None and not isinstance(management, Management):
            raise TypeError(f"management must be a Management, not {type(management).__name__}")
        self.management = management
        #: Where the management port listens while the lifecycle runs, or None.
        self.management_port: int | None = None
        #: Further endpoints of the management port, by path (the metrics add ``/metrics``).
        self.management_routes: dict[str, ASGIApp] = {}
        #: What the drain middleware registers in-flight requests with.
        self.inflight = InFlight()
        #: Every transition, logged once and handed to the listeners of :meth:`on_event`.
        self.events = EventBus(phase=lambda: self._phase.value, in_flight=self.inflight.__len__)
        self._ever_ready = False  # readiness has passed once in this run
        self.termination = Termination(
            self.timing,
            self.inflight,
            self.events,
            on_draining=self.begin_draining,
            ever_ready=lambda: self._ever_ready,
        )
        #: Told about every request the drain middleware served (metrics), or None.
        self.request_observer: RequestObserver | None = None
        self._draining: anyio.Event | None = None
        self._readiness_events = ReadinessWatcher(
            readiness=self.readiness,
            events=self.events,
            draining=lambda: self.draining,
            ready_at=lambda: self._ready_at,
        )
        self._daemons: list[Callable[[], Awaitable[object]]] = []
        #: True once lifecycle events are traced (gracekit.events.otel); set, the lifecycle
        #: does not subscribe its own bridge to the global tracer provider.
        self.traced = False
        self._started_at: float | None = None
        self._signals_taken = False
        #: Cancels the application's own lifespan startup while it runs (a shutdown then).
        self._app_startup: anyio.CancelScope | None = None

    # -- registration ---------------------------------------------------------------------

    def add_check(self, check: Check) -> Check:
        """Register *check*; it runs in the background while the lifecycle runs."""
        if not isinstance(check, Check):
            raise TypeError(f"add_check() takes a Check, not {type(check).__name__}")
        self._claim_name(check.name, "check")
        self._checks[check.name] = CheckState(check)
        return check

    @overload
    def check(self, func: _F) -> _F: ...

    @overload
    def check(
        self, func: None = None, *, name: str | None = None, **options: Any
    ) -> Callable[[_F], _F]: ...

    def check(
        self, func: _F | None = None, *, name: str | None = None, **options: Any
    ) -> _F | Callable[[_F], _F]:
        """Register an async function as a check (a decorator, with or without arguments);
        *options* are :class:`Check`'s. The check's name defaults to the function's name."""

        def register(func: _F) -> _F:
            self.add_check(Check(name or func.__name__, func, **options))
            return func

        return _decorate(func, register, "check")

    def gate(self, name: str, *, open: bool = False) -> Gate:
        """Create and register a gate, closed unless *open*."""
        self._claim_name(name, "gate")
        gate = self._gates[name] = Gate(name, open=open, on_change=self._nudge)
        return gate

    @overload
    def startup_task(
        self, func: _F, *, name: str | None = None, timeout: float | None = None
    ) -> _F: ...

    @overload
    def startup_task(
        self, func: None = None, *, name: str | None = None, timeout: float | None = None
    ) -> Callable[[_F], _F]: ...

    def startup_task(
        self, func: _F | None = None, *, name: str | None = None, timeout: float | None = None
    ) -> _F | Callable[[_F], _F]:
        """Register an async function to run once at startup (usable as a decorator, with or
        without arguments). The startup probe passes once every startup task has succeeded;
        a startup task that fails (or exceeds *timeout* seconds) marks the process broken."""

        def register(func: _F) -> _F:
            self._ensure_not_running("add a startup task")
            task_name = name or func.__name__
            if task_name in self._startup_tasks:
                raise ValueError(f"a startup task named {task_name!r} is already registered")
            self._startup_tasks[task_name] = StartupTask(task_name, func, timeout=timeout)
            return func

        return _decorate(func, register, "startup_task")

    def _claim_name(self, name: str, kind: str) -> None:
        self._ensure_not_running(f"add a {kind}")
        if name in self._checks or name in self._gates:
            other = "check" if name in self._checks else "gate"
            raise ValueError(f"a {other} named {name!r} is already registered")

    def _ensure_not_running(self, action: str) -> None:
        if self._running:
            raise LifecycleError(f"cannot {action} while the lifecycle is running")

    # -- state ------------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def broken(self) -> str | None:
        """The reason given to :meth:`mark_broken`, or None."""
        return self._broken

    @property
    def checks(self) -> Mapping[str, CheckState]:
        return self._checks

    @property
    def gates(self) -> Mapping[str, Gate]:
        return self._gates

    @property
    def startup_tasks(self) -> Mapping[str, StartupTask]:
        return self._startup_tasks

    def mark_broken(self, reason: str) -> None:
        """Declare the process unable to recover: liveness fails, so Kubernetes restarts it."""
        if not isinstance(reason, str) or not reason:
            raise ValueError("mark_broken() needs a non-empty reason")
        if self._broken is None:
            self._broken = reason
            self.events.emit("broken", logging.ERROR, "marked broken: %s", reason, reason=reason)
            self._nudge()

    def begin_draining(self) -> None:
        """Enter the draining phase: readiness fails from now on.

        :meth:`shutdown` calls it; on its own it only takes the pod out of rotation.
        """
        if self._phase in (Phase.STARTING, Phase.STARTED):
            self._phase = Phase.DRAINING
            if self._draining is not None:
                self._draining.set()
            if self._app_startup is not None:
                self._app_startup.cancel()  # nothing to serve, nothing to wait for
            self._nudge()

    @property
    def draining(self) -> bool:
        """True from the moment the shutdown starts: long loops should stop taking work."""
        return self._phase in (Phase.DRAINING, Phase.STOPPED)

    async def wait_draining(self) -> None:
        """Return when the shutdown starts (at once if it has)."""
        if self.draining:
            return
        if self._draining is None:
            raise LifecycleError("wait_draining() needs the lifecycle to be running")
        await self._draining.wait()

    def on_event(self, listener: Listener) -> Listener:
        """Call *listener* with every :class:`~gracekit.events.LifecycleEvent` (usable as a
        decorator). It runs on the event loop and must not block; an async listener is run in
        the background, bounded by 5 s per event. Its errors are logged, never raised."""
        self.events.subscribe(listener)
        return listener

    def add_daemon(self, func: Callable[[], Awaitable[object]]) -> None:
        """Run ``func()`` in the background for the whole of every run, and cancel it when the
        lifecycle stops. Unlike :meth:`spawn`, the drain does not wait for it: use it for
        work that only observes (refreshing metrics), never for work that must finish."""
        if not callable(func):
            raise TypeError(f"add_daemon() takes an async function, not {type(func).__name__}")
        self._ensure_not_running("add a daemon")
        self._daemons.append(func)

    async def _run_daemon(self, func: Callable[[], Awaitable[object]]) -> None:
        try:
            await func()
        except Exception:
            logger.exception("daemon %r failed", func)

    def _nudge(self) -> None:
        self._readiness_events.nudge()

    # -- termination ------------------------------------------------------------------------

    def shutdown(self, *, source: str = "shutdown()", delay: float | None = None) -> bool:
        """Start the termination sequence, as SIGTERM does; False if it had started already.

        *delay* overrides the configured shutdown delay (0 when the server is stopping anyway).
        """
        if delay is not None:
            delay = _validate.seconds(delay, what="delay", allow_zero=True)
        return self.termination.request(source, delay=delay)

    def handle_signal(self, signum: signal.Signals) -> None:
        """SIGTERM starts the sequence (a repeated one is ignored: process-group kills send
        duplicates); SIGINT starts it without the delay, and a second SIGINT forces it."""
        if signum == signal.SIGINT:
            if self.termination.requested:
                self.termination.force("SIGINT")
            else:
                self.termination.request("SIGINT", delay=0)
        else:
            self.termination.request(signum.name)

    def attach_server(
        self,
        control: ServerControl,
        *,
        reload: bool = False,
        timing: ShutdownTiming | None = None,
    ) -> None:
        """Let the termination sequence stop *control*'s server when the delay is over.

        *timing*, when given, replaces the configured timings for this run (the server's
        environment overrides the code); *reload* drops the delay.
        """
        self.termination.server = control
        if timing is not None and timing != self.timing:
            logger.info("shutdown timing from the environment: %r", timing)
            self.termination.use_timing(timing)
        if reload and self.termination.timing.delay:
            logger.info("reload mode: no shutdown delay")
            self.termination.skip_delay()

    @overload
    def on_shutdown(
        self, func: _F, *, name: str | None = None, timeout: float | None = None
    ) -> _F: ...

    @overload
    def on_shutdown(
        self, func: None = None, *, name: str | None = None, timeout: float | None = None
    ) -> Callable[[_F], _F]: ...

    def on_shutdown(
        self, func: _F | None = None, *, name: str | None = None, timeout: float | None = None
    ) -> _F | Callable[[_F], _F]:
        """Register an async function to run once at shutdown, after the drain (a decorator,
        with or without arguments). Hooks run in reverse order of registration, each bounded
        by *timeout* (default the timing's ``hook_timeout``)."""

        def register(func: _F) -> _F:
            hook_name = name or func.__name__
            if any(hook.name == hook_name for hook in self.termination.hooks):
                raise ValueError(f"a shutdown hook named {hook_name!r} is already registered")
            self.termination.hooks.append(ShutdownHook(hook_name, func, timeout))
            return func

        return _decorate(func, register, "on_shutdown")

    def track(self) -> AbstractAsyncContextManager[anyio.CancelScope]:
        """``async with lifecycle.track():`` makes the body background work that the drain
        waits for, and cancels at the drain deadline."""
        return self.termination.track()

    def spawn(
        self, func: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> None:
        """Run ``func(*args)`` in the background as tracked work (see :meth:`track`)."""
        if not self._running:
            raise LifecycleError("spawn() needs the lifecycle to be running")
        self.termination.spawn(func, *args, name=name)

    @property
    def shutdown_report(self) -> ShutdownReport:
        """How the latest shutdown went (cut requests, failed hooks, exit status)."""
        return self.termination.report

    # -- probes -----------------------------------------------------------------------------

    def startup(self) -> ProbeResult:
        """Has startup succeeded? Once it has, it stays passed."""
        return startup_verdict(
            passed=self._ready_at is not None,
            running=self._running,
            tasks=self._startup_tasks.values(),
            checks=self._checks.values(),
        )

    def liveness(self) -> ProbeResult:
        """Can the process make progress? Never looks at shared dependencies."""
        lag = self.loop_monitor.lag(time.monotonic())
        return liveness_verdict(broken=self._broken, lag=lag, threshold=self.loop_lag_threshold)

    def readiness(self, *, exclude: Collection[str] = ()) -> ProbeResult:
        """Should this pod receive traffic now? Checks and gates named in *exclude* are
        ignored. A failing informational check makes the answer "degraded", still ready."""
        result = readiness_verdict(
            phase=self._phase.value,
            running=self._running,
            ready_at=self._ready_at,
            broken=self._broken,
            checks=self._checks.values(),
            gates=self._gates.values(),
            exclude=exclude,
            now=time.monotonic(),
        )
        if result.ok and not exclude:
            self._ever_ready = True  # from now on a shutdown needs its delay
        return result

    # -- running ----------------------------------------------------------------------------

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Lifecycle]:
        """Run the background work (checks, loop monitor, startup) for the body's duration.

        :meth:`lifespan` uses this; call it directly when there is no ASGI lifespan to join.
        """
        self._prepare()
        self._running = True
        # The task group is entered and left by hand, not around the yield: an exception from
        # the body must reach the caller as itself, not wrapped in an ExceptionGroup.
        tg = anyio.create_task_group()
        await tg.__aenter__()
        while_running = ExitStack()  # what is the lifecycle's only while it runs
        try:
            self._started_at = time.monotonic()
            self._trace_events()
            self.events.bind(tg)
            tg.start_soon(self.loop_monitor.run)
            for state in self._checks.values():
                state.passed_once = anyio.Event()
                if state.ever_passed:
                    state.passed_once.set()
                tg.start_soon(run_check, state, self._rng, self._check_flipped)
            tg.start_soon(self._start)
            tg.start_soon(self._readiness_events.run)
            for daemon in self._daemons:
                tg.start_soon(self._run_daemon, daemon)
            self._draining = anyio.Event()
            self.termination.start(tg)
            while_running.enter_context(self._signals())  # unless the lifespan has them
            while_running.enter_context(quiet_broken_off())
            self._warn_if_grace_period_short()
            yield self
        finally:
            try:
                await self.termination.finish()
            finally:
                # The signals stay ours until the hooks are done: a repeated SIGTERM during
                # them must not reach the server (uvicorn would re-raise it at exit: 143).
                while_running.close()
                self._phase = Phase.STOPPED
                self._running = False
                try:
                    self._emit_stopped()
                    with anyio.move_on_after(LISTENER_FLUSH):
                        await self.events.flush()
                finally:
                    tg.cancel_scope.cancel()
                    await tg.__aexit__(None, None, None)
                    self.events.bind(None)

    def _prepare(self) -> None:
        self._ensure_not_running("start the lifecycle")
        if self._phase is Phase.STOPPED:
            self._reset()  # run again, as test suites do with one app: start from scratch
        self._trace_events()

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT are the lifecycle's in the block (unless they are already)."""
        if not self.handle_signals or self._signals_taken:
            yield
            return
        detach = attach_signals(self)
        self._signals_taken = True
        try:
            yield
        finally:
            self._signals_taken = False
            if detach is not None:
                detach()

    async def _start_app(
        self, stack: AsyncExitStack, lifespan: AbstractAsyncContextManager[Any]
    ) -> tuple[bool, Any]:
        """Enter the application's own lifespan; (False, None) if a shutdown cancelled its
        startup (a SIGTERM, or a preStop call, while it ran)."""
        with anyio.CancelScope() as scope:
            self._app_startup = scope
            if self.termination.requested:
                scope.cancel()
            try:
                return True, await stack.enter_async_context(lifespan)
            except Exception as exc:
                if not scope.cancel_called:
                    raise
                # Its own error in place of the cancellation (a driver that wraps it).
                logger.info("the application's startup ended with %r when cancelled", exc)
            finally:
                self._app_startup = None
        return False, None

    def _stop_unstarted(self) -> None:
        """A shutdown during the application's own startup: nothing was served and nothing
        started, so there is nothing to drain and no hook to run; the server stops now."""
        logger.info("shutdown during the application's startup: stopping without serving")
        if self.termination.server is not None:
            self.termination.server.stop_accepting()
        self._phase = Phase.STOPPED
        self._emit_stopped()

    def _trace_events(self) -> None:
        # With opentelemetry-api installed, every event is also a span; no hard dependency.
        if not self.traced and otel.available():
            otel.trace_events(self)

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

    def _check_flipped(self, state: CheckState) -> None:
        check_flipped(self.events, state)
        self._nudge()

    def _warn_if_grace_period_short(self) -> None:
        grace_period = grace_period_from_env(os.environ)
        if grace_period is None:
            return
        hooks = sum(
            self.termination.timing.hook_timeout if hook.timeout is None else hook.timeout
            for hook in self.termination.hooks
        )
        problem = self.termination.timing.shortfall(grace_period, hooks=hooks)
        if problem is not None:
            logger.warning("%s", problem)

    def _reset(self) -> None:
        self._checks = {name: CheckState(state.check) for name, state in self._checks.items()}
        for task in self._startup_tasks.values():
            task.status, task.error, task.duration = CheckStatus.PENDING, None, None
        self._phase = Phase.STARTING
        self._broken = None
        self._ready_at = None
        self._ever_ready = False
        self.termination.reset()

    async def _start(self) -> None:
        async with anyio.create_task_group() as tg:
            for task in self._startup_tasks.values():
                tg.start_soon(task.run)
        failed = [t for t in self._startup_tasks.values() if t.status is CheckStatus.FAIL]
        if failed:
            # Nothing retries a startup task: the process can no longer become ready, so it
            # says so on every probe and lets the orchestrator restart it.
            self.mark_broken(f"startup task {failed[0].name} failed")
            return
        for state in self._checks.values():
            if "startup" in state.check.probes and state.passed_once is not None:
                await state.passed_once.wait()
        self._ready_at = time.monotonic() + self._rng.uniform(0, self.ready_jitter)
        if self._phase is Phase.STARTING:
            self._phase = Phase.STARTED
            startup = time.monotonic() - (self._started_at or time.monotonic())
            self.events.emit(
                "started", logging.INFO, "started in %.3f s", startup, startup_s=round(startup, 3)
            )
            self._nudge()

    def lifespan(self, lifespan: Lifespan | None = None) -> Lifespan:
        """An ASGI lifespan for Starlette or FastAPI (``lifespan=``) running this lifecycle.

        *lifespan*, the application's own, is entered first (so checks can use the pools it
        opens) and left last (so checks stop before the pools close). Its state is passed on.
        """

        @asynccontextmanager
        async def combined(app: Any) -> AsyncIterator[Any]:
            follow_server_logging()
            # The signals are taken over first, so a SIGTERM during the application's own
            # startup is gracekit's. The management port opens next and closes last: it answers
            # the startup probe while the app's own lifespan starts, and the kubelet until the
            # very end.
            self._prepare()
            async with AsyncExitStack() as stack:
                stack.enter_context(self._signals())
                await stack.enter_async_context(self._management())
                state = None
                if lifespan is not None:
                    started, state = await self._start_app(stack, lifespan(app))
                    if not started:
                        self._stop_unstarted()
                        yield None
                        return
                await stack.enter_async_context(self.run())
                yield state

        return combined

    @asynccontextmanager
    async def _management(self) -> AsyncIterator[None]:
        config = Management.from_env(os.environ, base=self.management)
        if config is None:
            yield
            return
        async with serve_management(self, config) as port:
            self.management_port = port
            try:
                yield
            finally:
                self.management_port = None

    def __repr__(self) -> str:
        return (
            f"<Lifecycle phase={self._phase.value} checks={len(self._checks)} "
            f"gates={len(self._gates)} startup_tasks={len(self._startup_tasks)}>"
        )
