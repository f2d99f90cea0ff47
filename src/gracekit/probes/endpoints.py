"""The probe endpoints: ``/startup``, ``/live``, ``/ready`` and ``/ready/NAME``.

A pure ASGI app to mount (``Mount("/health", app=ProbeApp(lifecycle))``). It answers from the
lifecycle's latest state and never waits on a dependency, so a probe with a one-second timeout
gets its answer in microseconds even while the database hangs.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from .._asgi import NO_STORE, bearer_matches, plain, route_path, send_response
from ..drain._prestop import PreStop, ShutdownTarget
from ._health import Health
from ._runner import CheckState, CheckStatus
from .conditions import ProbeResult

__all__ = ["DETAILS_POLICIES", "ProbeApp", "Probed"]

DETAILS_POLICIES = ("never", "always", "token")

_MAX_QUERY_BYTES = 4096
_TRUE = {"", "1", "true", "yes", "on"}


# Every plain answer is built once: the probe path allocates nothing it does not have to.
_PLAIN = {
    "pass": plain(200, "pass"),
    "degraded": plain(200, "degraded"),
    "fail": plain(503, "fail"),
}
_NOT_FOUND = plain(404, "not found")
_NOT_ALLOWED = plain(405, "method not allowed", (b"allow", b"GET, HEAD"))


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    moment = datetime.datetime.fromtimestamp(wall, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class Probed(Health, ShutdownTarget, Protocol):
    """What the probe app reads (a :class:`~gracekit.Lifecycle` is one): the health it
    reports and, for ``/prestop``, the shutdown it starts."""


class ProbeApp:
    """ASGI app serving a lifecycle's probes.

    Parameters:
        lifecycle: the :class:`~gracekit.Lifecycle` whose state is reported.
        details: when ``?verbose`` output includes error texts and check details, which can
            leak hostnames and credentials: ``"never"`` (default), ``"always"``, or ``"token"``
            (only for requests with ``Authorization: Bearer <token>``).
        token: the bearer token, required with ``details="token"`` and only allowed with it.
        prestop: serve ``/prestop`` for a Kubernetes preStop ``httpGet`` hook (see
            :class:`~gracekit.drain._prestop.PreStop`): it starts the shutdown and answers
            once the shutdown delay is over. It needs *prestop_token*: without a token, serve
            the hook on the management port instead (``Lifecycle(management=...)``).
        prestop_token: the secret the preStop hook must send (``httpHeaders``), as a bearer
            token or in *prestop_header*.
        prestop_header: the header that carries *prestop_token*, instead of ``Authorization``.

    Raises:
        ValueError, TypeError: for an unknown policy or a missing or misplaced token.
    """

    #: gracekit's own endpoints: no deadlines, not counted as the app's requests.
    gracekit_management = True

    def __init__(
        self,
        lifecycle: Probed,
        *,
        details: str = "never",
        token: str | None = None,
        prestop: bool = False,
        prestop_token: str | None = None,
        prestop_header: str | None = None,
    ):
        if details not in DETAILS_POLICIES:
            raise ValueError(f"details must be one of {DETAILS_POLICIES}, got {details!r}")
        if token is not None and not isinstance(token, str):
            raise TypeError(f"token must be a str, not {type(token).__name__}")
        if details == "token":
            if token is None or not token.strip():
                raise ValueError("details='token' needs a non-empty token")
        elif token is not None:
            raise ValueError(f"a token is only used with details='token', not {details!r}")
        if (prestop_token is not None or prestop_header is not None) and not prestop:
            raise ValueError("prestop_token and prestop_header are only used with prestop=True")
        self.lifecycle = lifecycle
        self.details = details
        self._prestop = (
            PreStop(lifecycle, token=prestop_token, header=prestop_header) if prestop else None
        )
        self._token = None if token is None else token.encode()
        self._probes: dict[str, tuple[str, Callable[..., ProbeResult]]] = {
            "/startup": ("startup", lambda exclude: lifecycle.startup()),
            "/live": ("liveness", lambda exclude: lifecycle.liveness()),
            "/ready": ("readiness", lifecycle.readiness),
        }

    @property
    def serves_prestop(self) -> bool:
        """True if this app serves ``/prestop`` (``prestop=True``)."""
        return self._prestop is not None

    @property
    def prestop_protected(self) -> bool:
        """True if ``/prestop`` needs a token (``prestop_token``)."""
        return self._prestop is not None and self._prestop.protected

    @property
    def prestop_header(self) -> str | None:
        """The header that carries the preStop token (lower case), or None when it is a
        bearer token in ``Authorization`` (or there is no preStop endpoint)."""
        return None if self._prestop is None else self._prestop.header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        path = route_path(scope)
        if path == "/prestop" and self._prestop is not None:
            await self._prestop(scope, send)
            return
        probe = self._probes.get(path)
        if probe is None and not (path.startswith("/ready/") and len(path) > 7):
            await send_response(scope, send, *_NOT_FOUND)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await send_response(scope, send, *_NOT_ALLOWED)
            return
        verbose, exclude = self._parse_query(scope["query_string"])
        if probe is None:
            await self._one(scope, send, path[7:], verbose)
            return
        kind, evaluate = probe
        result = evaluate(exclude=exclude)
        if not verbose:
            await send_response(scope, send, *_PLAIN[result.status])
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
        if self._token is None:
            return self.details == "always"
        return bearer_matches(scope, self._token)

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
            await send_response(scope, send, *_NOT_FOUND)
            return
        if verbose:
            await self._send_json(scope, send, 200 if ok else 503, {"name": name, **report})
        else:
            await send_response(scope, send, *_PLAIN["pass" if ok else "fail"])

    # -- responses --------------------------------------------------------------------------

    async def _send_json(self, scope: Scope, send: Send, status: int, report: Any) -> None:
        body = json.dumps(report, separators=(",", ":")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            NO_STORE,
        ]
        await send_response(scope, send, status, headers, body)

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
