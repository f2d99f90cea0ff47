"""The doctor's rules about the management port: one the kubelet can reach, apart from the
server's port, and exposed by no Service.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..server.management import MANAGEMENT_PORT_VARIABLE
from .container import ANY_HOST, mapping, prestop_hook, probe_endpoint, resolve_port
from .deployment import Target
from .findings import ERROR, Finding
from .probe_rules import PROBE_FIELDS, landing

__all__ = ["management_exposed", "management_port"]


def _lands_on_management(target: Target) -> bool:
    """True if a probe or the preStop hook goes to the management port."""
    hook = prestop_hook(target.container)
    endpoints = [probe_endpoint(mapping(target.container.get(f))) for f in PROBE_FIELDS]
    for endpoint in [*endpoints, *([hook.endpoint] if hook else [])]:
        where = landing(target, endpoint) if endpoint.kind == "httpGet" else None
        if where is not None and where.management:
            return True
    return False


def management_port(target: Target) -> Iterator[Finding]:
    """The management port must be readable, fixed, apart from the server's, and reachable."""
    if target.management_error is not None:
        yield Finding(
            "management-port", ERROR, target.path("env"), target.management_error,
            "the app refuses to start with a management port it cannot read: no pod of this "
            "revision becomes ready, and the rollout stalls",
            f"give {MANAGEMENT_PORT_VARIABLE} a port number (1 to 65535)",
        )  # fmt: skip
    management = target.management
    if management is None:
        return
    if management.port == 0:
        yield Finding(
            "management-port", ERROR, target.path("ports"),
            "the management port is 0: the app binds another free port at every start",
            "no probe or hook can name that port: the probes fail for ever, and the pods never "
            "become ready or are restarted in a loop",
            f"give it a fixed port: {MANAGEMENT_PORT_VARIABLE} in the env, gracekit run "
            "--management-port, or Management(port=...)",
        )  # fmt: skip
    elif management.port == target.port:
        yield Finding(
            "management-port", ERROR, target.path("ports"),
            f"the management port and the server's port are both {target.port}",
            "the second of the two to bind fails: the app does not start, and the rollout "
            "stalls",
            "give the management port a port of its own (9001, say)",
        )  # fmt: skip
    host = target.management_host
    if host is not None and host not in ANY_HOST and _lands_on_management(target):
        yield Finding(
            "listen-host", ERROR, target.path(),
            f"the management port listens on {host}, which only the pod itself can reach",
            "the kubelet sends the probes and the hook to the pod's IP: they are refused, and "
            "the pod never becomes ready",
            "leave Management(host=...) and GRACEKIT_MANAGEMENT_HOST unset and run the server "
            "with --host 0.0.0.0 (the management port follows it), or give 0.0.0.0",
        )  # fmt: skip


def management_exposed(target: Target) -> Iterator[Finding]:
    """No Service may expose the management port."""
    port, management = target.management_port, target.management
    if port is None or management is None or port == target.port:
        return  # none, or one management_port reports
    prestop = (
        "and the preStop endpoint, which only its token guards"
        if management.prestop_token
        else "and the preStop endpoint, which takes no token there: one request from anyone "
        "takes a pod out of rotation and shuts it down"
    )
    for doc in target.services:
        spec = mapping(doc.obj.get("spec"))
        if not target.selected_by(doc.obj, spec.get("selector")):
            continue
        listed = spec.get("ports")
        for index, entry in enumerate(listed if isinstance(listed, list) else ()):
            entry = mapping(entry)
            field = "targetPort" if "targetPort" in entry else "port"
            if resolve_port(entry.get(field), target.container) != port:
                continue
            name = mapping(doc.obj.get("metadata")).get("name", "?")
            yield Finding(
                "management-exposed", ERROR, f"spec.ports[{index}].{field}",
                f"Service {name} exposes the management port {port} ({field} "
                f"{entry.get(field)!r})",
                "it publishes the operator's interface to every client of the Service: the "
                f"probes' details, the metrics, {prestop}",
                f"drop port {port} from the Service: the kubelet and Prometheus reach the pod "
                "directly",
                source=doc.source, document=doc.number, deployment=target.name,
            )  # fmt: skip
