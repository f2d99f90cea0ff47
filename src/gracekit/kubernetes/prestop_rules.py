"""The doctor's rule about the preStop hook: the delay spent once, and an HTTP hook calling the
endpoint where it is served (the app's port, or the management port) with the token it needs.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..drain.timing import ENVIRONMENT_VARIABLES
from ..server.management import PRESTOP_TOKEN_VARIABLE
from .appinfo import MANAGEMENT_HEALTH_PATH
from .container import Endpoint, prestop_hook
from .deployment import Target
from .findings import ERROR, WARNING, Finding
from .probe_rules import landing, port_findings

__all__ = ["prestop"]


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


def _sends(endpoint: Endpoint, header: str | None) -> bool:
    """True if the hook sends a value in *header* (None: ``Authorization``)."""
    wanted = (header or "authorization").lower()
    return any(name.lower() == wanted for name, _ in endpoint.headers)


def _token_from_secret(target: Target) -> bool:
    """True if the container's env sets the management port's token from a Secret or a
    ConfigMap (``valueFrom``), whose value the manifest does not show."""
    env = target.container.get("env")
    return any(
        isinstance(entry, dict)
        and entry.get("name") == PRESTOP_TOKEN_VARIABLE
        and "valueFrom" in entry
        for entry in (env if isinstance(env, list) else ())
    )


def _header_fix(header: str | None, what: str) -> str:
    if header is None:
        return f"add httpHeaders: [{{name: Authorization, value: Bearer <{what}>}}]"
    return f"add httpHeaders: [{{name: {header}, value: <{what}>}}]"


def _prestop_http(target: Target, endpoint: Endpoint, path: str) -> Iterator[Finding]:
    yield from port_findings(target, endpoint, path + ".httpGet.port", "the preStop hook")
    where, has_management = landing(target, endpoint), target.management_port is not None
    if where is None:
        on_management = has_management  # a wrong port, reported: judge the rest as meant
    elif where.base is None and has_management:
        return  # the app's port, which serves nothing of gracekit's: reported
    else:
        on_management = where.management
    if on_management:
        yield from _prestop_management(target, endpoint, path)
    else:
        yield from _prestop_app(target, endpoint, path)


def _prestop_management(target: Target, endpoint: Endpoint, path: str) -> Iterator[Finding]:
    expected = f"{MANAGEMENT_HEALTH_PATH}/prestop"
    if endpoint.path != expected:
        yield Finding(
            "prestop-path", ERROR, path + ".httpGet.path",
            f"the preStop hook calls {endpoint.path} on the management port, which serves "
            f"{expected}",
            "the hook fails (FailedPreStopHook) and the delay is not spent before SIGTERM: "
            "under a server gracekit does not take over, the pod stops accepting while the "
            "proxies still send to it",
            f"call {expected}",
        )  # fmt: skip
        return
    management = target.management
    if management is None:
        return
    secret = _token_from_secret(target)
    host = target.management_host or "0.0.0.0"
    if (
        management.prestop_closed(host) is not None
        and not secret
        and target.port != management.port
    ):
        yield Finding(
            "prestop-token", ERROR, path + ".httpGet",
            f"the management port listens on {host}, where its preStop endpoint needs a "
            "token, and the app has none",
            "every pod can reach that address: the endpoint refuses every call (403), the "
            "hook fails, and the delay is left to SIGTERM",
            f"set {PRESTOP_TOKEN_VARIABLE} in the container's env and send the same value: "
            + _header_fix(management.prestop_header, "the token"),
        )  # fmt: skip
        return
    if (management.prestop_token or secret) and not _sends(endpoint, management.prestop_header):
        yield Finding(
            "prestop-token", ERROR, path + ".httpGet.httpHeaders",
            "the management port's preStop endpoint needs a token (Management(prestop_token="
            "...)), and the hook sends none",
            "the hook gets 401 and changes nothing: the delay is left to SIGTERM, which a "
            "server gracekit does not take over turns into refused connections",
            _header_fix(management.prestop_header, "the management prestop_token"),
        )  # fmt: skip


def _prestop_app(target: Target, endpoint: Endpoint, path: str) -> Iterator[Finding]:
    info = target.info
    base = (info.health_path or "/health").rstrip("/")
    if endpoint.path != f"{base}/prestop" or (info.source is not None and not info.serves_prestop):
        served = f"{base}/prestop" if info.serves_prestop else "no preStop endpoint"
        yield Finding(
            "prestop-path", ERROR, path + ".httpGet.path",
            f"the preStop hook calls {endpoint.path}, but the app serves {served}",
            "the hook fails (FailedPreStopHook) and the delay is not spent before SIGTERM: "
            "under a server gracekit does not take over, the pod stops accepting while the "
            "proxies still send to it",
            f"call {base}/prestop, served by ProbeApp(lifecycle, prestop=True, "
            "prestop_token=...), or serve it on a management port",
        )  # fmt: skip
        return
    sent = _sends(endpoint, info.prestop_header)
    if info.prestop_protected and not sent:
        yield Finding(
            "prestop-token", ERROR, path + ".httpGet.httpHeaders",
            "the app's preStop endpoint needs a token, and the hook sends none",
            "the hook gets 401 and changes nothing: the delay is left to SIGTERM, which a "
            "server gracekit does not take over turns into refused connections",
            _header_fix(info.prestop_header, "the prestop_token"),
        )  # fmt: skip
    elif not info.prestop_protected and not sent:
        yield Finding(
            "prestop-token", WARNING, path + ".httpGet",
            f"{base}/prestop on the app's port is called without a token",
            "anyone who can reach the app's port (through the Service, the ingress) can take "
            "the pod out of rotation and shut it down",
            "serve the hook on a management port, which no Service exposes; or serve it with "
            "ProbeApp(..., prestop_token=...) and send the token in httpHeaders",
        )  # fmt: skip
