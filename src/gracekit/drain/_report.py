"""What the termination sequence reports (the exit status ``gracekit run`` exits with), and the
shutdown hooks it runs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .. import _validate
from ..events._bus import EventBus

__all__ = ["EXIT_DRAIN_TIMEOUT", "EXIT_HOOK_FAILED", "EXIT_OK", "ShutdownHook", "ShutdownReport"]

EXIT_OK = 0
EXIT_DRAIN_TIMEOUT = 3  # work was still running at the drain deadline and was cut short
EXIT_HOOK_FAILED = 4  # a shutdown hook raised or exceeded its timeout (5: both happened)


@dataclass
class ShutdownReport:
    """How the shutdown went; :attr:`exit_status` is what ``gracekit run`` exits with."""

    source: str | None = None  # what started it: "SIGTERM", "SIGINT", "prestop", "lifespan"...
    started_at: float | None = None  # time.monotonic()
    forced: bool = False
    drain_timed_out: bool = False
    cut_requests: int = 0  # answered 503 at the drain deadline
    broken_responses: int = 0  # cut in the middle of their response
    cancelled_tasks: int = 0  # tracked background work cancelled at the deadline
    failed_hooks: list[str] = field(default_factory=list)

    def _emit_drained(self, events: EventBus, *, elapsed: float, drain_s: float) -> None:
        """Emit the ``drained`` event: a warning when the drain deadline cut work short."""
        outcome = {
            "elapsed_s": round(elapsed, 3),
            "drain_s": round(drain_s, 3),
            "timed_out": self.drain_timed_out,
            "cut_requests": self.cut_requests,
            "broken_responses": self.broken_responses,
            "cancelled_tasks": self.cancelled_tasks,
        }
        if not self.drain_timed_out:
            events.emit("drained", logging.INFO, "drained in %.3f s", elapsed, **outcome)
            return
        events.emit(
            "drained",
            logging.WARNING,
            "drain deadline reached after %.3f s: %d requests answered 503, %d responses "
            "cut, %d background tasks cancelled",
            elapsed,
            self.cut_requests,
            self.broken_responses,
            self.cancelled_tasks,
            **outcome,
        )

    @property
    def exit_status(self) -> int:
        """0 after a clean shutdown; 3 if the drain timed out, 4 if a hook failed, 5 if both."""
        status = EXIT_OK
        if self.drain_timed_out:
            status += EXIT_DRAIN_TIMEOUT
        if self.failed_hooks:
            status = status + 2 if status else EXIT_HOOK_FAILED
        return status


class ShutdownHook:
    """An async function run once at shutdown, after the drain, bounded by a timeout."""

    __slots__ = ("func", "name", "ran", "timeout")

    def __init__(
        self, name: str, func: Callable[[], Awaitable[object]], timeout: float | None = None
    ) -> None:
        self.name = _validate.name(name, what="shutdown hook name")
        if not callable(func):
            raise TypeError(f"shutdown hook {name!r} needs an async callable")
        self.func = func
        #: None: the timing's ``hook_timeout`` when the hook runs.
        self.timeout = _validate.optional_seconds(
            timeout, what=f"timeout of shutdown hook {name!r}"
        )
        self.ran = False
