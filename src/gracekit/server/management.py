"""The management port: probes, metrics and the preStop hook, apart from the application.

Probes, metrics and the preStop endpoint are an operator's interface. Served on the application's
port they are reachable through the Service and any Ingress in front of it; on a port of their
own, which the pod declares and no Service exposes, only the kubelet and Prometheus reach them.

The management server runs on the application's event loop (liveness keeps saying whether that
loop makes progress), starts before the application's own lifespan (so the startup probe answers
while it runs), keeps answering through the shutdown delay and the drain (readiness 503, liveness
200), and closes last, after the shutdown hooks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import _validate
from .._asgi import NO_STORE, plain, send_response
from .._settings import (
    MANAGEMENT_HOST_VARIABLE,
    MANAGEMENT_PORT_VARIABLE,
    PRESTOP_TOKEN_VARIABLE,
    Settings,
)
from ..drain._prestop import PreStop, check_secret
from ..probes.endpoints import DETAILS_POLICIES, ProbeApp, Probed
from . import _management_socket as management_socket

__all__ = [
    "MANAGEMENT_HOST_VARIABLE",
    "MANAGEMENT_PORT_VARIABLE",
    "PRESTOP_TOKEN_VARIABLE",
    "Management",
    "ManagementApp",
    "serve_management",
]

logger = logging.getLogger("gracekit")

MAX_BODY = 4 * 1024  # bytes of request body (probes and hooks send none)

_NOT_FOUND = plain(404, "not found")
_SMUGGLED = plain(400, "Content-Length and Transfer-Encoding together")
_TOO_LARGE = plain(413, "request body too large")
_FAILED = plain(500, "internal server error")
_CLOSE = (b"connection", b"close")
_REPLACED = (b"cache-control", b"server", b"connection")


@dataclass(frozen=True)
class Management:
    """Where gracekit's own endpoints are served, apart from the application.

    On the management port, ``/health/startup``, ``/health/live``, ``/health/ready``,
    ``/health/ready/NAME`` and ``/health/prestop`` answer as on a mounted ``ProbeApp``, and
    ``/metrics`` serves the lifecycle's :class:`~gracekit.metrics.Metrics` when it has them.

    Parameters:
        port: the port (0: any free one, for tests).
        host: the address to bind; None (the default): the address the application's server
            binds (127.0.0.1 when it cannot be found out), so ``--host 0.0.0.0`` in a pod
            makes the port reachable by the kubelet and Prometheus.
        details: when ``?verbose`` probe answers include error texts and check details, as on
            :class:`~gracekit.ProbeApp`: ``"never"`` (default), ``"always"``, or ``"token"``
            (requests with ``Authorization: Bearer <details_token>``).
        details_token: the token of ``details="token"``.
        prestop_token: a secret the preStop hook must present (``Authorization: Bearer``, or
            *prestop_header*). Without one, the hook is served only on a loopback address
            (or with *unauthenticated_prestop*): other pods can reach any other address.
        prestop_header: the header that carries *prestop_token*.
        unauthenticated_prestop: serve the preStop hook without a token on any address:
            anyone who can reach the port can then shut the pod down.

    Raises:
        TypeError, ValueError: a port that is not 0 to 65535, an empty host, an unknown
            details policy, an empty token or one with whitespace around it, a header without
            a token, a token with *unauthenticated_prestop*.
    """

    port: int
    host: str | None = None
    details: str = "never"
    details_token: str | None = None
    prestop_token: str | None = None
    prestop_header: str | None = None
    unauthenticated_prestop: bool = False

    def __post_init__(self) -> None:
        _validate.port(self.port, what="management port", allow_zero=True)
        if self.host is not None and (not isinstance(self.host, str) or not self.host.strip()):
            raise ValueError(f"the management host must be a non-empty str, got {self.host!r}")
        if self.details not in DETAILS_POLICIES:
            raise ValueError(
                f"details must be one of {DETAILS_POLICIES} (as on ProbeApp), got {self.details!r}"
            )
        if (self.details == "token") != (self.details_token is not None):
            raise ValueError("details_token goes with details='token', and only with it")
        check_secret(self.prestop_token, self.prestop_header)
        if self.unauthenticated_prestop and self.prestop_token is not None:
            raise ValueError("unauthenticated_prestop and a prestop_token contradict each other")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, *, base: Management | None = None
    ) -> Management | None:
        """*base* with what the environment sets: the port of ``GRACEKIT_MANAGEMENT_PORT`` (a
        management port with the defaults if *base* is None), the address of
        ``GRACEKIT_MANAGEMENT_HOST``, the preStop token of ``GRACEKIT_PRESTOP_TOKEN``. None
        when there is neither a *base* nor a port variable.

        Raises:
            ValueError: a variable is set to something it cannot be (not a port number, a
                token with whitespace around it).
        """
        settings = Settings(environ)
        port = settings.management_port()
        config = base
        if port is not None:
            config = cls(port=port) if base is None else replace(base, port=port)
        if config is None:
            return None
        host = settings.management_host()
        if host:
            config = replace(config, host=host)
        token = settings.prestop_token()
        if token:
            try:
                config = replace(config, prestop_token=token, unauthenticated_prestop=False)
            except ValueError as exc:
                raise ValueError(f"{PRESTOP_TOKEN_VARIABLE}: {exc}") from None
        return config

    def prestop_closed(self, host: str) -> str | None:
        """Why the preStop hook is refused on *host*, or None when it is served."""
        if self.prestop_token is not None or self.unauthenticated_prestop:
            return None
        if management_socket.is_loopback(host):
            return None
        return (
            f"no token: the management port listens on {host}, which other pods reach "
            f"(set {PRESTOP_TOKEN_VARIABLE})"
        )

    def __repr__(self) -> str:
        token = "set" if self.prestop_token else None  # a secret: never in a repr
        return (
            f"Management(port={self.port}, host={self.host!r}, details={self.details!r}, "
            f"prestop_token={token})"
        )


def _framing(headers: list[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """The request's Content-Length (None: none) and whether it has a Transfer-Encoding."""
    length, chunked = None, False
    for key, value in headers:
        if key == b"content-length":
            length = int(value)  # h11 has checked it is a number
        elif key == b"transfer-encoding":
            chunked = True
    return length, chunked


class Managed(Probed, Protocol):
    """What the management port serves (a :class:`~gracekit.Lifecycle` is one): the probes,
    the preStop hook's shutdown, and further endpoints by path (``/metrics``)."""

    @property
    def management_routes(self) -> Mapping[str, ASGIApp]: ...


class ManagementApp:
    """The ASGI app of the management port (see :class:`Management`).

    Probes and hooks send no body: a request with both Content-Length and Transfer-Encoding
    (one way to hide a second request in the first) gets 400, one with a body over 4 KiB 413,
    and the connection closes after any request that has a body. Every answer says
    ``Cache-Control: no-store`` and carries no ``Server`` header.
    """

    gracekit_management = True

    def __init__(self, lifecycle: Managed, config: Management, *, host: str) -> None:
        self.lifecycle = lifecycle
        self._probes = ProbeApp(lifecycle, details=config.details, token=config.details_token)
        self.prestop_closed = config.prestop_closed(host)
        self._prestop = PreStop(
            lifecycle,
            token=config.prestop_token,
            header=config.prestop_header,
            require_token=False,
            closed=self.prestop_closed,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        length, chunked = _framing(scope["headers"])
        started = False

        async def answer(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k not in _REPLACED]
                headers.append(NO_STORE)
                if chunked or length:
                    headers.append(_CLOSE)  # nothing here reads a body: do not parse the rest
                message = {**message, "headers": headers}
            await send(message)

        try:
            if chunked and length is not None:
                await send_response(scope, answer, *_SMUGGLED)
            elif length is not None and length > MAX_BODY:
                await send_response(scope, answer, *_TOO_LARGE)
            else:
                await self._route(scope, receive, answer)
        except Exception:
            logger.exception("management endpoint %s failed", scope["path"])
            if not started:
                await send_response(scope, answer, *_FAILED)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == "/health/prestop":
            await self._prestop(scope, send)
        elif path.startswith("/health/"):
            await self._probes({**scope, "root_path": "/health"}, receive, send)
        elif path in self.lifecycle.management_routes:
            await self.lifecycle.management_routes[path](scope, receive, send)
        else:
            await send_response(scope, send, *_NOT_FOUND)


def _listening_socket(config: Management) -> tuple[Any, str]:
    host = config.host or management_socket.server_host()
    sock = management_socket.shared(config.port)
    if sock is None:
        workers = management_socket.uvicorn_workers()
        if config.port and workers > 1:
            # Refused in every worker, before any binds: one failing worker later would stop
            # the others, after they had started serving.
            raise ValueError(management_socket.workers_refusal(config.port, workers))
        sock = management_socket.bind(host, config.port)
    return sock, host


@asynccontextmanager
async def serve_management(lifecycle: Managed, config: Management) -> AsyncIterator[int]:
    """Serve the management port for the body's duration; yields the port it listens on.

    Raises:
        OSError: the port cannot be bound (taken, or not allowed).
        ValueError: a port other than 0 in one of several uvicorn worker processes (``gracekit
            run --workers N``), which cannot share it.
    """
    from ._management_server import ManagementServer

    sock, host = _listening_socket(config)
    port = sock.getsockname()[1]
    app = ManagementApp(lifecycle, config, host=host)
    server = ManagementServer(app, sock)
    try:
        await server.start()
    except BaseException:
        sock.close()
        raise
    try:
        logger.info(
            "management port %s:%d: /health/..., /health/prestop (%s)%s",
            host,
            port,
            f"refused: {app.prestop_closed}" if app.prestop_closed else "served",
            ", /metrics" if "/metrics" in lifecycle.management_routes else "",
        )
        yield port
    finally:
        await server.stop()
