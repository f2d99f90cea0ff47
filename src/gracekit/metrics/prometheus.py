"""Prometheus metrics: what canary analysis judges a release by, and what the lifecycle did.

Request metrics come from the drain middleware, one call per request with the matched route's
template (never the raw path, so the number of series stays bounded). Lifecycle metrics come
from the lifecycle's events and, for its state, from a collector that reads it when scraped.
Both work in prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), which
``gracekit run --workers N`` sets up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .._optional import require
from ..deadlines._budget import CutReason
from ..drain.middleware import RequestDone
from ..events._bus import LifecycleEvent
from .endpoint import MetricsApp

require("prometheus_client", extra="prometheus", feature="gracekit.metrics")

import prometheus_client  # noqa: E402 - after the check that names the extra
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402
from prometheus_client.values import MutexValue  # noqa: E402

from ._collector import LifecycleCollector  # noqa: E402
from ._multiprocess import PUBLISH_INTERVAL, WorkerGauges  # noqa: E402

if TYPE_CHECKING:
    from ..lifecycle import Lifecycle

__all__ = ["DEFAULT_BUCKETS", "UNMATCHED", "Metrics"]

#: Upper bounds (seconds) of the request duration histogram: web latencies, 5 ms to a minute.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: The route label of requests that no route matched: every such path shares it.
UNMATCHED = "unmatched"

_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


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


def _register(registry: CollectorRegistry, collectors: Iterable[Collector]) -> None:
    """Register every one of *collectors*, or none of them."""
    done: list[Collector] = []
    try:
        for collector in collectors:
            registry.register(collector)
            done.append(collector)
    except ValueError as exc:
        for collector in done:
            registry.unregister(collector)
        raise ValueError(
            f"this registry has gracekit's metrics already ({exc}): a registry holds one "
            "Metrics; give each its own registry=CollectorRegistry()"
        ) from exc


class Metrics:
    """The Prometheus metrics of one lifecycle and the app its drain middleware wraps.

    Parameters:
        lifecycle: the lifecycle to report on; creating the metrics attaches them to it (the
            drain middleware reports each request, the events count readiness changes and time
            the drain).
        registry: where the metrics are registered; default prometheus_client's global
            ``REGISTRY``, so that the app's own metrics are served alongside.
        buckets: upper bounds of the request duration histogram, in seconds.

    The lifecycle's state (phase, readiness, checks, requests in flight) is read when the
    registry is collected, by a :class:`~gracekit.metrics._collector.LifecycleCollector`.

    Raises:
        TypeError, ValueError: bad buckets; a lifecycle that has its metrics already; a
            registry that has these metrics already (nothing is registered then).
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
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=None,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template.",
            ["method", "route"],
            buckets=buckets,
            registry=None,
        )
        #: Reads the lifecycle's state gauges when the registry is collected.
        self.collector = LifecycleCollector(lifecycle)
        self.ready_transitions = Counter(
            "gracekit_ready_transitions",
            "Readiness changes, by the state entered.",
            ["to"],
            registry=None,
        )
        self.drain_duration = Gauge(
            "gracekit_drain_duration_seconds",
            "How long the latest drain took, from the end of the shutdown delay.",
            registry=None,
            multiprocess_mode="max",
        )
        self.after_shutdown = Counter(
            "gracekit_requests_after_shutdown",
            "HTTP requests that arrived after the shutdown had started, and were served.",
            registry=None,
        )
        self.cut = Counter(
            "gracekit_requests_cut",
            "HTTP requests cut short by the shutdown, by reason (drain: the drain deadline; "
            "forced: a forced shutdown).",
            ["reason"],
            registry=None,
        )
        self.expired = Counter(
            "gracekit_deadline_expired",
            "HTTP requests whose own deadline passed, by route template.",
            ["route"],
            registry=None,
        )
        for state in ("ready", "not_ready"):
            self.ready_transitions.labels(state)
        _register(
            self.registry,
            [
                self.requests,
                self.duration,
                self.collector,
                self.ready_transitions,
                self.drain_duration,
                self.after_shutdown,
                self.cut,
                self.expired,
            ],
        )
        # Per (method, route, status): the bound methods that record a request (found once).
        self._children: dict[tuple[str, str | None, int], tuple[Any, Any]] = {}
        #: This worker's state gauges in its files, in multiprocess mode only (None otherwise).
        self.worker_gauges = WorkerGauges(self.collector) if self.multiprocess else None
        lifecycle.request_observer = self
        lifecycle.management_routes.setdefault("/metrics", MetricsApp(self))
        lifecycle.on_event(self._on_event)
        if self.worker_gauges is not None:
            lifecycle.add_daemon(self._publish_often)
            self.worker_gauges.publish()

    # -- requests (the hot path) -----------------------------------------------------------

    def request_done(self, done: RequestDone) -> None:
        """Count one request (called by the drain middleware)."""
        method, route, status, seconds, after_shutdown, cut = done
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
            if cut is CutReason.EXPIRED:
                self.expired.labels(route or UNMATCHED).inc()
            else:
                self.cut.labels("forced" if cut is CutReason.FORCED else "drain").inc()

    def _child(self, method: str, route: str | None, status: int) -> tuple[Any, Any]:
        label = route or UNMATCHED
        counter = self.requests.labels(method, label, str(status))
        histogram = self.duration.labels(method, label)
        return counter.inc, histogram.observe

    # -- the lifecycle ---------------------------------------------------------------------

    def publish(self) -> None:
        """In multiprocess mode, write this worker's state gauges to its files now (a scrape
        reads every worker's files); in single-process mode there is nothing to do."""
        if self.worker_gauges is not None:
            self.worker_gauges.publish()

    async def _publish_often(self) -> None:
        while True:
            self.publish()
            await anyio.sleep(PUBLISH_INTERVAL)

    def _on_event(self, event: LifecycleEvent) -> None:
        kind = event.kind
        if kind in ("ready", "not_ready"):
            self.ready_transitions.labels(kind).inc()
        elif kind == "drained":
            self.drain_duration.set(event.fields.get("drain_s", 0.0))
        if self.worker_gauges is None:
            return
        if kind == "stopped":
            self.worker_gauges.leave()  # this worker's live gauges leave with it
        else:
            self.worker_gauges.publish()
