"""Readiness changes as events: ``ready`` and ``not_ready``, once per change.

Readiness is computed when a probe asks; nothing pushes it. So whatever can change it (a check
flipping, a gate, a phase) *nudges* the watcher, which looks again once the current step of the
event loop is done (the event then follows the one that caused it), and a poll once a second
catches what time alone changes (a check going stale, the ready jitter running out).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio

from .._loop import LoopBinding
from ..events._bus import EventBus
from ._runner import CheckState
from .conditions import ProbeResult

__all__ = ["ReadinessWatcher", "check_flipped"]

#: How often readiness is looked at for the changes time makes, in seconds.
POLL = 1.0


class ReadinessWatcher:
    """Emits ``ready``/``not_ready`` on *events* when *readiness()* changes.

    Parameters:
        readiness: computes readiness now.
        events: where the events go.
        draining: True once the shutdown started (a failing readiness is expected then, and
            logged at INFO, not WARNING).
        ready_at: when the ready jitter ends (monotonic), or None.
    """

    def __init__(
        self,
        *,
        readiness: Callable[[], ProbeResult],
        events: EventBus,
        draining: Callable[[], bool],
        ready_at: Callable[[], float | None],
    ) -> None:
        self._readiness = readiness
        self._events = events
        self._draining = draining
        self._ready_at = ready_at
        self._loop = LoopBinding()
        self._pending = False
        self._reported = False

    def nudge(self) -> None:
        """Readiness may have changed; safe to call from worker threads (gates)."""
        if self._loop.loop is None or self._pending:
            return
        self._pending = True
        self._loop.call(self.evaluate, soon=True)

    def evaluate(self) -> None:
        """Emit an event if readiness changed since it was last looked at."""
        self._pending = False
        result = self._readiness()
        if result.ok == self._reported:
            return
        self._reported = result.ok
        if result.ok:
            self._events.emit("ready", logging.INFO, "ready")
            return
        level = logging.INFO if self._draining() else logging.WARNING
        because = "; ".join(result.reasons)
        self._events.emit("not_ready", level, "not ready: %s", because, reasons=result.reasons)

    async def run(self) -> None:
        """Watch for the run's duration (cancel to stop); a run starts as not ready."""
        self._loop.bind()
        self._pending = self._reported = False
        try:
            while True:
                self.evaluate()
                wait = POLL
                ready_at = self._ready_at()
                if ready_at is not None and ready_at > time.monotonic():
                    wait = min(wait, ready_at - time.monotonic())
                await anyio.sleep(wait)
        finally:
            self._loop.unbind()


def check_flipped(events: EventBus, state: CheckState) -> None:
    """Emit the ``check`` event of a check that started or stopped passing."""
    name = state.check.name
    if state.passing:
        events.emit("check", logging.INFO, "check %s passing", name, check=name, status="pass")
        return
    events.emit(
        "check",
        logging.WARNING,
        "check %s failing: %s",
        name,
        state.error,
        check=name,
        status="fail",
        error=state.error,
    )
