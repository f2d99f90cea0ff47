"""The arithmetic both tools share: the timings a container really runs with, what its grace
period must cover, how long probes tolerate a slow process, and what a rolling update leaves.

The grace period itself is :meth:`ShutdownTiming.grace_period`; this module only decides what
goes into it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..drain.timing import GRACE_MARGIN, ShutdownTiming

__all__ = [
    "PROBE_DEFAULTS",
    "STARTUP_PERIOD",
    "Budget",
    "blocked_loop_tolerance",
    "effective_timing",
    "resolve_int_or_percent",
    "restart_tolerance",
    "startup_failure_threshold",
]

#: Kubernetes' defaults for a probe's fields.
PROBE_DEFAULTS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "failureThreshold": 3,
    "successThreshold": 1,
}

#: The startup probe's period, and its budget: at least a minute, and at least the startup
#: work plus room for what comes before it (the import and the app's own lifespan, unbounded).
STARTUP_PERIOD = 2
DEFAULT_STARTUP_BUDGET = 60.0
STARTUP_SLACK = 30.0


def startup_failure_threshold(work: float | None, *, budget: float | None = None) -> int:
    """The startup probe's ``failureThreshold`` (at ``STARTUP_PERIOD``) for *work* seconds of
    startup work (None: unbounded), or for an explicit *budget* in seconds."""
    if budget is None:
        budget = (
            DEFAULT_STARTUP_BUDGET
            if work is None
            else max(DEFAULT_STARTUP_BUDGET, work + STARTUP_SLACK)
        )
    return math.ceil(budget / STARTUP_PERIOD)


def effective_timing(
    code: ShutdownTiming,
    environ: Mapping[str, str],
    *,
    delay: float | None = None,
    drain_timeout: float | None = None,
) -> ShutdownTiming:
    """The timings a container runs with: the code's, overridden by the ``GRACEKIT_*``
    variables of its *environ* (read as inside Kubernetes, so ``auto`` keeps the delay), then
    by ``gracekit run``'s ``--shutdown-delay`` and ``--drain-timeout``.

    Raises:
        ValueError: a ``GRACEKIT_*`` value that is not a number of seconds.
    """
    inside = {"KUBERNETES_SERVICE_HOST": "kubernetes.default.svc", **environ}
    timing = ShutdownTiming.from_env(inside, base=code)
    if delay is not None:
        timing = replace(timing, delay=delay)
    if drain_timeout is not None:
        timing = replace(timing, drain_timeout=drain_timeout)
    return timing


@dataclass(frozen=True)
class Budget:
    """What ``terminationGracePeriodSeconds`` must cover, from the start of the preStop hook.

    Parameters:
        timing: the timings the container runs with.
        hooks: the total bound of the shutdown hooks.
        prestop: seconds a preStop ``sleep`` spends before SIGTERM. An ``httpGet`` hook on
            gracekit's preStop endpoint counts 0 here: it spends the app's delay, which the
            SIGTERM after it does not spend again.
    """

    timing: ShutdownTiming
    hooks: float
    prestop: float = 0.0

    def grace_period(self) -> int:
        """The smallest grace period that covers the sequence, in whole seconds."""
        return self.timing.grace_period(prestop=self.prestop, hooks=self.hooks)

    def explain(self) -> str:
        """The sum, term by term: ``preStop 0 + delay 5 + drain 20 + hooks 5 + margin 2``."""
        parts = [
            ("preStop", self.prestop),
            ("delay", self.timing.delay),
            ("drain", self.timing.drain_timeout),
            ("hooks", self.hooks),
            ("margin", GRACE_MARGIN),
        ]
        return " + ".join(f"{name} {value:g}" for name, value in parts)


def restart_tolerance(probe: Mapping[str, object]) -> int:
    """Seconds from the container's start before a probe that never succeeds has failed
    enough times to restart it: ``initialDelaySeconds + failureThreshold * periodSeconds``."""
    return _field(probe, "initialDelaySeconds") + _field(probe, "failureThreshold") * _field(
        probe, "periodSeconds"
    )


def blocked_loop_tolerance(probe: Mapping[str, object]) -> int:
    """The longest the process can stop answering before this probe has failed
    ``failureThreshold`` times in a row: ``timeoutSeconds + (failureThreshold - 1) *
    periodSeconds``."""
    return _field(probe, "timeoutSeconds") + (_field(probe, "failureThreshold") - 1) * _field(
        probe, "periodSeconds"
    )


def _field(probe: Mapping[str, object], name: str) -> int:
    value = probe.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else PROBE_DEFAULTS[name]


def resolve_int_or_percent(value: object, total: int, *, round_up: bool) -> int | None:
    """A rolling update's ``maxSurge``/``maxUnavailable`` as a number of pods, the way the
    Deployment controller does it (a percentage of *total*, up for surge, down for
    unavailable). None when *value* is neither an int nor ``"N%"``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            return None
        exact = percent * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return None
