"""What the probe endpoints read: the three verdicts and the state behind them.

The endpoints depend on the small :class:`Health` protocol, not on :class:`~gracekit.Lifecycle`;
:class:`HealthView` implements it over a phase state and a registry, and the lifecycle is one.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Protocol

from ..phases import Phase, PhaseState
from ._looplag import LoopMonitor
from ._registry import Registry
from ._runner import CheckState
from ._verdicts import liveness_verdict, readiness_verdict, startup_verdict
from .conditions import Gate, ProbeResult, StartupTask

__all__ = ["Health", "HealthView"]


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


class HealthView:
    """The read side of one application's health, over its phase and its registry: the three
    verdicts and the state behind them. :class:`~gracekit.Lifecycle` is one, so the probe
    endpoints can read it through :class:`Health`."""

    _state: PhaseState
    _registry: Registry
    loop_monitor: LoopMonitor
    loop_lag_threshold: float

    @property
    def phase(self) -> Phase:
        return self._state.phase

    @property
    def broken(self) -> str | None:
        """The reason given to ``mark_broken()``, or None."""
        return self._state.broken

    @property
    def checks(self) -> Mapping[str, CheckState]:
        return self._registry.checks

    @property
    def gates(self) -> Mapping[str, Gate]:
        return self._registry.gates

    @property
    def startup_tasks(self) -> Mapping[str, StartupTask]:
        return self._registry.startup_tasks

    @property
    def draining(self) -> bool:
        """True from the moment the shutdown starts: long loops should stop taking work."""
        return self._state.draining

    async def wait_draining(self) -> None:
        """Return when the shutdown starts (at once if it has)."""
        await self._state.wait_draining()

    def startup(self) -> ProbeResult:
        """Has startup succeeded? Once it has, it stays passed."""
        return startup_verdict(
            passed=self._state.ready_at is not None,
            running=self._state.running,
            tasks=self._registry.startup_tasks.values(),
            checks=self._registry.checks.values(),
        )

    def liveness(self) -> ProbeResult:
        """Can the process make progress? Never looks at shared dependencies."""
        lag = self.loop_monitor.lag(time.monotonic())
        return liveness_verdict(
            broken=self._state.broken, lag=lag, threshold=self.loop_lag_threshold
        )

    def readiness(self, *, exclude: Collection[str] = ()) -> ProbeResult:
        """Should this pod receive traffic now? Checks and gates named in *exclude* are
        ignored. A failing informational check makes the answer "degraded", still ready."""
        state = self._state
        result = readiness_verdict(
            phase=state.phase.value,
            running=state.running,
            ready_at=state.ready_at,
            broken=state.broken,
            checks=self._registry.checks.values(),
            gates=self._registry.gates.values(),
            exclude=exclude,
            now=time.monotonic(),
        )
        if result.ok and not exclude:
            state.ever_ready = True  # from now on a shutdown needs its delay
        return result
