"""The timings of a graceful termination, grouped in one value object."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .. import _validate
from .._settings import ENVIRONMENT_VARIABLES, GRACE_PERIOD_VARIABLE, Settings

__all__ = [
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_HOOK_TIMEOUT",
    "DEFAULT_SHUTDOWN_DELAY",
    "ENVIRONMENT_VARIABLES",
    "GRACE_MARGIN",
    "GRACE_PERIOD_VARIABLE",
    "ShutdownTiming",
    "grace_period_from_env",
]

DEFAULT_SHUTDOWN_DELAY = 5.0
DEFAULT_DRAIN_TIMEOUT = 20.0
DEFAULT_HOOK_TIMEOUT = 5.0
#: Seconds added to the computed grace period for process start-up of the exit, logging, etc.
GRACE_MARGIN = 2.0


@dataclass(frozen=True)
class ShutdownTiming:
    """How long each step of the termination sequence may take.

    Parameters:
        delay: seconds to keep serving after the shutdown starts (SIGTERM or preStop) while the
            proxies learn that the pod is leaving; readiness fails from the first moment.
        drain_timeout: seconds the server waits, after it stops accepting, for in-flight
            requests, websockets and tracked background work before cancelling them.
        hook_timeout: default bound of each shutdown hook, in seconds.

    Raises:
        TypeError, ValueError: a timing that is not a finite number of seconds >= 0 (> 0 for
            the drain and hook timeouts).
    """

    delay: float = DEFAULT_SHUTDOWN_DELAY
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    hook_timeout: float = DEFAULT_HOOK_TIMEOUT

    def __post_init__(self) -> None:
        # Frozen: normalise through object.__setattr__, once, at construction.
        object.__setattr__(
            self, "delay", _validate.seconds(self.delay, what="shutdown delay", allow_zero=True)
        )
        object.__setattr__(
            self, "drain_timeout", _validate.seconds(self.drain_timeout, what="drain timeout")
        )
        object.__setattr__(
            self, "hook_timeout", _validate.seconds(self.hook_timeout, what="hook timeout")
        )

    def grace_period(self, *, prestop: float = 0.0, hooks: float | None = None) -> int:
        """The smallest ``terminationGracePeriodSeconds`` that covers the whole sequence.

        Parameters:
            prestop: seconds a preStop hook spends before SIGTERM (a ``sleep``); its time counts
                against the grace period too.
            hooks: the total bound of the shutdown hooks; default one ``hook_timeout``.
        """
        prestop = _validate.seconds(prestop, what="prestop", allow_zero=True)
        total_hooks = self.hook_timeout if hooks is None else hooks
        total = prestop + self.delay + self.drain_timeout + total_hooks + GRACE_MARGIN
        return math.ceil(total)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, *, base: ShutdownTiming | None = None
    ) -> ShutdownTiming:
        """Timings from ``GRACEKIT_SHUTDOWN_DELAY``, ``GRACEKIT_DRAIN_TIMEOUT`` and
        ``GRACEKIT_HOOK_TIMEOUT`` (seconds); those not set come from *base* (or the defaults).
        ``GRACEKIT_SHUTDOWN_DELAY=auto`` keeps the delay inside Kubernetes (where
        ``KUBERNETES_SERVICE_HOST`` is set) and drops it elsewhere.

        Raises:
            ValueError: a variable that is set but is not a number of seconds.
        """
        base = base if base is not None else cls()
        values: dict[str, float] = {
            "delay": base.delay,
            "drain_timeout": base.drain_timeout,
            "hook_timeout": base.hook_timeout,
        }
        return cls(**{**values, **Settings(environ).shutdown_timings()})

    def shortfall(self, grace_period: float, *, hooks: float | None = None) -> str | None:
        """Why *grace_period* seconds cannot cover this sequence, or None if it can."""
        needed = self.grace_period(hooks=hooks)
        if grace_period >= needed:
            return None
        return (
            f"the grace period of {grace_period:g} s is shorter than the {needed} s the shutdown "
            f"may take (delay {self.delay:g} + drain {self.drain_timeout:g} + hooks "
            f"{self.hook_timeout if hooks is None else hooks:g} + margin {GRACE_MARGIN:g}): "
            "requests will be cut by SIGKILL; raise it, or shorten the timings"
        )

    def __repr__(self) -> str:
        return (
            f"ShutdownTiming(delay={self.delay:g}, drain_timeout={self.drain_timeout:g}, "
            f"hook_timeout={self.hook_timeout:g})"
        )


def grace_period_from_env(environ: Mapping[str, str] = os.environ) -> float | None:
    """The grace period ``GRACEKIT_GRACE_PERIOD`` announces, if set and valid."""
    return Settings(environ).grace_period()
