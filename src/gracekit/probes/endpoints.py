"""The probe endpoints: ``/startup``, ``/live``, ``/ready`` and ``/ready/NAME``.

A pure ASGI app to mount (``Mount("/health", app=ProbeApp(lifecycle))``). It answers from the
lifecycle's latest state and never waits on a dependency, so a probe with a one-second timeout
gets its answer in microseconds even while the database hangs.
"""

from __future__ import annotations

import datetime
import hmac
import json
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from .conditions import ProbeResult
from .runner import CheckState, CheckStatus

if TYPE_CHECKING:
    from ..lifecycle import Lifecycle

__all__ = ["DETAILS_POLICIES", "ProbeApp"]

DETAILS_POLICIES = ("never", "always", "token")

_MAX_QUERY_BYTES = 4096
_TRUE = {"", "1", "true", "yes", "on"}
_NO_STORE = (b"cache-control", b"no-store")
_ALLOW = (b"allow", b"GET, HEAD")


def _plain(status: int, text: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = text.encode() + b"\n"
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        _NO_STORE,
    ]
    if status == 405:
        headers.append(_ALLOW)
    return status, headers, body


# Every plain answer is built once: the probe path allocates nothing it does not have to.
_PLAIN = {
    "pass": _plain(200, "pass"),
    "degraded": _plain(200, "degraded"),
    "fail": _plain(503, "fail"),
}
_NOT_FOUND = _plain(404, "not found")
_NOT_ALLOWED = _plain(405, "method not allowed")


