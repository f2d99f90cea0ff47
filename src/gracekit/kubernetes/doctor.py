"""The doctor's rules: each compares one part of a Deployment with the app and returns the
problems it finds, each with the field path, why it loses requests, and the fix.

A rule is a function of a :class:`~gracekit.kubernetes.deployment.Target` yielding
:class:`~gracekit.kubernetes.findings.Finding`; :data:`RULES` lists them in report order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..drain.timing import ENVIRONMENT_VARIABLES, GRACE_PERIOD_VARIABLE
from .appinfo import AppInfo
from .container import Endpoint, literal_env, mapping, prestop_hook, probe_endpoint, resolve_port
from .deployment import Document, Target, targets
from .findings import ERROR, WARNING, Finding
from .timing import (
    STARTUP_PERIOD,
    Budget,
    blocked_loop_tolerance,
    resolve_int_or_percent,
    restart_tolerance,
    startup_failure_threshold,
)

__all__ = ["RULES", "diagnose"]

DEFAULT_GRACE_PERIOD = 30  # Kubernetes' default terminationGracePeriodSeconds
_ANY_HOST = ("0.0.0.0", "::", "[::]")
# The probes, the field each lives in, and the gracekit endpoints each may ask.
_PROBES = (
    ("startup", "startupProbe", ("/startup", "/ready")),
    ("liveness", "livenessProbe", ("/live",)),
    ("readiness", "readinessProbe", ("/ready",)),
)

Rule = Callable[[Target], Iterable[Finding]]


def _base(target: Target) -> str:
    return (target.info.health_path or "/health").rstrip("/")


def _probe(target: Target, field: str) -> Mapping[str, Any] | None:
    probe = target.container.get(field)
    return probe if isinstance(probe, Mapping) else None


def _budget(target: Target) -> Budget:
    hook = prestop_hook(target.container)
    sleep = hook.sleep if hook is not None and hook.sleep else 0.0
    return Budget(target.timing, target.info.hooks_total(target.timing), prestop=sleep)


def grace_period(target: Target) -> Iterator[Finding]:
    """The grace period must cover preStop + delay + drain + hooks + margin."""
    if target.timing_error is not None:
        yield Finding(
            "timing-env", ERROR, target.path("env"), target.timing_error,
            "the app refuses to start with a timing it cannot read: no pod of this revision "
            "becomes ready, and the rollout stalls",
            "give the variable a number of seconds (or 'auto' for the delay)",
        )  # fmt: skip
    budget = _budget(target)
    needed = budget.grace_period()
    actual = target.pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_PERIOD)
    if not isinstance(actual, int) or isinstance(actual, bool):
        actual = DEFAULT_GRACE_PERIOD
    path = "spec.template.spec.terminationGracePeriodSeconds"
    if actual < needed:
        yield Finding(
            "grace-period", ERROR, path,
            f"the grace period is {actual} s, but the shutdown may take {needed} s "
            f"({budget.explain()})",
            f"the kubelet sends SIGKILL {actual} s after the preStop hook starts: requests "
            "still draining then are cut (clients see resets and 502s) and the shutdown hooks "
            "may not run",
            f"set terminationGracePeriodSeconds: {needed} (and {GRACE_PERIOD_VARIABLE} to the "
            "same), or shorten the delay or the drain timeout",
        )  # fmt: skip
    announced = literal_env(target.container).get(GRACE_PERIOD_VARIABLE)
    if announced is not None and announced.strip() != str(actual):
        yield Finding(
            "grace-period-env", WARNING, target.path("env"),
            f"{GRACE_PERIOD_VARIABLE} is {announced!r} but terminationGracePeriodSeconds is "
            f"{actual}",
            "the app's startup check compares its timings with the wrong number, so it cannot "
            "warn that SIGKILL will cut the drain",
            f"set {GRACE_PERIOD_VARIABLE}: \"{actual}\"",
        )  # fmt: skip


def readiness_missing(target: Target) -> Iterator[Finding]:
    """A container without a readiness probe is ready the moment it starts."""
    if _probe(target, "readinessProbe") is None:
        yield Finding(
            "readiness-missing", ERROR, target.path("readinessProbe"),
            "the container has no readiness probe",
            "without one, a pod counts as ready as soon as its container starts: the rolling "
            "update sends it traffic before the app listens (connection refused, 502) and "
            "stops the next old pod at once; a pod whose database is down stays in rotation",
            f"add readinessProbe: {{httpGet: {{path: {_base(target)}/ready, port: ...}}, "
            "periodSeconds: 5, failureThreshold: 2}",
        )  # fmt: skip


def liveness_endpoint(target: Target) -> Iterator[Finding]:
    """Liveness must not share readiness's endpoint, nor ask about dependencies."""
    liveness, readiness = _probe(target, "livenessProbe"), _probe(target, "readinessProbe")
    if liveness is None:
        return
    live = probe_endpoint(liveness)
    fix = f"point the liveness probe at {_base(target)}/live, which looks only at the process"
    if readiness is not None and live.same_target(probe_endpoint(readiness)):
        yield Finding(
            "liveness-is-readiness", ERROR, target.path("livenessProbe"),
            "liveness and readiness ask the same endpoint",
            "a failure that should only take the pod out of rotation (a dependency, the drain) "
            "also restarts it; when a shared dependency blips, every pod restarts at once, "
            "dropping what each had in flight",
            fix,
        )  # fmt: skip
    elif live.kind == "httpGet" and (live.path or "").startswith(f"{_base(target)}/ready"):
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
    base = _base(target)
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


