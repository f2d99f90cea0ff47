"""What a run measured, as one plain dict (the JSON report, and the source of the text report
and of the plot).

Times are seconds from the start of the run. Latencies are of answered requests (status below
500), counted from the moment each request was due, in windows by that moment: ``before`` the
rollout (from the start of the load), ``during`` it (from the first new pod to the moment the
last old container has exited and the proxy has caught up), and ``after`` it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .load import Outcome
from .simulator import PodRun, RunResult
from .termination import Termination

__all__ = ["BUCKET", "build", "percentile", "windows", "write_json"]

#: Width of the timeline's buckets, in seconds.
BUCKET = 0.5


def percentile(values: Sequence[float], q: float) -> float | None:
    """The *q*-th percentile (0-100) of *values* by nearest rank, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def _latency(outcomes: Iterable[Outcome]) -> dict[str, Any]:
    values = [o.latency for o in outcomes if o.kind == "ok"]
    return {
        "count": len(values),
        "p50": _ms(percentile(values, 50)),
        "p99": _ms(percentile(values, 99)),
    }


def windows(result: RunResult) -> dict[str, list[Outcome]]:
    """The outcomes of *result* by window (``before``, ``during``, ``after`` the rollout),
    each request by the moment it was due, in order."""
    load = result.load
    outcomes = sorted(load.outcomes, key=lambda o: o.at) if load is not None else []
    begin = result.rollout_started if result.rollout_started is not None else math.inf
    end = result.rollout_finished if result.rollout_finished is not None else math.inf
    return {
        "before": [o for o in outcomes if o.at < begin],
        "during": [o for o in outcomes if begin <= o.at < end],
        "after": [o for o in outcomes if o.at >= end],
    }


def _failures(outcomes: Iterable[Outcome]) -> dict[str, int]:
    return dict(sorted(Counter(o.kind for o in outcomes if o.failed).items()))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _pod(run: PodRun, result: RunResult) -> dict[str, Any]:
    name, timeline = run.pod.name, result.timeline
    stop: Termination | None = run.kubelet.termination
    added = [e.at for e in timeline.events if e.pod == name and e.kind == "endpoint-added"]
    removed = [e.at for e in timeline.events if e.pod == name and e.kind == "endpoint-removed"]
    return {
        "name": name,
        "version": run.pod.version,
        "port": run.pod.port,
        "pids": list(run.pod.pids),
        "created": run.created,
        "ready": timeline.first(name, "ready"),
        "endpoint_added": added[0] if added else None,
        "endpoint_removed": removed[-1] if removed else None,
        "deleted": stop.started if stop is not None else None,
        "prestop_done": _round(stop.prestop_done) if stop is not None else None,
        "sigterm": _round(stop.sigterm) if stop is not None else None,
        "exited": _round(stop.exited) if stop is not None else None,
        "sigterm_to_exit": _round(stop.sigterm_to_exit) if stop is not None else None,
        "sigkilled": stop.killed if stop is not None else False,
        "exit_status": stop.exit_code if stop is not None else None,
        "restarts": run.kubelet.restarts,
        "liveness_kills": sum(1 for kill in run.kubelet.kills if "liveness" in kill.reason),
    }


def _timeline(outcomes: Sequence[Outcome], start: float, end: float) -> list[dict[str, Any]]:
    count = max(1, math.ceil((end - start) / BUCKET))
    buckets: list[dict[str, Any]] = [
        {"t": round(start + i * BUCKET, 3), "versions": Counter(), "failures": Counter()}
        for i in range(count)
    ]
    for outcome in outcomes:
        index = min(count - 1, max(0, int((outcome.at - start) / BUCKET)))
        if outcome.failed:
            buckets[index]["failures"][outcome.kind] += 1
        else:
            buckets[index]["versions"][outcome.version or "?"] += 1
    for bucket in buckets:
        bucket["versions"] = dict(sorted(bucket["versions"].items()))
        bucket["failures"] = dict(sorted(bucket["failures"].items()))
    return buckets


def _settings(result: RunResult) -> dict[str, Any]:
    settings = result.settings
    kubelet = settings.kubelet
    return {
        "command": str(settings.command),
        "environment": dict(settings.command.env),
        "replicas": settings.replicas,
        "versions": list(settings.versions),
        "proxy": settings.proxy,
        "retries": settings.retries,
        "envoy": result.envoy_version,
        "propagation_delay": settings.propagation_delay,
        "grace_period": kubelet.grace_period,
        "prestop": str(kubelet.prestop),
        "probes": {
            name: None if probe is None else str(probe)
            for name, probe in (
                ("startup", kubelet.startup),
                ("liveness", kubelet.liveness),
                ("readiness", kubelet.readiness),
            )
        },
        "load": {
            "rate": settings.load.rate,
            "path": settings.load.path,
            "slow_path": settings.load.slow_path,
            "slow_share": settings.load.slow_share,
            "keepalive_share": settings.load.keepalive_share,
            "request_timeout": settings.load.request_timeout,
        },
    }


def build(result: RunResult) -> dict[str, Any]:
    """The report of *result*: settings, requests, latencies, rollout, pods, timeline."""
    load = result.load
    outcomes = sorted(load.outcomes, key=lambda o: o.at) if load is not None else []
    latency: dict[str, Any] = {}
    for window, inside in windows(result).items():
        latency[window] = {
            "requests": len(inside),
            "failed": sum(1 for o in inside if o.failed),
            "short": _latency(o for o in inside if not o.slow),
            "slow": _latency(o for o in inside if o.slow),
        }
    failed = sum(1 for o in outcomes if o.failed)
    statuses = Counter(o.status for o in outcomes if o.status)
    started = result.rollout_started
    finished = result.rollout_finished
    load_start = load.started if load is not None and load.started is not None else 0.0
    load_end = max((o.at for o in outcomes), default=load_start) + BUCKET
    return {
        "label": result.settings.label,
        "settings": _settings(result),
        "error": result.error,
        "requests": {
            "total": len(outcomes),
            "failed": failed,
            "failures": _failures(outcomes),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "load_started": _round(load.started) if load is not None else None,
            "load_stopped": _round(load.stopped) if load is not None else None,
        },
        "latency_ms": latency,
        "rollout": {
            "started": _round(started),
            "finished": _round(finished),
            "duration": _round(finished - started)
            if started is not None and finished is not None
            else None,
        },
        "pods": [_pod(run, result) for run in result.pods],
        "timeline": {"bucket": BUCKET, "buckets": _timeline(outcomes, load_start, load_end)},
        "events": [
            {"at": e.at, "pod": e.pod, "kind": e.kind, "detail": e.detail}
            for e in result.timeline.events
        ],
        "proxy": result.proxy_stats,
        "processes": {"run": result.run_id, "envoy": result.envoy_pid, "pids": list(result.pids)},
    }


def write_json(report: dict[str, Any] | list[dict[str, Any]], path: Path) -> None:
    """Write *report* (or several) to *path* as indented JSON."""
    path.write_text(json.dumps(report, indent=2) + "\n")
