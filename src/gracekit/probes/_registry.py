"""The checks, gates and startup tasks of one application, by name.

Checks and gates share one namespace (``/health/ready/NAME`` serves either); startup tasks
have their own. Nothing is added while the application runs.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc

from ..phases import PhaseState
from ._runner import CheckState, CheckStatus, run_check
from .check import Check
from .conditions import Gate, StartupTask

__all__ = ["Registry"]


class Registry:
    """What one application checks and waits for.

    Parameters:
        state: the application's phase (nothing is registered while it runs).
        on_change: called when a gate opens or closes.
    """

    def __init__(self, state: PhaseState, *, on_change: Callable[[], None]) -> None:
        self._state = state
        self._on_change = on_change
        self.checks: dict[str, CheckState] = {}
        self.gates: dict[str, Gate] = {}
        self.startup_tasks: dict[str, StartupTask] = {}

    def add_check(self, check: Check) -> Check:
        if not isinstance(check, Check):
            raise TypeError(f"add_check() takes a Check, not {type(check).__name__}")
        self._claim(check.name, "check")
        self.checks[check.name] = CheckState(check)
        return check

    def add_gate(self, name: str, *, open: bool) -> Gate:
        self._claim(name, "gate")
        gate = self.gates[name] = Gate(name, open=open, on_change=self._on_change)
        return gate

    def add_startup_task(
        self, func: Callable[[], Awaitable[Any]], name: str, *, timeout: float | None = None
    ) -> None:
        self._state.ensure_not_running("add a startup task")
        if name in self.startup_tasks:
            raise ValueError(f"a startup task named {name!r} is already registered")
        self.startup_tasks[name] = StartupTask(name, func, timeout=timeout)

    def _claim(self, name: str, kind: str) -> None:
        self._state.ensure_not_running(f"add a {kind}")
        if name in self.checks or name in self.gates:
            other = "check" if name in self.checks else "gate"
            raise ValueError(f"a {other} named {name!r} is already registered")

    def reset(self) -> None:
        """Forget the results of a previous run (the registrations stay)."""
        self.checks = {name: CheckState(state.check) for name, state in self.checks.items()}
        for task in self.startup_tasks.values():
            task.status, task.error, task.duration = CheckStatus.PENDING, None, None

    def start_checks(
        self,
        group: anyio.abc.TaskGroup,
        rng: random.Random,
        on_flip: Callable[[CheckState], None],
    ) -> None:
        """Run every check in *group*, in the background, until it is cancelled."""
        for state in self.checks.values():
            state.passed_once = anyio.Event()
            if state.ever_passed:
                state.passed_once.set()
            group.start_soon(run_check, state, rng, on_flip)

    async def run_startup(self) -> StartupTask | None:
        """Run the startup tasks, then wait for the checks of the startup probe to pass once;
        the first task that failed (and nothing is waited for then), or None."""
        async with anyio.create_task_group() as tg:
            for task in self.startup_tasks.values():
                tg.start_soon(task.run)
        for task in self.startup_tasks.values():
            if task.status is CheckStatus.FAIL:
                return task
        for state in self.checks.values():
            if "startup" in state.check.probes and state.passed_once is not None:
                await state.passed_once.wait()
        return None