def rollout(target: Target) -> Iterator[Finding]:
    """The update strategy must keep ready pods through the rollout."""
    strategy = mapping(target.spec.get("strategy"))
    if strategy.get("type") == "Recreate":
        yield Finding(
            "max-unavailable", ERROR, "spec.strategy.type",
            "the Recreate strategy stops every pod before the new ones start",
            "every update is an outage: nothing serves between the last old pod stopping and "
            "the first new one becoming ready",
            "use type: RollingUpdate with maxSurge: 1, maxUnavailable: 0",
        )  # fmt: skip
        return
    replicas = target.spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 1:
        return
    update = mapping(strategy.get("rollingUpdate"))
    surge = resolve_int_or_percent(update.get("maxSurge", "25%"), replicas, round_up=True)
    raw = update.get("maxUnavailable", "25%")
    unavailable = resolve_int_or_percent(raw, replicas, round_up=False)
    if surge is None or unavailable is None:
        return
    if surge == 0 and unavailable == 0:
        unavailable = 1  # what the Deployment controller does when both come to 0
    if replicas - unavailable <= 0:
        yield Finding(
            "max-unavailable", ERROR, "spec.strategy.rollingUpdate.maxUnavailable",
            f"maxUnavailable {raw!r} lets all {replicas} replicas be unavailable at once "
            "during a rollout",
            "the Deployment controller may stop every old pod before any new one is ready: "
            "requests find no endpoint (503 from the proxy, connection refused)",
            "set maxUnavailable: 0 and maxSurge: 1",
        )  # fmt: skip


def _selects(pdb: Mapping[str, Any], labels: Mapping[str, Any], namespace: object) -> bool:
    selector = mapping(mapping(pdb.get("spec")).get("selector")).get("matchLabels")
    if mapping(pdb.get("metadata")).get("namespace") != namespace or not isinstance(
        selector, Mapping
    ):
        return False
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def single_replica(target: Target) -> Iterator[Finding]:
    """One replica and no PodDisruptionBudget: a node drain takes the service down."""
    if target.spec.get("replicas", 1) != 1:
        return
    namespace = mapping(target.doc.obj.get("metadata")).get("namespace")
    if any(_selects(pdb, target.labels, namespace) for pdb in target.pdbs):
        return
    yield Finding(
        "single-replica", ERROR, "spec.replicas",
        "one replica and no PodDisruptionBudget selects its pods",
        "a node drain or upgrade evicts the only pod before a replacement is ready: every "
        "request fails until the new pod is scheduled, started and ready",
        "run replicas: 2 or more, with a PodDisruptionBudget (maxUnavailable: 1) that selects "
        "the pods",
    )  # fmt: skip


def prestop(target: Target) -> Iterator[Finding]:
    """The preStop hook must match the app: the delay spent once, the endpoint where it is."""
    hook = prestop_hook(target.container)
    if hook is None:
        return
    path = target.path("lifecycle", "preStop")
    if hook.sleep and target.timing.delay > 0:
        variable = ENVIRONMENT_VARIABLES["delay"]
        yield Finding(
            "prestop-double-delay", WARNING, path,
            f"the preStop hook sleeps {hook.sleep:g} s and the app still waits its delay of "
            f"{target.timing.delay:g} s after SIGTERM",
            "the delay is spent twice: every pod takes longer to stop, rollouts are slower, "
            "and the grace period must cover both",
            f"set {variable}: \"0\" in the container's env (the sleep is the delay), or drop "
            "the sleep and let the app spend the delay",
        )  # fmt: skip
    if hook.endpoint.kind != "httpGet":
        return
    yield from _prestop_http(target, hook.endpoint, path)


