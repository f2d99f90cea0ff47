"""Measuring event-loop lag, the liveness signal: can this process still make progress?"""

from __future__ import annotations

import time

import anyio

from .. import _validate

__all__ = ["LoopMonitor"]


class LoopMonitor:
    """Wakes up every *interval* seconds and records how late it woke.

    A loop blocked by synchronous code wakes the monitor late; a loop blocked right now cannot
    run the monitor at all, so :meth:`lag` also counts how overdue the next wake-up is.
    """

    def __init__(self, *, interval: float) -> None:
        self.interval = interval
        self.last_lag = 0.0
        self.last_tick: float | None = None  # time.monotonic() of the latest wake-up

    @classmethod
    def below(cls, threshold: object, *, interval: object) -> LoopMonitor:
        """A monitor for a lag *threshold*: its *interval* must be shorter (both are checked
        before, and named as ``loop_lag_threshold``, ``loop_lag_interval``).

        Raises:
            TypeError, ValueError: an interval that is not a number of seconds below
                *threshold*.
        """
        seconds = _validate.seconds(interval, what="loop_lag_interval")
        if seconds >= _validate.seconds(threshold, what="loop_lag_threshold"):
            raise ValueError(
                f"loop_lag_interval ({interval!r} s) must be shorter than "
                f"loop_lag_threshold ({threshold!r} s)"
            )
        return cls(interval=seconds)

    def lag(self, now: float) -> float:
        """The loop lag in seconds at monotonic time *now* (0 before the monitor runs)."""
        if self.last_tick is None:
            return 0.0
        overdue = now - self.last_tick - self.interval
        return max(self.last_lag, overdue)

    async def run(self) -> None:
        """Measure until cancelled."""
        self.last_tick = time.monotonic()
        try:
            while True:
                expected = time.monotonic() + self.interval
                await anyio.sleep(self.interval)
                now = time.monotonic()
                self.last_lag = max(0.0, now - expected)
                self.last_tick = now
        finally:
            # Stopped on purpose: a monitor that no longer runs must not read as a stuck loop.
            self.last_tick, self.last_lag = None, 0.0
