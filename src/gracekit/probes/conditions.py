"""The conditions probes wait on besides checks: gates and startup tasks; and a probe's answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from .. import _validate
from ._runner import CheckStatus, describe_error

__all__ = ["Gate", "ProbeResult", "StartupTask"]

logger = logging.getLogger("gracekit")


class Gate:
    """A named readiness condition the application opens and closes itself ("cache-warm")."""

    __slots__ = ("_on_change", "_open", "name")

    def __init__(
        self, name: str, *, open: bool = False, on_change: Callable[[], None] | None = None
    ) -> None:
        self.name = _validate.name(name, what="gate name")
        self._open = bool(open)
        self._on_change = on_change  # the lifecycle's: readiness may have changed

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        """Let readiness pass as far as this gate is concerned."""
        if not self._open:
            self._open = True
            logger.info("gate %s opened", self.name)
            if self._on_change is not None:
                self._on_change()

    def close(self) -> None:
        """Hold readiness back until :meth:`open` is called."""
        if self._open:
            self._open = False
            logger.info("gate %s closed", self.name)
            if self._on_change is not None:
                self._on_change()

    def __repr__(self) -> str:
        return f"Gate({self.name!r}, open={self._open})"


class StartupTask:
    """An async function run once at startup; the startup probe passes only after it succeeds."""

    __slots__ = ("duration", "error", "func", "name", "status", "timeout")

    def __init__(
        self, name: str, func: Callable[[], Awaitable[object]], *, timeout: float | None
    ) -> None:
        self.name = _validate.name(name, what="startup task name")
        if not callable(func):
            raise TypeError(f"startup task {name!r} needs an async callable")
        self.func = func
        self.timeout = _validate.optional_seconds(timeout, what=f"timeout of startup task {name!r}")
        self.status = CheckStatus.PENDING
        self.error: str | None = None
        self.duration: float | None = None

    async def run(self) -> None:
        started = time.monotonic()
        try:
            with anyio.fail_after(self.timeout):
                await self.func()
        except Exception as exc:
            self.status, self.error = CheckStatus.FAIL, describe_error(exc)
            logger.error("startup task %s failed: %s", self.name, self.error, exc_info=exc)
        else:
            self.status = CheckStatus.PASS
        self.duration = time.monotonic() - started


@dataclass
class ProbeResult:
    """What a probe answers: ``ok`` maps to 200/503, ``reasons`` says why not."""

    ok: bool
    status: str  # "pass", "fail" or "degraded" (passing, with informational checks failing)
    reasons: list[str] = field(default_factory=list)
