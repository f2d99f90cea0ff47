"""The state gauges in prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``).

A scrape is then answered from the files every worker writes, whichever worker serves it; a
collector can only read the state of the process it runs in. So each worker copies what its
:class:`~gracekit.metrics._collector.LifecycleCollector` reports into gauges backed by its own
files ("live" modes: they leave with the worker): when it serves a scrape, at each event, and
once a second for what changes without an event (requests in flight, a check's duration).
Single-process mode has none of this: the collector is read at scrape time.
"""

from __future__ import annotations

import os

from prometheus_client import Gauge
from prometheus_client.registry import Collector

from ._collector import GAUGES

__all__ = ["PUBLISH_INTERVAL", "WorkerGauges"]

#: How often a worker writes its state gauges to its files, in seconds, in multiprocess mode.
PUBLISH_INTERVAL = 1.0


class WorkerGauges:
    """This worker's copy of the state gauges, in its multiprocess files (registered nowhere:
    they reach a scrape through the files)."""

    def __init__(self, collector: Collector) -> None:
        self._collector = collector
        self._gauges = {
            spec.name: Gauge(
                spec.name,
                spec.documentation,
                spec.labels,
                registry=None,
                multiprocess_mode=spec.multiprocess_mode,  # type: ignore[arg-type]
            )
            for spec in GAUGES
        }

    def publish(self) -> None:
        """Write the collector's values now."""
        for family in self._collector.collect():
            gauge = self._gauges[family.name]
            for sample in family.samples:
                (gauge.labels(**sample.labels) if sample.labels else gauge).set(sample.value)

    def leave(self) -> None:
        """Remove this worker's files of live gauges: its lifecycle stopped (uvicorn's
        supervisor has no hook for a worker's exit)."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