def _prestop_http(target: Target, endpoint: Endpoint, path: str) -> Iterator[Finding]:
    info, base = target.info, _base(target)
    yield from _port_findings(target, endpoint, path + ".httpGet.port", "the preStop hook")
    if endpoint.path != f"{base}/prestop" or (info.source is not None and not info.serves_prestop):
        served = f"{base}/prestop" if info.serves_prestop else "no preStop endpoint"
        yield Finding(
            "prestop-path", ERROR, path + ".httpGet.path",
            f"the preStop hook calls {endpoint.path}, but the app serves {served}",
            "the hook fails (FailedPreStopHook) and the delay is not spent before SIGTERM: "
            "under a server gracekit does not take over, the pod stops accepting while the "
            "proxies still send to it",
            f"call {base}/prestop, served by ProbeApp(lifecycle, prestop=True, "
            "prestop_token=...)",
        )  # fmt: skip
        return
    has_token = any(name.lower() == "authorization" for name, _ in endpoint.headers)
    if info.prestop_protected and not has_token:
        yield Finding(
            "prestop-token", ERROR, path + ".httpGet.httpHeaders",
            "the app's preStop endpoint needs a bearer token, and the hook sends none",
            "the hook gets 401 and changes nothing: the delay is left to SIGTERM, which a "
            "server gracekit does not take over turns into refused connections",
            "add httpHeaders: [{name: Authorization, value: Bearer <the prestop_token>}]",
        )  # fmt: skip
    elif not info.prestop_protected and not has_token:
        yield Finding(
            "prestop-token", WARNING, path + ".httpGet",
            f"{base}/prestop takes no token",
            "anyone who can reach the pod's port can take it out of rotation and shut it down",
            "serve it with ProbeApp(..., prestop_token=...) and send the token in httpHeaders; "
            "keep the path away from the public at the ingress",
        )  # fmt: skip


def _port_findings(target: Target, endpoint: Endpoint, path: str, what: str) -> Iterator[Finding]:
    if target.port is None:
        return
    port = resolve_port(endpoint.port, target.container)
    if port != target.port:
        shown = repr(endpoint.port) if port is None else str(port)
        yield Finding(
            "probe-port", ERROR, path,
            f"{what} goes to port {shown}, but the server listens on {target.port}",
            "the kubelet's requests are refused: the probe fails for ever (the pod never "
            "becomes ready, or is restarted in a loop) or the hook fails",
            f"use port {target.port} (or the name of the containerPort that is {target.port})",
        )  # fmt: skip


def probe_paths(target: Target) -> Iterator[Finding]:
    """Each probe must ask the app's endpoint for its own question, on the app's port."""
    info, base = target.info, _base(target)
    if info.source is not None and info.health_path is None:
        yield Finding(
            "probe-path", ERROR, target.path(),
            f"{info.source} mounts no ProbeApp, so no probe can ask it anything",
            "probes then test routes or nothing at all: pods take traffic before they can "
            "serve it and keep it while their dependencies are down",
            'mount one: app.mount("/health", ProbeApp(lifecycle))',
        )  # fmt: skip
        return
    names = info.probe_names()
    for kind, field, allowed in _PROBES:
        probe = _probe(target, field)
        if probe is None:
            continue
        endpoint = probe_endpoint(probe)
        if endpoint.kind != "httpGet":
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
        yield from _port_findings(
            target, endpoint, target.path(field, "httpGet", "port"), f"the {kind} probe"
        )
        path = endpoint.path or "/"
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


def server_command(target: Target) -> Iterator[Finding]:
    """The server must listen on the pod's address, and receive SIGTERM itself."""
    command = target.command
    if command is None:
        return
    field = (
        "args"
        if target.container.get("args") and not target.container.get("command")
        else "command"
    )
    if command.host not in _ANY_HOST:
        yield Finding(
            "listen-host", ERROR, target.path(field),
            f"{command.server} listens on {command.host}, which only the pod itself can reach",
            "the kubelet probes and the Service send to the pod's IP: every connection is "
            "refused, the pod never becomes ready",
            "add --host 0.0.0.0" if command.server != "gunicorn" else "use --bind 0.0.0.0:PORT",
        )  # fmt: skip
    if command.via_shell:
        yield Finding(
            "shell-command", WARNING, target.path(field),
            f"{command.server} is started by a shell that stays PID 1",
            "SIGTERM goes to the shell, which does not pass it on: the app never starts its "
            "shutdown and is killed at the end of the grace period, with its requests",
            "use the exec form (command: [gracekit, run, ...]) or start the line with exec",
        )  # fmt: skip


RULES: tuple[Rule, ...] = (
    grace_period,
    readiness_missing,
    liveness_endpoint,
    probe_timeout,
    startup_probe,
    rollout,
    single_replica,
    prestop,
    probe_paths,
    server_command,
)


def diagnose(
    documents: Sequence[Document],
    info: AppInfo | None = None,
    *,
    container: str | None = None,
    port: int | None = None,
    rules: Sequence[Rule] = RULES,
) -> tuple[list[Finding], int]:
    """The findings for every Deployment in *documents*, and how many Deployments there were.

    *info* describes the app (default: gracekit's defaults, probes under ``/health``);
    *container* names the app's container; *port* is where its server listens.

    Raises:
        InputError: no Deployment, a document that is not an object, a missing container.
    """
    found = targets(documents, info or AppInfo(), container=container, port=port)
    findings = [
        replace(finding, source=t.doc.source, document=t.doc.number, deployment=t.name)
        for t in found
        for rule in rules
        for finding in rule(t)
    ]
    return findings, len(found)
