"""The application's lifecycle, the one object a user holds: a facade over the layers below
(docs/architecture.md), which :mod:`gracekit._runner` composes and runs while it runs."""

from __future__ import annotations

import random
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from starlette.types import ASGIApp

from . import _validate
from ._registrar import registrar
from ._runner import Runner
from ._wiring_report import Wiring
from .drain._inflight import InFlight
from .drain._sequence import ServerControl, ShutdownHook, ShutdownReport
from .drain.middleware import RequestObserver
from .drain.timing import ShutdownTiming
from .errors import LifecycleError
from .events._bus import Listener
from .phases import Phase
from .probes._health import HealthView
from .probes._looplag import LoopMonitor
from .probes.check import Check
from .probes.conditions import Gate
from .server._lifespan import management_port
from .server._logs import follow_server_logging
from .server.management import Management

__all__ = ["Lifecycle", "Phase"]

DEFAULT_LOOP_LAG_THRESHOLD = 5.0
DEFAULT_LOOP_LAG_INTERVAL = 0.5
Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]
_Job = Callable[[], Awaitable[Any]]


class Lifecycle(HealthView):
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
        self.loop_monitor = LoopMonitor.below(loop_lag_threshold, interval=loop_lag_interval)
        timing = _validate.instance(shutdown, ShutdownTiming, what="shutdown")
        self.timing = timing or ShutdownTiming()
        self.handle_signals = bool(handle_signals)
        self.management = _validate.instance(management, Management, what="management")
        #: Where the management port listens while the lifecycle runs, or None.
        self.management_port: int | None = None
        #: Further endpoints of the management port, by path (the metrics add ``/metrics``).
        self.management_routes: dict[str, ASGIApp] = {}
        #: What the drain middleware registers in-flight requests with.
        self.inflight = InFlight()
        #: Told about every request the drain middleware served (metrics), or None.
        self.request_observer: RequestObserver | None = None
        #: True once lifecycle events are traced (gracekit.events.otel); set, the lifecycle
        #: does not subscribe its own bridge to the global tracer provider.
        self.traced = False
        self._runner = runner = Runner(
            self,
            timing=self.timing,
            inflight=self.inflight,
            loop_monitor=self.loop_monitor,
            rng=rng if rng is not None else random.Random(),
            ready_jitter=self.ready_jitter,
        )
        self._state, self._registry = runner.state, runner.registry
        #: Every transition, logged once and handed to the listeners of :meth:`on_event`.
        self.events = runner.events
        #: The termination sequence: what SIGTERM, preStop and :meth:`shutdown` start.
        self.termination = runner.termination
        #: What of the app's wiring the lifecycle has seen; warns of missing pieces at startup.
        self.wiring = Wiring(self)

    # -- registration (none while running) ------------------------------------------------

    def add_check(self, check: Check) -> Check:
        """Register *check*; it runs in the background while the lifecycle runs."""
        return self._registry.add_check(check)

    @registrar
    def check(self, func: Callable[..., Awaitable[Any]], name: str, **options: Any) -> None:
        """Register an async function as a check (a decorator, with or without arguments);
        *options* are :class:`Check`'s. The check's name defaults to the function's name."""
        self.add_check(Check(name, func, **options))

    def gate(self, name: str, *, open: bool = False) -> Gate:
        """Create and register a gate, closed unless *open*."""
        return self._registry.add_gate(name, open=open)

    @registrar
    def startup_task(self, func: _Job, name: str, *, timeout: float | None = None) -> None:
        """Register an async function to run once at startup (usable as a decorator, with or
        without arguments). The startup probe passes once every startup task has succeeded;
        a startup task that fails (or exceeds *timeout* seconds) marks the process broken."""
        self._registry.add_startup_task(func, name, timeout=timeout)

    @registrar
    def on_shutdown(self, func: _Job, name: str, *, timeout: float | None = None) -> None:
        """Register an async function to run once at shutdown, after the drain (a decorator,
        with or without arguments). Hooks run in reverse order of registration, each bounded
        by *timeout* (default the timing's ``hook_timeout``)."""
        self.termination.add_hook(ShutdownHook(name, func, timeout))

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
        self._runner.add_daemon(func)

    # -- state (phase, the probes' verdicts and the state they read are HealthView's) -------

    def mark_broken(self, reason: str) -> None:
        """Declare the process unable to recover: liveness fails, so Kubernetes restarts it."""
        self._runner.mark_broken(reason)

    def begin_draining(self) -> None:
        """Enter the draining phase: readiness fails from now on. :meth:`shutdown` calls it;
        on its own it only takes the pod out of rotation."""
        self._runner.begin_draining()

    # -- termination ------------------------------------------------------------------------

    def shutdown(self, *, source: str = "shutdown()", delay: float | None = None) -> bool:
        """Start the termination sequence, as SIGTERM does; False if it had started already.
        *delay* overrides the configured shutdown delay (0 when the server is stopping anyway).
        """
        delay = _validate.optional_seconds(delay, what="delay", allow_zero=True)
        return self.termination.request(source, delay=delay)

    def handle_signal(self, signum: signal.Signals) -> None:
        """SIGTERM starts the sequence (a repeated one is ignored: process-group kills send
        duplicates); SIGINT starts it without the delay, and a second SIGINT forces it."""
        self.termination.on_signal(signum.name, interrupt=signum == signal.SIGINT)

    def attach_server(
        self, control: ServerControl, *, reload: bool = False, timing: ShutdownTiming | None = None
    ) -> None:
        """Let the termination sequence stop *control*'s server when the delay is over.
        *timing*, when given, replaces the configured timings for this run (the server's
        environment overrides the code); *reload* drops the delay."""
        self.termination.attach(control, reload=reload, timing=timing)

    def track(self) -> AbstractAsyncContextManager[anyio.CancelScope]:
        """``async with lifecycle.track():`` makes the body background work that the drain
        waits for, and cancels at the drain deadline."""
        return self.termination.track()

    def spawn(
        self, func: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> None:
        """Run ``func(*args)`` in the background as tracked work (see :meth:`track`)."""
        if not self._state.running:
            raise LifecycleError("spawn() needs the lifecycle to be running")
        self.termination.spawn(func, *args, name=name)

    @property
    def shutdown_report(self) -> ShutdownReport:
        """How the latest shutdown went (cut requests, failed hooks, exit status)."""
        return self.termination.report

    # -- running ----------------------------------------------------------------------------

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Lifecycle]:
        """Run the background work (checks, loop monitor, startup) for the body's duration.
        :meth:`lifespan` uses this; call it directly when there is no ASGI lifespan to join."""
        async with self._runner.run(handle_signals=self.handle_signals):
            yield self

    def lifespan(self, lifespan: Lifespan | None = None) -> Lifespan:
        """An ASGI lifespan for Starlette or FastAPI (``lifespan=``) running this lifecycle.

        *lifespan*, the application's own, is entered first (so checks can use the pools it
        opens) and left last (so checks stop before the pools close). Its state is passed on.
        """
        runner = self._runner

        @asynccontextmanager
        async def combined(app: Any) -> AsyncIterator[Any]:
            self.wiring.lifespan_began()
            follow_server_logging()
            # The signals are taken over first, so a SIGTERM during the application's own
            # startup is gracekit's. The management port opens next and closes last: it answers
            # the startup probe while the app's own lifespan starts, and the kubelet until the
            # very end.
            runner.prepare()
            async with AsyncExitStack() as stack:
                stack.enter_context(runner.signals(self.handle_signals))
                await stack.enter_async_context(management_port(self, self.management))
                state = None
                if lifespan is not None:
                    started, state = await runner.app_startup.enter(
                        stack, lifespan(app), cancelled=self.termination.requested
                    )
                    if not started:
                        runner.stop_unstarted()
                        yield None
                        return
                await stack.enter_async_context(self.run())
                self.wiring.lifespan_started(app)
                yield state

        return self.wiring.mark(combined)

    def __repr__(self) -> str:
        return (
            f"<Lifecycle phase={self.phase.value} checks={len(self.checks)} "
            f"gates={len(self.gates)} startup_tasks={len(self.startup_tasks)}>"
        )
