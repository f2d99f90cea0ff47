"""The event bus of one lifecycle: each event is logged once and handed to every listener."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from .._loop import LoopBinding

__all__ = ["EVENT_KINDS", "EventBus", "LifecycleEvent", "Listener"]

logger = logging.getLogger("gracekit")

#: Every kind of event, in the order a run goes through them.
EVENT_KINDS = (
    "started",  # startup succeeded: every startup task and startup check passed
    "ready",  # readiness passes (again)
    "not_ready",  # readiness stopped passing; ``reasons`` says why
    "check",  # a check started or stopped passing
    "broken",  # the process was marked broken: liveness fails from now on
    "draining",  # the shutdown started: readiness fails, serving goes on for the delay
    "forced",  # the shutdown was hurried (a second SIGINT): the delay and the drain are cut
    "drain",  # the delay is over: the server stops accepting, in-flight work is waited for
    "drained",  # the drain ended, on its own or at its deadline
    "hook",  # a shutdown hook ran
    "stopped",  # the lifecycle stopped; ``exit_status`` is what ``gracekit run`` exits with
)

#: How long an async listener may take with one event before it is cancelled.
LISTENER_TIMEOUT = 5.0


@dataclass(frozen=True)
class LifecycleEvent:
    """One transition of a lifecycle.

    Attributes:
        kind: one of :data:`EVENT_KINDS`.
        message: the log line, formatted.
        phase: the lifecycle's phase when it happened.
        in_flight: requests and websockets in flight then.
        time: when, as ``time.time()``.
        fields: what else is known: ``reasons``, ``check``, ``elapsed_s``, ``exit_status``...
    """

    kind: str
    message: str
    phase: str
    in_flight: int
    time: float
    fields: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The event as plain data (what log records carry as their ``gracekit`` attribute)."""
        return {"event": self.kind, "phase": self.phase, "in_flight": self.in_flight, **self.fields}


#: A listener gets each event; it may return an awaitable, which is run in the background.
Listener = Callable[[LifecycleEvent], object]


class EventBus:
    """Logs each event once and hands it to the listeners, in the order they subscribed.

    Parameters:
        phase: returns the lifecycle's phase.
        in_flight: returns how much is in flight.
    """

    def __init__(self, *, phase: Callable[[], str], in_flight: Callable[[], int]) -> None:
        self._phase = phase
        self._in_flight = in_flight
        self._listeners: list[Listener] = []
        self._group: anyio.abc.TaskGroup | None = None
        #: Tasks that start listeners emitted from loop callbacks (the loop keeps weak refs).
        self._starters: set[asyncio.Task[None]] = set()
        self._loop = LoopBinding()
        self._pending = 0
        self._idle: anyio.Event | None = None

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call *listener* with every event from now on; returns the way to stop."""
        if not callable(listener):
            raise TypeError(f"an event listener must be callable, not {type(listener).__name__}")
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def bind(self, group: anyio.abc.TaskGroup | None) -> None:
        """Where async listeners run (the lifecycle's task group while it runs): events
        emitted from other threads are handed to this loop."""
        self._group = group
        if group is None:
            self._loop.unbind()
        else:
            self._loop.bind()

    def emit(self, kind: str, level: int, template: str, *args: object, **fields: Any) -> None:
        """Log the event (``template % args``) with its fields, and hand it to the listeners,
        on the event loop (from another thread, a gate opened there: soon after)."""
        self._loop.call(functools.partial(self._emit, kind, level, template, *args, **fields))

    def _emit(self, kind: str, level: int, template: str, *args: object, **fields: Any) -> None:
        event = LifecycleEvent(
            kind=kind,
            message=template % args if args else template,
            phase=self._phase(),
            in_flight=self._in_flight(),
            time=time.time(),
            fields=fields,
        )
        logger.log(level, template, *args, extra={"gracekit": event.as_dict()})
        for listener in list(self._listeners):
            try:
                result = listener(event)
            except Exception:
                logger.exception("event listener %r failed on %s", listener, kind)
                continue
            if inspect.isawaitable(result):
                self._run_later(listener, result, kind)

    def _run_later(self, listener: Listener, result: Awaitable[object], kind: str) -> None:
        if self._group is None:
            # Nowhere to run it (the lifecycle is not running): close it rather than leak it.
            close = getattr(result, "close", None)
            if close is not None:
                close()
            logger.warning("event listener %r: %s came outside a run; not awaited", listener, kind)
            return

        async def run() -> None:
            try:
                with anyio.fail_after(LISTENER_TIMEOUT):
                    await result
            except Exception:
                logger.exception("event listener %r failed on %s", listener, kind)
            finally:
                self._pending -= 1
                if not self._pending and self._idle is not None:
                    self._idle.set()

        self._pending += 1
        name = f"gracekit event listener ({kind})"
        if asyncio.current_task() is not None:
            self._group.start_soon(run, name=name)
            return
        # Emitted from a loop callback (a timer, a signal, another thread's gate): anyio tells
        # its backend from the running task (through sniffio, when installed) and there is none,
        # so a task of the loop's own starts the listener in the group.
        group = self._group

        async def start() -> None:
            try:
                group.start_soon(run, name=name)
            except RuntimeError:  # the group closed meanwhile: the run ended
                self._pending -= 1
                close = getattr(result, "close", None)
                if close is not None:
                    close()

        starter = asyncio.get_running_loop().create_task(start(), name=name)
        self._starters.add(starter)
        starter.add_done_callback(self._starters.discard)

    async def flush(self) -> None:
        """Wait for the async listeners still running (bound it with a cancel scope)."""
        try:
            while self._pending:
                self._idle = anyio.Event()
                await self._idle.wait()
        finally:
            self._idle = None
