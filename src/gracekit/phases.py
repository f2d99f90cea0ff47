"""The phases an application lives through, the bottom of gracekit's state.

Everything else reads the phase: the probes (readiness fails once draining), the events (each
carries the phase it happened in), the metrics. Nothing here imports the rest of gracekit.
"""

from __future__ import annotations

import enum

import anyio

from .errors import LifecycleError

__all__ = ["Phase", "PhaseState"]


class Phase(str, enum.Enum):
    """Where the application is in its life. Phases only move forward."""

    STARTING = "starting"
    STARTED = "started"
    DRAINING = "draining"
    STOPPED = "stopped"


class PhaseState:
    """The phase and what moves with it: running or not, broken or not, ready from when.

    The one place that changes the phase; the probes, the events and the metrics read it.
    """

    def __init__(self) -> None:
        self.phase = Phase.STARTING
        self.running = False
        self.broken: str | None = None
        #: The monotonic time from which readiness may pass (startup done, jitter over).
        self.ready_at: float | None = None
        #: Readiness has passed once in this run: from then on, a shutdown needs its delay.
        self.ever_ready = False
        #: Set when the shutdown starts; created when a run starts.
        self.draining_event: anyio.Event | None = None

    @property
    def draining(self) -> bool:
        return self.phase in (Phase.DRAINING, Phase.STOPPED)

    def ensure_not_running(self, action: str) -> None:
        if self.running:
            raise LifecycleError(f"cannot {action} while the lifecycle is running")

    def reset(self) -> None:
        """Start from scratch, for another run."""
        self.phase = Phase.STARTING
        self.broken = None
        self.ready_at = None
        self.ever_ready = False

    def mark_broken(self, reason: str) -> bool:
        """Record the first reason the process cannot recover; False if it was broken."""
        if self.broken is not None:
            return False
        self.broken = reason
        return True

    def started(self, ready_at: float) -> bool:
        """Startup succeeded: STARTING becomes STARTED (False if the shutdown came first)."""
        self.ready_at = ready_at
        if self.phase is not Phase.STARTING:
            return False
        self.phase = Phase.STARTED
        return True

    def begin_draining(self) -> bool:
        """Enter DRAINING; False if the shutdown had started already."""
        if self.phase not in (Phase.STARTING, Phase.STARTED):
            return False
        self.phase = Phase.DRAINING
        if self.draining_event is not None:
            self.draining_event.set()
        return True

    async def wait_draining(self) -> None:
        """Return when the shutdown starts (at once if it has)."""
        if self.draining:
            return
        if self.draining_event is None:
            raise LifecycleError("wait_draining() needs the lifecycle to be running")
        await self.draining_event.wait()
