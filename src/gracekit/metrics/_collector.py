"""The lifecycle's state as Prometheus gauges, read when they are scraped.

A prometheus_client collector: no background loop keeps a copy fresh, so a scrape right after
a change shows it. Reading is a few attribute reads and the readiness verdict (no check runs, no
I/O), so it may run on the event loop, and in another thread (prometheus_client's own server).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

from .._optional import require

require("prometheus_client", extra="prometheus", feature="gracekit.metrics")

from prometheus_client.metrics_core import GaugeMetricFamily, Metric  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

if TYPE_CHECKING:
    from ..lifecycle import Lifecycle

__all__ = ["GAUGES", "GaugeSpec", "LifecycleCollector"]

_PHASES = ("starting", "started", "draining", "stopped")


class GaugeSpec(NamedTuple):
    """What defines one of the state gauges (and how multiprocess mode combines workers)."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    multiprocess_mode: str


IN_FLIGHT = GaugeSpec(
    "gracekit_requests_in_flight", "HTTP requests and websockets in flight.", (), "livesum"
)
PHASE = GaugeSpec(
    "gracekit_phase", "The lifecycle's phase: 1 for the current one.", ("phase",), "livemax"
)
READY = GaugeSpec("gracekit_ready", "1 while readiness passes.", (), "livemin")
CHECK_UP = GaugeSpec("gracekit_check_up", "1 while the check passes.", ("check",), "livemin")
CHECK_DURATION = GaugeSpec(
    "gracekit_check_duration_seconds",
    "How long the check's latest run took.",
    ("check",),
    "livemax",
)
#: The gauges :class:`LifecycleCollector` reports, in the order it reports them.
GAUGES = (IN_FLIGHT, PHASE, READY, CHECK_UP, CHECK_DURATION)


def _family(spec: GaugeSpec) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.documentation, labels=spec.labels)


class LifecycleCollector(Collector):
    """Reports a lifecycle's state as gauges each time it is collected: the requests in
    flight, the phase, readiness, and each check's status and latest duration.

    Register it on a registry (:class:`~gracekit.metrics.Metrics` does); describing itself, it
    makes a registry refuse a second collector with the same metrics.
    """

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    def describe(self) -> Iterator[Metric]:
        """The metric families, without samples (what registering checks for clashes)."""
        for spec in GAUGES:
            yield _family(spec)

    def collect(self) -> Iterator[Metric]:
        """The metric families with the lifecycle's state now."""
        lifecycle = self.lifecycle
        in_flight, phase, ready, check_up, check_duration = (_family(spec) for spec in GAUGES)
        in_flight.add_metric([], len(lifecycle.inflight))
        current = lifecycle.phase.value
        for name in _PHASES:
            phase.add_metric([name], 1 if name == current else 0)
        ready.add_metric([], 1 if lifecycle.readiness().ok else 0)
        now = time.monotonic()
        for name, state in list(lifecycle.checks.items()):
            check_up.add_metric([name], 1 if state.status(now).value == "pass" else 0)
            if state.last_duration is not None:
                check_duration.add_metric([name], state.last_duration)
        return iter((in_flight, phase, ready, check_up, check_duration))