def _route_path(scope: Scope) -> str:
    # The path below the mount point: Starlette's Mount keeps scope["path"] whole and extends
    # root_path, so the prefix is stripped here.
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :]
    return path


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    moment = datetime.datetime.fromtimestamp(wall, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class ProbeApp:
    """ASGI app serving a lifecycle's probes.

    Parameters:
        lifecycle: the :class:`~gracekit.Lifecycle` whose state is reported.
        details: when ``?verbose`` output includes error texts and check details, which can
            leak hostnames and credentials: ``"never"`` (default), ``"always"``, or ``"token"``
            (only for requests with ``Authorization: Bearer <token>``).
        token: the bearer token, required with ``details="token"`` and only allowed with it.

    Raises:
        ValueError, TypeError: for an unknown policy or a missing or misplaced token.
    """

    def __init__(self, lifecycle: Lifecycle, *, details: str = "never", token: str | None = None):
        if details not in DETAILS_POLICIES:
            raise ValueError(f"details must be one of {DETAILS_POLICIES}, got {details!r}")
        if token is not None and not isinstance(token, str):
            raise TypeError(f"token must be a str, not {type(token).__name__}")
        if details == "token":
            if token is None or not token.strip():
                raise ValueError("details='token' needs a non-empty token")
        elif token is not None:
            raise ValueError(f"a token is only used with details='token', not {details!r}")
        self.lifecycle = lifecycle
        self.details = details
        self._token = None if token is None else token.encode()
        self._probes: dict[str, tuple[str, Callable[..., ProbeResult]]] = {
            "/startup": ("startup", lambda exclude: lifecycle.startup()),
            "/live": ("liveness", lambda exclude: lifecycle.liveness()),
            "/ready": ("readiness", lifecycle.readiness),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        path = _route_path(scope)
        probe = self._probes.get(path)
        if probe is None and not (path.startswith("/ready/") and len(path) > 7):
            await self._send(scope, send, *_NOT_FOUND)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await self._send(scope, send, *_NOT_ALLOWED)
            return
        verbose, exclude = self._parse_query(scope["query_string"])
        if probe is None:
            await self._one(scope, send, path[7:], verbose)
            return
        kind, evaluate = probe
        result = evaluate(exclude=exclude)
        if not verbose:
            await self._send(scope, send, *_PLAIN[result.status])
            return
        report = self._report(kind, result, exclude, self._details_allowed(scope))
        await self._send_json(scope, send, 200 if result.ok else 503, report)

    # -- requests ---------------------------------------------------------------------------

    @staticmethod
    def _parse_query(raw: bytes) -> tuple[bool, Collection[str]]:
        if not raw or len(raw) > _MAX_QUERY_BYTES:
            return False, ()
        verbose, exclude = False, set()
        for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
            if key == "verbose":
                verbose = value.lower() in _TRUE
            elif key == "exclude" and value:
                exclude.add(value)
        return verbose, exclude

    def _details_allowed(self, scope: Scope) -> bool:
        if self.details != "token":
            return self.details == "always"
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer" and self._token is not None:
                    return hmac.compare_digest(credentials.strip(), self._token)
        return False

    # -- reports ----------------------------------------------------------------------------

    def _report(
        self, kind: str, result: ProbeResult, exclude: Collection[str], details: bool
    ) -> dict[str, Any]:
        lifecycle = self.lifecycle
        now = time.monotonic()
        report: dict[str, Any] = {
            "probe": kind,
            "status": result.status,
            "phase": lifecycle.phase.value,
            "reasons": result.reasons,
        }
        if kind == "liveness":
            report["loop_lag_ms"] = _ms(lifecycle.loop_monitor.lag(now))
            report["loop_lag_threshold_ms"] = _ms(lifecycle.loop_lag_threshold)
            if lifecycle.broken is not None:
                report["broken"] = lifecycle.broken if details else True
            return report
        if kind == "startup":
            shown = {n: s for n, s in lifecycle.checks.items() if "startup" in s.check.probes}
        else:
            shown = {n: s for n, s in lifecycle.checks.items() if n not in exclude}
        report["checks"] = {
            name: self._check_json(state, now, details) for name, state in shown.items()
        }
        if kind == "startup":
            report["tasks"] = {
                name: {
                    "status": task.status.value,
                    "duration_ms": _ms(task.duration),
                    **({"error": task.error} if details and task.error else {}),
                }
                for name, task in lifecycle.startup_tasks.items()
            }
        else:
            report["gates"] = {
                name: "open" if g.is_open else "closed"
                for name, g in lifecycle.gates.items()
                if name not in exclude
            }
        return report

    @staticmethod
    def _check_json(state: CheckState, now: float, details: bool) -> dict[str, Any]:
        check = state.check
        entry: dict[str, Any] = {
            "status": state.status(now).value,
            "probes": sorted(check.probes) or ["informational"],
            "duration_ms": _ms(state.last_duration),
            "last_success": _iso(state.last_success_wall),
            "consecutive_failures": state.consecutive_failures,
            "consecutive_successes": state.consecutive_successes,
        }
        if details:
            if state.error is not None:
                entry["error"] = state.error
            if state.detail:
                entry["detail"] = state.detail
        return entry

    async def _one(self, scope: Scope, send: Send, name: str, verbose: bool) -> None:
        lifecycle = self.lifecycle
        state = lifecycle.checks.get(name)
        gate = lifecycle.gates.get(name)
        if state is not None:
            now = time.monotonic()
            ok = state.status(now) is CheckStatus.PASS
            report = self._check_json(
                state, now, self._details_allowed(scope) if verbose else False
            )
        elif gate is not None:
            ok = gate.is_open
            report = {"status": "pass" if ok else "fail", "gate": "open" if ok else "closed"}
        else:
            await self._send(scope, send, *_NOT_FOUND)
            return
        if verbose:
            await self._send_json(scope, send, 200 if ok else 503, {"name": name, **report})
        else:
            await self._send(scope, send, *_PLAIN["pass" if ok else "fail"])

    # -- responses --------------------------------------------------------------------------

    @staticmethod
    async def _send(
        scope: Scope, send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    async def _send_json(self, scope: Scope, send: Send, status: int, report: Any) -> None:
        body = json.dumps(report, separators=(",", ":")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            _NO_STORE,
        ]
        await self._send(scope, send, status, headers, body)

    @staticmethod
    async def _not_http(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # Served on its own, the probe app has nothing to start: the lifecycle runs in the
            # main application's lifespan.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
