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

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from .._asgi import plain, send_response
from ..drain.prestop import PreStop, check_secret
from ..probes.endpoints import ProbeApp

if TYPE_CHECKING:
    from ..lifecycle import Lifecycle

__all__ = ["MANAGEMENT_PORT_VARIABLE", "Management", "ManagementApp", "serve_management"]

#: Set (``gracekit run --management-port``), it overrides the code's port when the app starts.
MANAGEMENT_PORT_VARIABLE = "GRACEKIT_MANAGEMENT_PORT"
DEFAULT_HOST = "0.0.0.0"

_NOT_FOUND = plain(404, "not found")


def _port(value: object, *, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= 65535:
        raise ValueError(f"{what} must be a port number (0 to 65535), got {value!r}")
    return value


@dataclass(frozen=True)
class Management:
    """Where gracekit's own endpoints are served, apart from the application.

    On the management port, ``/health/startup``, ``/health/live``, ``/health/ready``,
    ``/health/ready/NAME`` and ``/health/prestop`` answer as on a mounted ``ProbeApp``, and
    ``/metrics`` serves the lifecycle's :class:`~gracekit.metrics.Metrics` when it has them.

    Parameters:
        port: the port (0: any free one, for tests).
        host: the address to bind; ``0.0.0.0`` lets the kubelet and Prometheus reach it.
        details: ``?verbose`` probe answers include error texts and check details (the port
            is not public); False keeps them out here too.
        prestop_token: a secret the preStop hook must present here as well (``Authorization:
            Bearer``, or *prestop_header*); by default the port's privacy is the protection.
        prestop_header: the header that carries *prestop_token*.

    Raises:
        TypeError, ValueError: a port that is not 0 to 65535, an empty host, an empty token,
            a header without a token.
    """

    port: int
    host: str = DEFAULT_HOST
    details: bool = True
    prestop_token: str | None = None
    prestop_header: str | None = None

    def __post_init__(self) -> None:
        _port(self.port, what="management port")
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError(f"the management host must be a non-empty str, got {self.host!r}")
        check_secret(self.prestop_token, self.prestop_header)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, *, base: Management | None = None
    ) -> Management | None:
        """*base* with the port of ``GRACEKIT_MANAGEMENT_PORT`` when it is set (a management
        port with the defaults if *base* is None); *base* otherwise.

        Raises:
            ValueError: the variable is set but is not a port number.
        """
        raw = environ.get(MANAGEMENT_PORT_VARIABLE, "").strip()
        if not raw:
            return base
        try:
            port = _port(int(raw), what=MANAGEMENT_PORT_VARIABLE)
        except (TypeError, ValueError):
            raise ValueError(
                f"{MANAGEMENT_PORT_VARIABLE} must be a port number, got {raw!r}"
            ) from None
        return cls(port=port) if base is None else replace(base, port=port)

    def __repr__(self) -> str:
        token = "set" if self.prestop_token else None  # a secret: never in a repr
        return f"Management(port={self.port}, host={self.host!r}, prestop_token={token})"


class ManagementApp:
    """The ASGI app of the management port (see :class:`Management`)."""

    gracekit_management = True

    def __init__(self, lifecycle: Lifecycle, config: Management) -> None:
        self.lifecycle = lifecycle
        self._probes = ProbeApp(lifecycle, details="always" if config.details else "never")
        self._prestop = PreStop(
            lifecycle,
            token=config.prestop_token,
            header=config.prestop_header,
            require_token=False,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/health/prestop":
            await self._prestop(scope, send)
        elif path.startswith("/health/"):
            await self._probes({**scope, "root_path": "/health"}, receive, send)
        elif path in self.lifecycle.management_routes:
            await self.lifecycle.management_routes[path](scope, receive, send)
        else:
            await send_response(scope, send, *_NOT_FOUND)


@asynccontextmanager
async def serve_management(lifecycle: Lifecycle, config: Management) -> AsyncIterator[int]:
    """Serve the management port for the body's duration; yields the port it listens on.

    Raises:
        OSError: the port cannot be bound (taken, or not allowed).
    """
    from .http11 import SmallServer

    server = SmallServer(ManagementApp(lifecycle, config), host=config.host, port=config.port)
    await server.start()
    try:
        yield server.port
    finally:
        await server.stop()
