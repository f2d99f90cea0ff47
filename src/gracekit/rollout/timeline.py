"""One clock and one list of events for a simulation: pods, kubelet, endpoints, load."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Event", "Timeline"]


@dataclass(frozen=True)
class Event:
    """Something that happened *at* seconds after the start of the run, to *pod* (or to the
    run as a whole, when *pod* is empty)."""

    at: float
    pod: str
    kind: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.at:7.2f}s  {self.pod or '-':<6} {self.kind}"
        return f"{text}: {self.detail}" if self.detail else text


class Timeline:
    """The run's clock (monotonic, 0 at its start) and its events, in order.

    Parameters:
        echo: called with each event as it is added (progress output), if given.
    """

    def __init__(self, *, echo: Callable[[Event], None] | None = None) -> None:
        self.origin = time.monotonic()
        self.events: list[Event] = []
        self._echo = echo

    def restart(self) -> None:
        """Make now the start of the run (a simulation built ahead of its run calls this)."""
        self.origin = time.monotonic()
        self.events.clear()

    def now(self) -> float:
        """Seconds since the start of the run."""
        return time.monotonic() - self.origin

    def add(self, pod: str, kind: str, detail: str = "") -> Event:
        event = Event(round(self.now(), 4), pod, kind, detail)
        self.events.append(event)
        if self._echo is not None:
            self._echo(event)
        return event

    def first(self, pod: str, kind: str) -> float | None:
        """When *pod* first had an event of *kind*, or None."""
        return next((e.at for e in self.events if e.pod == pod and e.kind == kind), None)
