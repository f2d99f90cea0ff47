"""The doctor's rules about probes: each probe present, asking the app's endpoint for its own
question, on the server's port or the management port, with timings that fit the app's startup
and loop-lag threshold.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .appinfo import MANAGEMENT_HEALTH_PATH
from .container import Endpoint, probe_endpoint, resolve_port
from .deployment import Target
from .findings import ERROR, Finding
from .timing import (
    STARTUP_PERIOD,
    blocked_loop_tolerance,
    restart_tolerance,
    startup_failure_threshold,
)

__all__ = [
    "PROBE_FIELDS",
    "Landing",
    "base_path",
    "landing",
    "liveness_endpoint",
    "port_findings",
    "probe_paths",
    "probe_timeout",
    "readiness_missing",
    "startup_probe",
]

# The probes, the field each lives in, and the gracekit endpoints each may ask.
_PROBES = (
    ("startup", "startupProbe", ("/startup", "/ready")),
    ("liveness", "livenessProbe", ("/live",)),
    ("readiness", "readinessProbe", ("/ready",)),
)
PROBE_FIELDS = tuple(field for _, field, _ in _PROBES)


def base_path(target: Target) -> str:
    """Where the probes are expected: on the management port when there is one, else where
    the app mounts its ProbeApp."""
    if target.management_port is not None:
        return MANAGEMENT_HEALTH_PATH
    return (target.info.health_path or "/health").rstrip("/")


@dataclass(frozen=True)
class Landing:
    """Where a probe's or a hook's request lands."""

    management: bool  # on the management port; else on the server's
    base: str | None  # where the probe endpoints are there; None: the app's port has none


def landing(target: Target, endpoint: Endpoint) -> Landing | None:
    """Where *endpoint*'s request lands, or None when its port is neither the server's nor
    the management port (a server port the doctor cannot know counts as the server's)."""
    port = resolve_port(endpoint.port, target.container)
    if port is not None and port == target.management_port:
        return Landing(True, MANAGEMENT_HEALTH_PATH)
    if target.port is None or port == target.port:
        health = target.info.health_path
        return Landing(False, None if health is None else health.rstrip("/"))
    return None


def _base_of(target: Target, endpoint: Endpoint) -> str:
    """The probe endpoints' path where *endpoint* lands, else where they are expected."""
    where = landing(target, endpoint)
    return where.base if where is not None and where.base is not None else base_path(target)


def _probe(target: Target, field: str) -> Mapping[str, Any] | None:
    probe = target.container.get(field)
    return probe if isinstance(probe, Mapping) else None


def readiness_missing(target: Target) -> Iterator[Finding]:
    """A container without a readiness probe is ready the moment it starts."""
    if _probe(target, "readinessProbe") is None:
        yield Finding(
            "readiness-missing", ERROR, target.path("readinessProbe"),
            "the container has no readiness probe",
            "without one, a pod counts as ready as soon as its container starts: the rolling "
            "update sends it traffic before the app listens (connection refused, 502) and "
            "stops the next old pod at once; a pod whose database is down stays in rotation",
            f"add readinessProbe: {{httpGet: {{path: {base_path(target)}/ready, port: ...}}, "
            "periodSeconds: 5, failureThreshold: 2}",
        )  # fmt: skip


def liveness_endpoint(target: Target) -> Iterator[Finding]:
    """Liveness must not share readiness's endpoint, nor ask about dependencies."""
    liveness, readiness = _probe(target, "livenessProbe"), _probe(target, "readinessProbe")
    if liveness is None:
        return
    live = probe_endpoint(liveness)
    base = _base_of(target, live)
    fix = f"point the liveness probe at {base}/live, which looks only at the process"
    if readiness is not None and live.same_target(probe_endpoint(readiness)):
        yield Finding(
            "liveness-is-readiness", ERROR, target.path("livenessProbe"),
            "liveness and readiness ask the same endpoint",
            "a failure that should only take the pod out of rotation (a dependency, the drain) "
            "also restarts it; when a shared dependency blips, every pod restarts at once, "
            "dropping what each had in flight",
            fix,
        )  # fmt: skip
    elif live.kind == "httpGet" and (live.path or "").startswith(f"{base}/ready"):
        yield Finding(
            "liveness-checks-dependencies", ERROR, target.path("livenessProbe", "httpGet", "path"),
            f"liveness asks {live.path}, which fails when a dependency check fails",
            "when the database (or another shared dependency) blips, liveness fails in every "
            "pod at once and the kubelet restarts them all: the service goes down although "
            "only the dependency was, and comes back through a crash loop",
            fix,
        )  # fmt: skip


def probe_timeout(target: Target) -> Iterator[Finding]:
    """Liveness must outlast the event-loop stalls the app itself counts as alive."""
    liveness = _probe(target, "livenessProbe")
    if liveness is None or probe_endpoint(liveness).kind != "httpGet":
        return
    tolerance = blocked_loop_tolerance(liveness)
    threshold = target.info.loop_lag_threshold
    if tolerance < threshold:
        yield Finding(
            "probe-timeout", ERROR, target.path("livenessProbe", "timeoutSeconds"),
            f"liveness gives up on a process that has not answered for {tolerance} s "
            "(timeoutSeconds + (failureThreshold - 1) x periodSeconds), but the app counts an "
            f"event-loop stall of up to {threshold:g} s as alive",
            "the probe endpoint answers as soon as the event loop runs: a stall the app "
            "tolerates (a garbage-collection pause, a burst of CPU work) outlasts the probe, "
            "and the kubelet restarts a working pod, cutting its requests",
            f"raise timeoutSeconds or failureThreshold until timeoutSeconds + (failureThreshold "
            f"- 1) x periodSeconds >= {threshold:g}",
        )  # fmt: skip


def startup_probe(target: Target) -> Iterator[Finding]:
    """Slow startup work needs a startup probe whose budget covers it."""
    work = target.info.startup_work()
    startup, liveness = _probe(target, "startupProbe"), _probe(target, "livenessProbe")
    base = base_path(target)
    if startup is not None:
        budget = restart_tolerance(startup)
        if work is not None and budget < work:
            yield Finding(
                "startup-budget", ERROR, target.path("startupProbe", "failureThreshold"),
                f"the startup probe gives up after {budget} s (initialDelaySeconds + "
                f"failureThreshold x periodSeconds), but the startup work may take {work:g} s",
                "the kubelet restarts a pod that is still starting, over and over: the new "
                "revision never becomes ready and the rollout stalls",
                f"raise failureThreshold so that failureThreshold x periodSeconds > {work:g}",
            )  # fmt: skip
        return
    if liveness is None or work is None:
        return
    tolerance = restart_tolerance(liveness)
    if work > tolerance:
        yield Finding(
            "startup-probe-missing", ERROR, target.path("startupProbe"),
            f"no startup probe, and the startup work may take {work:g} s while liveness "
            f"restarts a container that has not answered for {tolerance} s",
            "liveness runs from the container's first second: a startup that keeps the server "
            "from answering (CPU-bound warm-up on the event loop, a slow import) is killed "
            "before it is done, so the new pods crash-loop and the rollout stalls",
            f"add startupProbe: {{httpGet: {{path: {base}/startup, port: ...}}, periodSeconds: "
            f"{STARTUP_PERIOD}, failureThreshold: {startup_failure_threshold(work)}}}",
        )  # fmt: skip


def port_findings(target: Target, endpoint: Endpoint, path: str, what: str) -> Iterator[Finding]:
    """A probe or hook on a port that is neither the server's nor the management port, or on
    the server's while only the management port serves the probes."""
    where = landing(target, endpoint)
    management = target.management_port
    if where is not None and (where.base is not None or management is None):
        return
    port = resolve_port(endpoint.port, target.container)
    shown = repr(endpoint.port) if port is None else str(port)
    if management is None:
        fix = f"use port {target.port} (or the name of the containerPort that is {target.port})"
    else:
        fix = f"use the management port {management} (or the name of its containerPort)"
    if where is None:
        listens = f"the server listens on {target.port}"
        if management is not None:
            listens += f" and the management port is {management}"
        problem = f"{what} goes to port {shown}, but {listens}"
        why = "the kubelet's requests are refused"
    else:
        problem = (
            f"{what} goes to the server's port {shown}, where the app mounts no ProbeApp; "
            f"gracekit's endpoints are on the management port {management}"
        )
        why = "the app answers 404"
    yield Finding(
        "probe-port", ERROR, path, problem,
        f"{why}: the probe fails for ever (the pod never becomes ready, or is restarted in a "
        "loop) or the hook fails",
        fix,
    )  # fmt: skip


def probe_paths(target: Target) -> Iterator[Finding]:
    """Each probe must ask the app's endpoint for its own question, where it lands."""
    info = target.info
    if info.source is not None and info.health_path is None and target.management is None:
        yield Finding(
            "probe-path", ERROR, target.path(),
            f"{info.source} mounts no ProbeApp and has no management port, so no probe can "
            "ask it anything",
            "probes then test routes or nothing at all: pods take traffic before they can "
            "serve it and keep it while their dependencies are down",
            "serve the probes on a management port (Lifecycle(management=Management(port="
            '9001))), or mount a ProbeApp: app.mount("/health", ProbeApp(lifecycle))',
        )  # fmt: skip
        return
    names = info.probe_names()
    for kind, field, allowed in _PROBES:
        probe = _probe(target, field)
        if probe is None:
            continue
        endpoint = probe_endpoint(probe)
        if endpoint.kind != "httpGet":
            base = base_path(target)
            if kind == "readiness":
                yield Finding(
                    "probe-path", ERROR, target.path(field),
                    f"the readiness probe is a {endpoint.kind or 'handler-less'} probe, not a "
                    f"request to {base}/ready",
                    "readiness then ignores the app's checks, gates, startup and drain: the pod "
                    "takes traffic before it can serve it, and while it shuts down",
                    f"use httpGet: {{path: {base}/ready, port: ...}}",
                )  # fmt: skip
            continue
        yield from port_findings(
            target, endpoint, target.path(field, "httpGet", "port"), f"the {kind} probe"
        )
        base, path = _base_of(target, endpoint), endpoint.path or "/"
        if kind == "liveness" and path.startswith(f"{base}/ready"):
            continue  # liveness_endpoint reports it
        if any(path == base + ok for ok in allowed):
            continue
        single = path.startswith(f"{base}/ready/") and (
            info.source is None or path[len(base) + 7 :] in names
        )
        if kind == "readiness" and single:
            continue
        expected = f"{base}{allowed[0]}"
        if path == f"{base}/prestop":
            why = "every probe call starts the shutdown: the pod takes itself out of rotation"
        elif any(path == base + p for p in ("/startup", "/live", "/ready")) or single:
            why = f"{path} answers another probe's question, so the {kind} probe misleads"
        else:
            why = (
                f"the app serves no probe at {path}: the probe tests a route (or a 404) instead "
                "of the app's state"
            )
        yield Finding(
            "probe-path", ERROR, target.path(field, "httpGet", "path"),
            f"the {kind} probe asks {path}; the app's {kind} endpoint is {expected}",
            why, f"set path: {expected}",
        )  # fmt: skip
