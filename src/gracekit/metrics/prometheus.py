"""Prometheus metrics: what canary analysis judges a release by, and what the lifecycle did.

Request metrics come from the drain middleware, one call per request with the matched route's
template (never the raw path, so the number of series stays bounded). Lifecycle metrics come
from the lifecycle's events and from its state, read when ``/metrics`` is scraped and once a
second. Both work in prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), which
``gracekit run --workers N`` sets up.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .._optional import require
from ..deadlines.budget import EXPIRED
from ..events.bus import LifecycleEvent
from .endpoint import MetricsApp

require("prometheus_client", extra="prometheus", feature="gracekit.metrics")

import prometheus_client  # noqa: E402 - after the check that names the extra
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram  # noqa: E402
from prometheus_client.values import MutexValue  # noqa: E402

if TYPE_CHECKING:
    from ..lifecycle import Lifecycle

__all__ = ["DEFAULT_BUCKETS", "UNMATCHED", "Metrics"]

#: Upper bounds (seconds) of the request duration histogram: web latencies, 5 ms to a minute.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: The route label of requests that no route matched: every such path shares it.
UNMATCHED = "unmatched"
#: How often the state gauges are refreshed between scrapes (each worker's own, in
#: multiprocess mode), in seconds.
REFRESH_INTERVAL = 1.0

_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
_PHASES = ("starting", "started", "draining", "stopped")


def _buckets(value: Sequence[float]) -> tuple[float, ...]:
    try:
        buckets = tuple(float(b) for b in value)
    except (TypeError, ValueError):
        raise TypeError(f"buckets must be a sequence of numbers, got {value!r}") from None
    if not buckets or any(not math.isfinite(b) or b <= 0 for b in buckets):
        raise ValueError(f"buckets must be finite numbers of seconds > 0, got {value!r}")
    if list(buckets) != sorted(set(buckets)):
        raise ValueError(f"buckets must be increasing, got {value!r}")
    return buckets


class Metrics:
    """The Prometheus metrics of one lifecycle and the app its drain middleware wraps.

    Parameters:
        lifecycle: the lifecycle to report on; creating the metrics attaches them to it (the
            drain middleware reports each request, the events update the lifecycle metrics).
        registry: where the metrics are registered; default prometheus_client's global
            ``REGISTRY``, so that the app's own metrics are served alongside.
        buckets: upper bounds of the request duration histogram, in seconds.

    Raises:
        TypeError, ValueError: bad buckets; a registry that has these metrics already.
        ImportError: prometheus_client is not installed (``pip install 'gracekit[prometheus]'``).
    """

    def __init__(
        self,
        lifecycle: Lifecycle,
        *,
        registry: CollectorRegistry | None = None,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        buckets = _buckets(buckets)
        if lifecycle.request_observer is not None:
            raise ValueError("this lifecycle has its metrics already")
        self.lifecycle = lifecycle
        self.registry = registry if registry is not None else prometheus_client.REGISTRY
        #: True when prometheus_client shares values between processes through files (it
        #: decided when it was imported, from PROMETHEUS_MULTIPROC_DIR).
        self.multiprocess = prometheus_client.values.ValueClass is not MutexValue
        r = self.registry
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template.",
            ["method", "route"],
            buckets=buckets,
            registry=r,
        )
        self.in_flight = Gauge(
            "gracekit_requests_in_flight",
            "HTTP requests and websockets in flight.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.phase = Gauge(
            "gracekit_phase",
            "The lifecycle's phase: 1 for the current one.",
            ["phase"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.ready = Gauge(
            "gracekit_ready",
            "1 while readiness passes.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.ready_transitions = Counter(
            "gracekit_ready_transitions",
            "Readiness changes, by the state entered.",
            ["to"],
            registry=r,
        )
        self.check_up = Gauge(
            "gracekit_check_up",
            "1 while the check passes.",
            ["check"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.check_duration = Gauge(
            "gracekit_check_duration_seconds",
            "How long the check's latest run took.",
            ["check"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.drain_duration = Gauge(
            "gracekit_drain_duration_seconds",
            "How long the latest drain took, from the end of the shutdown delay.",
            registry=r,
            multiprocess_mode="max",
        )
        self.after_shutdown = Counter(
            "gracekit_requests_after_shutdown",
            "HTTP requests that arrived after the shutdown had started, and were served.",
            registry=r,
        )
        self.cut = Counter(
            "gracekit_requests_cut",
            "HTTP requests cut short by the shutdown, by reason (drain: the drain deadline; "
            "forced: a forced shutdown).",
            ["reason"],
            registry=r,
        )
        self.expired = Counter(
            "gracekit_deadline_expired",
            "HTTP requests whose own deadline passed, by route template.",
            ["route"],
            registry=r,
        )
        for name in _PHASES:
            self.phase.labels(name)
        for state in ("ready", "not_ready"):
            self.ready_transitions.labels(state)
        # Per (method, route, status): the bound methods that record a request (found once).
        self._children: dict[tuple[str, str | None, int], tuple[Any, Any]] = {}
        lifecycle.request_observer = self
        lifecycle.management_routes.setdefault("/metrics", MetricsApp(self))
        lifecycle.on_event(self._on_event)
        lifecycle.add_daemon(self._refresh_often)
        self.refresh()

    # -- requests (the hot path) -----------------------------------------------------------

    def request_done(
        self,
        method: str,
        route: str | None,
        status: int,
        seconds: float,
        *,
        after_shutdown: bool,
        cut: str | None,
    ) -> None:
        """Count one request (called by the drain middleware)."""
        if method not in _METHODS:
            method = "other"  # clients choose methods: they must not choose label values
        record = self._children.get((method, route, status))
        if record is None:
            record = self._children[method, route, status] = self._child(method, route, status)
        count, observe = record
        count()
        observe(seconds)
        if after_shutdown:
            self.after_shutdown.inc()
        if cut is not None:
            if cut == EXPIRED:
                self.expired.labels(route or UNMATCHED).inc()
            else:
                self.cut.labels("forced" if "forced" in cut else "drain").inc()

    def _child(self, method: str, route: str | None, status: int) -> tuple[Any, Any]:
        label = route or UNMATCHED
        counter = self.requests.labels(method, label, str(status))
        histogram = self.duration.labels(method, label)
        return counter.inc, histogram.observe

    # -- the lifecycle ---------------------------------------------------------------------

    def refresh(self) -> None:
        """Set the gauges that follow the lifecycle's state from that state, now."""
        lifecycle = self.lifecycle
        self.in_flight.set(len(lifecycle.inflight))
        phase = lifecycle.phase.value
        for name in _PHASES:
            self.phase.labels(name).set(1 if name == phase else 0)
        self.ready.set(1 if lifecycle.readiness().ok else 0)
        now = time.monotonic()
        for name, state in lifecycle.checks.items():
            self.check_up.labels(name).set(1 if state.status(now).value == "pass" else 0)
            if state.last_duration is not None:
                self.check_duration.labels(name).set(state.last_duration)

    async def _refresh_often(self) -> None:
        while True:
            self.refresh()
            await anyio.sleep(REFRESH_INTERVAL)

    def _on_event(self, event: LifecycleEvent) -> None:
        kind = event.kind
        if kind in ("ready", "not_ready"):
            self.ready_transitions.labels(kind).inc()
        elif kind == "drained":
            self.drain_duration.set(event.fields.get("drain_s", 0.0))
        elif kind == "stopped" and self.multiprocess:
            # This worker's live gauges leave with it (uvicorn's supervisor has no hook for it).
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
            return
        self.refresh()
