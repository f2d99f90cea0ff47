"""Where the management port listens: its socket, bound once per pod, and its address.

The socket is bound without ``SO_REUSEPORT``: a second process asking for the same port fails
with an error naming it, instead of silently taking half the probes. gunicorn's worker
processes share one socket, which the master binds before it forks them
(:class:`gracekit.server.gunicorn.Worker`), and each worker serves it on its own event loop.
uvicorn's worker processes (``gracekit run --workers N``) have no such master: each would bind
the port itself, so a port other than 0 is refused with them, before any worker binds it.

The address defaults to the one the application's server binds: a server on 127.0.0.1 has a
management port on 127.0.0.1, one on 0.0.0.0 (in a pod) has it on 0.0.0.0.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
from collections.abc import Mapping
from typing import Any

from .._settings import WORKERS_VARIABLE, Settings
from ._uvicorn import find_server

__all__ = [
    "LOOPBACK",
    "WORKERS_VARIABLE",
    "bind",
    "is_loopback",
    "server_host",
    "set_server_host",
    "share",
    "shared",
    "uvicorn_workers",
    "workers_refusal",
]

LOOPBACK = "127.0.0.1"
BACKLOG = 2048

# Sockets bound before this worker process started, by port; and the address the server's
# own sockets are bound to when the server told us (gunicorn's workers get theirs from the
# master, which uvicorn's config does not show).
_SHARED: dict[int, socket.socket] = {}
_server_host: str | None = None


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on *host*:*port* (0: any free port).

    Raises:
        OSError: the port is in use or not allowed, with a message naming it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and without
    # it an answer's body waits for the client's delayed ACK of its head (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # Rebinding a port whose last connections are in TIME_WAIT (a restart); unlike
        # SO_REUSEPORT this never lets two live listeners share it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise OSError(
                exc.errno,
                f"the management port {where} is in use by another process: give each process "
                "a port of its own (GRACEKIT_MANAGEMENT_PORT); worker processes share one "
                "only under gunicorn with gracekit.server.gunicorn.Worker and "
                "GRACEKIT_MANAGEMENT_PORT set, whose master binds it once for all of them",
            ) from None
        raise OSError(exc.errno, f"cannot listen on the management port {where}: {exc}") from None
    return sock


def share(sock: socket.socket) -> None:
    """Make *sock* the management socket of its port for this process and the workers it
    starts afterwards."""
    _SHARED[sock.getsockname()[1]] = sock


def shared(port: int) -> socket.socket | None:
    """The socket bound for *port* before this process started serving, if one was."""
    return _SHARED.get(port) if port else None


def uvicorn_workers(environ: Mapping[str, str] = os.environ) -> int:
    """How many uvicorn worker processes serve the app with this one, as ``gracekit run``
    told them (:data:`WORKERS_VARIABLE`); 1 when it did not."""
    return Settings(environ).uvicorn_workers()


def workers_refusal(port: int, workers: int) -> str:
    """Why *workers* uvicorn worker processes cannot serve the management port *port*, and
    what to run instead."""
    return (
        f"{workers} uvicorn worker processes cannot share the management port {port}: each "
        "would bind it itself, and only one can. For several workers, run them under gunicorn, "
        f"whose master binds the port once for all of them: GRACEKIT_MANAGEMENT_PORT={port} "
        f"gunicorn -k gracekit.server.gunicorn.Worker -w {workers} MODULE:APP; or run one "
        "worker per process"
    )


def set_server_host(host: str | None) -> None:
    """Record the address the application's server listens on (None: forget it)."""
    global _server_host
    _server_host = host


def server_host() -> str:
    """The address the application's server binds, as far as it can be known here: what a
    gunicorn worker recorded, else the host of the uvicorn server running this process, else
    127.0.0.1 (unknown servers, Unix sockets and inherited file descriptors)."""
    if _server_host is not None:
        return _server_host
    server: Any = find_server(signal.getsignal(signal.SIGTERM))
    if server is None:
        return LOOPBACK
    config = server.config
    if config.uds is not None or config.fd is not None:
        return LOOPBACK
    return "0.0.0.0" if config.host is None else str(config.host)


def is_loopback(host: str) -> bool:
    """True if only the pod itself can reach *host* (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere
