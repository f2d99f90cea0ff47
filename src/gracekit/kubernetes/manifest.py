"""Building Kubernetes objects (plain dicts) that match a gracekit app.

Every number comes from the app: the probes' port and paths from its management port or where
its ``ProbeApp`` is mounted, the startup budget from its startup work, the liveness tolerance from
its loop-lag threshold, the readiness period and threshold from its checks, and
``terminationGracePeriodSeconds`` from its shutdown timings and hooks
(:class:`~gracekit.kubernetes.timing.Budget`).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import replace
from typing import Any

from ..drain.timing import ENVIRONMENT_VARIABLES, GRACE_PERIOD_VARIABLE
from ..server.management import MANAGEMENT_PORT_VARIABLE, PRESTOP_TOKEN_VARIABLE, Management
from .appinfo import MANAGEMENT_HEALTH_PATH, AppInfo
from .container import ANY_HOST
from .errors import InputError
from .options import OBJECTS, PRESTOP_MODES, ManifestOptions
from .timing import STARTUP_PERIOD, Budget, effective_timing, startup_failure_threshold

__all__ = ["OBJECTS", "PRESTOP_MODES", "ManifestOptions", "budget_of", "build_manifest"]

_KINDS = {
    "deployment": ("apps/v1", "Deployment"),
    "service": ("v1", "Service"),
    "pdb": ("policy/v1", "PodDisruptionBudget"),
}

PORT_NAME = "http"
MANAGEMENT_PORT_NAME = "management"
LIVENESS_PERIOD, LIVENESS_TIMEOUT, LIVENESS_FAILURES = 10, 2, 3
READINESS_PERIOD, READINESS_TIMEOUT, READINESS_FAILURES = 5, 1, 2


def _management(info: AppInfo, options: ManifestOptions) -> Management | None:
    """The management port the container runs with, if any.

    Raises:
        InputError: a port the kubelet cannot name or reach.
    """
    management = info.management_in({}, port=options.management_port)
    if management is None:
        return None
    app = info.source or "the app"
    if management.port == 0:
        raise InputError(
            f"{app}'s management port is 0 (another free port at every start), which no probe "
            "can name: give --management-port"
        )
    if management.port == options.port:
        raise InputError(
            f"{app}'s management port is the server's port {options.port}: give each its own"
        )
    if management.host is not None and management.host not in ANY_HOST:
        raise InputError(
            f"{app}'s management port listens on {management.host}, which the kubelet cannot "
            "reach: leave Management(host=...) unset (it follows the server's --host "
            '0.0.0.0), or Management(host="0.0.0.0")'
        )
    return management


def _prestop_mode(info: AppInfo, options: ManifestOptions) -> str:
    served = info.serves_prestop or _management(info, options) is not None
    if options.prestop == "auto":
        return "http" if served else "none"
    if options.prestop == "http" and info.source is not None and not served:
        raise InputError(
            f"{info.source} does not serve {info.health_path}/prestop: give it a management "
            "port (Lifecycle(management=...), or --management-port), mount "
            "ProbeApp(lifecycle, prestop=True, prestop_token=...), or choose another --prestop"
        )
    return options.prestop


def _environment(options: ManifestOptions, mode: str) -> dict[str, str]:
    """The ``GRACEKIT_*`` variables the container needs (the grace period comes later)."""
    env: dict[str, str] = {}
    if options.management_port is not None:
        env[MANAGEMENT_PORT_VARIABLE] = str(options.management_port)
    for field in ("delay", "drain_timeout", "hook_timeout"):
        value = getattr(options, field)
        if value is not None:
            env[ENVIRONMENT_VARIABLES[field]] = f"{value:g}"
    if mode in ("sleep", "exec-sleep"):
        env[ENVIRONMENT_VARIABLES["delay"]] = "0"  # the hook spends the delay: not twice
    return env


def budget_of(info: AppInfo, options: ManifestOptions) -> Budget:
    """What the grace period must cover for the container these options describe."""
    mode = _prestop_mode(info, options)
    planned = effective_timing(info.timing, _environment(options, "none"))
    sleep = float(math.ceil(planned.delay)) if mode in ("sleep", "exec-sleep") else 0.0
    timing = effective_timing(info.timing, _environment(options, mode))
    return Budget(timing, info.hooks_total(timing), prestop=sleep)


def _where(info: AppInfo, management: Management | None) -> tuple[str, str]:
    """The port name and the path under which the probes and the hook are served.

    Raises:
        InputError: the app serves them nowhere.
    """
    if management is not None:
        return MANAGEMENT_PORT_NAME, MANAGEMENT_HEALTH_PATH
    if info.health_path is None:
        raise InputError(
            f"{info.source} mounts no ProbeApp and has no management port: there is nothing "
            "for the probes to ask; give it one (Lifecycle(management=Management(port=9001)), "
            'or --management-port) or mount a ProbeApp (app.mount("/health", '
            "ProbeApp(lifecycle)))"
        )
    return PORT_NAME, info.health_path.rstrip("/")


def _probes(
    info: AppInfo, options: ManifestOptions, management: Management | None
) -> dict[str, Any]:
    port, base = _where(info, management)

    def http(path: str) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": port}}

    # A live process may stall its loop up to the lag threshold: liveness must outlast that.
    liveness_failures = max(
        LIVENESS_FAILURES,
        math.ceil((info.loop_lag_threshold - LIVENESS_TIMEOUT) / LIVENESS_PERIOD) + 1,
    )
    gating = [c for c in info.checks if "readiness" in c.probes]
    period = READINESS_PERIOD
    failures = READINESS_FAILURES
    if gating:
        # Probing slower than the checks run only adds delay; damping belongs in one place,
        # and a check with a failure_threshold above 1 already damps.
        period = max(1, min(READINESS_PERIOD, math.floor(min(c.interval for c in gating))))
        if any(c.failure_threshold > 1 for c in gating):
            failures = 1
    return {
        "startupProbe": {
            **http(f"{base}/startup"),
            "periodSeconds": STARTUP_PERIOD,
            "timeoutSeconds": 1,
            "failureThreshold": startup_failure_threshold(
                info.startup_work(), budget=options.startup_budget
            ),
        },
        "livenessProbe": {
            **http(f"{base}/live"),
            "periodSeconds": LIVENESS_PERIOD,
            "timeoutSeconds": LIVENESS_TIMEOUT,
            "failureThreshold": liveness_failures,
        },
        "readinessProbe": {
            **http(f"{base}/ready"),
            "periodSeconds": period,
            "timeoutSeconds": READINESS_TIMEOUT,
            "failureThreshold": failures,
            "successThreshold": 1,
        },
    }


def _prestop(
    info: AppInfo,
    options: ManifestOptions,
    management: Management | None,
    mode: str,
    sleep: float,
) -> dict[str, Any]:
    if mode == "sleep":
        return {"sleep": {"seconds": int(sleep)}}
    if mode == "exec-sleep":
        return {"exec": {"command": ["sleep", str(int(sleep))]}}
    port, base = _where(info, management)
    token, header = options.prestop_token, info.prestop_header
    if management is not None:
        # The pod's IP is reachable from every pod: the hook sends the token the container's
        # environment gives the app (see _management_token).
        token, header = _management_token(options, management), management.prestop_header
    elif info.prestop_protected and token is None:
        raise InputError(
            f"{info.source}'s preStop endpoint needs a token: pass --prestop-token (the value "
            "of the app's prestop_token), or serve the hook on a management port"
        )
    get: dict[str, Any] = {"path": f"{base}/prestop", "port": port}
    if token is not None:
        value = token if header is not None else f"Bearer {token}"
        get["httpHeaders"] = [{"name": header or "Authorization", "value": value}]
    return {"httpGet": get}


def _management_token(options: ManifestOptions, management: Management) -> str | None:
    """The token of the management port's preStop hook: --prestop-token, the code's, or one
    made up here (None: the code serves the hook without one)."""
    if options.prestop_token is not None:
        return options.prestop_token
    if management.prestop_token is not None or management.unauthenticated_prestop:
        return management.prestop_token
    return _made_up_token()


def _made_up_token() -> str:
    return secrets.token_urlsafe(24)


def _pod_spec(info: AppInfo, options: ManifestOptions) -> dict[str, Any]:
    management = _management(info, options)
    mode = _prestop_mode(info, options)
    budget = budget_of(info, options)
    grace = budget.grace_period()
    env = {GRACE_PERIOD_VARIABLE: str(grace), **_environment(options, mode)}
    if management is not None and mode == "http":
        # One token for the hook and for the app: both read here, in the pod spec.
        options = replace(options, prestop_token=_management_token(options, management))
        if options.prestop_token not in (None, management.prestop_token):
            env[PRESTOP_TOKEN_VARIABLE] = str(options.prestop_token)
    container: dict[str, Any] = {
        "name": options.name,
        "image": options.image or f"{options.name}:latest",
    }
    if options.app is not None:
        container["command"] = [
            "gracekit", "run", options.app, "--host", "0.0.0.0", "--port", str(options.port),
        ]  # fmt: skip
    container["ports"] = [{"name": PORT_NAME, "containerPort": options.port}]
    if management is not None:
        # Declared and named for the probes and the hook; the Service leaves it out.
        container["ports"].append({"name": MANAGEMENT_PORT_NAME, "containerPort": management.port})
    container["env"] = [{"name": name, "value": value} for name, value in env.items()]
    requests = {k: v for k, v in (("cpu", options.cpu), ("memory", options.memory)) if v}
    if requests:
        container["resources"] = {"requests": requests}
    container.update(_probes(info, options, management))
    if mode != "none":
        hook = _prestop(info, options, management, mode, budget.prestop)
        container["lifecycle"] = {"preStop": hook}
    return {"terminationGracePeriodSeconds": grace, "containers": [container]}


def build_manifest(info: AppInfo, options: ManifestOptions | None = None) -> list[dict[str, Any]]:
    """The objects for *info*'s app: a pod spec fragment, or the Deployment, Service and
    PodDisruptionBudget that ``options.objects`` names, in that order.

    Raises:
        InputError: the app cannot be probed (no management port and no ProbeApp), its
            management port cannot be named or reached, or the options ask for what it does
            not serve (``prestop="http"`` without the endpoint, or without its token).
    """
    options = options or ManifestOptions()
    pod_spec = _pod_spec(info, options)
    if not options.objects:
        return [pod_spec]
    labels = {"app.kubernetes.io/name": options.name}
    specs = {
        "deployment": {
            "replicas": options.replicas,
            # One new pod at a time, and no old one stops before its successor is ready:
            # capacity never drops below the replica count.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
        "service": {
            "selector": dict(labels),
            # The app's port only: never the management port's probes, metrics and preStop.
            "ports": [{"name": PORT_NAME, "port": 80, "targetPort": PORT_NAME}],
        },
        "pdb": {"maxUnavailable": 1, "selector": {"matchLabels": dict(labels)}},
    }
    return [
        {
            "apiVersion": _KINDS[name][0],
            "kind": _KINDS[name][1],
            "metadata": {"name": options.name, "labels": dict(labels)},
            "spec": specs[name],
        }
        for name in OBJECTS
        if name in options.objects
    ]
