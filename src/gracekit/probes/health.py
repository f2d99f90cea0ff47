"""What the probe endpoints read: the three verdicts and the state behind them.

The endpoints depend on this small protocol, not on :class:`~gracekit.Lifecycle`, which
satisfies it; so the health layer knows nothing of what composes it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from ..phases import Phase
from .conditions import Gate, ProbeResult, StartupTask
from .looplag import LoopMonitor
from .runner import CheckState

__all__ = ["Health"]


class Health(Protocol):
    """The state of one application's health, as the probes report it."""

    @property
    def phase(self) -> Phase: ...

    @property
    def broken(self) -> str | None: ...

    @property
    def checks(self) -> Mapping[str, CheckState]: ...

    @property
    def gates(self) -> Mapping[str, Gate]: ...

    @property
    def startup_tasks(self) -> Mapping[str, StartupTask]: ...

    @property
    def loop_monitor(self) -> LoopMonitor: ...

    @property
    def loop_lag_threshold(self) -> float: ...

    def startup(self) -> ProbeResult:
        """Has startup succeeded? (the startup probe)"""
        ...

    def liveness(self) -> ProbeResult:
        """Can the process make progress? (the liveness probe)"""
        ...

    def readiness(self, *, exclude: Collection[str] = ()) -> ProbeResult:
        """Should this pod receive traffic now? (the readiness probe)"""
        ...
