"""Prometheus metrics for canary analysis and on-call (the ``prometheus`` extra).

::

    from starlette.routing import Route

    from gracekit.metrics import Metrics, MetricsApp

    metrics = Metrics(lifecycle)
    app.routes.append(Route("/metrics", MetricsApp(metrics)))  # a route: a mount would redirect

``DrainMiddleware`` then counts every request by method, route template and status
(``http_requests_total``, ``http_request_duration_seconds``); the ``gracekit_*`` metrics come
from the lifecycle's events and, for its state, are read from it when scraped. See
docs/metrics.md for every metric and the queries.
"""

from __future__ import annotations

from .endpoint import MetricsApp as MetricsApp
from .prometheus import DEFAULT_BUCKETS as DEFAULT_BUCKETS
from .prometheus import UNMATCHED as UNMATCHED
from .prometheus import Metrics as Metrics

__all__ = ["DEFAULT_BUCKETS", "UNMATCHED", "Metrics", "MetricsApp"]
